"""Record -> text: the one pure step between reading a source and cleaning its text.

A :class:`RecordRenderer` is built once per source from its :class:`~syllabus.config.source.SourceSpec`
and turns each record (a ``dict`` from a JSONL line, a Parquet row or a hub row) into the text the
tokenizer sees, or ``None`` after counting why in ``skips``. The same renderer runs in streaming and in
``prepare``, so both produce the same text.

Formats:

- ``text``: the ``text_field`` string (or, with ``template``, the template filled from the record);
- ``chat``: ``messages: [{role, content}]`` or ShareGPT ``conversations: [{from, value}]``, rendered with
  the default template below or a Hugging Face ``chat_template`` (Jinja, from a ``tokenizer_config.json``).

Default chat template (documented, stable): each turn is ``"<Role>: <content>"`` (role capitalised), turns
joined by a blank line. Roles are read through :data:`ROLE_ALIASES` (``human`` -> user; ``gpt``, ``chatgpt``,
``bot``, ``model`` -> assistant; ``function`` -> tool) and the source's ``roles`` option; a record with any
other role is skipped and counted as ``unknown_role:<role>`` (never rendered under a name no turn mask
knows). With ``loss_on: assistant`` a record without a non-empty assistant turn trains nothing and is
skipped as ``no_assistant_turn``. Tags inside the
content (``<think>``) are kept as written: they become one token each when the stage declares them as
special tokens.

Then, for every format: ``calculator`` rewrites GSM8K notes ``<<48/2=24>>`` (``tags``:
``<calculation>48/2=24</calculation>``, ``strip``: removed, ``keep``: as written) and ``steps: tags``
wraps each line of the answer/solution field in ``<step>…</step>`` except a final ``#### N`` line.

With ``loss_on: assistant`` a rendered chat is a :class:`Rendered` string whose ``spans`` are the
``[start, end)`` character ranges of the assistant turns (what the loss is computed on).
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from pathlib import Path

from syllabus.config.errors import ConfigError
from syllabus.config.source import SourceSpec

CHAT_FIELDS = ("messages", "conversations")
# Role names real datasets use (ShareGPT, OpenAI, Gemini, tool calls), read as the four roles.
ROLE_ALIASES = {"user": "user", "human": "user",
                "assistant": "assistant", "gpt": "assistant", "chatgpt": "assistant", "bot": "assistant",
                "model": "assistant",
                "system": "system",
                "tool": "tool", "function": "tool"}
LANGUAGE_FIELDS = ("lang", "language")
PATH_FIELDS = ("path", "filename", "file_name", "max_stars_repo_path")
SOLUTION_FIELDS = ("answer", "solution", "response", "output")
CALCULATOR_NOTE = re.compile(r"<<([^<>]*)>>")
FINAL_ANSWER = re.compile(r"^\s*####")


class Rendered(str):
    """Rendered text that also carries ``spans``: the ``[start, end)`` character ranges to train on."""

    spans: tuple[tuple[int, int], ...] = ()


class RecordRenderer:
    """Applies a source's render options to records; see the module docstring for the rules."""

    def __init__(self, spec: SourceSpec):
        self.spec = spec
        self.fields = _template_fields(spec.template) if spec.template else []
        self.languages = {lang.lower() for lang in spec.languages}
        self.jinja = _load_chat_template(spec.chat_template) if spec.chat_template else None
        self.roles = {**ROLE_ALIASES, **spec.roles}

    # -- records --------------------------------------------------------------------------------
    def render(self, record: dict, skips: Counter) -> str | None:
        """The text of one record, or ``None`` (the reason counted in ``skips``)."""
        if self.languages and not self._language_kept(record):
            skips["language"] += 1
            return None
        if self.spec.format == "chat":
            text = self._chat(record, skips)
        elif self.spec.template is not None:
            text = self._template(record, skips)
        else:
            text = _checked_text(record.get(self.spec.text_field, _MISSING), skips)
            if text is not None and self.spec.steps == "tags":
                text = step_tags(text)
        return None if text is None else self._finish(text)

    def render_file_text(self, text: str, path: str) -> str | None:
        """A whole plain file as one document (``None`` when its language is filtered out)."""
        if self.languages and (language_of_path(path) or "") not in self.languages:
            return None
        return self._finish(text)

    def _finish(self, text: str) -> str:
        if self.spec.calculator == "keep" or "<<" not in text:
            return text
        if isinstance(text, Rendered):  # spans would move: rewrite each piece and re-measure
            return _rewrite_rendered(text, lambda s: calculator_notes(s, self.spec.calculator))
        return calculator_notes(text, self.spec.calculator)

    def _language_kept(self, record: dict) -> bool:
        for name in LANGUAGE_FIELDS:
            value = record.get(name)
            if isinstance(value, str):
                return value.lower() in self.languages
        for name in PATH_FIELDS:
            value = record.get(name)
            if isinstance(value, str):
                return (language_of_path(value) or "") in self.languages
        return False

    def _template(self, record: dict, skips: Counter) -> str | None:
        values = {}
        for name in self.fields:
            value = record.get(name, _MISSING)
            if value is _MISSING or value is None:
                skips[f"missing_field:{name}"] += 1
                return None
            if isinstance(value, (dict, list)):
                skips[f"wrong_type:{name}"] += 1
                return None
            value = str(value)
            if self.spec.steps == "tags" and name in SOLUTION_FIELDS:
                value = step_tags(value)
            values[name] = value
        text = self.spec.template.format_map(values)
        if not text.strip():
            skips["empty"] += 1
            return None
        return text

    def _chat(self, record: dict, skips: Counter) -> str | None:
        turns = chat_turns(record, {})
        if turns is None:
            skips["missing_field:messages"] += 1
            return None
        if not turns:
            skips["empty"] += 1
            return None
        unknown = next((role for role, _ in turns if role not in self.roles), None)
        if unknown is not None:
            skips[f"unknown_role:{unknown}"] += 1
            return None
        turns = [(self.roles[role], content) for role, content in turns]
        if self.spec.loss_on == "assistant" and not any(r == "assistant" and c for r, c in turns):
            skips["no_assistant_turn"] += 1
            return None
        if self.jinja is not None:
            return self.jinja(turns)
        pieces, spans, at = [], [], 0
        for i, (role, content) in enumerate(turns):
            head = ("\n\n" if i else "") + role.capitalize() + ": "
            at += len(head)
            if role == "assistant":
                spans.append((at, at + len(content)))
            pieces += [head, content]
            at += len(content)
        text = Rendered("".join(pieces))
        text.spans = tuple(spans)
        return text if self.spec.loss_on == "assistant" else str(text)


def language_of_path(path: str) -> str | None:
    """A file's language by its extension: the code languages of the cleaning filter, plus markdown."""
    from syllabus.data.cleaning import language_of

    return "markdown" if path.lower().endswith((".md", ".markdown")) else language_of(path)


def chat_turns(record: dict, roles: dict[str, str] | None = None) -> list[tuple[str, str]] | None:
    """``[(role, content)]`` of a chat record (``messages`` or ShareGPT ``conversations``); ``None`` when the
    record has neither field or they are not lists of turns. Roles are lower-cased and read through ``roles``
    (default :data:`ROLE_ALIASES`); a role not in it is kept as written (the renderer skips such records)."""
    roles = ROLE_ALIASES if roles is None else roles
    for name in CHAT_FIELDS:
        turns = record.get(name)
        if isinstance(turns, list):
            out = []
            for turn in turns:
                if not isinstance(turn, dict):
                    return None
                role = turn.get("role", turn.get("from"))
                content = turn.get("content", turn.get("value"))
                if not isinstance(role, str) or not isinstance(content, str):
                    return None
                out.append((roles.get(role.lower(), role.lower()), content))
            return out
    return None


def calculator_notes(text: str, mode: str) -> str:
    """GSM8K ``<<expr=value>>`` notes: ``tags`` -> ``<calculation>expr=value</calculation>``, ``strip`` -> ''."""
    if mode == "tags":
        return CALCULATOR_NOTE.sub(r"<calculation>\1</calculation>", text)
    if mode == "strip":
        return CALCULATOR_NOTE.sub("", text)
    return text


def step_tags(text: str) -> str:
    """Wrap each non-empty line in ``<step>…</step>``; a final-answer line (``#### 72``) stays bare."""
    lines = text.split("\n")
    return "\n".join(line if not line.strip() or FINAL_ANSWER.match(line) else f"<step>{line}</step>"
                     for line in lines)


def _rewrite_rendered(text: Rendered, rewrite) -> Rendered:
    cuts = sorted({0, len(text), *[p for span in text.spans for p in span]})
    pieces = [rewrite(text[a:b]) for a, b in zip(cuts, cuts[1:])]
    starts = {}
    at = 0
    for (a, _), piece in zip(zip(cuts, cuts[1:]), pieces):
        starts[a] = at
        at += len(piece)
    starts[len(text)] = at
    out = Rendered("".join(pieces))
    out.spans = tuple((starts[a], starts[b]) for a, b in text.spans)
    return out


def _template_fields(template: str) -> list[str]:
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as err:
        raise ConfigError(f"template: {err} in {template!r} (write literal braces as {{{{ and }}}})") from None
    bad = [n for n in names if not n or not n.isidentifier()]
    if bad:
        raise ConfigError(f"template: field names must be plain record fields like {{question}}, got {bad}")
    return list(dict.fromkeys(names))


def _load_chat_template(path: str):
    """A callable ``turns -> text`` from a Hugging Face ``tokenizer_config.json``'s ``chat_template``."""
    file = Path(path)
    if file.is_dir():
        file = file / "tokenizer_config.json"
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"chat_template: cannot read {file}: {err}") from None
    source = config.get("chat_template")
    if isinstance(source, list):  # several named templates: the default one
        source = next((t.get("template") for t in source if t.get("name") == "default"), None)
    if not isinstance(source, str):
        raise ConfigError(f"chat_template: {file} has no chat_template string")
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(source)
    specials = {k: (v if isinstance(v, str) else (v or {}).get("content", "")) for k, v in config.items()
                if k in ("bos_token", "eos_token")}

    def render(turns: list[tuple[str, str]]) -> str:
        messages = [{"role": r, "content": c} for r, c in turns]
        return template.render(messages=messages, add_generation_prompt=False, **specials)

    return render


_MISSING = object()


def _checked_text(value, skips: Counter) -> str | None:
    if value is _MISSING:
        skips["missing_field"] += 1
    elif not isinstance(value, str):
        skips["wrong_type"] += 1
    elif not value.strip():
        skips["empty"] += 1
    else:
        return value
    return None


def suggestion_for(fields: list[str], spec: SourceSpec, skips: dict | None = None) -> str:
    """The option that would read records with these ``fields`` (empty when none is obvious); with ``skips``
    holding ``unknown_role:<role>`` counts, the ``roles`` mapping that would read those turns."""
    unknown = sorted(k.split(":", 1)[1] for k in (skips or {}) if k.startswith("unknown_role:"))
    if unknown:
        mapping = ", ".join(f"{role}: assistant" for role in unknown)
        return (f"chat role{'s' if len(unknown) > 1 else ''} {', '.join(repr(r) for r in unknown)} "
                f"{'are' if len(unknown) > 1 else 'is'} not known (known: {', '.join(sorted(ROLE_ALIASES))}); "
                f"map {'them' if len(unknown) > 1 else 'it'} with the source option `roles: {{{mapping}}}` "
                f"(to user, assistant, system or tool)")
    if (skips or {}).get("no_assistant_turn"):
        return ("with `loss_on: assistant` only assistant turns are trained and these records have none "
                "(map their replying role with `roles`, or set `loss_on: all`)")
    have = set(fields)
    if have & set(CHAT_FIELDS) and spec.format != "chat":
        return "set `format: chat`"
    for question, answer in (("question", "answer"), ("problem", "solution"), ("prompt", "response"),
                             ("instruction", "output")):
        if {question, answer} <= have and spec.template is None:
            return f'set `template: "{question.capitalize()}: {{{question}}}\\n{answer.capitalize()}: {{{answer}}}"`'
    for name in ("text", "content", "code", "body", "document"):
        if name in have and name != spec.text_field:
            return f"set `text_field: {name}`"
    return ""
