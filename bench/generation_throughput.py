"""Greedy generation throughput: syllabus's batched KV-cache ``generate`` vs ``transformers``' ``generate``
on the Hugging Face export of the same weights, same GSM8K prompts. Not a test.

    .venv/bin/python bench/generation_throughput.py [--items 16] [--shots 2] [--max-new-tokens 64]
        [--batch-size 8] [--preset tiny] [--reps 3] [--threads N]

The model is the preset with random weights (seeded): speed does not depend on what the weights say, and
random weights rarely stop early, so every row runs its full length. Prompts are GSM8K test questions
after ``--shots`` published exemplars (different lengths: batches are left-padded). Both systems decode
greedily in fp32 with a KV cache and stop at GSM8K's stop strings; their completions must be identical
(checked, reported). Systems alternate within the process; the figure is the median items/s over ``--reps``.
The last line is one JSON object.
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

from syllabus.config.model import model_config_for  # noqa: E402
from syllabus.data.tokenizer import train_tokenizer  # noqa: E402
from syllabus.evaluate.generation import Sampling, generate, stop_index  # noqa: E402
from syllabus.evaluate.gsm8k import STOP, exemplars, problems, prompt_for  # noqa: E402
from syllabus.export import export_hf  # noqa: E402
from syllabus.model import Transformer  # noqa: E402


def hf_generate(hf, hf_tok, prompts, max_new, batch_size, eos):
    out = [""] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(hf_tok(prompts[i])["input_ids"]))
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        enc = hf_tok([prompts[i] for i in chunk], return_tensors="pt", padding=True)
        with torch.no_grad():
            ids = hf.generate(**enc, max_new_tokens=max_new, do_sample=False, stop_strings=list(STOP),
                              tokenizer=hf_tok, pad_token_id=hf_tok.pad_token_id)
        for row, i in enumerate(chunk):
            new = ids[row, enc["input_ids"].shape[1]:].tolist()
            new = new[:new.index(eos)] if eos in new else new
            text = hf_tok.decode(new, skip_special_tokens=False)
            cut = stop_index(text, STOP)
            out[i] = text if cut is None else text[:cut]
    return out


def main() -> None:
    import transformers

    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=16)
    parser.add_argument("--shots", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    texts = exemplars() + [p.question for p in problems(500)]
    tokenizer = train_tokenizer(texts, 2048)
    torch.manual_seed(0)
    model = Transformer(model_config_for(args.preset, vocab_size=2048)).eval()
    prompts = [prompt_for(p.question, args.shots) for p in problems(args.items)]
    with tempfile.TemporaryDirectory() as folder:
        export_hf(model, tokenizer, folder)
        hf = transformers.AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
        hf_tok = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True, padding_side="left")
    eos = tokenizer.token_to_id("<|endoftext|>")
    sampling = Sampling(max_new_tokens=args.max_new_tokens, stop=STOP)
    systems = {
        f"syllabus batch {args.batch_size}": lambda: generate(model, tokenizer, prompts, sampling,
                                                              batch_size=args.batch_size),
        "syllabus batch 1": lambda: generate(model, tokenizer, prompts, sampling, batch_size=1),
        f"transformers batch {args.batch_size}": lambda: hf_generate(hf, hf_tok, prompts, args.max_new_tokens,
                                                                     args.batch_size, eos),
        "transformers batch 1": lambda: hf_generate(hf, hf_tok, prompts, args.max_new_tokens, 1, eos),
    }
    lengths = [len(hf_tok(p)["input_ids"]) for p in prompts]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"transformers {transformers.__version__}, {torch.get_num_threads()} threads; preset {args.preset}, "
          f"{args.items} GSM8K prompts of {min(lengths)}-{max(lengths)} tokens, {args.max_new_tokens} new tokens")
    times = {name: [] for name in systems}
    outputs = {}
    for _ in range(args.reps):
        for name, run in systems.items():
            started = time.perf_counter()
            outputs[name] = run()
            times[name].append(time.perf_counter() - started)
    reference = outputs[f"syllabus batch {args.batch_size}"]
    result = {}
    print(f"{'system':24s} {'items/s':>8s} {'identical':>10s}")
    for name in systems:
        rate = args.items / statistics.median(times[name])
        same = sum(a == b for a, b in zip(outputs[name], reference))
        print(f"{name:24s} {rate:8.2f} {same:>5d}/{args.items}")
        result[name] = {"items_per_s": round(rate, 3), "identical": same}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
