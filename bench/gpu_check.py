"""The GPU check's Python half (``bench/gpu_check.sh`` drives it): what to install, whether everything imports,
and the checks themselves, each a short real run whose figures go into one JSON line.

    python bench/gpu_check.py requirements      # the package's own requirements, one a line (from pyproject.toml)
    python bench/gpu_check.py missing           # those this Python lacks or has too old (what to install)
    python bench/gpu_check.py imports           # import every syllabus module and the benchmarks; exit 1 on a failure
    python bench/gpu_check.py run [--dry-run]   # the checks; --dry-run: CPU, tiny sizes (exercises this file here)

Checks (``run``), each in its own ``try`` so one failure is reported beside the others' figures:

- ``throughput``: ``bench/train_throughput.py`` on the ``small`` preset at seq 2048 in bf16, eager and compiled,
  synchronised rounds, beside HF Llama and the nanoGPT-style reference: tok/s, MFU against the spec-sheet and the
  measured peak, peak memory;
- ``fsdp``: a two-stage tiny plan under ``torchrun`` (1 rank, NCCL), FSDP2 in bf16 with compile, activation
  checkpointing and async saves, stage-end generation task ``arithmetic``: run straight, then SIGKILLed in stage 2
  and resumed: the losses and task scores must match exactly;
- ``fp16``: an fp16 run with an injected gradient overflow (skipped, counted, scale halved) saved and resumed: the
  loss scale and losses after the resume match the straight run;
- ``plan_memory``: the two-stage tiny plan in one process on the GPU; memory allocated after stage 1 (as left, and
  after a ``gc.collect()``);
- ``rng``: a resume from a checkpoint whose ``rng_cuda`` holds two devices' states (what 2-GPU runs saved before);
- ``sync_debug``: N steps between two log steps under ``torch.cuda.set_sync_debug_mode("error")``.

Only the standard library is imported at the top: ``missing`` and ``imports`` must run before anything is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import pkgutil
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SRC = ROOT / "src"
# On the device image already (torch with CUDA, and what the image brings for it): never carried, never installed.
ON_IMAGE = ("torch", "transformers", "tokenizers", "safetensors")
EXTRAS = ("gpu-check",)  # pyproject's optional dependencies the check needs besides the package's own
TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 192}


# --- what to install ------------------------------------------------------------------------------------------
def requirements(pyproject: Path = ROOT / "pyproject.toml", extras=EXTRAS, skip=ON_IMAGE) -> list[str]:
    """``[project].dependencies`` plus the ``extras`` groups, without the packages named in ``skip``."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: pip vendors the same parser
        from pip._vendor import tomli as tomllib
    project = tomllib.loads(pyproject.read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project.get("optional-dependencies", {}).get(extra, [])
    return [r for r in dict.fromkeys(reqs) if _requirement(r).name.lower() not in skip]


def _requirement(text: str):
    try:
        from packaging.requirements import Requirement
    except ModuleNotFoundError:
        from pip._vendor.packaging.requirements import Requirement
    return Requirement(text)


def missing(reqs: list[str]) -> list[str]:
    """The requirements this Python does not satisfy (absent, or a version outside the specifier)."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for text in reqs:
        req = _requirement(text)
        try:
            have = version(req.name)
        except PackageNotFoundError:
            out.append(text)
            continue
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            out.append(text)
    return out


def import_failures() -> list[str]:
    """``module: error`` for every syllabus module and benchmark module that does not import."""
    sys.path[:0] = [str(SRC), str(BENCH)]
    import syllabus

    names = [m.name for m in pkgutil.walk_packages(syllabus.__path__, "syllabus.") if not m.name.endswith("__main__")]
    names += ["train_throughput", "nanogpt_reference", "step_memory", "transformers", "pytest"]
    failures = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - every failure is reported, none stops the others
            failures.append(f"{name}: {type(err).__name__}: {err}")
    return failures


# --- shared pieces ----------------------------------------------------------------------------------------------
def corpus(root: Path) -> tuple[dict[str, str], Path]:
    """Two small sources of real text (Python standard-library modules) and a 1,024-token BPE trained on them."""
    from syllabus.data import save_tokenizer, train_tokenizer

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    sources, texts = {}, []
    for name, packages in (("code", ["json", "email", "http"]), ("more", ["logging", "importlib", "urllib"])):
        docs = [p.read_text(encoding="utf-8", errors="replace") for pkg in packages
                for p in sorted((stdlib / pkg).glob("*.py"))]
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for split, part in (("train", [d for i, d in enumerate(docs) if i % 10]), ("val", docs[::10])):
            (folder / f"{split}.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in part))
        sources[name] = str(folder)
        texts += docs
    tokenizer = save_tokenizer(train_tokenizer(texts, 1024), root / "tokenizer.json")
    return sources, tokenizer


def plan_file(root: Path, sources: dict, tokenizer: Path, device: str, **defaults) -> Path:
    import yaml

    plan = {"name": "gpu-check", "sources": sources, "model": {"size": "tiny", "overrides": TINY},
            "tokenizer": {"path": str(tokenizer)},
            "defaults": {"micro_batch_size": 4, "max_seq_length": 64, "log_interval": 1, "save_interval": 2,
                         "device": device, "dist_timeout_seconds": 120, **defaults},
            "stages": [{"name": "first", "data": {"code": 1.0}, "budget": {"steps": 3},
                        "lr": {"peak": 2e-3, "warmup": 1}},
                       {"name": "second", "data": {"more": 0.8}, "replay": {"fraction": 0.2, "from": ["first"]},
                        "budget": {"steps": 6}, "lr": {"peak": 1e-3, "warmup": 1}}],
            "evaluation": {"every": 100, "tasks": ["arithmetic"], "limit": 4, "batches": 1, "perplexity": ["code"]}}
    path = root / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in open(run_dir / "metrics.jsonl")]


def losses(run_dir: Path) -> dict:
    return {(r.get("stage"), r["step"]): r["loss"] for r in rows(run_dir) if "loss" in r}


def stage_scores(run_dir: Path) -> dict:
    return {r["stage"]: {k: v for k, v in r.items() if k.startswith("arithmetic/") and not k.endswith("/seconds")}
            for r in rows(run_dir) if r.get("event") == "stage_end"}


def env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1"}


def torchrun(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1", *args]


# --- the checks ---------------------------------------------------------------------------------------------------
def check_throughput(work: Path, dry: bool, rounds: int, steps: int) -> dict:
    args = (["--shapes", "cpu-v96", "--dtypes", "fp32", "--compile", "eager", "--rounds", "1", "--steps", "1",
             "--warmup", "1"] if dry else
            ["--shapes", "small-2k", "--dtypes", "bf16", "--compile", "eager", "compiled", "--rounds", str(rounds),
             "--steps", str(steps), "--warmup", "2"])
    cache = BENCH / "gpu-carry" / "data"  # the shards `gpu_check.sh pack` prepared (the demo corpus needs packages)
    cache = cache if cache.is_dir() else Path(tempfile.gettempdir()) / "syllabus-bench"  # the benchmark's own
    done = subprocess.run([sys.executable, str(BENCH / "train_throughput.py"), *args, "--cache", str(cache)],
                          capture_output=True, text=True, env=env(), timeout=300)
    if done.returncode:
        return {"ok": False, "error": done.stderr[-1500:]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    keep = ("system", "compile", "tokens_per_sec", "mfu", "mfu_spec", "mfu_best", "peak_mem_mb")
    return {"ok": True, "peak_gflops": result["peak_gflops"], "spec_peak": result.get("spec_peak"),
            "rows": [{k: r.get(k) for k in keep} for r in result["rows"]], "ratios": result["ratios"]}


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (read from /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            if proc.name.isdigit() and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(proc.name))
    return found


def in_stage_2(run_dir: Path, step: int) -> bool:
    """Whether ``run_dir`` has logged the loss of ``step`` in stage 2. At step 5 the async save of step 2 is on
    disk (step 4's save waited for it), so the resume starts inside the stage, from step 2."""
    try:
        return any(f'"step": {step}, "loss"' in line and '"stage": "second"' in line
                   for line in open(run_dir / "metrics.jsonl"))
    except FileNotFoundError:
        return False


def check_fsdp(work: Path, sources, tokenizer, device: str, dry: bool) -> dict:
    """Straight, then killed in stage 2 (at its step 5) and resumed: exact, under FSDP2 on one NCCL rank."""
    from syllabus.train import faults

    folder = work / "fsdp"
    folder.mkdir()
    plan = plan_file(folder, sources, tokenizer, device, strategy="fsdp", mixed_precision="bf16",
                     compile=not dry, gradient_checkpointing=True, async_save=True)
    straight, killed = folder / "straight", folder / "killed"
    argv = lambda out: torchrun(["-m", "syllabus", "run", str(plan), "--out", str(out)])  # noqa: E731
    done = subprocess.run(argv(straight), capture_output=True, text=True, env=env(), timeout=300)
    if done.returncode:
        return {"ok": False, "error": done.stderr[-1500:]}
    # the write of stage 2's step-4 checkpoint (async) pauses half-way: the kill lands inside the stage however
    # fast the GPU runs the rest of it
    slow = {faults.SLOW_SAVE_STEPS: "4", faults.SLOW_SAVE_SECONDS: "20"}
    proc = subprocess.Popen(argv(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**env(), **slow}, start_new_session=True)
    deadline = time.time() + 240
    while not in_stage_2(killed, 5) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    for pid in children(proc.pid):  # the worker first, so the launcher reaps it (no zombie holding the run lock)
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)  # torchrun exits once its worker died
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # the session this check started
    proc.wait()
    killed_early = "second" not in stage_scores(killed)
    again = subprocess.run(argv(killed), capture_output=True, text=True, env=env(), timeout=300)
    if again.returncode:
        said = [line for line in again.stderr.splitlines() if line.startswith("syllabus run:")]
        return {"ok": False, "error": "resume: " + (said[-1] if said else again.stderr[-1500:])}
    sharded = (straight / "stages" / "1-first" / "checkpoints" / "final" / "sharded" / ".metadata").is_file()
    scores = stage_scores(straight)
    return {"ok": True, "sharded_checkpoints": sharded, "killed_in_stage_2": killed_early,
            "resumed": "resumed from" in again.stdout + again.stderr,
            "resumed_exact": losses(killed) == losses(straight) and stage_scores(killed) == scores,
            "arithmetic": {stage: s.get("arithmetic/acc") for stage, s in scores.items()}}


def pretrain_config(out: Path, sources, tokenizer, device: str, **fields):
    from syllabus import PreTrainingConfig

    base = dict(data_dir=str(Path(sources["code"])), tokenizer=str(tokenizer), out_dir=str(out), device=device,
                max_steps=8, max_seq_length=64, micro_batch_size=4, warmup_steps=1, log_interval=1,
                eval_interval=1000, save_interval=4, model=TINY)
    return PreTrainingConfig(**{**base, **fields})


def check_fp16(work: Path, sources, tokenizer, device: str) -> dict:
    from syllabus import PreTrainer
    from syllabus.train import faults

    os.environ[faults.INF_GRAD_STEPS] = "3"
    try:
        straight, resumed = work / "fp16", work / "fp16-resumed"
        PreTrainer(pretrain_config(straight, sources, tokenizer, device, mixed_precision="fp16")).train()
        shutil.copytree(straight / "checkpoints" / "step_4", resumed / "checkpoints" / "step_4")
        PreTrainer(pretrain_config(resumed, sources, tokenizer, device, mixed_precision="fp16", resume="auto")).train()
    finally:
        del os.environ[faults.INF_GRAD_STEPS]
    a = {r["step"]: r for r in rows(straight) if "loss" in r}
    b = {r["step"]: r for r in rows(resumed) if "loss" in r}
    return {"ok": True, "nonfinite_skips": a[8]["nonfinite_skips"], "loss_scale": [a[s]["loss_scale"] for s in a],
            "resumed_exact": all(a[s]["loss"] == b[s]["loss"] and a[s]["loss_scale"] == b[s]["loss_scale"]
                                 for s in range(5, 9))}


def check_plan_memory(work: Path, sources, tokenizer, device: str) -> dict:
    """The plan in this process, single device; memory allocated once stage 1 has returned."""
    import torch

    from syllabus.config.load import load_config
    from syllabus.config.plan import PlanConfig
    from syllabus.plan import runner

    folder = work / "plan"
    folder.mkdir()
    plan = load_config(PlanConfig, plan_file(folder, sources, tokenizer, device, mixed_precision="bf16"))
    cuda = device == "cuda"
    after: list[dict] = []
    real = runner._run_stage

    def measured(run, stage, previous, n_stages):
        outcome = real(run, stage, previous, n_stages)
        left = torch.cuda.memory_allocated() if cuda else 0
        gc.collect()
        after.append({"stage": stage.name, "allocated_mb": round(left / 2**20, 1),
                      "allocated_after_gc_mb": round((torch.cuda.memory_allocated() if cuda else 0) / 2**20, 1)})
        return outcome

    runner._run_stage = measured
    try:
        summary = runner.run_plan(plan, folder / "run")
    finally:
        runner._run_stage = real
    return {"ok": summary["status"] == "finished", "after_stage": after,
            "max_allocated_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None}


def check_rng(work: Path, sources, tokenizer) -> dict:
    """Resume a checkpoint whose ``rng_cuda`` is a list of two devices' states, on however many GPUs are visible."""
    import torch

    from syllabus import PreTrainer
    from syllabus.train import trainer_checkpoints

    straight, resumed = work / "rng", work / "rng-resumed"
    PreTrainer(pretrain_config(straight, sources, tokenizer, "cuda", mixed_precision="bf16")).train()
    shutil.copytree(straight / "checkpoints" / "step_4", resumed / "checkpoints" / "step_4")
    real = trainer_checkpoints.ckpt.load_trainer_state
    other = torch.cuda.get_rng_state().clone()
    other[:8] ^= 0xFF  # a second device's generator: a different state

    def saved_with_two(path):
        state = real(path)
        return {**state, "rng_cuda": [state["rng_cuda"], other]}

    trainer_checkpoints.ckpt.load_trainer_state = saved_with_two
    try:
        PreTrainer(pretrain_config(resumed, sources, tokenizer, "cuda", mixed_precision="bf16", resume="auto")).train()
    finally:
        trainer_checkpoints.ckpt.load_trainer_state = real
    a, b = losses(straight), losses(resumed)
    return {"ok": True, "visible_gpus": torch.cuda.device_count(),
            "resumed_exact": all(a[k] == b[k] for k in b if k[1] > 4)}


def check_sync_debug(work: Path, sources, tokenizer, steps: int = 6) -> dict:
    """Steps 3 .. 2 + ``steps`` (no log, eval or save among them) under ``set_sync_debug_mode("error")``."""
    import torch

    from syllabus import PreTrainer
    from syllabus.train.trainer import Trainer

    real_step, real_log = Trainer._step_or_save, Trainer._log_step

    def step(self, phase, window):
        if self.step == 2:
            torch.cuda.set_sync_debug_mode("error")
        return real_step(self, phase, window)

    def log_step(self, *args):
        torch.cuda.set_sync_debug_mode(0)
        return real_log(self, *args)

    Trainer._step_or_save, Trainer._log_step = step, log_step
    try:
        PreTrainer(pretrain_config(work / "sync", sources, tokenizer, "cuda", mixed_precision="bf16",
                                   max_steps=steps + 4, log_interval=steps + 2, save_interval=1000)).train()
        return {"ok": True, "steps": steps}
    except RuntimeError as err:
        return {"ok": False, "steps": steps, "error": str(err).splitlines()[0][:300]}
    finally:
        torch.cuda.set_sync_debug_mode(0)
        Trainer._step_or_save, Trainer._log_step = real_step, real_log


def check_masked_gqa(T: int = 2048) -> dict:
    """Document-masked attention with grouped-query heads (32 query heads, 8 kv heads, d 128, bf16), forward and
    backward with SDPA's math kernel disabled: ``attend`` (k/v expanded on CUDA, ``sdpa_heads``) must run, and
    whether SDPA itself takes ``enable_gqa`` with a mask without math is recorded beside it, with peak memory."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from syllabus.model.attention import attend, attention_mask

    q = torch.randn(2, 32, T, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(2, 8, T, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn(2, 8, T, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    doc_ids = (torch.arange(T, device="cuda") // (T // 4)).expand(2, T)
    mask = attention_mask(T, 0, doc_ids, "cuda")
    out: dict = {"ok": True}
    fast = [SDPBackend.EFFICIENT_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION]
    for name, fn in (("attend", lambda: attend(q, k, v, mask, "sdpa")),
                     ("sdpa_enable_gqa", lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                                                                 enable_gqa=True))):
        torch.cuda.reset_peak_memory_stats()
        try:
            with sdpa_kernel(fast):
                fn().sum().backward()
            torch.cuda.synchronize()
            out[name] = {"ran_without_math": True, "max_allocated_mb": round(torch.cuda.max_memory_allocated() / 2**20)}
        except RuntimeError as err:
            out[name] = {"ran_without_math": False, "error": str(err).splitlines()[0][:200]}
    out["ok"] = out["attend"]["ran_without_math"]
    return out


def run_checks(dry: bool, rounds: int, steps: int) -> dict:
    sys.path[:0] = [str(SRC), str(BENCH)]
    import torch

    device = "cpu" if dry else "cuda"
    out: dict = {"dry_run": dry, "torch": torch.__version__,
                 "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                 "date": time.strftime("%Y-%m-%d"), "not_installed": missing(requirements())}
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["SYLLABUS_CACHE_DIR"] = str(work / "cache")  # this machine's peaks, measured afresh
        sources, tokenizer = corpus(work / "data")
        checks = {"throughput": lambda: check_throughput(work, dry, rounds, steps),
                  "fsdp": lambda: check_fsdp(work, sources, tokenizer, device, dry),
                  "fp16": lambda: check_fp16(work, sources, tokenizer, device),
                  "plan_memory": lambda: check_plan_memory(work, sources, tokenizer, device),
                  "rng": lambda: check_rng(work, sources, tokenizer),
                  "sync_debug": lambda: check_sync_debug(work, sources, tokenizer),
                  "masked_gqa": check_masked_gqa}
        for name, check in checks.items():
            if dry and name in ("rng", "sync_debug", "masked_gqa"):
                out[name] = {"ok": None, "skipped": "needs CUDA"}
                continue
            started = time.time()
            try:
                out[name] = check()
            except Exception as err:  # noqa: BLE001 - reported beside the other checks' figures
                out[name] = {"ok": False, "error": f"{type(err).__name__}: {err}"[:1500]}
            out[name]["seconds"] = round(time.time() - started, 1)
            print(f"{name}: {json.dumps(out[name])[:400]}", file=sys.stderr, flush=True)
            with contextlib.suppress(Exception):
                if torch.cuda.is_available():
                    out[name]["max_allocated_mb"] = out[name].get("max_allocated_mb") or round(
                        torch.cuda.max_memory_allocated() / 2**20, 1)
                    torch.cuda.reset_peak_memory_stats()
    out["seconds"] = round(time.time() - t0, 1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["requirements", "missing", "imports", "run"])
    parser.add_argument("--dry-run", action="store_true", help="run: on the CPU, tiny sizes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    if args.what == "requirements":
        print("\n".join(requirements()))
    elif args.what == "missing":
        print("\n".join(missing(requirements())))
    elif args.what == "imports":
        failures = import_failures()
        print("\n".join(failures) or "every import ok")
        return 1 if failures else 0
    else:
        print(json.dumps(run_checks(args.dry_run, args.rounds, args.steps)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
