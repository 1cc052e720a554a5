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
    if origin is typing.Annotated:  # e.g. NonNegativeInt: the type, then its bounds
        bounds = [f"{symbol} {getattr(m, attr)}" for m in args[1:] for attr, symbol in
                  (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")) if getattr(m, attr, None) is not None]
        return " ".join([type_name(args[0]), *bounds])
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
            where = owned[name] if isinstance(owned, dict) else "the plan"
            meaning += f" *(set by the plan, in {where}; not by defaults/overrides)*"
        cells = [f"`{prefix}{key}`", type_name(field.annotation), default_text(field)]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + f" | {meaning} |")
    return lines


def nested_model(annotation) -> tuple[type[BaseModel], bool] | None:
    """The block model inside ``annotation`` (looking through ``| None`` and ``list[...]``), and whether it is
    a list of blocks; None when the field is not a block."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    for arg in typing.get_args(annotation):
        found = nested_model(arg)
        if found is not None:
            return found[0], found[1] or typing.get_origin(annotation) is list
    return None


def block_sections(model: type[BaseModel], prefix: str, title: str) -> list[tuple[str, type[BaseModel], str]]:
    """``model``'s own table, then one per block inside it, depth first, in field order."""
    sections = [(title, model, prefix)]
    for name, field in model.model_fields.items():
        found = nested_model(field.annotation)
        if found is None:
            continue
        inner, is_list = found
        key = f"{prefix}{field.alias or name}{'[]' if is_list else ''}"
        sections += block_sections(inner, key + ".", f"`{key}`")
    return sections


def plan_reference() -> str:
    """The whole page (Markdown): every block of ``PlanConfig`` found by walking its fields, then the training
    fields (``defaults``/``overrides``) and the model fields (``model.overrides``)."""
    sections = [(title, model, prefix, set()) for title, model, prefix in block_sections(PlanConfig, "", "Top level")]
    sections += [("Training fields: `defaults` and `stages[].overrides`", PreTrainingConfig, "", PLAN_OWNED),
                 ("Model fields: `model.overrides`", ModelConfig, "", set())]
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
