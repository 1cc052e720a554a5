"""MediaWiki markup -> plain prose (good enough for a demo corpus, not a full parser).

Drops templates ``{{...}}``, tables ``{|...|}``, ``<ref>`` notes, comments, files/categories and
HTML tags; keeps link labels (``[[a|b]]`` -> ``b``), headings as plain lines, and the text.
"""

from __future__ import annotations

import html
import re

_COMMENT = re.compile(r"<!--.*?-->", re.S)
_REF = re.compile(r"<ref[^>/]*/>|<ref[^>]*>.*?</ref>", re.S)
_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_FILE_LINK = re.compile(r"\[\[(?:File|Image|Category):[^\[\]]*(?:\[\[[^\]]*\]\][^\[\]]*)*\]\]", re.I)
_LINK = re.compile(r"\[\[(?:[^\]|]*\|)?([^\]]*)\]\]")
_EXT_LINK = re.compile(r"\[https?://\S+\s?([^\]]*)\]")
_BOLD_ITALIC = re.compile(r"'{2,}")
_HEADING = re.compile(r"^=+\s*(.*?)\s*=+\s*$", re.M)
_BLANKS = re.compile(r"\n{3,}")
_TRAILING_SECTIONS = ("See also", "References", "Notes", "External links", "Further reading", "Bibliography")


def _drop_nested(text: str, open_: str, close: str) -> str:
    out, depth, i = [], 0, 0
    while i < len(text):
        if text.startswith(open_, i):
            depth, i = depth + 1, i + len(open_)
        elif depth and text.startswith(close, i):
            depth, i = depth - 1, i + len(close)
        else:
            if not depth:
                out.append(text[i])
            i += 1
    return "".join(out)


def wikitext_to_text(markup: str) -> str:
    text = html.unescape(markup)
    text = _COMMENT.sub("", text)
    text = _REF.sub("", text)
    text = _drop_nested(text, "{{", "}}")
    text = _drop_nested(text, "{|", "|}")
    text = _FILE_LINK.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _EXT_LINK.sub(r"\1", text)
    text = _TAG.sub("", text)
    text = _BOLD_ITALIC.sub("", text)
    for section in _TRAILING_SECTIONS:  # reference lists and link farms at the end
        cut = re.search(rf"^=+\s*{section}\s*=+\s*$", text, re.M)
        if cut:
            text = text[: cut.start()]
    text = _HEADING.sub(r"\1", text)
    lines = [line.rstrip() for line in text.splitlines() if not line.lstrip().startswith(("*", "|", "!", ":"))
             or len(line) > 80]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()
