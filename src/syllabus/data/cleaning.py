"""Document cleaning and quality filters used by ``syllabus prepare``.

Each filter returns the *reason* a document is removed (or None to keep it), so the prepare report
can say how many documents each one removed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

# Extensions per code language, for the language filter (``--code-languages python,c``).
CODE_LANGUAGES: dict[str, tuple[str, ...]] = {
    "python": (".py", ".pyi"), "c": (".c", ".h"), "cpp": (".cc", ".cpp", ".cxx", ".hpp", ".hh"),
    "javascript": (".js", ".mjs", ".cjs"), "typescript": (".ts", ".tsx"), "java": (".java",),
    "go": (".go",), "rust": (".rs",), "shell": (".sh", ".bash"), "ruby": (".rb",), "php": (".php",),
    "html": (".html", ".htm"), "css": (".css",), "sql": (".sql",), "lua": (".lua",), "r": (".r",),
    "julia": (".jl",), "haskell": (".hs",), "kotlin": (".kt",), "swift": (".swift",), "scala": (".scala",),
}
_LANGUAGE_OF_EXT = {ext: lang for lang, exts in CODE_LANGUAGES.items() for ext in exts}


@dataclass
class CleaningOptions:
    """What ``prepare`` removes. Defaults keep everything but exact duplicates."""

    latex: bool = False  # strip LaTeX comments, preamble, document wrapper and bibliography
    exact_dedup: bool = True
    near_dedup: float | None = None  # Jaccard threshold for MinHash near-duplicates, e.g. 0.8
    min_chars: int = 0
    max_chars: int | None = None
    max_symbol_ratio: float | None = None  # share of characters that are neither letters, digits nor spaces
    max_repeated_lines: float | None = None  # share of non-empty lines that repeat an earlier line
    code_languages: list[str] = field(default_factory=list)  # keep only code files of these languages


def language_of(path: str | Path) -> str | None:
    """The code language of a file by its extension (None for prose/data files)."""
    return _LANGUAGE_OF_EXT.get(Path(path).suffix.lower())


def language_problem(path: str | Path, languages: list[str]) -> str | None:
    """With a language list, files whose extension is not one of those languages are removed."""
    if not languages:
        return None
    unknown = [lang for lang in languages if lang not in CODE_LANGUAGES]
    if unknown:
        from syllabus.config.errors import ConfigError

        raise ConfigError(f"code_languages: unknown {unknown}; known: {', '.join(sorted(CODE_LANGUAGES))}")
    return None if language_of(path) in languages else "language"


_COMMENT = re.compile(r"(?<!\\)%.*")
_BIBLIOGRAPHY = re.compile(r"\\begin\{thebibliography\}.*?\\end\{thebibliography\}", re.S)
_BIB_COMMANDS = re.compile(r"\\(bibliography|bibliographystyle|printbibliography|addbibresource)\b(\{[^}]*\})?")
_COMMENT_ENV = re.compile(r"\\begin\{comment\}.*?\\end\{comment\}", re.S)
_BLANKS = re.compile(r"\n{3,}")


def clean_latex(text: str) -> str:
    """arXiv-style LaTeX -> the body: no ``%`` comments (``\\%`` kept), no preamble or
    ``\\begin{document}``/``\\end{document}`` wrapper, no bibliography; math is untouched."""
    lines = []
    for line in text.splitlines():
        stripped = _COMMENT.sub("", line)
        if stripped.strip() or not line.strip():  # drop lines that were only a comment
            lines.append(stripped.rstrip())
    body = "\n".join(lines)
    begin = body.find("\\begin{document}")
    if begin >= 0:
        body = body[begin + len("\\begin{document}"):]
        end = body.find("\\end{document}")
        if end >= 0:
            body = body[:end]
    body = _COMMENT_ENV.sub("", body)
    body = _BIBLIOGRAPHY.sub("", body)
    body = _BIB_COMMANDS.sub("", body)
    return _BLANKS.sub("\n\n", body).strip() + "\n"


def symbol_ratio(text: str) -> float:
    if not text:
        return 0.0
    symbols = sum(1 for ch in text if not (ch.isalnum() or ch.isspace()))
    return symbols / len(text)


def repeated_lines_fraction(text: str) -> float:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return 0.0
    return 1.0 - len(set(lines)) / len(lines)


def quality_problem(text: str, opts: CleaningOptions) -> str | None:
    """The first quality filter ``text`` fails, or None."""
    if len(text) < opts.min_chars:
        return "too_short"
    if opts.max_chars is not None and len(text) > opts.max_chars:
        return "too_long"
    if opts.max_symbol_ratio is not None and symbol_ratio(text) > opts.max_symbol_ratio:
        return "symbol_ratio"
    if opts.max_repeated_lines is not None and repeated_lines_fraction(text) > opts.max_repeated_lines:
        return "repeated_lines"
    return None
