"""Training throughput of syllabus vs Hugging Face ``LlamaForCausalLM`` and a nanoGPT-style GPT-2 at the same
shape, in one process.

    .venv/bin/python bench/train_throughput.py --quick          # CPU shape, both vocabs, fp32+bf16, eager (~3 min)
    .venv/bin/python bench/train_throughput.py                  # + compiled (several minutes more)
    .venv/bin/python bench/train_throughput.py --shapes small   # the `small` preset at seq 1024 (slow on CPU)
    .venv/bin/python bench/train_throughput.py --profile        # torch.profiler table of one syllabus step
    .venv/bin/python bench/train_throughput.py --compile eager fused compiled   # + syllabus's fused_kernels

syllabus runs its real step: ``Trainer._step`` (``accumulate_gradients`` under autocast, clipping, fused
AdamW) fed by ``open_batches`` over prepared shards of the demo corpus, so data wait is real. The reference
is ``LlamaForCausalLM`` (SDPA attention) fed by the same kind of batches, trained with a plain loop:
autocast forward with ``labels``, backward, ``clip_grad_norm_``, ``AdamW(fused=True)`` (system ``hf-llama``).
System ``nanogpt`` is ``bench/nanogpt_reference.py``: a GPT-2 written and trained the way nanoGPT does it, at
the same width, depth, heads, vocabulary and parameter count (GELU MLP of 4×d instead of SwiGLU of ``ffn``).

Noise control: every configuration is warmed up first (compile happens there), then the systems alternate
A B A B ... for ``--rounds`` rounds of ``--steps`` steps; the figure is the median over rounds, and a ratio
(``x hf``, ``x nano``) is the median of the per-round ratios (``paired_ratios``), printed with its range. MFU divides
``Transformer.flops_per_token`` x tokens/s by the best square-matmul FLOP/s of the row's precision measured in
this same run (``MFU``; before and after the rows, the higher reading) and by the fastest precision's (``MFU best``);
on a GPU in ``syllabus.train.spec_peaks``'s table also by the dense spec-sheet peak of the row's precision
(``mfu_spec`` in the JSON). On CUDA each round is timed between two ``torch.cuda.synchronize()`` (``run_round``).
Peak memory = parameters + optimizer state + the RSS high-water mark above the pre-step RSS during one more
step after the timed rounds (``malloc_trim`` first, then ``/proc/self/clear_refs`` resets the mark; the
timed steps run untouched, as in training), on GPU
``torch.cuda.max_memory_allocated``. The last line is one JSON object (see ``--help``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from step_memory import memory_estimate, state_bytes, step_memory  # noqa: E402
from syllabus.config.model import model_config_for  # noqa: E402
from syllabus.config.pretrain import PreTrainingConfig  # noqa: E402
from syllabus.data import open_batches  # noqa: E402
from syllabus.model import Transformer  # noqa: E402
from syllabus.train.schedule import Phase  # noqa: E402
from syllabus.train.peaks import cpu_model  # noqa: E402
from syllabus.train.spec_peaks import device_spec_peaks  # noqa: E402
from syllabus.train.throughput import machine_peak_flops, mfu  # noqa: E402
from syllabus.train.trainer import Trainer, _Window  # noqa: E402

CPU = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=6, intermediate_size=1024,
           max_position_embeddings=1024, tie_word_embeddings=True)
# name -> (model shape, seq_len, micro batch)
SHAPES = {
    "cpu-v96": (dict(CPU, vocab_size=96), 256, 8),
    "cpu-v8k": (dict(CPU, vocab_size=8192), 256, 8),
    "small": (dict(vocab_size=32000, max_position_embeddings=2048), 1024, 8),
    "small-2k": (dict(vocab_size=32000, max_position_embeddings=2048), 2048, 8),  # bench/gpu_check.sh's shape
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
DATA_VOCAB = 8192


# --- data ----------------------------------------------------------------------------------------------
def prepared_data(cache: Path) -> tuple[Path, object]:
    """Demo corpus -> 8k BPE tokenizer (trained on its train split) -> train/val shards under
    ``cache/shards`` (built once, reused)."""
    from syllabus.data import load_tokenizer, save_tokenizer, train_tokenizer
    from syllabus.data.corpus import build_demo_corpus
    from syllabus.data.prepare import prepare_shards

    shards, tok_path = cache / "shards", cache / "tokenizer.json"
    if not (shards / "val").exists():
        build_demo_corpus(cache / "demo", echo=lambda s: None)
        files = rendered_demo(cache / "demo", cache / "rendered")
        texts = [json.loads(line)["text"] for f in files if f.name.startswith("train") for line in open(f)]
        save_tokenizer(train_tokenizer(texts, DATA_VOCAB), tok_path)
        prepare_shards([str(f) for f in files], load_tokenizer(tok_path), shards, workers=1, echo=lambda s: None)
    return shards, load_tokenizer(tok_path)


def rendered_demo(corpus: Path, out: Path) -> list[Path]:
    """The demo corpus's records rendered to text (``{"text"}`` JSONL, ``train-<domain>`` / ``val-<domain>``)."""
    from syllabus.config.source import as_source_spec
    from syllabus.data.corpus import demo_sources
    from syllabus.data.records import RecordRenderer
    from syllabus.data.sources import read_documents

    out.mkdir(parents=True, exist_ok=True)
    files = []
    for domain, source in demo_sources(corpus).items():
        renderer = RecordRenderer(as_source_spec(source))
        for split in ("train", "val"):
            files.append(out / f"{split}-{domain}.jsonl")
            with open(files[-1], "w") as f:
                for text in read_documents(corpus / domain / f"{split}.jsonl", renderer=renderer):
                    f.write(json.dumps({"text": text}) + "\n")
    return files


class FoldedVocab:
    """Batches with token ids folded into a smaller vocabulary (id % vocab); -100 labels kept."""

    def __init__(self, batches, vocab: int):
        self.batches, self.vocab = batches, vocab

    def next_batch(self, micro_batch_size: int, seq_len: int) -> dict[str, torch.Tensor]:
        batch = self.batches.next_batch(micro_batch_size, seq_len)
        if self.vocab < DATA_VOCAB:
            batch = {k: torch.where(v >= 0, v % self.vocab, v) if k in ("input_ids", "labels") else v
                     for k, v in batch.items()}
        return batch

    def __getattr__(self, name):
        return getattr(self.batches, name)


def open_train_batches(shards: Path, tokenizer, vocab: int, seed: int = 0):
    return FoldedVocab(open_batches({"demo": str(shards)}, {"demo": 1.0}, tokenizer, seed=seed), vocab)


# --- the two systems ----------------------------------------------------------------------------------------
class _NullMetrics:
    def log(self, record) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class Runner:
    system: str
    shape: str
    dtype: str
    mode: str  # what this system ran: eager, fused (syllabus's fused_kernels) or compiled
    tokens_per_step: int
    flops_per_token: float
    step: object  # () -> (seconds, data_seconds)
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    round_tps: list = field(default_factory=list)
    data_seconds: float = 0.0
    step_seconds: float = 0.0
    memory: dict = field(default_factory=dict)
    losses: list = field(default_factory=list)
    group: str = ""  # the comparison it belongs to (the reference runs eager in the "fused" one)

    @property
    def key(self) -> str:
        return f"{self.shape}/{self.dtype}/{self.group or self.mode}"


def syllabus_runner(shape: str, dtype: str, mode: str, shards, tokenizer, out_dir: Path,
                    lr: float = 6e-4, max_steps: int = 10**6, warmup: int = 0, seed: int = 0,
                    min_lr: float = 6e-5, weight_decay: float = 0.1) -> Runner:
    model_cfg, seq_len, mb = SHAPES[shape]
    torch.manual_seed(seed)
    model = Transformer(model_config_for("tiny", **model_cfg) if not shape.startswith("small")
                        else model_config_for("small", **model_cfg))
    config = PreTrainingConfig(max_seq_length=seq_len, micro_batch_size=mb, mixed_precision=dtype,
                               compile=mode == "compiled", fused_kernels=mode == "fused",
                               device="cpu" if not torch.cuda.is_available() else "cuda",
                               max_steps=max_steps, warmup_steps=warmup, learning_rate=lr, min_learning_rate=min_lr,
                               lr_schedule="cosine" if warmup else "constant", weight_decay=weight_decay)
    batches = open_train_batches(shards, tokenizer, model_cfg["vocab_size"], seed)
    trainer = Trainer(config, model, tokenizer, batches, out_dir=out_dir, metrics=_NullMetrics())
    print(f"  kernels {shape}/{dtype}: {trainer.kernels.describe()}", flush=True)  # train/calibration.py
    phase = Phase(0, seq_len, mb, 1)

    def step():
        window = _Window()
        loss, _, _ = trainer._step(phase, window)  # the trainer's own step: accumulate, clip, AdamW
        trainer.step += 1
        return window.step_seconds, window.data_seconds, loss

    return Runner("syllabus", shape, dtype, mode, seq_len * mb, model.flops_per_token(seq_len), step,
                  model, trainer.optimizer)


def reference_runner(shape: str, dtype: str, compiled: bool, shards, tokenizer, lr: float = 6e-4,
                     schedule=None, seed: int = 0, weight_decay: float = 0.1) -> Runner:
    """Hugging Face LlamaForCausalLM at the same shape, plain AdamW loop (same clipping, fused AdamW)."""
    import transformers

    model_cfg, seq_len, mb = SHAPES[shape]
    ours = model_config_for("small" if shape.startswith("small") else "tiny", **model_cfg)
    hf_config = transformers.LlamaConfig(
        vocab_size=ours.vocab_size, hidden_size=ours.hidden_size, intermediate_size=ours.intermediate_size,
        num_hidden_layers=ours.num_hidden_layers, num_attention_heads=ours.num_attention_heads,
        num_key_value_heads=ours.kv_heads, max_position_embeddings=ours.max_position_embeddings,
        rms_norm_eps=ours.rms_norm_eps, rope_theta=ours.rope_theta, tie_word_embeddings=ours.tie_word_embeddings,
        attn_implementation="sdpa")
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(hf_config)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device).train()
    fwd = torch.compile(model) if compiled else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=weight_decay,
                                  fused=True)
    batches = open_train_batches(shards, tokenizer, ours.vocab_size, seed)
    amp = torch.autocast(device, dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()
    state = {"step": 0}

    def step():
        t0 = time.perf_counter()
        if schedule is not None:
            for g in optimizer.param_groups:
                g["lr"] = schedule(state["step"])
        batch = batches.next_batch(mb, seq_len)
        ids, targets = batch["input_ids"].to(device), batch["labels"].to(device)
        t_data = time.perf_counter() - t0
        with amp:  # shift_labels: the same next-token targets as syllabus (no shift inside HF)
            loss = fwd(input_ids=ids, labels=targets, shift_labels=targets).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state["step"] += 1
        return time.perf_counter() - t0, t_data, loss.detach()

    ours_model = Transformer(ours)  # flops counted by the same formula for both
    return Runner("hf-llama", shape, dtype, "compiled" if compiled else "eager", seq_len * mb,
                  ours_model.flops_per_token(seq_len), step, model, optimizer)


def nanogpt_runner(shape: str, dtype: str, compiled: bool, shards, tokenizer, seed: int = 0) -> Runner:
    """The nanoGPT-style GPT-2 (``bench/nanogpt_reference.py``) at the same shape and batches."""
    from nanogpt_reference import nanogpt_step

    model_cfg, seq_len, mb = SHAPES[shape]
    cfg = model_config_for("small" if shape.startswith("small") else "tiny", **model_cfg).model_dump()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    batches = open_train_batches(shards, tokenizer, cfg["vocab_size"], seed)
    model, optimizer, step = nanogpt_step(cfg, seq_len, mb, dtype, batches.next_batch, device, compiled=compiled,
                                          seed=seed)
    return Runner("nanogpt", shape, dtype, "compiled" if compiled else "eager", seq_len * mb,
                  model.flops_per_token(seq_len), step, model, optimizer)


def cpu_flags() -> str:
    """The CPU flags that decide matmul speed (AVX2/AVX-512, bf16/fp16 dot products, AMX)."""
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_bf16", "amx_tile", "bf16")
    try:
        flags = next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo")
                      if line.startswith(("flags", "Features"))), [])
    except OSError:
        flags = []
    return " ".join(f for f in wanted if f in flags) or "-"


# --- the measurement --------------------------------------------------------------------------------------
def run_round(runner: Runner, steps: int, device: str = "cpu") -> None:
    """``steps`` timed steps as a training run takes them (nothing between them: no trimming of freed memory,
    which would make the next step fault its buffers back in).

    On CUDA the round is timed on the wall clock between two ``torch.cuda.synchronize()``: a step returns once
    its kernels are queued, so its own timer would bill a system only for its launches and hand its queued work
    to whichever round runs next. On the CPU every step is synchronous: the steps' own times are summed."""
    seconds = data = 0.0
    if device == "cuda":
        torch.cuda.synchronize()
        start = time.perf_counter()
    for _ in range(steps):
        s, d, _ = runner.step()
        seconds, data = seconds + s, data + d
    if device == "cuda":
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    runner.round_tps.append(steps * runner.tokens_per_step / seconds)
    runner.step_seconds += seconds
    runner.data_seconds += data


def paired_ratios(ours: list[float], theirs: list[float]) -> list[float]:
    """Round-by-round throughput ratios. Round i of every system in a comparison runs back to back (A B C A B C
    …), so a drift of the host over minutes moves both sides of a pair alike and cancels in its ratio, where
    it would not in a ratio of the two medians."""
    return [a / b for a, b in zip(ours, theirs)]


def measure_memory(runner: Runner, device: str) -> None:
    """One more, untimed step under ``step_memory`` (freed memory trimmed first, then the high-water mark)."""
    with step_memory(runner.memory, device):
        runner.step()


def profile_step(runner: Runner, steps: int = 3) -> None:
    from torch.profiler import ProfilerActivity, profile

    for _ in range(2):
        runner.step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            runner.step()
    print(f"profile: {runner.system} {runner.key}, {steps} steps")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CPU shapes, fp32+bf16, eager, 3 rounds x 3 steps")
    parser.add_argument("--shapes", nargs="+", default=None, choices=list(SHAPES))
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=list(DTYPES))
    parser.add_argument("--compile", nargs="+", default=None, choices=["eager", "fused", "compiled"],
                        help="fused: syllabus with fused_kernels (RMSNorm, SwiGLU compiled), the reference eager")
    parser.add_argument("--systems", nargs="+", default=["syllabus", "hf-llama", "nanogpt"],
                        choices=["syllabus", "hf-llama", "nanogpt"])
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="steps per round")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured steps first (compile happens here)")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "syllabus-bench"))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table per configuration")
    args = parser.parse_args()
    shapes = args.shapes or ["cpu-v96", "cpu-v8k"]
    modes = args.compile or (["eager"] if args.quick else ["eager", "compiled"])
    rounds = args.rounds or (3 if args.quick or all(s.startswith("small") for s in shapes) else 5)
    steps = args.steps or (3 if args.quick else 4)
    if any(s.startswith("small") for s in shapes) and args.steps is None:
        steps = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    shards, tokenizer = prepared_data(Path(args.cache))
    out_dir = Path(tempfile.mkdtemp())

    def measure_peaks():  # every precision, so "MFU best" divides by the fastest one on this machine
        return {name: machine_peak_flops(DTYPES[name], device, seconds=0.5)[0] for name in DTYPES}

    peaks = measure_peaks()
    spec = device_spec_peaks(device)  # (label, FLOP/s per precision) of a GPU in the spec table, else None
    machine = (torch.cuda.get_device_name() if device == "cuda" else cpu_model()) + f"; flags {cpu_flags()}"
    print(f"{machine}; {os.cpu_count()} cores, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"in-run matmul peak " + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in peaks.items()), flush=True)

    runners: list[Runner] = []
    for shape in shapes:
        for dtype in args.dtypes:
            for mode in modes:
                group = []
                for system in args.systems:
                    if system == "syllabus":
                        r = syllabus_runner(shape, dtype, mode, shards, tokenizer, out_dir)
                    elif system == "nanogpt":
                        r = nanogpt_runner(shape, dtype, mode == "compiled", shards, tokenizer)
                    else:
                        r = reference_runner(shape, dtype, mode == "compiled", shards, tokenizer)
                    r.group = mode
                    t = time.perf_counter()
                    for _ in range(args.warmup):
                        r.step()
                    print(f"  warm-up {system} {r.key}: {time.perf_counter() - t:.1f}s", flush=True)
                    if args.profile:
                        profile_step(r)
                    group.append(r)
                for _ in range(rounds):  # A B A B ...
                    for r in group:
                        run_round(r, steps, device)
                for r in group:
                    measure_memory(r, device)
                    r.memory["state"] = state_bytes(r.model, r.optimizer)
                    r.memory["estimate"] = memory_estimate(
                        SHAPES[shape][0], SHAPES[shape][1], SHAPES[shape][2], dtype,
                        sum(p.numel() for p in r.model.parameters()))
                    r.model, r.step = None, None  # free before the next configuration
                    del r.optimizer.state
                runners.extend(group)
                import gc
                gc.collect()
                torch._dynamo.reset()

    after = measure_peaks()  # a peak can only be under-read (a busy moment): keep the higher reading
    peaks = {k: max(v, after[k]) for k, v in peaks.items()}
    best = max(peaks.values())
    print("in-run matmul peak (best of before/after): " + ", ".join(f"{k} {v / 1e9:.0f}" for k, v in peaks.items())
          + " GFLOP/s")
    rows, ratios = [], {}
    print(f"\n{'system':9s} {'shape':8s} {'dtype':5s} {'mode':8s} {'tok/s':>7s} {'rounds':>13s} {'MFU':>6s} "
          f"{'MFU best':>8s} {'peak MB':>8s} {'est MB':>7s} {'data wait':>9s} {'x hf':>6s} {'x nano':>6s}")
    round_tps = {}
    for r in runners:
        tps = statistics.median(r.round_tps)
        peak_mb = (r.memory["state"] + r.memory.get("transient", 0)) / 2**20
        row = {"system": r.system, "shape": r.shape, "dtype": r.dtype,
               "compile": r.mode, "tokens_per_sec": round(tps, 1),
               "rounds_min_max": [round(min(r.round_tps), 1), round(max(r.round_tps), 1)],
               "mfu": round(mfu(r.flops_per_token, tps, peaks[r.dtype]), 4),
               "mfu_best": round(mfu(r.flops_per_token, tps, best), 4), "peak_mem_mb": round(peak_mb, 1),
               "mfu_spec": round(mfu(r.flops_per_token, tps, spec[1].get(r.dtype, 0.0)), 4) if spec else None,
               "estimate_mem_mb": round(r.memory["estimate"] / 2**20, 1),
               "data_wait": round(r.data_seconds / max(r.step_seconds, 1e-9), 4)}
        rows.append(row)
        round_tps.setdefault(r.key, {})[r.system] = r.round_tps
    ranges = {}
    for r, row in zip(runners, rows):
        group = round_tps[r.key]
        shown = {}
        for other in ("hf-llama", "nanogpt"):
            if r.system == "syllabus" and other in group:
                pairs = paired_ratios(group["syllabus"], group[other])
                shown[other] = statistics.median(pairs)
                ratios[f"{r.key}/{other}"] = round(shown[other], 3)
                ranges[f"{r.key}/{other}"] = [round(min(pairs), 3), round(max(pairs), 3)]
        lo, hi = row["rounds_min_max"]
        print(f"{row['system']:9s} {row['shape']:8s} {row['dtype']:5s} {row['compile']:8s} "
              f"{row['tokens_per_sec']:7,.0f} {f'{lo:,.0f}-{hi:,.0f}':>13s} {row['mfu']:6.1%} {row['mfu_best']:8.1%} "
              f"{row['peak_mem_mb']:8.0f} {row['estimate_mem_mb']:7.0f} {row['data_wait']:9.2%} "
              + " ".join(f"{(f'{shown[o]:.2f}x' if o in shown else ''):>6s}" for o in ("hf-llama", "nanogpt")))
    if ranges:
        print("\nx hf, x nano: median over rounds of syllabus's round / the reference's round run right after it; "
              "per-round range: " + ", ".join(f"{k} {lo:.2f}-{hi:.2f}" for k, (lo, hi) in ranges.items()))
    print(json.dumps({"machine": machine, "cores": os.cpu_count(), "threads": torch.get_num_threads(),
                      "torch": torch.__version__, "peak_gflops": {k: round(v / 1e9, 1) for k, v in peaks.items()},
                      "spec_peak": {"device": spec[0], **{k: round(v / 1e9) for k, v in spec[1].items()}}
                      if spec else None,
                      "rows": rows, "ratios": ratios, "ratio_ranges": ranges}))


if __name__ == "__main__":
    main()
