"""`syllabus mix search` end to end on the demo corpus: proxies are ordinary run folders; a search killed in a
proxy resumes it exactly; --parallel 2 gives the sequential table; outputs, --write and compare."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from syllabus.config.load import load_config
from syllabus.config.plan import PlanConfig
from tests.plan.conftest import make_plan, write_plan

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]
K = 5


@pytest.fixture(scope="module")
def plan_file(demo_corpus, demo_tokenizer, tmp_path_factory) -> Path:
    plan = make_plan(demo_corpus, demo_tokenizer,
                     [{"name": "mix", "data": {"wiki": 0.4, "reasoning": 0.2, "math": 0.2, "code": 0.2},
                       "budget": {"steps": 16}, "lr": {"peak": 3e-3, "warmup": 4}}])
    plan["defaults"]["save_interval"] = 2
    return write_plan(tmp_path_factory.mktemp("mixplan"), plan)


def search(plan_file: Path, out: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "syllabus", "mix", "search", str(plan_file), "--stage", "mix", "--out", str(out),
            "-k", str(K), "--proxy-steps", "4", "--threads", "1", *extra]
    return subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=1800)


def table(out: Path) -> list[tuple]:
    rows = json.loads((out / "results.json").read_text())["rows"]
    return [(r["name"], r["weights"], r["objective"], r["losses"]) for r in rows]


@pytest.fixture(scope="module")
def sequential(plan_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("search") / "sequential"
    done = search(plan_file, out, "--write", str(out.parent / "recommended.yaml"))
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_proxies_are_run_folders_and_the_search_writes_its_outputs(sequential, plan_file, tmp_path):
    rows = table(sequential)
    assert [r[0] for r in rows] == ["p00-plan", "p01-uniform", "p02-dirichlet", "p03-dirichlet", "p04-dirichlet"]
    assert all(r[2] > 0 and set(r[3]) == {"wiki", "reasoning", "math", "code"} for r in rows)
    assert len({r[2] for r in rows}) == K  # each mixture trained its own model
    for name, weights, _, _ in rows:
        folder = sequential / "proxies" / name
        proxy = yaml.safe_load((folder / "plan.yaml").read_text())
        assert proxy["stages"][0]["data"] == pytest.approx(weights)
        assert proxy["stages"][0]["budget"]["steps"] == 4
        assert (folder / "stages" / "1-mix" / "checkpoints" / "final" / "manifest.json").is_file()
    text = (sequential / "search.md").read_text()
    assert "| p00-plan | plan |" in text and "Recommended mixture" in text
    assert (sequential / "plots" / "predicted_vs_observed.png").stat().st_size > 0
    assert (sequential / "plots" / "weights_vs_objective.png").stat().st_size > 0
    # the written plan: the same plan but the stage's mixture, and where it came from
    summary = json.loads((sequential / "results.json").read_text())
    written = load_config(PlanConfig, sequential.parent / "recommended.yaml")
    assert written.stages[0].data == pytest.approx(summary["recommended"]["weights"], abs=1e-4)
    assert written.stages[0].mixture_from == f"mix search {sequential}"
    assert written.stages[0].budget == load_config(PlanConfig, plan_file).stages[0].budget
    # syllabus compare reads proxies like any runs
    compared = subprocess.run([sys.executable, "-m", "syllabus", "compare", *(str(sequential / "proxies" / r[0])
                               for r in rows[:3]), "--out", str(tmp_path / "cmp")], capture_output=True, text=True)
    assert compared.returncode == 0, compared.stderr[-2000:]
    assert "p02-dirichlet" in (tmp_path / "cmp" / "compare.md").read_text()


def test_running_again_skips_finished_proxies(sequential, plan_file):
    before = {p.name: (p / "metrics.jsonl").read_text() for p in (sequential / "proxies").iterdir()}
    again = search(plan_file, sequential)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{K} of {K} proxies already finished; 0 to run" in again.stdout
    assert {p.name: (p / "metrics.jsonl").read_text() for p in (sequential / "proxies").iterdir()} == before


def test_parallel_two_gives_the_sequential_table(sequential, plan_file, tmp_path):
    for proxy in sorted((sequential / "proxies").iterdir())[3:]:  # two finished (another test's runs): three
        shutil.copytree(proxy, tmp_path / "parallel" / "proxies" / proxy.name)  # run, two at a time
    done = search(plan_file, tmp_path / "parallel", "--parallel", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"2 of {K} proxies already finished; 3 to run" in done.stdout
    assert table(tmp_path / "parallel") == table(sequential)


def test_a_search_killed_in_a_proxy_resumes_it_exactly(sequential, plan_file, tmp_path):
    out = tmp_path / "killed"
    crashed = search(plan_file, out, env={"SYLLABUS_FAULT_CRASH_RANK": "0", "SYLLABUS_FAULT_CRASH_STEP": "3"})
    assert crashed.returncode == 1 and "proxy p00-plan ended with exit code" in crashed.stderr
    first = out / "proxies" / "p00-plan"
    assert (first / "stages" / "1-mix" / "checkpoints" / "step_2").is_dir()
    assert not (first / "stages" / "1-mix" / "checkpoints" / "final").exists()
    for proxy in sorted((sequential / "proxies").iterdir())[1:]:  # the others as finished (their own runs are
        shutil.copytree(proxy, out / "proxies" / proxy.name, dirs_exist_ok=True)  # another test's): p00 resumes
    resumed = search(plan_file, out)
    assert f"{K - 1} of {K} proxies already finished; 1 to run" in resumed.stdout
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert table(out) == table(sequential)
    # the proxy in flight continued from its step-2 checkpoint (steps 3, 4 logged twice, 1 and 2 once)
    steps = [json.loads(line)["step"] for line in open(first / "metrics.jsonl") if '"loss"' in line]
    assert steps.count(1) == 1 and steps.count(3) == 2


def test_changed_settings_on_an_existing_search_are_one_line(sequential, plan_file):
    refused = search(plan_file, sequential, "--seed", "5")
    assert refused.returncode == 2
    assert "this search folder was made with other settings (mixtures, plans, settings differ)" in refused.stderr
