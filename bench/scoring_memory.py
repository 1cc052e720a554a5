"""Peak memory of scoring one batch of continuations (``evaluate.loglikelihood.score_tokens``), before and after
it stopped copying the whole [B, T, V] log-softmax to the host.

    .venv/bin/python bench/scoring_memory.py                 # V = 32k, B = 16, T = 1024 (needs ~5 GB free on a CPU)
    .venv/bin/python bench/scoring_memory.py --vocab 8192 --batch 4 --seq 512

Each variant runs in its own process on a one-layer model of width 256 (so the logits dominate), scoring ``--batch``
requests of ``--seq`` + 1 tokens whose last 8 are the continuation. ``before`` is the previous code, kept here:
``log_softmax(logits.float()).cpu()`` then a gather per row; ``after`` is ``score_tokens``. Reported: the RSS
high-water mark above the level just before the call (``/proc/self/clear_refs``), and on CUDA also the
device's ``max_memory_allocated`` above the level before. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def before(model, encoded, batch_size):
    """The scoring loop as it was (whole log-softmax moved to the host)."""
    import torch
    import torch.nn.functional as F

    device = next(model.parameters()).device
    results = []
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start:start + batch_size]
            width = max(len(t) for t, _ in chunk) - 1
            inputs = torch.zeros(len(chunk), width, dtype=torch.long)
            for row, (tokens, _) in enumerate(chunk):
                inputs[row, :len(tokens) - 1] = torch.tensor(tokens[:-1])
            logprobs = F.log_softmax(model(inputs.to(device)).float(), dim=-1).cpu()
            for row, (tokens, n) in enumerate(chunk):
                end = len(tokens) - 1
                lp = logprobs[row, end - n:end]
                targets = torch.tensor(tokens[-n:])
                results.append((float(lp.gather(-1, targets[:, None]).sum()), bool((lp.argmax(-1) == targets).all())))
    return results


def measure(variant: str, vocab: int, batch: int, seq: int) -> dict:
    import torch

    from step_memory import step_memory
    from syllabus.config.model import ModelConfig
    from syllabus.evaluate.loglikelihood import score_tokens
    from syllabus.model.transformer import Transformer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=vocab, hidden_size=256, num_hidden_layers=1, num_attention_heads=4,
                                    intermediate_size=512, max_position_embeddings=seq)).to(device).eval()
    g = torch.Generator().manual_seed(1)
    encoded = [(torch.randint(0, vocab, (seq + 1,), generator=g).tolist(), 8) for _ in range(batch)]
    run = (lambda: before(model, encoded, batch)) if variant == "before" else \
        (lambda: score_tokens(model, encoded, batch_size=batch))
    host: dict = {}
    with step_memory(host, "cpu"):
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        scores = run()
    out = {"variant": variant, "host_peak_bytes": host["transient"], "score0": scores[0][0]}
    if device == "cuda":
        out["device_peak_bytes"] = torch.cuda.max_memory_allocated() - base
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--variant", choices=["before", "after"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args.variant, args.vocab, args.batch, args.seq)))
        return
    import torch

    rows = {}
    for variant in ("before", "after"):
        done = subprocess.run([sys.executable, __file__, "--variant", variant, "--vocab", str(args.vocab),
                               "--batch", str(args.batch), "--seq", str(args.seq)], capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(done.stderr[-2000:])
        rows[variant] = json.loads(done.stdout.strip().splitlines()[-1])
    logits_bytes = args.batch * args.seq * args.vocab * 4
    print(f"scoring B={args.batch} T={args.seq} V={args.vocab} (fp32 logits {logits_bytes / 2**30:.2f} GiB), "
          f"device {'cuda' if torch.cuda.is_available() else 'cpu'}")
    for variant, row in rows.items():
        extra = f", device peak {row['device_peak_bytes'] / 2**30:.2f} GiB" if "device_peak_bytes" in row else ""
        print(f"  {variant:6s}: host peak {row['host_peak_bytes'] / 2**30:.2f} GiB{extra}  (score[0] {row['score0']:.4f})")
    print(json.dumps({"vocab": args.vocab, "batch": args.batch, "seq": args.seq, **{
        f"{v}_{k}": r[k] for v, r in rows.items() for k in ("host_peak_bytes", "device_peak_bytes") if k in r}}))


if __name__ == "__main__":
    main()
