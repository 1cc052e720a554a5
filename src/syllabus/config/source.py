"""``SourceSpec``: where a source's records are and how each record becomes the text the tokenizer sees.

A plan's source (and ``syllabus pretrain``/``prepare``'s data) is a path string, or a mapping with the
options below. A path string means ``SourceSpec(path=...)``: the JSONL/Parquet field ``text``, or whole
plain files. The options are resolved here, once; :mod:`syllabus.data.records` applies them.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Options that change the rendered text: recorded in prepared shards and compared at the door.
RENDER_OPTIONS = ("format", "text_field", "template", "calculator", "steps", "languages", "chat_template", "roles")
CHAT_ROLES = ("user", "assistant", "system", "tool")


class SourceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1, description="file, folder, glob, prepared shards, or hf:owner/name[:config]")
    format: Literal["text", "chat"] = Field(
        "text", description="text: the text_field (or whole plain files); chat: messages / conversations rendered "
                            "turn by turn with their roles")
    text_field: str = Field("text", min_length=1, description="JSONL/Parquet field holding the text (format text)")
    template: str | None = Field(None, description='fill {field} names from each record, e.g. '
                                                   '"Question: {question}\\nAnswer: {answer}" (a typed \\n, '
                                                   'backslash then n as a shell passes it, is a newline)')
    calculator: Literal["keep", "tags", "strip"] = Field(
        "keep", description="GSM8K calculator notes <<48/2=24>>: keep as written, tags (<calculation>48/2=24"
                            "</calculation>) or strip")
    steps: Literal["keep", "tags"] = Field("keep", description="tags: wrap each line of the answer/solution in "
                                                               "<step>…</step> (the last '#### N' line stays bare)")
    languages: list[str] = Field(default_factory=list, description="keep only records (field lang/language) or "
                                                                  "files (by extension) of these languages")
    chat_template: str | None = Field(None, description="a Hugging Face tokenizer_config.json whose chat_template "
                                                        "renders chat records (format chat)")
    loss_on: Literal["all", "assistant"] = Field("all", description="assistant: train only on assistant turns "
                                                                   "(format chat; other tokens get label -100)")
    roles: dict[str, Literal["user", "assistant", "system", "tool"]] = Field(
        default_factory=dict, description="chat roles beyond the known ones mapped to user, assistant, system or "
                                          "tool, e.g. {narrator: assistant} (format chat; a record with a role "
                                          "neither known nor mapped is skipped and counted)")
    val_fraction: float | None = Field(None, ge=0, lt=1,
                                       description="share of documents held out by content hash when the source "
                                                   "has no val/test file (default 0.01); the plan table says how "
                                                   "many documents that holds out")

    @field_validator("roles", mode="before")
    @classmethod
    def _lower_roles(cls, value):
        return {str(k).lower(): (v.lower() if isinstance(v, str) else v) for k, v in value.items()} \
            if isinstance(value, dict) else value

    @field_validator("template")
    @classmethod
    def _newlines(cls, value: str | None) -> str | None:
        return None if value is None else value.replace("\\n", "\n").replace("\\t", "\t")

    @model_validator(mode="after")
    def _consistent(self) -> "SourceSpec":
        if self.template is not None and self.format == "chat":
            raise ValueError("template: give either format: chat or a template, not both")
        if self.loss_on == "assistant" and self.format != "chat":
            raise ValueError("loss_on: assistant needs format: chat (only chat records have assistant turns)")
        if self.loss_on == "assistant" and self.chat_template is not None:
            raise ValueError("loss_on: assistant works with the default chat rendering, not a chat_template")
        if self.chat_template is not None and self.format != "chat":
            raise ValueError("chat_template: only used with format: chat")
        if self.roles and self.format != "chat":
            raise ValueError("roles: only used with format: chat")
        return self

    def render_options(self, explicit: bool = False) -> dict:
        """The options that decide the rendered text (what prepared shards record); ``explicit``: only
        those the user set (what is compared with a shard folder's record)."""
        return {k: getattr(self, k) for k in RENDER_OPTIONS if not explicit or k in self.model_fields_set}


def as_source_spec(value: "str | dict | SourceSpec") -> SourceSpec:
    """A path string or a mapping as a :class:`SourceSpec` (pydantic errors name the field)."""
    if isinstance(value, SourceSpec):
        return value
    if isinstance(value, (str, os.PathLike)):
        return SourceSpec(path=str(value))
    return SourceSpec.model_validate(value)
