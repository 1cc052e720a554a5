"""Streaming memory stays flat: a 10x larger corpus must not raise peak RSS by 50 MB or more."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from syllabus.data import save_tokenizer

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
            for i in range(100 * scale):
                f.write(json.dumps({"text": f"{i} " + " ".join(paras[(i + j) % len(paras)] for j in range(3))}) + "\n")
        sizes[scale] = peak_kb(path, tok_path)
    assert sizes[10][0] > 8 * sizes[1][0]  # it really streamed ~10x more rows
    assert (sizes[10][1] - sizes[1][1]) / 1024 < 50, sizes
