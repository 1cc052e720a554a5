"""Token shards on disk: flat token memmaps, a document index, and a small JSON header.

Layout of one split folder (``OUT/train/`` or ``OUT/val/``)::

    header.json        {"format": "syllabus-shards/1", "dtype": "uint16", "tokenizer_fingerprint": ...,
                        "num_docs": N, "num_tokens": T, "eos_id": 0, "shards": [...], "skipped": {...}}
    tokens-00000.bin   the token ids of many documents, each followed by EOS (raw numpy array)
    docs-00000.npy     int64 offsets into that .bin: document i is tokens[docs[i]:docs[i+1]]

A shard entry may name its files by a relative path outside the folder (``../parts/part-00042/train-tokens.bin``:
``syllabus prepare`` writes one shard per part, see :mod:`syllabus.data.manifest`) and a ``drop`` file: int64
indices of the shard's documents that readers skip (duplicates of documents in earlier parts).

``uint16`` is used when every id fits (vocabulary <= 65536), else ``uint32``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from syllabus.config.errors import ConfigError

FORMAT = "syllabus-shards/1"
SHARD_TOKENS = 256 << 20  # start a new .bin after this many tokens


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def is_shard_folder(path: str | Path) -> bool:
    return (Path(path) / "header.json").is_file()


def shard_folder(path: str | Path, split: str) -> Path | None:
    """The prepared split folder for a source path, or None when the path is not prepared shards."""
    path = Path(path)
    if is_shard_folder(path / split):
        return path / split
    if is_shard_folder(path):
        return path
    return None


class TokensNotDeclared(ConfigError):
    """Shards hold special tokens the current stage's tokenizer does not have (yet)."""


def _fingerprint_below(tokenizer, size: int) -> str:
    """The fingerprint of ``tokenizer`` without the added tokens of id >= ``size`` (its base tokenizer)."""
    import hashlib

    data = json.loads(tokenizer.to_str())
    data["added_tokens"] = [t for t in data.get("added_tokens", []) if t["id"] < size]
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


class ShardWriter:
    """Append tokenized documents (EOS already included) to a split folder; ``close`` writes the header."""

    def __init__(self, folder: str | Path, *, dtype: np.dtype, meta: dict):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in list(self.folder.glob("tokens-*.bin")) + list(self.folder.glob("docs-*.npy")):
            old.unlink()
        self.dtype = np.dtype(dtype)
        self.meta = dict(meta)
        self.shards: list[dict] = []
        self._file = None
        self._offsets: list[int] = []
        self.num_docs = 0
        self.num_tokens = 0

    def add(self, tokens: np.ndarray) -> None:
        if self._file is None or self._offsets[-1] >= SHARD_TOKENS:
            self._finish_shard()
            name = f"tokens-{len(self.shards):05d}.bin"
            self._file = open(self.folder / name, "wb")
            self._offsets = [0]
            self.shards.append({"tokens": name, "docs": name.replace("tokens", "docs").replace(".bin", ".npy")})
        self._file.write(np.asarray(tokens, dtype=self.dtype).tobytes())
        self._offsets.append(self._offsets[-1] + len(tokens))
        self.num_docs += 1
        self.num_tokens += len(tokens)

    def _finish_shard(self) -> None:
        if self._file is None:
            return
        self._file.close()
        shard = self.shards[-1]
        np.save(self.folder / shard["docs"], np.asarray(self._offsets, dtype=np.int64))
        shard.update(num_docs=len(self._offsets) - 1, num_tokens=self._offsets[-1])
        self._file = None

    def close(self) -> dict:
        self._finish_shard()
        header = {"format": FORMAT, "dtype": self.dtype.name, "num_docs": self.num_docs,
                  "num_tokens": self.num_tokens, "shards": self.shards, **self.meta}
        tmp = self.folder / "header.json.tmp"
        tmp.write_text(json.dumps(header, indent=2))
        os.replace(tmp, self.folder / "header.json")
        return header


class ShardSet:
    """Read-only view of a split folder: documents by global index, random access, memmapped."""

    @staticmethod
    def header_of(folder: str | Path) -> dict:
        try:
            return json.loads((Path(folder) / "header.json").read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"data source: cannot read {Path(folder) / 'header.json'}: {err}") from err

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.header = self.header_of(self.folder)
        if self.header.get("format") != FORMAT:
            raise ConfigError(f"data source: {self.folder} is not a {FORMAT} folder")
        dtype = np.dtype(self.header["dtype"])
        self.tokens: list[np.ndarray] = []
        starts, lengths, shard_of = [], [], []
        for i, shard in enumerate(self.header["shards"]):
            path = self.folder / shard["tokens"]
            size = path.stat().st_size // dtype.itemsize
            self.tokens.append(np.memmap(path, dtype=dtype, mode="r", shape=(size,)) if size else np.zeros(0, dtype))
            offsets = np.load(self.folder / shard["docs"])
            keep = np.ones(len(offsets) - 1, dtype=bool)
            if shard.get("drop"):  # documents removed after the shard was written (cross-part duplicates)
                keep[np.load(self.folder / shard["drop"])] = False
            starts.append(offsets[:-1][keep])
            lengths.append(np.diff(offsets)[keep])
            shard_of.append(np.full(int(keep.sum()), i, dtype=np.int32))
        self.doc_start = np.concatenate(starts) if starts else np.zeros(0, np.int64)
        self.doc_len = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
        self.doc_shard = np.concatenate(shard_of) if shard_of else np.zeros(0, np.int32)
        self.num_tokens = int(self.doc_len.sum())

    @property
    def num_docs(self) -> int:
        return len(self.doc_len)

    @property
    def fingerprint(self) -> str | None:
        return self.header.get("tokenizer_fingerprint")

    def check_tokenizer(self, tokenizer) -> None:
        """The shards' ids must mean the same in ``tokenizer``: the same tokenizer, or the same base tokenizer
        with the special tokens the shards were prepared with at the same ids (more may follow: a later
        stage's). Raises :class:`TokensNotDeclared` when the tokenizer lacks some of them (an earlier stage),
        ``ConfigError`` when the base differs."""
        from syllabus.data.tokenizer import tokenizer_fingerprint

        fingerprint = tokenizer_fingerprint(tokenizer)
        if not self.fingerprint or self.fingerprint == fingerprint:
            return
        specials = self.header.get("special_tokens", {})
        lacking = [t for t, i in specials.items() if tokenizer.token_to_id(t) != i]
        base = self.header.get("base_fingerprint", self.fingerprint)
        base_size = self.header.get("base_vocab_size", self.header.get("vocab_size", 0))
        if base != _fingerprint_below(tokenizer, base_size):
            raise ConfigError(
                f"data source {self.folder}: prepared with tokenizer {base}, but the run uses tokenizer "
                f"{_fingerprint_below(tokenizer, base_size)}; prepare it again with this tokenizer")
        if lacking:
            raise TokensNotDeclared(
                f"data source {self.folder}: prepared with special tokens {' '.join(specials)}; this stage's "
                f"tokenizer lacks {' '.join(lacking)} (declare them in this stage or an earlier one, in that order)")

    def check_render_options(self, asked: dict) -> None:
        """Refuse shards whose records were rendered with other options than ``asked`` (only the options a
        run sets explicitly; shards made before options were recorded are not checked)."""
        made = self.header.get("render")
        if made is None:
            return
        differ = [f"{k}: made with {made.get(k)!r}, asked {v!r}" for k, v in asked.items() if made.get(k) != v]
        if differ:
            raise ConfigError(f"data source {self.folder}: prepared with other record options ({'; '.join(differ)}); "
                              f"prepare it again with these options, or drop them to use the shards as made")

    def doc_slice(self, doc: int, start: int, stop: int) -> np.ndarray:
        """Tokens ``[start, stop)`` of document ``doc``."""
        base = self.doc_start[doc]
        return self.tokens[self.doc_shard[doc]][base + start: base + stop]


def shards_tokenizer(sources: dict[str, str]):
    """The tokenizer the prepared shard sources among ``sources`` (name -> path) were made with, or ``None``
    when none is prepared. All must agree (one ``ConfigError`` line naming the sources that differ); the
    tokenizer is read from ``tokenizer.json`` beside the split folders (``syllabus prepare`` writes it)."""
    from syllabus.data.tokenizer import load_tokenizer, tokenizer_fingerprint

    by_print: dict[str, list[str]] = {}
    folders: dict[str, Path] = {}
    for name, path in sources.items():
        if str(path).startswith("hf:"):
            continue
        folder = shard_folder(path, "train")
        if folder is None:
            continue
        header = ShardSet.header_of(folder)
        fingerprint = header.get("base_fingerprint", header.get("tokenizer_fingerprint", "?"))
        by_print.setdefault(fingerprint, []).append(name)
        folders.setdefault(fingerprint, Path(path))
    if not by_print:
        return None
    if len(by_print) > 1:
        groups = "; ".join(f"{', '.join(names)} with tokenizer {fp}" for fp, names in by_print.items())
        raise ConfigError(f"sources: prepared shards were made with different tokenizers ({groups}); "
                          f"prepare them with one tokenizer")
    (fingerprint, names), = by_print.items()
    for candidate in (folders[fingerprint] / "tokenizer.json", folders[fingerprint].parent / "tokenizer.json"):
        if candidate.is_file():
            tok = load_tokenizer(candidate)
            if tokenizer_fingerprint(tok) == fingerprint:
                return tok
    raise ConfigError(f"sources: {', '.join(names)} were prepared with tokenizer {fingerprint}, but no tokenizer.json "
                      f"of it lies beside them; set tokenizer.path to it")
