"""``run_search``: sample a stage's mixtures, train one ordinary proxy run per mixture, fit, recommend.

The search folder holds ``search.json`` (the settings and mixtures, written once; a rerun with other settings
is refused), ``plans/<proxy>.yaml`` (each proxy's plan), ``proxies/<proxy>/`` (each an ordinary run folder:
``syllabus status``/``compare`` read them), ``tokenizer.json`` (proxy mode: one tokenizer for every proxy),
and the outputs (``results.json``, ``search.md``, ``plots/``). Running the same search again skips proxies
whose stage has finished and resumes the one in flight from its newest checkpoint (the runner's own resume).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from syllabus.config.errors import ConfigError
from syllabus.config.plan import PlanConfig
from syllabus.mix.proxies import (Objective, default_domains, launch, proxy_finished, proxy_plan, seed_branch_folder,
                                  stage_components, write_plan_file)
from syllabus.mix.space import MixSpace, Mixture, sample_mixtures
from syllabus.train.stops import RunHalted

log = logging.getLogger("syllabus")


@dataclass(frozen=True)
class SearchSettings:
    """What a search does. ``k``: proxies in the fit (the plan's mixture and the uniform one among them);
    ``holdout``: further sampled proxies kept out of the fit, to test its predictions; ``proxy_steps``: each
    proxy's budget (default: 1/8 of the stage's); ``edits``: ``KEY=VALUE`` changes to every proxy's plan
    (e.g. ``model.overrides.hidden_size=64``); ``bounds``: component -> (min, max) share; ``max_epochs``:
    repetitions of a source the full stage may read; ``objective``: None (default domains), ``d=w,...``
    (domain weights) or ``<task>/<metric>``; ``parallel``: proxies at a time; ``threads``: intra-op threads
    per proxy; ``from_run``: branch mode's paused run folder."""

    stage: str
    k: int = 16
    holdout: int = 0
    seed: int = 0
    proxy_steps: int | None = None
    edits: list[str] = field(default_factory=list)
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    max_epochs: float | None = 4.0
    objective: str | None = None
    parallel: int = 1
    threads: int = 1
    from_run: str | None = None


@dataclass
class ProxyRow:
    """One proxy's outcome: its mixture, objective (NaN until finished), standard error, held-out loss per
    domain, the epochs of each source the full stage would read with this mixture, and why it is outside the
    bounds (the plan's own mixture may be)."""

    name: str
    kind: str
    weights: dict[str, float]
    objective: float = float("nan")
    stderr: float | None = None
    losses: dict[str, float] = field(default_factory=dict)
    epochs: dict[str, float] = field(default_factory=dict)
    outside: list[str] = field(default_factory=list)


def parse_objective(spec: str | None, plan: PlanConfig, index: int) -> Objective:
    """``None`` -> the default domains, weight 1 each; ``wiki=1,math=2`` -> those domains and weights;
    ``arithmetic/accuracy`` -> that task metric (the default domains are still scored). ``ConfigError`` names
    ``--objective`` and what is allowed."""
    domains = {d: 1.0 for d in default_domains(plan, index)}
    if not spec:
        return Objective(domains)
    if "=" not in spec:
        task = spec.split("/")[0]
        if "/" not in spec or task not in ("hellaswag", "arc", "arc_challenge", "mmlu", "gsm8k", "arithmetic"):
            raise ConfigError(f"--objective: '{spec}' is neither domain=weight,... nor <task>/<metric> "
                              f"(e.g. arithmetic/accuracy)")
        return Objective(domains, task=spec)
    weights = {}
    for item in spec.split(","):
        name, _, value = item.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--objective: '{item}' needs domain=weight with a number") from None
    bad = [d for d in weights if d not in plan.sources] + [d for d, w in weights.items() if not w >= 0]
    if bad or not sum(weights.values()) > 0:
        raise ConfigError(f"--objective: domains must be sources ({', '.join(plan.sources)}) with weights >= 0, "
                          f"not all 0 (got {spec})")
    return Objective(weights)


def stage_index(plan: PlanConfig, name: str) -> int:
    names = [s.name for s in plan.stages]
    if name not in names:
        raise ConfigError(f"--stage: '{name}' is not a stage ({', '.join(names)})")
    return names.index(name)


def resolve_space(plan: PlanConfig, index: int, settings: SearchSettings, out: Path) -> tuple[MixSpace, str | None,
                                                                                             int]:
    """The stage's mixture space (epochs counted with the run's tokenizer), the proxies' tokenizer file (proxy
    mode) and the stage's full budget in steps."""
    from syllabus.data import epoch_tokens, load_tokenizer
    from syllabus.plan.runner import plan_tokenizer
    from syllabus.plan.stages import resolve_stages
    from syllabus.train.distributed import DistContext

    if settings.from_run:
        run = Path(settings.from_run)
        path = plan.tokenizer.path or str(run / "tokenizer.json")
        if not Path(path).exists():
            raise ConfigError(f"--from-run: {run} is not a plan run folder with a tokenizer.json")
        tokenizer, tokenizer_file = load_tokenizer(path), None
    else:
        out.mkdir(parents=True, exist_ok=True)
        tokenizer = plan_tokenizer(plan, out, DistContext.single("cpu"))
        tokenizer_file = plan.tokenizer.path or str((out / "tokenizer.json").resolve())
    stage = plan.stages[index]
    epochs = {name: epoch_tokens(plan.sources[name], tokenizer) for name in stage.data}
    resolved = resolve_stages(plan, out, epochs)[index]
    stage_tokens = resolved.max_steps * resolved.phases[0].tokens_per_step
    per_share = {name: stage_tokens / max(1, tokens) for name, tokens in epochs.items()}
    space = MixSpace.build(stage_components(plan, index), settings.bounds, per_share, settings.max_epochs)
    return space, tokenizer_file, resolved.max_steps


def run_search(plan: PlanConfig, out: str | Path, settings: SearchSettings, *, echo=print) -> dict:
    """Run (or continue) the search in ``out``; returns the summary ``results.json`` holds (rows, fit,
    recommended mixture). Raises ``ConfigError`` for bad settings or a folder made with other settings,
    ``RunHalted`` when a proxy run fails (run again to resume it)."""
    from syllabus.mix.fit import fit_mixtures, spearman
    from syllabus.mix.output import write_outputs

    out = Path(out)
    index = stage_index(plan, settings.stage)
    if settings.from_run and index == 0:
        raise ConfigError(f"--from-run: stage '{settings.stage}' is the first; branch mode needs a stage before it")
    objective = parse_objective(settings.objective, plan, index)
    space, tokenizer_file, full_steps = resolve_space(plan, index, settings, out)
    steps = settings.proxy_steps or max(1, full_steps // 8)
    mixtures = sample_mixtures(space, settings.k, settings.seed)
    if settings.holdout:
        mixtures += sample_mixtures(space, settings.holdout, settings.seed + 1000, include_plan=False,
                                    kind="holdout", prefix="h")
    plans = {m.name: proxy_plan(plan, index, m.weights, steps=steps, objective=objective,
                                branch=bool(settings.from_run), tokenizer=tokenizer_file, edits=settings.edits,
                                name=f"{plan.name}-{settings.stage}-{m.name}") for m in mixtures}
    _check_or_write_settings(out, settings, mixtures, plans, steps, objective)
    for name, data in plans.items():
        write_plan_file(out / "plans" / f"{name}.yaml", data)
    if settings.from_run:
        for m in mixtures:
            seed_branch_folder(Path(settings.from_run), out / "proxies" / m.name, plan, index)
    run_proxies(out, [m.name for m in mixtures], settings.stage, settings.parallel, settings.threads, echo)
    rows = collect_rows(out, mixtures, settings.stage, objective, space)
    fitted = [r for r in rows if r.kind != "holdout"]
    try:
        fit = fit_mixtures(space, [r.weights for r in fitted], [r.objective for r in fitted], seed=settings.seed)
    except ValueError as err:  # too few proxies measured the objective (a task or domain missing from results)
        raise RunHalted(f"{err}; see the proxies' evals.jsonl under {out / 'proxies'}") from None
    held = [r for r in rows if r.kind == "holdout"]
    held_pred = [float(fit.predict([[r.weights[n] for n in space.names]])[0]) for r in held]
    summary = {"plan": plan.name, "stage": settings.stage, "mode": "branch" if settings.from_run else "proxy",
               "from_run": settings.from_run, "proxy_steps": steps, "full_steps": full_steps,
               "objective": objective.describe(), "components": list(space.names),
               "bounds": {n: [lo, hi, space.limit[n]] for n, lo, hi in zip(space.names, space.low, space.high)},
               "rows": [asdict(r) for r in rows],
               "fit": {"cv_rmse": fit.cv_rmse, "cv_spearman": fit.cv_spearman, "n": len(fitted),
                       "cv_predictions": [float(x) for x in fit.cv_predictions]},
               "holdout": {"names": [r.name for r in held], "predicted": held_pred,
                           "observed": [r.objective for r in held],
                           "spearman": spearman(held_pred, [r.objective for r in held])},
               "recommended": {"weights": fit.recommended, "predicted": fit.predicted, "uncertainty": fit.uncertainty,
                               "epochs": space.epochs(fit.recommended)}}
    write_outputs(out, summary, fit)
    return summary


def _check_or_write_settings(out: Path, settings: SearchSettings, mixtures: list[Mixture], plans: dict,
                             steps: int, objective: Objective) -> None:
    record = {"settings": {k: v for k, v in asdict(settings).items() if k not in ("parallel", "threads")},
              "proxy_steps": steps, "objective": asdict(objective), "mixtures": [asdict(m) for m in mixtures],
              "plans": plans}
    record = json.loads(json.dumps(record))
    path = out / "search.json"
    if path.exists():
        before = json.loads(path.read_text())
        if before != record:
            changed = sorted(k for k in record if before.get(k) != record[k])
            raise ConfigError(f"{out}: this search folder was made with other settings ({', '.join(changed)} "
                              f"differ); use a new --out, or the same settings to continue it")
        return
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))


def run_proxies(out: Path, names: list[str], stage: str, parallel: int, threads: int, echo=print) -> None:
    """Train the proxies not yet finished, ``parallel`` at a time (one process each), in name order. Raises
    ``RunHalted`` naming the first that failed, after the others in flight have ended."""
    pending = [n for n in names if proxy_finished(out / "proxies" / n, stage) is None]
    done = len(names) - len(pending)
    if done:
        echo(f"{done} of {len(names)} proxies already finished; {len(pending)} to run")
    running, failed = {}, []
    while running or (pending and not failed):
        while pending and len(running) < parallel and not failed:
            name = pending.pop(0)
            running[name] = launch(out / "plans" / f"{name}.yaml", out / "proxies" / name, threads)
        time.sleep(0.2)
        for name, process in list(running.items()):
            code = process.poll()
            if code is None:
                continue
            del running[name]
            if code != 0 or proxy_finished(out / "proxies" / name, stage) is None:
                failed.append((name, code))
            else:
                done += 1
                echo(f"proxy {name} finished ({done}/{len(names)})")
    if failed:
        name, code = failed[0]
        raise RunHalted(f"proxy {name} ended with exit code {code} before its stage finished; see "
                        f"{out / 'proxies' / name / 'log.txt'} (run the search again to resume it)")


def collect_rows(out: Path, mixtures: list[Mixture], stage: str, objective: Objective,
                 space: MixSpace) -> list[ProxyRow]:
    rows = []
    for m in mixtures:
        results = proxy_finished(out / "proxies" / m.name, stage) or {}
        value, stderr, losses = objective.score(results)
        rows.append(ProxyRow(m.name, m.kind, m.weights, value if math.isfinite(value) else float("nan"), stderr,
                             losses, space.epochs(m.weights), space.outside(m.weights)))
    return rows
