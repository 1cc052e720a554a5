"""The final step of ``prepare``: the parts' outputs become one source (``OUT/train/header.json``,
``OUT/val/header.json``), in part order.

The header lists each part's token file as one shard (paths relative to the split folder,
``../parts/part-00042/train-tokens.bin``), so :class:`~syllabus.data.shards.ShardSet` and everything above it
(``ShardRowStream``, plans, ``epoch_tokens``) read a many-part source as one source. Nothing here reads a
token: only the parts' counts, document offsets and content hashes.

Exact dedup across parts (:func:`cross_part_duplicates`): a worker drops the duplicates inside its part; this
step finds the documents whose hash already occurred in an earlier part (or earlier in part order) and lists
them in ``OUT/<split>/drop-part-00042.npy``, which the reader skips. Together that is the same "first occurrence
wins" over the whole input as one process reading it start to end. The hashes are processed in hash
partitions (buckets by hash value) of at most ``BUCKET_BYTES``, so the memory of this step is bounded by that,
not by the corpus: about 50 bytes per document of one bucket.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from syllabus.data.part_writer import SPLITS, write_json
from syllabus.data.parts import Part
from syllabus.data.shards import FORMAT

BUCKET_BYTES = 256 << 20  # hashes held at once by the cross-part dedup pass


def cross_part_duplicates(hash_files: list[Path], bucket_bytes: int = BUCKET_BYTES) -> list[np.ndarray]:
    """For each file of 16-byte hashes (``uint8 [n, 16]``, in order), the sorted indices of its rows whose
    hash occurs earlier in the concatenation of all files. Reads the files ``buckets`` times (memory-mapped),
    holding one hash partition at a time."""
    sizes = [len(np.load(f, mmap_mode="r")) for f in hash_files]
    buckets = max(1, -(-sum(sizes) * 16 * 3 // bucket_bytes))
    drops: list[list[np.ndarray]] = [[] for _ in hash_files]
    for bucket in range(buckets):
        keys, file_of, index = [], [], []
        for i, f in enumerate(hash_files):
            if not sizes[i]:
                continue
            hashes = np.load(f, mmap_mode="r")
            rows = np.arange(sizes[i]) if buckets == 1 else \
                np.nonzero(np.ascontiguousarray(hashes[:, :8]).view("<u8").ravel() % buckets == bucket)[0]
            keys.append(np.ascontiguousarray(hashes[rows]).view("V16").ravel())
            file_of.append(np.full(len(rows), i, dtype=np.int32))
            index.append(rows)
        if not keys:
            continue
        keys_all = np.concatenate(keys)
        _, first = np.unique(keys_all, return_index=True)  # the first occurrence of each hash (stable)
        duplicate = np.ones(len(keys_all), dtype=bool)
        duplicate[first] = False
        files, rows = np.concatenate(file_of)[duplicate], np.concatenate(index)[duplicate]
        for i in np.unique(files):
            drops[i].append(rows[files == i])
    return [np.sort(np.concatenate(d)) if d else np.zeros(0, np.int64) for d in drops]


def write_manifest(out: Path, parts: list[Part], done: dict[int, dict], meta: dict, *, exact_dedup: bool,
                   inputs: list[str]) -> dict[str, dict]:
    """Write ``OUT/{train,val}/header.json`` over the ``done`` parts (index -> done marker, all parts present)
    and return the headers. ``meta`` is the tokenizer's and the records' part of the header."""
    skipped = sum((Counter(done[p.index]["skipped"]) for p in parts), Counter())
    removed = sum((Counter(done[p.index]["removed"]) for p in parts), Counter())
    headers = {}
    for split in SPLITS:
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        for old in [*folder.glob("drop-*.npy"), *folder.glob("tokens-*.bin"), *folder.glob("docs-*.npy")]:
            old.unlink()
        present = [p for p in parts if done[p.index]["splits"][split]["docs"]]
        drops = cross_part_duplicates([out / "parts" / p.name / f"{split}-hashes.npy" for p in present]) \
            if exact_dedup else [np.zeros(0, np.int64)] * len(present)
        shards = []
        for part, drop in zip(present, drops):
            base = f"../parts/{part.name}/{split}"
            offsets = np.load(out / "parts" / part.name / f"{split}-docs.npy")
            shard = {"tokens": f"{base}-tokens.bin", "docs": f"{base}-docs.npy",
                     "num_docs": len(offsets) - 1 - len(drop), "num_tokens": int(offsets[-1])}
            if len(drop):
                np.save(folder / f"drop-{part.name}.npy", drop)
                shard["drop"] = f"drop-{part.name}.npy"
                shard["num_tokens"] -= int((offsets[drop + 1] - offsets[drop]).sum())
                removed["exact_duplicate"] += len(drop)
            shards.append(shard)
        headers[split] = {"format": FORMAT, "dtype": meta["dtype"], "shards": shards,
                          "num_docs": sum(s["num_docs"] for s in shards),
                          "num_tokens": sum(s["num_tokens"] for s in shards), "parts": len(parts)}
    for split, header in headers.items():  # removed holds both splits' cross-part duplicates by now
        header.update({k: v for k, v in meta.items() if k != "dtype"}, split=split, skipped=dict(skipped),
                      removed=dict(removed), inputs=inputs)
        write_json(out / split / "header.json", header)
    return headers
