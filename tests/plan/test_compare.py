"""``syllabus compare``: a staged and an interleaved tiny plan at equal tokens, side by side."""

import json
import re
import subprocess
import sys

import pytest

from syllabus.config import validate
from syllabus.config.plan import PlanConfig
from syllabus.plan.runner import run_plan
from tests.plan.conftest import make_plan

pytestmark = pytest.mark.slow

STAGED = [{"name": "prose", "data": {"wiki": 1.0}, "budget": {"steps": 6}},
          {"name": "code", "data": {"code": 0.75}, "replay": {"fraction": 0.25, "from": ["prose"]},
           "budget": {"steps": 6}}]
INTERLEAVED = [{"name": "all", "data": {"wiki": 0.625, "code": 0.375}, "budget": {"steps": 12}}]


@pytest.fixture(scope="module")
def two_runs(demo_corpus, demo_tokenizer, tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare")
    for name, stages in (("staged", STAGED), ("interleaved", INTERLEAVED)):
        plan = make_plan(demo_corpus, demo_tokenizer, stages, name=name)
        plan["evaluation"].update({"every": 3, "tasks": ["arithmetic"], "limit": 4})
        run_plan(validate(PlanConfig, plan), folder / name)
    return folder


def evals(run) -> list[dict]:
    return [json.loads(line) for line in open(run / "evals.jsonl")]


def test_compare_report_holds_the_runs_own_numbers(two_runs, tmp_path):
    out = subprocess.run([sys.executable, "-m", "syllabus", "compare", str(two_runs / "staged"),
                          str(two_runs / "interleaved"), "--out", str(tmp_path / "cmp")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = (tmp_path / "cmp" / "compare.md").read_text()
    assert (tmp_path / "cmp" / "perplexity_by_tokens.png").stat().st_size > 10_000
    finals = {}
    for name in ("staged", "interleaved"):
        last = evals(two_runs / name)[-1]
        row = re.search(rf"^\| {name} \({name}\) \| ([\d,]+) \| (.+) \| (.+) \|$", report, re.M)
        assert row, report
        tokens, code, wiki = row.groups()
        assert int(tokens.replace(",", "")) == sum(e["tokens_seen"] for e in evals(two_runs / name)) == 12 * 4 * 64
        finals[name] = {"code": last["ppl/code"], "wiki": last["ppl/wiki"]}
        assert code.strip("*") == f"{last['ppl/code']:.2f}" and wiki.strip("*") == f"{last['ppl/wiki']:.2f}"
        for end in evals(two_runs / name):  # every stage's benchmark score, with its own standard error if any
            score = f"{end['arithmetic/acc']:.3f}"
            assert re.search(rf"^\| {name} \({name}\) \| {end['stage']} \| arithmetic/acc \| {re.escape(score)}",
                             report, re.M), report
    from syllabus.plan.compare import RunRecords

    ends = {name: RunRecords(two_runs / name).perplexity_curve("wiki")[-1][0] for name in ("staged", "interleaved")}
    assert ends == {"staged": 12 * 4 * 64, "interleaved": 12 * 4 * 64}  # aligned by tokens over the whole run
    best = min(("staged", "interleaved"), key=lambda n: finals[n]["wiki"])
    assert re.search(rf"^\| {best} .*\| \*\*{finals[best]['wiki']:.2f}\*\* \|$", report, re.M)


def test_compare_refuses_a_folder_that_is_not_a_run(two_runs, tmp_path):
    out = subprocess.run([sys.executable, "-m", "syllabus", "compare", str(two_runs / "staged"), str(tmp_path),
                          "--out", str(tmp_path / "cmp")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "not a plan run folder" in out.stderr and "Traceback" not in out.stderr
