"""Flags made from a config schema, so a setting's name, type, default and help live in one place."""

from __future__ import annotations

import argparse
import types
import typing

import yaml
from pydantic import BaseModel

from syllabus.config.load import load_config

M = typing.TypeVar("M", bound=BaseModel)


def add_config_flags(parser: argparse.ArgumentParser, model: type[BaseModel],
                     aliases: dict[str, list[str]] | None = None) -> None:
    """``--field-name VALUE`` for every scalar or list field of ``model``; plus ``--config`` and ``--set``."""
    parser.add_argument("--config", metavar="FILE", help="YAML file of config fields")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any field, dotted for nested ones (e.g. model.hidden_size=128)")
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            continue  # nested blocks: use --set block.field=value
        flags = [f"--{name.replace('_', '-')}"] + (aliases or {}).get(name, [])
        help_text = f"{field.description or ''} (default: {field.get_default(call_default_factory=True)})"
        kwargs: dict = dict(dest=f"field_{name}", default=argparse.SUPPRESS, help=help_text.strip(),
                            metavar=metavar(name, annotation))
        if annotation is bool or bool in typing.get_args(annotation):  # bool | Literal[...] too
            kwargs.update(nargs="?", const="true", metavar="BOOL")
        elif typing.get_origin(annotation) is list:
            kwargs.update(nargs="+")
        parser.add_argument(*flags, **kwargs)


# str fields whose value is a file or folder (the rest of the str fields are names or words)
_PATH_WORDS = ("dir", "path", "tokenizer", "sources", "checkpoint", "file")


def metavar(name: str, annotation) -> str:
    """What a human reads after the flag: ``N``, ``LR``, ``X``, ``PATH``, ``auto|PATH``, ``{a,b,c}``, ``TEXT``.

    ``Optional``/``list`` wrappers are looked through (a list flag repeats the metavar)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Literal:
        return "{" + ",".join(str(a) for a in typing.get_args(annotation)) + "}"
    if typing.get_origin(annotation) in (list, typing.Union, types.UnionType) and len(args) == 1:
        return metavar(name, args[0])
    if annotation is int:
        return "N"
    if annotation is float:
        return "LR" if "learning_rate" in name else "X"
    if name == "resume":
        return "auto|PATH"
    if any(word in name for word in _PATH_WORDS):
        return "PATH"
    return "TEXT"


def config_from_args(model: type[M], args: argparse.Namespace) -> M:
    """File, then flags, then ``--set``; every value is read as YAML and checked by the schema."""
    flags = {}
    for key, value in vars(args).items():
        if key.startswith("field_"):
            name = key.removeprefix("field_")
            read = str if _wants_text(model.model_fields[name].annotation) else yaml.safe_load
            flags[name] = [read(v) for v in value] if isinstance(value, list) else read(value)
    return load_config(model, args.config, args.set, flags)


def _wants_text(annotation) -> bool:
    """True for str, str | None and list[str]: such values are taken as typed, not read as YAML."""
    if annotation is str:
        return True
    return any(_wants_text(arg) for arg in typing.get_args(annotation))
