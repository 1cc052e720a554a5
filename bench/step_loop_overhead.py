"""What the step loop's issue-23 changes cost on the CPU: the trainer's real step, as it was and as it is, in one
process, alternating, with paired ratios.

    .venv/bin/python bench/step_loop_overhead.py               # width 384, 6 layers, vocab 4096, seq 256, mb 8
    .venv/bin/python bench/step_loop_overhead.py --rounds 9 --steps 4 --dtype fp32

``before`` reads each step's batches when asked (the prefetcher's ``depth`` 0) and checks the non-finite flag
on the host every step before calling ``optimizer.step()`` (the old ``update_allowed``); ``after`` is the trainer
as it is: batches read ahead on a thread, the skip decided on the device (fused AdamW's ``found_inf``) and
counted in device tensors. Both train the same model from the same seed on the same raw text (stdlib source as
JSONL, tokenized on the fly). Each round runs ``--steps`` steps of each, the order swapped every round; the
figure is tokens/s per round, the ratio after/before is the median of the per-round ratios with its range.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from syllabus.config import PreTrainingConfig  # noqa: E402
from syllabus.config.model import model_config_for  # noqa: E402
from syllabus.data import open_batches, train_tokenizer  # noqa: E402
from syllabus.model import Transformer  # noqa: E402
from syllabus.train.nonfinite import NonFiniteGuard  # noqa: E402
from syllabus.train.schedule import Phase  # noqa: E402
from syllabus.train.trainer import Trainer, _Window  # noqa: E402


class HostCheckedGuard(NonFiniteGuard):
    """The guard as it was: one host read per step, the optimizer not called on a non-finite step."""

    def step(self, optimizer, scaler, loss, grad_norm) -> None:
        if bool(torch.isfinite(loss) & torch.isfinite(grad_norm)):
            optimizer.step()


class Records:
    def log(self, record):
        pass

    def close(self):
        pass


def make(variant: str, path: Path, tok, args, out: Path):
    torch.manual_seed(0)
    model = Transformer(model_config_for("tiny", vocab_size=tok.get_vocab_size(), hidden_size=384,
                                         num_hidden_layers=6, num_attention_heads=6, intermediate_size=1024,
                                         max_position_embeddings=args.seq))
    config = PreTrainingConfig(mixed_precision=args.dtype, device="cpu", out_dir=str(out), max_seq_length=args.seq,
                               micro_batch_size=args.batch, max_steps=10**6, warmup_steps=0, lr_schedule="constant")
    batches = open_batches({"code": str(path)}, {"code": 1.0}, tok, seed=0)
    trainer = Trainer(config, model, tok, batches, out_dir=out, metrics=Records())
    if variant == "before":
        trainer.batches.depth = 0
        trainer.nonfinite = HostCheckedGuard(config)
    phase = Phase(0, args.seq, args.batch, 1)

    def steps(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            trainer._step(phase, _Window())
            trainer.step += 1
        return n * args.seq * args.batch / (time.perf_counter() - t0)
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--dtype", default="bf16", choices=["fp32", "bf16"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        stdlib, texts = Path(sysconfig.get_paths()["stdlib"]), []
        for source in sorted(stdlib.glob("*.py"))[:150]:
            texts.append(source.read_text(encoding="utf-8", errors="replace"))
        path = tmp / "code.jsonl"
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        tok = train_tokenizer(texts[:60], 4096)
        runs = {v: make(v, path, tok, args, tmp / v) for v in ("before", "after")}
        for run in runs.values():
            run(2)  # warm up
        tps: dict[str, list[float]] = {"before": [], "after": []}
        for r in range(args.rounds):
            for v in ("before", "after") if r % 2 == 0 else ("after", "before"):
                tps[v].append(runs[v](args.steps))
    ratios = [a / b for a, b in zip(tps["after"], tps["before"])]
    print(f"step loop, {args.dtype}, width 384 x 6, vocab 4096, seq {args.seq}, micro-batch {args.batch}, "
          f"{args.rounds} rounds x {args.steps} steps, {torch.get_num_threads()} threads")
    for v, xs in tps.items():
        print(f"  {v:6s}: median {statistics.median(xs):,.0f} tok/s (range {min(xs):,.0f}-{max(xs):,.0f})")
    print(f"  after/before: median x{statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f})")
    print(json.dumps({"before": tps["before"], "after": tps["after"], "ratio_median": statistics.median(ratios),
                      "ratios": ratios}))


if __name__ == "__main__":
    main()
