"""The task list: one name per evaluation, run in order, results as a flat ``{metric: float}``.

Metric names are ``<task>/<metric>`` (``hellaswag/acc_norm``, ``gsm8k/exact_match``,
``ppl/<domain>/ppl``), so a plan can compare two evaluations key by key to detect forgetting. Every task
also reports ``<task>/n`` (items scored) and, for each proportion, ``<task>/<metric>_stderr`` (binomial,
see ``error_bars``).
Nothing here trains or changes the model: it is put in eval mode and its training flag restored.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from syllabus.config.errors import ConfigError
from syllabus.evaluate.arithmetic import evaluate_arithmetic
from syllabus.evaluate.error_bars import with_stderr
from syllabus.evaluate.gsm8k import evaluate_gsm8k
from syllabus.evaluate.humaneval import evaluate_humaneval
from syllabus.evaluate.multiple_choice import arc_items, hellaswag_items, mmlu_items, score_choices
from syllabus.data import iter_eval_batches
from syllabus.evaluate.perplexity import perplexity
from syllabus.model.transformer import Transformer

# Default shots per task (lm-evaluation-harness's usual setting: 0 for HellaSwag/ARC, 5 for MMLU, 8 for GSM8K);
# a plan's evaluation.task_options (or run_tasks's shots) sets others.
SHOTS = {"hellaswag": 0, "arc": 0, "arc_challenge": 0, "mmlu": 5, "gsm8k": 8}
# Tasks whose items can be a user's own file (task_options.<task>.items).
ITEMS_TASKS = ("gsm8k",)


def choice_task(items_for: Callable) -> Callable:
    def run(model, tokenizer, limit, shots, items):
        return score_choices(model, tokenizer, items_for(limit=limit, shots=shots))
    return run


TASKS: dict[str, Callable] = {
    "hellaswag": choice_task(hellaswag_items),
    "arc": choice_task(arc_items),
    "arc_challenge": choice_task(lambda limit, shots: arc_items(limit, shots, subset="ARC-Challenge")),
    "mmlu": choice_task(mmlu_items),
    "gsm8k": lambda model, tokenizer, limit, shots, items: evaluate_gsm8k(model, tokenizer, limit=limit,
                                                                         shots=shots, items=items),
    "humaneval": lambda model, tokenizer, limit, shots, items: evaluate_humaneval(model, tokenizer, limit=limit),
    "arithmetic": lambda model, tokenizer, limit, shots, items: evaluate_arithmetic(model, tokenizer, limit=limit),
}
TASK_NAMES = ("ppl", *TASKS)
LM_EVAL_PREFIX = "lm_eval:"  # "lm_eval:<task>": any lm-eval task, e.g. lm_eval:local_hellaswag (lm_eval_tasks.py)


@lru_cache(maxsize=None)
def local_tasks_dir() -> Path:
    """The local lm-eval task YAMLs of this process (written once to a temporary folder)."""
    from syllabus.evaluate.lm_eval_tasks import write_local_tasks

    return write_local_tasks(Path(tempfile.mkdtemp(prefix="syllabus-lm-eval-")))


def run_tasks(model: Transformer, tokenizer, tasks: Sequence[str], *, limit: int | None = None,
              data: Mapping[str, str | Path] | None = None, seq_len: int | None = None, batch_size: int = 8,
              shots: Mapping[str, int] | None = None, items: Mapping[str, str | Path] | None = None,
              autocast: torch.dtype | None = None) -> dict[str, float]:
    """Run ``tasks`` and return ``{"<task>/<metric>": value}``.

    ``autocast``: every forward runs under ``torch.autocast`` to this dtype (the run's precision: bf16, fp16) on
    the model's device; None or fp32 runs the weights' own dtype.

    ``lm_eval:<name>`` runs lm-evaluation-harness's task ``<name>`` on the model in process
    (``SyllabusLM``); its metrics are keyed ``<name>/<metric>``. The local tasks of ``lm_eval_tasks``
    (``local_hellaswag``, ``local_arc_easy``, ``local_mmlu_<subject>``, …) need no network.

    ``ppl`` needs ``data`` (``{domain: held-out source path}``, read by the data package); ``limit`` caps
    the items of every task (and the batches of ``ppl``); ``seq_len`` defaults to the model's longest.
    ``shots`` (task -> exemplars, default :data:`SHOTS`) and ``items`` (task -> a file of the task's own items,
    for the tasks in :data:`ITEMS_TASKS`) are the tasks' options (a plan's ``evaluation.task_options``).
    """
    unknown = [t for t in tasks if t not in TASK_NAMES and not t.startswith(LM_EVAL_PREFIX)]
    if unknown:
        raise ConfigError(f"tasks: unknown {', '.join(unknown)} (known: {', '.join(TASK_NAMES)})")
    shots = {**SHOTS, **(shots or {})}
    items = dict(items or {})
    unusable = [t for t in items if t not in ITEMS_TASKS]
    if unusable:
        raise ConfigError(f"items: only {', '.join(ITEMS_TASKS)} can read its items from a file (got "
                          f"{', '.join(unusable)})")
    with precision_context(model, autocast):
        return _run_tasks(model, tokenizer, tasks, limit, data, seq_len, batch_size, shots, items)


def precision_context(model, dtype: torch.dtype | None):
    """``torch.autocast`` to ``dtype`` on ``model``'s device, or nothing for None and fp32."""
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(next(model.parameters()).device.type, dtype=dtype)


def _run_tasks(model, tokenizer, tasks, limit, data, seq_len, batch_size, shots, items) -> dict[str, float]:
    results: dict[str, float] = {}
    for task in tasks:
        started = time.monotonic()
        if task == "ppl":
            if not data:
                raise ConfigError("tasks: ppl needs held-out data (--data DOMAIN=PATH)")
            length = seq_len or model.config.max_position_embeddings
            for domain, path in data.items():
                batches = iter_eval_batches(str(path), tokenizer, seq_len=length, batch_size=batch_size,
                                            max_batches=limit)
                for metric, value in perplexity(model, batches).items():
                    results[f"ppl/{domain}/{metric}"] = value
        elif task.startswith(LM_EVAL_PREFIX):
            from syllabus.evaluate.lm_eval_tasks import run_lm_eval

            scores, _ = run_lm_eval(model, tokenizer, [task[len(LM_EVAL_PREFIX):]], limit=limit,
                                    tasks_dir=local_tasks_dir())
            results.update(scores)
        else:
            scores = TASKS[task](model, tokenizer, limit, shots.get(task, 0), items.get(task))
            for metric, value in with_stderr(scores).items():
                results[f"{task}/{metric}"] = float(value)
        results[f"{task}/seconds"] = time.monotonic() - started
    return results


def evaluate_checkpoint(checkpoint: str | Path, tasks: Sequence[str], *, limit: int | None = None,
                        data: Mapping[str, str | Path] | None = None, out: str | Path | None = None,
                        device: str = "cpu", **options) -> dict[str, float]:
    """Load a checkpoint (or a run folder's newest valid one), run the tasks (``options`` as ``run_tasks``'s,
    ``autocast`` included), optionally write JSON."""
    from syllabus.checkpoints import load_model, resolve_checkpoint

    path = resolve_checkpoint(checkpoint)
    model, tokenizer = load_model(path, device=device)
    results = run_tasks(model, tokenizer, tasks, limit=limit, data=data, **options)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps({"checkpoint": str(path), "tasks": list(tasks), "limit": limit,
                                         "results": results}, indent=2) + "\n")
    return results


def results_table(results: Mapping[str, float]) -> str:
    """Two aligned columns: metric, value."""
    width = max((len(k) for k in results), default=6)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  -----"]
    for name, value in results.items():
        lines.append(f"{name:<{width}}  {value:.4f}" if isinstance(value, float) else f"{name:<{width}}  {value}")
    return "\n".join(lines)
