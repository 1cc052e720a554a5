"""YAML in, ``--set dotted.key=value`` overrides, and validation errors as one line per problem."""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from syllabus.config.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of field: value")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set ``a.b.c=value`` entries in nested dicts (a number indexes a list: ``stages.0.lr.peak=1e-4``).

    The value is read as YAML, so numbers, booleans and lists keep their type.
    """
    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected dotted.key=value")
        value = yaml.safe_load(raw) if raw.strip() else None
        node: Any = data
        parts = key.strip().split(".")
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"--set {key}: '{part}' is not an index of the {len(node)} entries there")
                part = int(part)
            elif not isinstance(node, dict):
                raise ConfigError(f"--set {key}: '{parts[depth - 1]}' is not a block of fields")
            if last:
                node[part] = value
            else:
                if isinstance(node, dict) and not isinstance(node.get(part), (dict, list)):
                    node[part] = {}
                node = node[part]
    return data


def validate(model: type[M], data: dict[str, Any]) -> M:
    """Build ``model`` from ``data`` or raise ``ConfigError`` with one readable line per problem."""
    try:
        return model.model_validate(data)
    except ValidationError as err:  # the most useful line first: a misspelt field's "did you mean"
        problems = [describe_error(model, e) for e in err.errors()]
        raise ConfigError(sorted(problems, key=lambda line: "did you mean" not in line)) from None


def describe_error(model: type[BaseModel], error: dict) -> str:
    path = ".".join(str(p) for p in error["loc"])
    if error["type"] == "extra_forbidden":
        parent = _model_at(model, error["loc"][:-1])
        known = list(parent.model_fields) if parent else []
        hint = difflib.get_close_matches(str(error["loc"][-1]), known, n=1)
        if hint:
            return f"{path}: unknown field; did you mean '{hint[0]}'?"
        return f"{path}: unknown field (allowed: {', '.join(known)})" if known else f"{path}: unknown field"
    message = error["msg"].removeprefix("Value error, ")
    if not path:
        return message
    if error["type"] == "missing":
        return f"{path}: required field is missing"
    return f"{path}: {message} (got {error.get('input')!r})"


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model class found by walking ``loc`` through nested model fields."""
    for part in loc:
        field = model.model_fields.get(str(part)) if isinstance(part, str) else None
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            return None
    return model


def load_config(model: type[M], path: str | Path | None = None, overrides: list[str] | None = None,
                flags: dict[str, Any] | None = None) -> M:
    """The YAML file, then ``flags`` (e.g. from the command line), then ``--set`` overrides; validated once."""
    data = read_yaml(path) if path is not None else {}
    data.update(flags or {})
    return validate(model, apply_overrides(data, overrides or []))
