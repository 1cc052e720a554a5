"""The plan as a table before it runs, and a run folder's progress (``syllabus status``)."""

from __future__ import annotations

import json
from pathlib import Path

from syllabus.config.plan import PlanConfig
from syllabus.data.sources import held_out_rule
from syllabus.plan.stages import StagePlan

ASSUMED_MFU = 0.4  # for the time estimate: a fraction of this machine's measured matmul peak


def describe_plan(plan: PlanConfig, stages: list[StagePlan], epoch_tokens: dict[str, int]) -> str:
    """Per stage: sources and token shares, budget in steps and tokens (and epochs per source), LR,
    curriculum phases and an estimated time on this machine."""
    seconds_per_token = _seconds_per_token(plan)
    lines = [f"plan '{plan.name}': {len(stages)} stages, model {plan.model.size}", ""]
    header = f"{'#':<3}{'stage':<14}{'steps':>7}{'tokens':>11}  {'lr peak→min':<18}{'est.':>8}  mixture (share of tokens)"
    lines += [header, "-" * len(header)]
    for stage in stages:
        config, phases, steps = stage.config, stage.phases, stage.max_steps
        tokens = sum(p.tokens_per_step * (min([q.at for q in phases if q.at > p.at] + [steps]) - p.at)
                     for p in phases)
        mix = []
        for source, share in stage.weights.items():
            part = f"{source} {share:.0%}"
            if source in epoch_tokens and epoch_tokens[source]:
                part += f" ({share * tokens / epoch_tokens[source]:.2g} ep)"
            mix.append(part)
        lr = f"{config.learning_rate:.1e}→{config.min_learning_rate:.1e}"
        estimate = _duration(tokens * seconds_per_token) if seconds_per_token else "?"
        lines.append(f"{stage.index + 1:<3}{stage.name:<14}{steps:>7}{tokens:>11,}  {lr:<18}{estimate:>8}  "
                     f"{', '.join(mix)}")
        for p in phases:
            lines.append(f"{'':<17}from step {p.at}: seq_len {p.seq_len}, micro batch {p.micro_batch_size} × "
                         f"{p.grad_accum_steps} accum = {p.tokens_per_step:,} tokens/step, lr × {p.lr_scale:g}")
        if stage.new_tokens:
            lines.append(f"{'':<17}adds special tokens {' '.join(stage.new_tokens)}")
    lines += ["", "sources (read as; held-out rows from):"]
    for name in plan.sources:
        spec = plan.source_spec(name)
        options = ", ".join(f"{k}: {v.encode('unicode_escape').decode() if isinstance(v, str) else v}"
                            for k, v in spec.model_dump(exclude={"path"}, exclude_defaults=True).items())
        lines.append(f"  {name:<12} {spec.path} ({options or 'text'}); held out: {held_out_rule(spec.path)}")
    return "\n".join(lines)


def _seconds_per_token(plan: PlanConfig) -> float | None:
    """Training FLOPs per token over an assumed share of the measured matmul peak (a rough guide)."""
    import torch

    from syllabus.model import Transformer
    from syllabus.train.throughput import matmul_peak_flops

    config = plan.training_config(0)
    with torch.device("meta"):
        model = Transformer(config.model_shape(vocab_size=plan.tokenizer.vocab_size))
    dtype = torch.bfloat16 if config.mixed_precision == "bf16" else torch.float32
    if torch.cuda.is_available():
        return None
    return model.flops_per_token(config.max_seq_length) / (ASSUMED_MFU * matmul_peak_flops(dtype, "cpu"))


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f}h" if seconds >= 3600 else f"{seconds / 60:.1f}m" if seconds >= 60 else f"{seconds:.0f}s"


def run_status(run_dir: str | Path) -> str:
    """Where a run stands: stages done, the current stage's last logged step and loss."""
    run_dir = Path(run_dir)
    state_file = run_dir / "run_state.json"
    if not (run_dir / "plan.yaml").exists():
        return f"{run_dir}: not a plan run folder (no plan.yaml)"
    import yaml

    plan = yaml.safe_load((run_dir / "plan.yaml").read_text())
    state = json.loads(state_file.read_text()) if state_file.exists() else {"completed": [], "started": {}}
    last: dict[str, dict] = {}
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        for line in open(metrics):
            record = json.loads(line)
            if "loss" in record and "stage" in record:
                last[record["stage"]] = record
    lines = [f"plan '{plan['name']}' in {run_dir}"]
    for i, stage in enumerate(plan["stages"]):
        name = stage["name"]
        status = "done" if name in state["completed"] else "in progress" if name in state["started"] else "not started"
        detail = ""
        if name in last:
            detail = f"  step {last[name]['step']}, loss {last[name]['loss']:.4f}, {last[name]['tokens_seen']:,} tokens"
        lines.append(f"  {i + 1}. {name:<14} {status}{detail}")
    if (run_dir / "report.md").exists():
        lines.append(f"report: {run_dir / 'report.md'}")
    return "\n".join(lines)
