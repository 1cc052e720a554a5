"""Step-time stall per checkpoint save, synchronous vs ``async_save``, on a model preset (CPU). Not a test.

    .venv/bin/python bench/checkpoint_stall.py [--preset small] [--steps 7] [--save-every 3] [--seq-len 64]

The real ``Trainer`` trains the preset on random tokens (the save cost does not depend on the data) twice in one
process: with synchronous periodic saves, then with ``async_save``. Reported per mode: the *stall*, the wall time
the loop is blocked in each periodic ``Trainer.save`` call (sync: the whole write; async: the copy to host memory
and starting the worker), the checkpoint's size, and the median step time (on a busy machine only the stall is
comparable between modes: it is timed directly, not as a difference of noisy step times). Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402
from tokenizers import Tokenizer, models  # noqa: E402

from syllabus.config.model import model_config_for  # noqa: E402
from syllabus.config.pretrain import PreTrainingConfig  # noqa: E402
from syllabus.model import Transformer  # noqa: E402
from syllabus.train.trainer import Trainer  # noqa: E402


class RandomTokens:
    """The trainer's batch contract (``open_batches``) over uniform random tokens, resumable by a counter."""

    def __init__(self, vocab_size: int):
        self.vocab_size, self.drawn = vocab_size, 0

    def next_batch(self, micro_batch_size: int, seq_len: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.drawn)
        self.drawn += 1
        rows = torch.randint(self.vocab_size, (micro_batch_size, seq_len + 1), generator=generator)
        return {"input_ids": rows[:, :-1], "labels": rows[:, 1:]}

    def state_dict(self) -> dict:
        return {"drawn": self.drawn}

    def load_state_dict(self, state: dict) -> None:
        self.drawn = state["drawn"]

    def mix_report(self) -> dict:
        return {}

    def skipped(self) -> dict:
        return {}


class TimedTrainer(Trainer):
    """The trainer with the wall time of each periodic (optional) save call recorded."""

    stalls: list[float]

    def save(self, required: bool = True):
        started = time.perf_counter()
        path = super().save(required)
        if not required:
            self.stalls.append(time.perf_counter() - started)
        return path


def run(args, mode: str, folder: Path) -> dict:
    torch.manual_seed(0)
    shape = model_config_for(args.preset)
    config = PreTrainingConfig(model_config_name=args.preset, max_seq_length=args.seq_len, micro_batch_size=1,
                               max_steps=args.steps, warmup_steps=1, log_interval=1, device="cpu",
                               mixed_precision="bf16", out_dir=str(folder / mode), async_save=mode == "async",
                               save_interval=args.save_every,
                               keep_last_n_checkpoints=2)
    trainer = TimedTrainer(config, Transformer(shape), Tokenizer(models.BPE()), RandomTokens(shape.vocab_size),
                           out_dir=folder / mode)
    trainer.stalls = []
    trainer.train()
    trainer.metrics.close()
    times = [json.loads(line)["time"] for line in open(folder / mode / "metrics.jsonl") if '"loss"' in line]
    final = folder / mode / "checkpoints" / "final"
    size = sum(f.stat().st_size for f in final.iterdir())
    return {"stall_s": trainer.stalls, "mean_stall_s": statistics.mean(trainer.stalls),
            "median_step_s": statistics.median(b - a for a, b in zip(times, times[1:])), "checkpoint_mb": size / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--save-every", type=int, default=3)
    parser.add_argument("--seq-len", type=int, default=64)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__},"
          f" {torch.get_num_threads()} threads; preset {args.preset}, seq_len {args.seq_len}, micro batch 1, bf16")
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp")) as tmp:
        results = {mode: run(args, mode, Path(tmp)) for mode in ("sync", "async")}
    for mode, r in results.items():
        print(f"{mode:>5}: stall per periodic save {r['mean_stall_s']:.2f} s "
              f"({', '.join(f'{s:.2f}' for s in r['stall_s'])}), checkpoint {r['checkpoint_mb']:.0f} MB, "
              f"median step {r['median_step_s']:.2f} s")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
