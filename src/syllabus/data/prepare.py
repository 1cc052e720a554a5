"""``syllabus prepare``: raw files -> cleaned, deduplicated, tokenized shards in ``OUT/train`` and ``OUT/val``.

The work is cut into *parts* that are a pure function of the input (:mod:`syllabus.data.parts`); each part is
prepared from reading to writing by one worker (:func:`~syllabus.data.part_writer.prepare_part`: its own token
files, document index and done marker under ``OUT/parts/``). This process only schedules parts and, once every
part is done, writes the headers that make the parts one source (:mod:`syllabus.data.manifest`); it never
touches text or tokens. So 1, 2 or 64 workers, or N tasks on N machines (``task``/``tasks``: the parts with
``index % tasks == task``), give the same output, and a run that died resumes: done parts are skipped.

Split: when input files are named for a split (``train.jsonl``, ``val.jsonl``, ``validation-*``) the names
decide; otherwise a document goes to ``val`` when the hash of its text falls under ``val_fraction``.
Exact dedup is over the whole input (inside each part, then across parts by hash); near dedup is per part.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import multiprocessing as mp
import os
import shutil
import time
from collections import Counter
from functools import partial
from pathlib import Path

from tokenizers import Tokenizer

from syllabus.config.errors import ConfigError
from syllabus.config.source import SourceSpec
from syllabus.data.cleaning import CleaningOptions
from syllabus.data.manifest import write_manifest
from syllabus.data.part_writer import PartJob, prepare_part, read_done, temp_path, write_json
from syllabus.data.parts import PART_BYTES, Part, plan_parts
from syllabus.data.shards import token_dtype
from syllabus.data.sources import MAX_DOC_BYTES, explain_skips, is_hub_spec, resolve_files
from syllabus.data.text_stream import DEFAULT_VAL_FRACTION
from syllabus.data.tokenizer import (add_special_tokens, as_tokenizer, eos_id, load_tokenizer,
                                     tokenizer_fingerprint, train_tokenizer, vocab_size)
from syllabus.data.tokenizer_sample import DEFAULT_SAMPLE_BYTES, DEFAULT_SAMPLE_SEED, sample_texts

log = logging.getLogger("syllabus")


def prepare_shards(inputs: list[str] | str, tokenizer, out_dir: str | Path, *, workers: int = 2,
                   text_field: str = "text", val_fraction: float = DEFAULT_VAL_FRACTION,
                   cleaning: CleaningOptions | None = None, vocab_size_to_train: int | None = None,
                   max_doc_bytes: int = MAX_DOC_BYTES, records: dict | None = None,
                   special_tokens: list[str] | None = None, echo=print, task: int = 0, tasks: int = 1,
                   final: bool = False, restart: bool = False, part_bytes: int = PART_BYTES,
                   tokenizer_sample_bytes: int = DEFAULT_SAMPLE_BYTES) -> dict:
    """Read, render, clean, split and tokenize ``inputs`` into ``out_dir/{train,val}``; return the report.

    ``tokenizer`` is a Tokenizer or a path; ``None`` with ``vocab_size_to_train`` trains one on a seeded sample
    of at most ``tokenizer_sample_bytes`` of cleaned training text (:mod:`syllabus.data.tokenizer_sample`) and
    saves it as ``out_dir/tokenizer.json`` (a rerun, or another task, with the same options reuses it).
    ``records`` holds the record options of :class:`~syllabus.config.source.SourceSpec`; they are written to
    each split's ``header.json`` under ``render``, and a run that asks for other ones is refused.
    ``special_tokens`` (the plan's stage tokens up to the stage that trains on this source, e.g. ``<think>``)
    are added to the tokenizer before tokenizing; ``OUT/tokenizer.json`` stays the base one.

    ``workers`` processes (one core each) prepare the parts of this task (``index % tasks == task``); parts
    already done with the same options are skipped. When every part of the input is done, the headers are
    written (``final=True`` only writes them, and says which parts are missing). The report's ``complete`` is
    False when other tasks' parts remain. Raises ``ConfigError`` (one line) when ``out_dir`` holds parts made
    with other options or another tokenizer (``restart=True`` prepares those parts again instead), and when no
    document survives.
    """
    spec = SourceSpec.model_validate({"path": "-", "text_field": text_field, **(records or {})})
    if spec.loss_on != "all":
        raise ConfigError("loss_on: prepared shards hold whole documents; stream chat sources to use "
                          "loss_on: assistant")
    if not 0 <= task < tasks:
        raise ConfigError(f"task: must be in 0..{tasks - 1} for tasks={tasks} (got {task})")
    inputs = [str(inputs)] if isinstance(inputs, (str, Path)) else [str(i) for i in inputs]
    if not inputs:
        raise ConfigError("inputs: give at least one file, folder or glob")
    opts = cleaning or CleaningOptions()
    out = Path(out_dir)
    start = time.perf_counter()
    parts = plan_parts(inputs, part_bytes)
    options = {"inputs": inputs, "render": spec.render_options(), "text_field": text_field,
               "val_fraction": val_fraction, "cleaning": dataclasses.asdict(opts), "max_doc_bytes": max_doc_bytes,
               "part_bytes": part_bytes, "special_tokens": list(special_tokens or []), "parts": len(parts)}
    job = PartJob(str(out), "", 0, "uint16", {"text_field": text_field, **spec.render_options()}, opts,
                  val_fraction, max_doc_bytes, "", options)
    tok, trained = _tokenizer(tokenizer, vocab_size_to_train, tokenizer_sample_bytes, parts, job, out, echo)
    base_tok = tok
    base = {"base_fingerprint": tokenizer_fingerprint(tok), "base_vocab_size": vocab_size(tok)}
    if special_tokens:
        tok = Tokenizer.from_str(tok.to_str())
        base["special_tokens"] = dict(zip(special_tokens, add_special_tokens(tok, list(special_tokens))))
    meta = {"tokenizer_fingerprint": tokenizer_fingerprint(tok) if special_tokens else base["base_fingerprint"],
            "eos_id": eos_id(tok), "vocab_size": vocab_size(tok),
            "render": spec.render_options(), "dtype": token_dtype(vocab_size(tok)).name, **base}
    options["tokenizer"] = meta["tokenizer_fingerprint"]
    fingerprint = hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:16]
    job = dataclasses.replace(job, tokenizer_json=tok.to_str(), eos=meta["eos_id"], dtype=meta["dtype"],
                              fingerprint=fingerprint)

    done = _done_parts(out, parts, fingerprint, options, restart)
    _save_tokenizer(base_tok, trained, out)
    mine = [p for p in parts if p.index % tasks == task]
    todo = [] if final else [p for p in mine if p.index not in done]
    who = f"task {task}/{tasks}: " if tasks > 1 else ""
    if not final:
        echo(f"{who}{len(parts)} parts in all, {len(mine)} for this task; skipped {len(mine) - len(todo)} "
             f"already done, preparing {len(todo)} with {max(1, min(workers, len(todo)))} workers")
    for counts in _run_parts(todo, job, workers):
        done[counts["part"]] = counts
    seconds = time.perf_counter() - start
    prepared_bytes = sum(p.bytes for p in todo)
    missing = [p.name for p in parts if p.index not in done]
    report = {"out": str(out), "dtype": meta["dtype"], "tokenizer_fingerprint": meta["tokenizer_fingerprint"],
              "parts": {"total": len(parts), "skipped": len(mine) - len(todo), "prepared": len(todo),
                        "missing": len(missing)},
              "seconds": round(seconds, 3), "input_bytes": prepared_bytes,
              "mb_per_s": round(prepared_bytes / 1e6 / max(seconds, 1e-9), 2), "complete": not missing}
    if missing:
        if final:
            raise ConfigError(f"prepare --final: {len(missing)} of {len(parts)} parts are not done yet "
                              f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); run their tasks first")
        echo(f"{who}done; {len(missing)} parts of other tasks remain. The task that finishes last writes the "
             f"headers (or run `syllabus prepare ... --final`).")
        return report
    headers = write_manifest(out, parts, done, meta, exact_dedup=opts.exact_dedup, inputs=inputs)
    report.update(_summary(parts, done, headers, inputs, spec))
    echo(format_report(report))
    return report


def _tokenizer(tokenizer, vocab: int | None, sample_bytes: int, parts: list[Part], job: PartJob, out: Path,
               echo) -> tuple[Tokenizer, dict | None]:
    """The given tokenizer, or one trained from the input's sample, with what it was trained from (``None`` when
    given). A trained one is reused when ``OUT/tokenizer-training.json`` says it was trained the same way."""
    if tokenizer is not None:
        return as_tokenizer(tokenizer), None
    if not vocab:
        raise ConfigError("tokenizer: give a tokenizer path or a vocab size to train one")
    wanted = {"vocab_size": vocab, "sample_bytes": sample_bytes, "seed": DEFAULT_SAMPLE_SEED, **job.options}
    record = out / "tokenizer-training.json"
    if record.is_file() and (out / "tokenizer.json").is_file() and json.loads(record.read_text()) == wanted:
        tok = load_tokenizer(out / "tokenizer.json")
        echo(f"reusing the {vocab_size(tok)}-token tokenizer trained before -> {out / 'tokenizer.json'}")
        return tok, wanted
    tok = train_tokenizer(sample_texts(parts, job, sample_bytes), vocab)
    echo(f"trained a {vocab_size(tok)}-token tokenizer on a {sample_bytes / 1e6:g} MB sample -> "
         f"{out / 'tokenizer.json'}")
    return tok, wanted


def _save_tokenizer(tok: Tokenizer, trained: dict | None, out: Path) -> None:
    """``OUT/tokenizer.json`` (beside the shards: a plan over them uses it), written atomically, and with a
    trained one ``OUT/tokenizer-training.json``."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "tokenizer.json"
    if not path.is_file() or tokenizer_fingerprint(load_tokenizer(path)) != tokenizer_fingerprint(tok):
        tmp = temp_path(path)
        tok.save(str(tmp))
        os.replace(tmp, path)
    if trained is not None:
        write_json(out / "tokenizer-training.json", trained)


def _flat(options: dict) -> dict:
    return {f"{k}.{sub}" if isinstance(v, dict) else k: x for k, v in options.items()
            for sub, x in (v.items() if isinstance(v, dict) else [(None, v)])}


def _done_parts(out: Path, parts: list[Part], fingerprint: str, options: dict, restart: bool) -> dict[int, dict]:
    """Index -> done marker of the parts already done. Parts done with other options are refused (one line
    naming the options that differ), or removed with ``restart``."""
    done = {}
    for part in parts:
        marker = read_done(out / "parts" / part.name)
        if marker is None:
            continue
        if marker.get("fingerprint") != fingerprint:
            if restart:
                shutil.rmtree(out / "parts" / part.name)
                continue
            made, asked = _flat(marker.get("options", {})), _flat(options)
            differ = [f"{k}: made with {json.dumps(made.get(k))}, asked {json.dumps(v)}"
                      for k, v in asked.items() if made.get(k) != v] or ["format"]
            raise ConfigError(f"prepare: {out} holds parts prepared with other options ({'; '.join(differ)}); "
                              f"give the same options to resume, or --restart to prepare it again")
        done[part.index] = marker
    return done


def _run_parts(todo: list[Part], job: PartJob, workers: int):
    """Prepare ``todo`` in ``workers`` processes (in this one when 1), yielding each part's counts as it ends.
    Each worker uses one core (``TOKENIZERS_PARALLELISM=false``)."""
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        if workers <= 1 or len(todo) <= 1:
            for part in todo:
                yield prepare_part(part, job)
            return
        with mp.get_context("fork").Pool(min(workers, len(todo))) as pool:
            yield from pool.imap_unordered(partial(_prepare, job=job), todo)
    finally:
        if before is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before


def _prepare(part: Part, job: PartJob) -> dict:
    return prepare_part(part, job)


def _summary(parts: list[Part], done: dict[int, dict], headers: dict, inputs: list[str], spec: SourceSpec) -> dict:
    """The report's counts over every part; warns (or refuses) a source that skipped more than it kept."""
    skipped = {source: Counter() for source in inputs}
    kept = Counter()
    for part in parts:
        skipped[part.source].update(done[part.index]["skipped"])
        kept[part.source] += done[part.index]["kept"]
    for source in inputs:
        if sum(skipped[source].values()) > kept[source] or any(k.startswith("unknown_role:") for k in skipped[source]):
            files = None if is_hub_spec(source) else resolve_files(source)
            problem = "no documents" if kept[source] == 0 else None
            line = explain_skips(source, skipped[source], spec, files, kept[source], problem=problem)
            if problem:
                raise ConfigError(f"prepare: {line}")
            log.warning("%s", line)
    if sum(h["num_docs"] for h in headers.values()) == 0:
        raise ConfigError(f"prepare: no document survived reading and cleaning of {', '.join(inputs)}")
    return {"splits": {s: {"docs": h["num_docs"], "tokens": h["num_tokens"]} for s, h in headers.items()},
            "skipped": {k: dict(v) for k, v in skipped.items()}, "removed": headers["train"]["removed"]}


def format_report(report: dict) -> str:
    parts = report["parts"]
    lines = [f"prepared {report['out']} ({report['dtype']}, tokenizer {report['tokenizer_fingerprint']}) "
             f"in {report['seconds']} s, {report['mb_per_s']} MB/s; {parts['total']} parts, {parts['skipped']} "
             f"skipped as done, {parts['prepared']} prepared now"]
    for split, c in report["splits"].items():
        lines.append(f"  {split:5s} {c['docs']:>10,} docs {c['tokens']:>14,} tokens")
    for source, reasons in report["skipped"].items():
        if reasons:
            lines.append(f"  skipped in {source}: " + ", ".join(f"{k}={v}" for k, v in sorted(reasons.items())))
    if report["removed"]:
        lines.append("  removed by cleaning: " + ", ".join(f"{k}={v}" for k, v in sorted(report["removed"].items()))
                     + " (exact duplicates over the whole input; near duplicates within each part)")
    return "\n".join(lines)
