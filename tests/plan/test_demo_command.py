"""``syllabus demo`` end to end on the shipped plan (shrunk by ``--set``) and an existing demo corpus: four stages,
a report with its expectation verdict, exit 0."""

import sys
from pathlib import Path

import pytest

from tests.faults.harness import ok
from tests.plan.conftest import records

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_the_shipped_plan_and_writes_the_report(demo_corpus, demo_tokenizer, tmp_path):
    shrink = [f"stages.{i}.budget.steps=3" for i in range(4)] + [
        "stages.0.lr.warmup=1", "stages.1.lr.warmup=1", "stages.2.lr.warmup=1", "stages.3.lr.warmup=1",
        f"tokenizer.path={demo_tokenizer}", "evaluation.every=1000", "evaluation.limit=2", "evaluation.batches=1",
        "defaults.micro_batch_size=2", "defaults.mixed_precision=fp32"]
    argv = [sys.executable, "-m", "syllabus", "demo", "--plan", str(REPO / "plans" / "demo.yaml"),
            "--corpus", str(demo_corpus), "--out", str(tmp_path / "run")]
    for item in shrink:
        argv += ["--set", item]
    done = ok(argv)
    assert f"finished: run folder {tmp_path / 'run'}" in done.stdout and "report:" in done.stdout
    run = tmp_path / "run"
    ends = [r["stage"] for r in records(run, event="stage_end")]
    assert ends == ["foundation", "reasoning", "math", "code"]
    report = (run / "report.md").read_text()
    assert "## Expectations" in report and "code: ppl/code < 500" in report
