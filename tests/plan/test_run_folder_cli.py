"""``syllabus eval | export | generate`` take a plan run folder: the last finished stage's final checkpoint,
``--stage`` for another; ``eval --tasks ppl`` without ``--data`` scores that stage's own sources."""

import json
import subprocess
import sys

import pytest

from syllabus.cli.main import main
from syllabus.config import validate
from syllabus.config.plan import PlanConfig
from syllabus.plan.runner import run_plan
from tests.plan.conftest import make_plan

pytestmark = pytest.mark.slow

STAGES = [
    {"name": "prose", "data": {"wiki": 1.0}, "budget": {"steps": 4}, "lr": {"peak": 2e-3, "warmup": 1}},
    {"name": "code", "data": {"code": 0.75}, "replay": {"fraction": 0.25, "from": ["prose"]},
     "budget": {"steps": 4}, "lr": {"peak": 1e-3, "warmup": 1}},
]


@pytest.fixture(scope="module")
def plan_run(demo_corpus, demo_tokenizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("folder_cli") / "run"
    plan = validate(PlanConfig, make_plan(demo_corpus, demo_tokenizer, STAGES))
    assert run_plan(plan, out)["status"] == "finished"
    return out


def test_export_and_eval_take_a_plan_run_folder(plan_run, tmp_path, capsys):
    out = tmp_path / "hf"
    assert main(["export", str(plan_run), "--format", "hf", str(out)]) == 0
    assert "stages/2-code/checkpoints/final" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]

    results = tmp_path / "ppl.json"
    assert main(["eval", str(plan_run), "--tasks", "ppl", "--limit", "1", "--out", str(results)]) == 0
    written = json.loads(results.read_text())
    assert written["checkpoint"].endswith("stages/2-code/checkpoints/final")
    assert {k for k in written["results"] if k.endswith("/ppl")} == {"ppl/code/ppl", "ppl/wiki/ppl"}  # replay too

    assert main(["eval", str(plan_run), "--stage", "prose", "--tasks", "ppl", "--limit", "1", "--out",
                 str(results)]) == 0
    written = json.loads(results.read_text())
    assert written["checkpoint"].endswith("stages/1-prose/checkpoints/final")
    assert {k for k in written["results"] if k.endswith("/ppl")} == {"ppl/wiki/ppl"}

    assert main(["generate", str(plan_run), "--stage", "prose", "--prompt", "The", "--max-new-tokens", "3"]) == 0


@pytest.mark.parametrize("argv, message", [
    (["export", "{empty}", "{tmp}/hf"], "no valid checkpoint found"),
    (["eval", "{empty}", "--tasks", "ppl"], "no valid checkpoint found"),
    (["generate", "{missing}", "--prompt", "x"], "does not exist"),
    (["export", "{run}", "{tmp}/hf", "--stage", "nope"], "--stage: 'nope' has not started"),
])
def test_a_folder_without_a_checkpoint_is_one_line_and_exit_2(plan_run, tmp_path, argv, message):
    (tmp_path / "empty").mkdir()
    values = {"empty": tmp_path / "empty", "missing": tmp_path / "missing", "tmp": tmp_path, "run": plan_run}
    argv = [a.format(**values) for a in argv]
    done = subprocess.run([sys.executable, "-m", "syllabus", *argv], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in done.stderr
