"""``syllabus generate CHECKPOINT --prompt TEXT``: stream a completion to stdout."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a checkpoint folder, a run folder (its newest valid checkpoint), or a "
                        "plan run folder (the last finished stage's final checkpoint)")
    parser.add_argument("--stage", default=None, metavar="NAME", help="in a plan run folder: this stage's checkpoint")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--stop", action="append", default=[], help="stop before this text (repeatable)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu, cuda, cuda:N")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                        help="auto: the checkpoint's training precision where this device runs it natively")


def run(args: argparse.Namespace) -> int:
    from syllabus.checkpoints import load_model
    from syllabus.cli.eval import device_and_precision
    from syllabus.evaluate.generation import Sampling, stream_text
    from syllabus.evaluate.tasks import precision_context
    from syllabus.plan.run_folder import find_checkpoint

    checkpoint = find_checkpoint(args.checkpoint, args.stage)
    device, dtype = device_and_precision(args.device, args.precision, checkpoint)
    model, tokenizer = load_model(checkpoint, device=device)
    sampling = Sampling(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                        top_p=args.top_p, stop=tuple(args.stop), seed=args.seed)
    sys.stdout.write(args.prompt)
    with precision_context(model, dtype):
        for piece in stream_text(model, tokenizer, args.prompt, sampling):
            sys.stdout.write(piece)
            sys.stdout.flush()
    sys.stdout.write("\n")
    return 0
