"""Checkpoint integrity cost: verifying a ``small``-preset checkpoint (weights + AdamW state). Not a test.

    .venv/bin/python bench/checkpoint_hash.py [--preset small] [--repeats 3]

One checkpoint is written with ``save_checkpoint`` (its XXH3-128 manifest taken while writing). Timed, best of
``--repeats``: ``verify_checkpoint`` as it is (sizes, then XXH3 on parallel threads); the same with the
manifest rewritten in sha256 (what earlier versions wrote; still accepted); and one sequential sha256 pass over
the files (the extra read every save made before, when the manifest was hashed after writing). Files are in
the page cache after the first pass, so this measures hashing, not the disk. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from syllabus.checkpoints.folder import MANIFEST, hash_of, verify_checkpoint  # noqa: E402
from syllabus.config.model import model_config_for  # noqa: E402
from syllabus.model import Transformer  # noqa: E402
from syllabus.train.checkpoint import model_state_for_saving, save_checkpoint  # noqa: E402


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="small")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = Transformer(model_config_for(args.preset))
    optimizer = torch.optim.AdamW(model.parameters())
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()  # AdamW moments exist, as in a real checkpoint
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp")) as tmp:
        path = save_checkpoint(tmp, 1, model_state_for_saving(model), {"optimizer": optimizer.state_dict()}, {})
        files = json.loads((path / MANIFEST).read_text())["files"]
        size = sum(entry["size"] for entry in files.values())
        xxh3 = best_of(args.repeats, lambda: verify_checkpoint(path))
        sequential_sha = best_of(args.repeats, lambda: [hash_of(path / name, "sha256") for name in files])
        (path / MANIFEST).write_text(json.dumps({"step": 1, "files": {
            name: {"size": entry["size"], "sha256": hash_of(path / name, "sha256")} for name, entry in files.items()}}))
        sha = best_of(args.repeats, lambda: verify_checkpoint(path))
    result = {"preset": args.preset, "checkpoint_mb": size / 1e6, "verify_xxh3_s": xxh3, "verify_sha256_s": sha,
              "sha256_pass_s": sequential_sha}
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {args.preset} checkpoint "
          f"{size / 1e6:.0f} MB")
    print(f"verify (XXH3-128, parallel): {xxh3:.2f} s; verify (sha256, parallel): {sha:.2f} s; "
          f"one sequential sha256 pass (the old save's re-read): {sequential_sha:.2f} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
