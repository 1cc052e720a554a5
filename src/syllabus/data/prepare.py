"""``syllabus prepare``: raw files -> cleaned, deduplicated, tokenized shards in ``OUT/train`` and ``OUT/val``.

Split: when input files are named for a split (``train.jsonl``, ``val.jsonl``, ``validation-*``) the
names decide; otherwise a document goes to ``val`` when the hash of its text falls under
``val_fraction`` (deterministic: the same text always lands on the same side).

Tokenization uses ``workers`` processes (each runs ``encode_batch`` on chunks of documents; the
main process reads, cleans and writes). With ``workers=1`` the main process calls ``encode_batch``,
which HF ``tokenizers`` itself spreads over the cores. ``bench/prepare_throughput.py`` compares them.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from tokenizers import Tokenizer

from syllabus.config.errors import ConfigError
from syllabus.config.source import SourceSpec
from syllabus.data.cleaning import CleaningOptions, clean_latex, language_problem, quality_problem
from syllabus.data.dedup import ExactDedup, NearDedup
from syllabus.data.hub import hub_stream, read_hub
from syllabus.data.records import RecordRenderer
from syllabus.data.shards import ShardWriter, token_dtype
from syllabus.data.sources import (MAX_DOC_BYTES, explain_skips, is_hub_spec, is_jsonl, plan_units, read_unit,
                                   resolve_files, split_by_names, split_of_text)
from syllabus.data.text_stream import DEFAULT_VAL_FRACTION, encode_documents
from syllabus.data.tokenizer import (add_special_tokens, as_tokenizer, eos_id, save_tokenizer, tokenizer_fingerprint,
                                     train_tokenizer, vocab_size)

log = logging.getLogger("syllabus")

CHUNK_DOCS = 256  # documents per tokenization task


def iter_clean_documents(inputs: list[str], *, text_field: str, val_fraction: float, opts: CleaningOptions,
                         skipped: dict[str, Counter], removed: Counter, max_doc_bytes: int = MAX_DOC_BYTES,
                         kept: Counter | None = None, records: SourceSpec | None = None) -> Iterator[tuple[str, str]]:
    """``(split, text)`` for every document that survives reading, rendering (``records``' options),
    cleaning and dedup. ``kept`` counts the rendered records of each input."""
    exact = ExactDedup() if opts.exact_dedup else None
    near = NearDedup(opts.near_dedup) if opts.near_dedup else None
    renderer = RecordRenderer(records or SourceSpec(path="-", text_field=text_field))
    kept = Counter() if kept is None else kept
    for spec in inputs:
        skips = skipped.setdefault(str(spec), Counter())
        if is_hub_spec(spec):
            files_and_docs = [(None, read_hub(spec, skips, renderer=renderer))]
            if hub_stream(spec, "val") is not None:
                files_and_docs.append(("val", read_hub(spec, skips, renderer=renderer, split="val")))
            by_name = None
        else:
            files = resolve_files(spec)
            by_name = split_by_names(files)
            files_and_docs = ((f, (t for u in plan_units([f]) for t in read_unit(
                u, skips, renderer=renderer, max_doc_bytes=max_doc_bytes))) for f in files)
        for f, docs in files_and_docs:
            if isinstance(f, Path) and not is_jsonl(f) and not str(f).lower().endswith(".parquet"):
                reason = language_problem(f, opts.code_languages)
                if reason:
                    removed[reason] += 1
                    continue
            name_split = f if f == "val" else by_name[f] if by_name is not None and f is not None else None
            if name_split == "test":
                continue  # a test file next to a val file is kept out of both splits
            for text in docs:
                kept[str(spec)] += 1
                if opts.latex:
                    text = clean_latex(text)
                reason = quality_problem(text, opts)
                if reason is None and exact is not None and exact.is_duplicate(text):
                    reason = "exact_duplicate"
                if reason is None and near is not None and near.is_duplicate(text):
                    reason = "near_duplicate"
                if reason:
                    removed[reason] += 1
                    continue
                yield (name_split or split_of_text(text, val_fraction)), text


_WORKER_TOK = None


def _init_worker(tok_json: str) -> None:
    global _WORKER_TOK
    from tokenizers import Tokenizer

    _WORKER_TOK = Tokenizer.from_str(tok_json)


def _encode_chunk(args: tuple[list[str], list[str], int]) -> tuple[list[str], list]:
    splits, texts, eos = args
    return splits, encode_documents(_WORKER_TOK, texts, eos)


def _chunks(docs: Iterator[tuple[str, str]], eos: int) -> Iterator[tuple[list[str], list[str], int]]:
    splits, texts = [], []
    for split, text in docs:
        splits.append(split)
        texts.append(text)
        if len(texts) == CHUNK_DOCS:
            yield splits, texts, eos
            splits, texts = [], []
    if texts:
        yield splits, texts, eos


def _tokenized(chunks, tok, workers: int) -> Iterator[tuple[list[str], list]]:
    if workers <= 1:
        for splits, texts, eos in chunks:
            yield splits, encode_documents(tok, texts, eos)
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    ctx = mp.get_context("fork")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(tok.to_str(),)) as pool:
        window: list = []
        for chunk in chunks:  # bounded windows: the reader never runs far ahead of the writers
            window.append(chunk)
            if len(window) == 4 * workers:
                yield from pool.imap(_encode_chunk, window)
                window = []
        yield from pool.imap(_encode_chunk, window)


def prepare_shards(inputs: list[str] | str, tokenizer, out_dir: str | Path, *, workers: int = 2,
                   text_field: str = "text", val_fraction: float = DEFAULT_VAL_FRACTION,
                   cleaning: CleaningOptions | None = None, vocab_size_to_train: int | None = None,
                   max_doc_bytes: int = MAX_DOC_BYTES, records: dict | None = None,
                   special_tokens: list[str] | None = None, echo=print) -> dict:
    """Read, render, clean, split and tokenize ``inputs`` into ``out_dir/{train,val}``; return the report.

    ``tokenizer`` is a Tokenizer or a path; ``None`` with ``vocab_size_to_train`` trains one on the
    cleaned training documents and saves it as ``out_dir/tokenizer.json``. ``records`` holds the record
    options of :class:`~syllabus.config.source.SourceSpec` (``format``, ``template``, ``calculator``,
    ``steps``, ``languages``, ``chat_template``); they are written to each split's ``header.json`` under
    ``render``, and a run that asks for other ones is refused. ``special_tokens`` (the plan's stage tokens up
    to the stage that trains on this source, in the plan's order, e.g. ``<think>``) are added to the tokenizer
    before tokenizing, so tags in the text become single ids; ``OUT/tokenizer.json`` stays the base one and
    the header records ``special_tokens`` (token -> id). Raises ``ConfigError`` when no document
    survives (the message names the skip reasons and the fields the records have).
    """
    spec = SourceSpec.model_validate({"path": "-", "text_field": text_field, **(records or {})})
    if spec.loss_on != "all":
        raise ConfigError("loss_on: prepared shards hold whole documents; stream chat sources to use "
                          "loss_on: assistant")
    inputs = [inputs] if isinstance(inputs, (str, Path)) else [str(i) for i in inputs]
    if not inputs:
        raise ConfigError("inputs: give at least one file, folder or glob")
    opts = cleaning or CleaningOptions()
    out = Path(out_dir)
    start = time.perf_counter()
    skipped: dict[str, Counter] = {}
    removed: Counter = Counter()
    kept: Counter = Counter()

    def docs():
        return iter_clean_documents(inputs, text_field=text_field, val_fraction=val_fraction, opts=opts,
                                    skipped=skipped, removed=removed, max_doc_bytes=max_doc_bytes, kept=kept,
                                    records=spec)

    if tokenizer is None:
        if not vocab_size_to_train:
            raise ConfigError("tokenizer: give a tokenizer path or a vocab size to train one")
        tok = train_tokenizer((t for s, t in docs() if s == "train"), vocab_size_to_train)
        save_tokenizer(tok, out / "tokenizer.json")
        echo(f"trained a {vocab_size(tok)}-token tokenizer -> {out / 'tokenizer.json'}")
        skipped.clear()
        removed.clear()
        kept.clear()
    else:
        tok = as_tokenizer(tokenizer)
        save_tokenizer(tok, out / "tokenizer.json")  # beside the shards: a plan over them uses it
    base = {"base_fingerprint": tokenizer_fingerprint(tok), "base_vocab_size": vocab_size(tok)}
    if special_tokens:
        tok = Tokenizer.from_str(tok.to_str())
        base["special_tokens"] = dict(zip(special_tokens, add_special_tokens(tok, list(special_tokens))))
    eos = eos_id(tok)
    meta = {"tokenizer_fingerprint": tokenizer_fingerprint(tok), "eos_id": eos, "vocab_size": vocab_size(tok),
            "render": spec.render_options(), **base}
    dtype = token_dtype(vocab_size(tok))
    writers = {s: ShardWriter(out / s, dtype=dtype, meta={**meta, "split": s}) for s in ("train", "val")}
    raw_bytes = 0
    for splits, encoded in _tokenized(_chunks(docs(), eos), tok, workers):
        for split, ids in zip(splits, encoded):
            writers[split].add(ids)
    total_skips = {k: dict(v) for k, v in skipped.items()}
    summed = sum(skipped.values(), Counter())
    headers = {}
    for split, writer in writers.items():
        writer.meta.update(skipped=dict(summed), removed=dict(removed), inputs=inputs)
        headers[split] = writer.close()
    for f in (f for spec in inputs if not is_hub_spec(spec) for f in resolve_files(spec)):
        raw_bytes += f.stat().st_size
    seconds = time.perf_counter() - start
    report = {
        "out": str(out), "dtype": dtype.name, "tokenizer_fingerprint": meta["tokenizer_fingerprint"],
        "splits": {s: {"docs": h["num_docs"], "tokens": h["num_tokens"]} for s, h in headers.items()},
        "skipped": total_skips, "removed": dict(removed), "input_bytes": raw_bytes,
        "seconds": round(seconds, 3), "mb_per_s": round(raw_bytes / 1e6 / max(seconds, 1e-9), 2),
    }
    for source in inputs:
        files = None if is_hub_spec(source) else resolve_files(source)
        if sum(skipped.get(source, {}).values()) > kept[source] or any(
                k.startswith("unknown_role:") for k in skipped.get(source, {})):
            problem = "no documents" if kept[source] == 0 else None
            line = explain_skips(source, skipped.get(source, Counter()), spec, files, kept[source], problem=problem)
            if problem:
                raise ConfigError(f"prepare: {line}")
            log.warning("%s", line)
    if sum(h["num_docs"] for h in headers.values()) == 0:
        raise ConfigError(f"prepare: no document survived reading and cleaning of {', '.join(inputs)}")
    echo(format_report(report))
    return report


def format_report(report: dict) -> str:
    lines = [f"prepared {report['out']} ({report['dtype']}, tokenizer {report['tokenizer_fingerprint']}) "
             f"in {report['seconds']} s, {report['mb_per_s']} MB/s"]
    for split, c in report["splits"].items():
        lines.append(f"  {split:5s} {c['docs']:>10,} docs {c['tokens']:>14,} tokens")
    for source, reasons in report["skipped"].items():
        if reasons:
            lines.append(f"  skipped in {source}: " + ", ".join(f"{k}={v}" for k, v in sorted(reasons.items())))
    if report["removed"]:
        lines.append("  removed by cleaning: " + ", ".join(f"{k}={v}" for k, v in sorted(report["removed"].items())))
    return "\n".join(lines)
