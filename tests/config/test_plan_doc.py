"""``docs/plan.md`` is generated from the config models and current; every key it lists has a meaning."""

import typing

from pydantic import BaseModel

from syllabus.config.model import ModelConfig
from syllabus.config.plan import PlanConfig
from syllabus.config.pretrain import PreTrainingConfig
from syllabus.config.schema_doc import DEFAULT_PATH, main, plan_reference


def models_under(model: type[BaseModel]) -> set[type[BaseModel]]:
    found = {model}
    for field in model.model_fields.values():
        for arg in [field.annotation, *typing.get_args(field.annotation)]:
            for inner in [arg, *typing.get_args(arg)]:
                if isinstance(inner, type) and issubclass(inner, BaseModel) and inner not in found:
                    found |= models_under(inner)
    return found


def test_docs_plan_md_is_current():
    assert main(["--check", str(DEFAULT_PATH)]) == 0, "regenerate: python -m syllabus.config.schema_doc"


def test_a_stale_page_is_caught(tmp_path):
    page = tmp_path / "plan.md"
    page.write_text(plan_reference().replace("| `seed` | int | `1337` |", "| `seed` | int | `42` |"))
    assert main(["--check", str(page)]) == 1
    assert main([str(page)]) == 0 and main(["--check", str(page)]) == 0


def test_every_config_field_has_a_description_and_appears_on_the_page():
    page = plan_reference()
    for model in models_under(PlanConfig) | {PreTrainingConfig, ModelConfig}:
        for name, field in model.model_fields.items():
            assert (field.description or "").strip(), f"{model.__name__}.{name} has no description"
            assert f"{field.alias or name}` |" in page, f"{model.__name__}.{name} is not on docs/plan.md"
