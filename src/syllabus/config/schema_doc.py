"""``docs/plan.md`` written from the config models: every key of a plan, its type, default and meaning.

    python -m syllabus.config.schema_doc [PATH]          # write (default: docs/plan.md)
    python -m syllabus.config.schema_doc --check [PATH]  # exit 1 when PATH differs from the models

The models are the one source of truth; a test fails when the page is stale. No torch import.
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from syllabus.config.model import ModelConfig
from syllabus.config.plan import PLAN_OWNED, PlanConfig
from syllabus.config.pretrain import PreTrainingConfig

DEFAULT_PATH = Path(__file__).resolve().parents[3] / "docs" / "plan.md"

INTRO = """# The plan file

A plan is a YAML file read into `PlanConfig` (`syllabus run PLAN.yaml`). This page is generated from the
models by `python -m syllabus.config.schema_doc`; a test fails when it is stale, so what it says is what the
code accepts. Unknown keys are refused with the closest known one; every error names the key's path.
`stages[]` is a list of stage blocks; `a | b` is either type; `one of` lists the allowed values.
"""


def type_name(annotation) -> str:
    """A short, readable name for a field's annotation: ``int``, ``float | None``, ``one of a, b``, ``list[str]``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join("None" if a is type(None) else type_name(a) for a in args)
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(type_name(a) for a in args)}]"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "block"
    return getattr(annotation, "__name__", str(annotation))


def default_text(field) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return ", ".join(f"{k}: {v}" for k, v in value.model_dump(exclude_none=True).items()) or "(defaults)"
    return "none" if value is None else f"`{value}`" if value != "" else '`""`'


def table(model: type[BaseModel], prefix: str, owned: set[str] = frozenset()) -> list[str]:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        key = field.alias or name
        meaning = (field.description or "").replace("|", "\\|")
        if name in owned:
            meaning += " *(set by the plan, not by defaults/overrides)*"
        cells = [f"`{prefix}{key}`", type_name(field.annotation), default_text(field)]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + f" | {meaning} |")
    return lines


def plan_reference() -> str:
    """The whole page (Markdown)."""
    stage = typing.get_args(PlanConfig.model_fields["stages"].annotation)[0]
    replay = next(a for a in typing.get_args(stage.model_fields["replay"].annotation) if a is not type(None))
    point = typing.get_args(stage.model_fields["curriculum"].annotation)[0]
    sections = [
        ("Top level", PlanConfig, "", set()),
        ("`model`", PlanConfig.model_fields["model"].annotation, "model.", set()),
        ("`tokenizer`", PlanConfig.model_fields["tokenizer"].annotation, "tokenizer.", set()),
        ("A stage: `stages[]`", stage, "stages[].", set()),
        ("`stages[].budget` (exactly one key)", stage.model_fields["budget"].annotation, "stages[].budget.", set()),
        ("`stages[].lr`", stage.model_fields["lr"].annotation, "stages[].lr.", set()),
        ("`stages[].curriculum[]`", point, "stages[].curriculum[].", set()),
        ("`stages[].replay`", replay, "stages[].replay.", set()),
        ("`evaluation`", PlanConfig.model_fields["evaluation"].annotation, "evaluation.", set()),
        ("`forgetting`", PlanConfig.model_fields["forgetting"].annotation, "forgetting.", set()),
        ("Training fields: `defaults` and `stages[].overrides`", PreTrainingConfig, "", PLAN_OWNED),
        ("Model fields: `model.overrides`", ModelConfig, "", set()),
    ]
    lines = [INTRO]
    for title, model, prefix, owned in sections:
        lines += [f"## {title}", ""]
        if model.__doc__ and model not in (PlanConfig, PreTrainingConfig, ModelConfig):
            lines += [" ".join(model.__doc__.split()), ""]
        lines += table(model, prefix, owned) + [""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    args = [a for a in args if a != "--check"]
    path = Path(args[0]) if args else DEFAULT_PATH
    text = plan_reference()
    if check:
        if not path.exists() or path.read_text() != text:
            print(f"{path} is stale: run `python -m syllabus.config.schema_doc {path}`", file=sys.stderr)
            return 1
        return 0
    path.write_text(text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
