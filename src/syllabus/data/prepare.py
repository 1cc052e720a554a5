"""``syllabus prepare``: raw files -> cleaned, deduplicated, tokenized shards in ``OUT/train`` and ``OUT/val``.

Split: when input files are named for a split (``train.jsonl``, ``val.jsonl``, ``validation-*``) the
names decide; otherwise a document goes to ``val`` when the hash of its text falls under
``val_fraction`` (deterministic: the same text always lands on the same side).

Tokenization uses ``workers`` processes (each runs ``encode_batch`` on chunks of documents; the
main process reads, cleans and writes). With ``workers=1`` the main process calls ``encode_batch``,
which HF ``tokenizers`` itself spreads over the cores. ``bench/prepare_throughput.py`` compares them.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from syllabus.config.errors import ConfigError
from syllabus.data.cleaning import CleaningOptions, clean_latex, language_problem, quality_problem
from syllabus.data.dedup import ExactDedup, NearDedup
from syllabus.data.shards import ShardWriter, token_dtype
from syllabus.data.sources import (MAX_DOC_BYTES, is_hub_spec, plan_units, read_hub,
                                   read_unit, resolve_files, split_of_name, split_of_text)
from syllabus.data.text_stream import DEFAULT_VAL_FRACTION, encode_documents
from syllabus.data.tokenizer import (as_tokenizer, eos_id, save_tokenizer, tokenizer_fingerprint,
                                     train_tokenizer, vocab_size)

CHUNK_DOCS = 256  # documents per tokenization task


def iter_clean_documents(inputs: list[str], *, text_field: str, val_fraction: float, opts: CleaningOptions,
                         skipped: dict[str, Counter], removed: Counter,
                         max_doc_bytes: int = MAX_DOC_BYTES) -> Iterator[tuple[str, str]]:
    """``(split, text)`` for every document that survives reading, cleaning and dedup."""
    exact = ExactDedup() if opts.exact_dedup else None
    near = NearDedup(opts.near_dedup) if opts.near_dedup else None
    for spec in inputs:
        skips = skipped.setdefault(str(spec), Counter())
        if is_hub_spec(spec):
            files_and_docs = [(None, read_hub(spec, skips, text_field=text_field))]
        else:
            files = resolve_files(spec)
            by_name = any(split_of_name(f) for f in files)
            files_and_docs = ((f, (t for u in plan_units([f]) for t in read_unit(
                u, skips, text_field=text_field, max_doc_bytes=max_doc_bytes))) for f in files)
        for f, docs in files_and_docs:
            if f is not None and not str(f).lower().endswith((".jsonl", ".json", ".ndjson", ".gz", ".zst", ".parquet")):
                reason = language_problem(f, opts.code_languages)
                if reason:
                    removed[reason] += 1
                    continue
            name_split = split_of_name(f) if f is not None and by_name else None
            if f is not None and by_name and name_split is None:
                name_split = "train"  # unnamed files next to train/val files are training data
            for text in docs:
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
                   max_doc_bytes: int = MAX_DOC_BYTES, echo=print) -> dict:
    """Read, clean, split and tokenize ``inputs`` into ``out_dir/{train,val}``; return the report.

    ``tokenizer`` is a Tokenizer or a path; ``None`` with ``vocab_size_to_train`` trains one on the
    cleaned training documents and saves it as ``out_dir/tokenizer.json``.
    """
    inputs = [inputs] if isinstance(inputs, (str, Path)) else [str(i) for i in inputs]
    if not inputs:
        raise ConfigError("inputs: give at least one file, folder or glob")
    opts = cleaning or CleaningOptions()
    out = Path(out_dir)
    start = time.perf_counter()
    skipped: dict[str, Counter] = {}
    removed: Counter = Counter()

    def docs():
        return iter_clean_documents(inputs, text_field=text_field, val_fraction=val_fraction, opts=opts,
                                    skipped=skipped, removed=removed, max_doc_bytes=max_doc_bytes)

    if tokenizer is None:
        if not vocab_size_to_train:
            raise ConfigError("tokenizer: give a tokenizer path or a vocab size to train one")
        tok = train_tokenizer((t for s, t in docs() if s == "train"), vocab_size_to_train)
        save_tokenizer(tok, out / "tokenizer.json")
        echo(f"trained a {vocab_size(tok)}-token tokenizer -> {out / 'tokenizer.json'}")
        skipped.clear()
        removed.clear()
    else:
        tok = as_tokenizer(tokenizer)
    eos = eos_id(tok)
    meta = {"tokenizer_fingerprint": tokenizer_fingerprint(tok), "eos_id": eos, "vocab_size": vocab_size(tok)}
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
