"""Duplicate removal: exact (content hash) and near-duplicate (MinHash LSH over word shingles)."""

from __future__ import annotations

import hashlib
import re

_WORD = re.compile(r"\w+")


class ExactDedup:
    """Remembers a 16-byte hash per document; whitespace at the ends does not count."""

    def __init__(self):
        self._seen: set[bytes] = set()

    def is_duplicate(self, text: str) -> bool:
        digest = hashlib.blake2b(text.strip().encode("utf-8", "surrogatepass"), digest_size=16).digest()
        if digest in self._seen:
            return True
        self._seen.add(digest)
        return False


class NearDedup:
    """Drop a document whose estimated Jaccard similarity (word ``shingle``-grams) with one already
    kept is above ``threshold``. Memory: one LSH entry (``num_perm`` hashes) per kept document."""

    def __init__(self, threshold: float = 0.8, *, num_perm: int = 128, shingle: int = 5):
        from datasketch import MinHashLSH

        self.threshold, self.num_perm, self.shingle = threshold, num_perm, shingle
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._count = 0

    def signature(self, text: str):
        from datasketch import MinHash

        words = _WORD.findall(text.lower())
        n = self.shingle
        grams = {" ".join(words[i: i + n]).encode() for i in range(max(len(words) - n + 1, 1))}
        sig = MinHash(num_perm=self.num_perm, seed=1)
        sig.update_batch(list(grams))
        return sig

    def is_duplicate(self, text: str) -> bool:
        sig = self.signature(text)
        if self.lsh.query(sig):
            return True
        self.lsh.insert(str(self._count), sig)
        self._count += 1
        return False
