"""The plan as a table before it runs: stages, mixtures, budgets, LR, curriculum and an estimated time."""

from __future__ import annotations

from syllabus.config.plan import PlanConfig
from syllabus.data.sources import held_out_rule
from syllabus.plan.stages import StagePlan
from syllabus.plan.status import duration

ASSUMED_MFU = 0.4  # for the time estimate: a fraction of this machine's measured matmul peak


def describe_plan(plan: PlanConfig, stages: list[StagePlan], epoch_tokens: dict[str, int],
                  held_out: dict | None = None) -> str:
    """Per stage: sources and token shares, budget in steps and tokens (and epochs per source), LR,
    curriculum phases, an estimated time on this machine, each source's held-out documents (``held_out``:
    name -> :class:`~syllabus.data.held_out.HeldOut`, else the rule alone), and a ``warning:`` line for a setting that is valid
    but almost surely not meant (a warmup not shorter than the stage, which the plan cuts to the stage's length).
    The runner prints it once, on the main rank, before training."""
    precision = _precision(stages[0])
    seconds_per_token = _seconds_per_token(plan, precision)
    lines = [f"plan '{plan.name}': {len(stages)} stages, model {plan.model.size}",
             f"precision: {precision.describe()}", ""]
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
        estimate = duration(tokens * seconds_per_token) if seconds_per_token else "?"
        lines.append(f"{stage.index + 1:<3}{stage.name:<14}{steps:>7}{tokens:>11,}  {lr:<18}{estimate:>8}  "
                     f"{', '.join(mix)}")
        for p in phases:
            lines.append(f"{'':<17}from step {p.at}: seq_len {p.seq_len}, micro batch {p.micro_batch_size} × "
                         f"{p.grad_accum_steps} accum = {p.tokens_per_step:,} tokens/step, lr × {p.lr_scale:g}")
        if config.mixed_precision != stages[0].config.mixed_precision:
            lines.append(f"{'':<17}precision {_precision(stage).describe()}")
        if stage.new_tokens:
            lines.append(f"{'':<17}adds special tokens {' '.join(stage.new_tokens)}")
        warmup = plan.stages[stage.index].lr.warmup
        if warmup >= steps:  # the plan cuts it to steps - 1: the LR would peak only at the stage's last step
            lines.append(f"{'':<17}warning: stages.{stage.index}.lr.warmup ({warmup}) >= the stage's max_steps "
                         f"({steps}): cut to {config.warmup_steps}, the LR peaks only at the end; lower lr.warmup")
        lines += [f"{'':<17}warning: {warning}" for warning in config.schedule_warnings()]
    lines += ["", "sources (read as; held-out rows from):"]
    for name in plan.sources:
        spec = plan.source_spec(name)
        options = ", ".join(f"{k}: {v.encode('unicode_escape').decode() if isinstance(v, str) else v}"
                            for k, v in spec.model_dump(exclude={"path"}, exclude_defaults=True).items())
        held = held_out[name].describe() if held_out and name in held_out else held_out_rule(spec.path)
        lines.append(f"  {name:<12} {spec.path} ({options or 'text'}); held out: {held}")
    return "\n".join(lines)


def _precision(stage: StagePlan):
    """The stage's ``mixed_precision`` as the trainer will resolve it on this machine (same cached peaks)."""
    import torch

    from syllabus.train.precision import resolve_precision

    config = stage.config
    device = "cuda" if config.device != "cpu" and torch.cuda.is_available() else "cpu"
    return resolve_precision(config.mixed_precision, device, sharded=config.strategy == "fsdp")


def _seconds_per_token(plan: PlanConfig, precision) -> float | None:
    """Training FLOPs per token over an assumed share of the chosen precision's matmul peak (a rough guide)."""
    import torch

    from syllabus.model import Transformer

    config = plan.training_config(0)  # the first stage's shape; the model is the same in every stage
    if config.init_from is not None:  # a local folder by now (plan/starting_point.py)
        from syllabus.hf.folder import read_hf_config

        shape = read_hf_config(config.init_from)
    else:
        shape = config.model_shape(vocab_size=plan.tokenizer.vocab_size)
    with torch.device("meta"):
        model = Transformer(shape)
    if torch.cuda.is_available() or precision.chosen_peak <= 0:
        return None
    return model.flops_per_token(config.max_seq_length) / (ASSUMED_MFU * precision.chosen_peak)
