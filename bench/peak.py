"""This machine's matmul throughput: the limit MFU is measured against. Not a test.

    .venv/bin/python bench/peak.py [--sizes 1024 2048 3072 4096] [--seconds 1.0] [--threads N]

Square matmuls, fp32 and bf16, all threads (or ``--threads``); best burst per size. The last line is
one JSON object ``{"threads": n, "fp32": {size: GFLOP/s, "peak": ...}, "bf16": {...}}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from syllabus.train.throughput import machine_peak_flops  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 3072, 4096])
    parser.add_argument("--seconds", type=float, default=1.0, help="per size and dtype")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"cpu capability {torch.backends.cpu.get_cpu_capability()}, device {args.device}")
    result = {"threads": torch.get_num_threads(), "device": args.device}
    print(f"{'dtype':6s} " + " ".join(f"{n:>9d}" for n in args.sizes) + f" {'peak':>9s}   (GFLOP/s)")
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        peak, per_size = machine_peak_flops(dtype, args.device, tuple(args.sizes), args.seconds)
        print(f"{name:6s} " + " ".join(f"{per_size[n] / 1e9:9.1f}" for n in args.sizes) + f" {peak / 1e9:9.1f}")
        result[name] = {**{str(n): round(v / 1e9, 1) for n, v in per_size.items()}, "peak": round(peak / 1e9, 1)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
