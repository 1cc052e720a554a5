"""Streaming memory stays flat: a corpus ten times larger, spanning many read units (``UNIT_BYTES``), must not
raise peak RSS by more than a fraction of its own size (code that loaded a whole file would)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from syllabus.data import save_tokenizer
from syllabus.data.sources import UNIT_BYTES

CHILD = r"""
import resource, sys
from syllabus.data import open_batches, load_tokenizer
b = open_batches({"a": sys.argv[1]}, {"a": 1}, load_tokenizer(sys.argv[2]), max_epochs={"a": 1})
rows = 0
try:
    while True:
        rows += b.next_batch(8, 256)["input_ids"].shape[0]
except StopIteration:
    pass
print(rows, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_kb(corpus: Path, tok_path: Path) -> tuple[int, int]:
    env_path = str(Path(__file__).parents[2] / "src")
    out = subprocess.run([sys.executable, "-c", CHILD, str(corpus), str(tok_path)], capture_output=True, text=True,
                         env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"}, check=True)
    rows, kb = out.stdout.split()
    return int(rows), int(kb)


@pytest.mark.slow
def test_streaming_memory_is_flat(tmp_path, tok, real_text):
    paras = [p for p in real_text.splitlines() if p.strip()]
    tok_path = save_tokenizer(tok, tmp_path / "tok")
    sizes = {}
    for scale in (1, 10):
        path = tmp_path / f"x{scale}.jsonl"
        with open(path, "w") as f:
            i = 0
            while f.tell() < scale * 3_000_000:  # 3 MB (less than one read unit) and 30 MB (several)
                f.write(json.dumps({"text": f"{i} " + " ".join(paras[(i + j) % len(paras)] for j in range(3))}) + "\n")
                i += 1
        sizes[scale] = peak_kb(path, tok_path)
    assert path.stat().st_size > 6 * UNIT_BYTES
    assert sizes[10][0] > 8 * sizes[1][0]  # it really streamed ~10x more rows
    assert (sizes[10][1] - sizes[1][1]) / 1024 < 20, sizes  # the 27 MB more text, and its tokens, never all held
