"""``syllabus eval CHECKPOINT [--stage NAME] --tasks ppl,hellaswag,... [--limit N] [--data DOMAIN=PATH ...]
[--out FILE]``.

``ppl`` without ``--data`` scores the held-out splits of the sources the checkpoint was trained on.
"""

from __future__ import annotations

import argparse

from syllabus.config.errors import ConfigError
from syllabus.config.plan import BENCHMARK_TASKS

TASKS = ",".join(("ppl", *BENCHMARK_TASKS))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a checkpoint folder, a run folder (its newest valid checkpoint), or a "
                        "plan run folder (the last finished stage's final checkpoint)")
    parser.add_argument("--stage", default=None, metavar="NAME", help="in a plan run folder: this stage's checkpoint")
    parser.add_argument("--tasks", default="hellaswag,arc,arithmetic",
                        help=f"comma-separated, from {TASKS}, or lm_eval:NAME (any lm-eval task, "
                             "e.g. lm_eval:local_hellaswag)")
    parser.add_argument("--limit", type=int, default=None, help="at most N items per task (N batches for ppl)")
    parser.add_argument("--data", action="append", default=[], metavar="DOMAIN=PATH",
                        help="held-out source for ppl (repeatable; default: the sources the checkpoint trained on)")
    parser.add_argument("--seq-len", type=int, default=None, help="ppl sequence length (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=8, help="ppl batch size")
    parser.add_argument("--shots", action="append", default=[], metavar="TASK=N",
                        help="exemplars per prompt for a task (repeatable), e.g. gsm8k=4; a gsm8k prompt too long "
                             "for the model loses whole exemplars, counted and logged")
    parser.add_argument("--items", action="append", default=[], metavar="TASK=PATH",
                        help="score a task on your own items file (repeatable; gsm8k: GSM8K-format JSONL)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu, cuda, cuda:N")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                        help="forwards autocast to this dtype; auto: the precision the checkpoint was trained in "
                             "(its run_config.json) when this device runs it natively, else as training's "
                             "mixed_precision auto decides for this device")


def parse_data(pairs: list[str], flag: str = "--data", key: str = "DOMAIN", value: str = "PATH") -> dict[str, str]:
    data = {}
    for pair in pairs:
        domain, sep, path = pair.partition("=")
        if not sep or not domain or not path:
            raise ConfigError(f"{flag}: expected {key}={value}, got {pair!r}")
        data[domain] = path
    return data


def parse_shots(pairs: list[str]) -> dict[str, int]:
    shots = parse_data(pairs, "--shots", "TASK", "N")
    bad = [f"{t}={n}" for t, n in shots.items() if not n.isdigit()]
    if bad:
        raise ConfigError(f"--shots: N must be a whole number >= 0, got {', '.join(bad)}")
    return {t: int(n) for t, n in shots.items()}


def device_and_precision(device: str, precision: str, checkpoint) -> tuple[str, object]:
    """``--device`` and ``--precision`` resolved for ``checkpoint`` (a folder): (device string, autocast dtype or
    None for fp32). TF32 for the fp32 matmuls left on CUDA."""
    import json
    from pathlib import Path

    import torch

    from syllabus.train.peaks import DTYPES
    from syllabus.train.precision import cpu_has_native_bf16, resolve_precision, use_tf32_matmuls

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    use_tf32_matmuls(device)
    if precision == "auto":
        config = Path(checkpoint) / "run_config.json"
        trained = (json.loads(config.read_text()).get("precision") or {}).get("chosen") if config.exists() else None
        cuda = torch.device(device).type == "cuda"
        native = {"fp32": True, "fp16": cuda,
                  "bf16": torch.cuda.is_bf16_supported(including_emulation=False) if cuda else cpu_has_native_bf16()}
        if native.get(trained):
            precision = trained
    chosen = resolve_precision("auto", device).chosen if precision == "auto" else precision
    return device, None if chosen == "fp32" else DTYPES[chosen]


def run(args: argparse.Namespace) -> int:
    from syllabus.evaluate import evaluate_checkpoint, results_table
    from syllabus.plan.run_folder import find_checkpoint, trained_sources

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    checkpoint = find_checkpoint(args.checkpoint, args.stage)
    data = parse_data(args.data)
    if "ppl" in tasks and not data:
        data = trained_sources(checkpoint)
    device, dtype = device_and_precision(args.device, args.precision, checkpoint)
    results = evaluate_checkpoint(checkpoint, tasks, limit=args.limit, data=data,
                                  out=args.out, device=device, seq_len=args.seq_len,
                                  batch_size=args.batch_size, autocast=dtype,
                                  shots=parse_shots(args.shots), items=parse_data(args.items, "--items", "TASK"))
    print(results_table(results))
    return 0
