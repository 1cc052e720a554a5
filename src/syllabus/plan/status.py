"""Where a plan run stands (``syllabus status RUN``), read from its folder alone: the run may be in another
process, finished, paused or stopped. Nothing here imports torch or writes anything.

Per stage: state, steps done / budget, tokens, the measured rate and the ETA, the last evaluation, and every
forgetting-gate firing with the action taken. The budget in steps comes from the stage's ``stage_start``
record (``max_steps``) when it has one, else from its newest checkpoint's ``run_config.json``, else from the
plan (``budget.steps``, or ``budget.tokens`` over the logged tokens per step); ``?`` when none is known yet.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

import yaml

from syllabus.plan.numbers import number_text

RATE_WINDOW = 20  # the ETA uses the wall time of this many last logged steps


def duration(seconds: float) -> str:
    """``40s``, ``3.2m`` or ``1.5h``."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 60:.1f}m" if seconds >= 60 else f"{seconds:.0f}s"


def run_state_line(run_dir: Path, plan: dict, state: dict) -> tuple[str, bool]:
    """One line saying whether the run is running, finished, paused or stopped; and whether it is running."""
    names = [s["name"] for s in plan["stages"]]
    holder = lock_holder(run_dir)
    if holder is not None:
        return f"running (pid {holder})", True
    if all(n in state["completed"] for n in names):
        return "finished", False
    unfinished = [n for n in state["started"] if n not in state["completed"]]
    if unfinished:
        return f"stopped in stage '{unfinished[0]}' (run again to continue)", False
    if state["completed"]:
        return f"paused after stage '{state['completed'][-1]}' (run again to continue)", False
    return "not started", False


def lock_holder(run_dir: Path) -> str | None:
    """The pid written in ``run_dir/.lock`` while a process holds its lock; None when no process holds it."""
    path = run_dir / ".lock"
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.read(fd, 64).decode(errors="replace").strip() or "?"
    finally:
        os.close(fd)
    return None


def read_records(path: Path) -> list[dict]:
    """Complete JSON lines of a file another process may be appending to."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:  # a line being written
            continue
    return rows


def stage_budget(run_dir: Path, index: int, stage: dict, records: list[dict]) -> int | None:
    """Optimizer steps the stage will take, from what the run wrote, else from the plan."""
    for record in records:
        if record.get("event") == "stage_start" and record.get("max_steps"):
            return int(record["max_steps"])
    checkpoints = run_dir / "stages" / f"{index + 1}-{stage['name']}" / "checkpoints"
    configs = sorted(checkpoints.glob("*/run_config.json"), key=lambda p: p.stat().st_mtime)
    for config in reversed(configs):
        try:
            return int(json.loads(config.read_text())["max_steps"])
        except (ValueError, KeyError, OSError):
            continue
    budget = stage.get("budget") or {"steps": 100}
    if budget.get("steps"):
        return int(budget["steps"])
    per_step = [r["tokens_per_step"] for r in records if "tokens_per_step" in r]
    if budget.get("tokens") and per_step:
        return int(-(-budget["tokens"] // per_step[-1]))
    return None


def stage_lines(run_dir: Path, index: int, stage: dict, state: dict, records: list[dict]) -> tuple[list[str], float]:
    """The stage's lines, and the seconds it still needs at the measured rate (0 when done, nan if unknown)."""
    name = stage["name"]
    steps = [r for r in records if "loss" in r]
    done = name in state["completed"]
    status = "done" if done else "started" if name in state["started"] else "not started"
    budget = stage_budget(run_dir, index, stage, records)
    step = steps[-1]["step"] if steps else (budget if done and budget else 0)
    tokens = steps[-1]["tokens_seen"] if steps else 0
    line = f"{index + 1}. {name:<14} {status:<12} step {step}/{budget if budget is not None else '?'}"
    line += f"  {tokens:,} tokens"
    remaining = 0.0 if done else float("nan")
    if steps and not done:
        window = steps[-RATE_WINDOW:]
        if len(window) >= 2 and window[-1]["time"] > window[0]["time"]:
            seconds_per_step = (window[-1]["time"] - window[0]["time"]) / (window[-1]["step"] - window[0]["step"])
            rate = window[-1].get("tokens_per_step", 0) / seconds_per_step
            line += f"  {rate:,.0f} tok/s"
            if budget is not None:
                remaining = max(budget - step, 0) * seconds_per_step
                line += f"  eta {duration(remaining)}"
    lines = [line]
    evals = [r for r in records if "val_loss" in r]
    if name in state.get("results", {}) and state["results"][name]:
        results = state["results"][name]
        lines.append("     end of stage: " + ", ".join(f"{k} {number_text(v)}" for k, v in results.items()
                                                       if v is None or isinstance(v, (int, float, str))))
    elif evals:
        last = evals[-1]
        lines.append(f"     last evaluation (step {last['step']}): " + ", ".join(
            f"{k.removeprefix('val_')} {number_text(v, '.4f')}" for k, v in last.items() if k.startswith("val_loss")))
    for event in (r for r in records if r.get("event") == "forgetting"):
        decision = event.get("action", "?")
        if "lr_multiplier" in event:
            decision += f" (LR x{event['lr_multiplier']:g})"
        if "weights" in event:
            decision += " (weights " + ", ".join(f"{k} {v:.2f}" for k, v in event["weights"].items()) + ")"
        if "note" in event:
            decision += f" ({event['note']})"
        lines.append(f"     gate at step {event['step']}: {event['domain']} perplexity "
                     f"{number_text(event.get('ppl'), '.2f')} is {number_text(event.get('ratio'), '.2f')}x its "
                     f"reference {number_text(event.get('reference_ppl'), '.2f')} -> {decision}")
    return lines, remaining


def run_status(run_dir: str | Path) -> tuple[str, bool]:
    """The status text of a plan run folder, and whether a process is running it now."""
    run_dir = Path(run_dir)
    if not (run_dir / "plan.yaml").exists():
        return f"{run_dir}: not a plan run folder (no plan.yaml)", False
    plan = yaml.safe_load((run_dir / "plan.yaml").read_text())
    state_file = run_dir / "run_state.json"
    state = {"completed": [], "started": {}, "results": {}}
    if state_file.exists():
        state.update(json.loads(state_file.read_text()))
    where, running = run_state_line(run_dir, plan, state)
    records = read_records(run_dir / "metrics.jsonl")
    lines = [f"plan '{plan['name']}' in {run_dir}: {where}"]
    total_remaining = 0.0
    for index, stage in enumerate(plan["stages"]):
        stage_records = [r for r in records if r.get("stage") == stage["name"]]
        stage_text, remaining = stage_lines(run_dir, index, stage, state, stage_records)
        lines += ["  " + line for line in stage_text]
        if stage["name"] not in state["completed"]:
            total_remaining += remaining if stage["name"] in state["started"] else float("nan")
    if running:
        known = total_remaining == total_remaining  # not nan
        lines.append(f"  plan eta: {duration(total_remaining)}" if known else
                     "  plan eta: ? (a stage not started yet has no measured rate)")
    if (run_dir / "report.md").exists():
        lines.append(f"report: {run_dir / 'report.md'}")
    return "\n".join(lines), running


def watch(run_dir: str | Path, interval: float, echo=print) -> str:
    """Print the status every ``interval`` seconds until no process runs the plan; returns the last text."""
    while True:
        text, running = run_status(run_dir)
        echo(text + "\n", flush=True)
        if not running:
            return text
        time.sleep(interval)
