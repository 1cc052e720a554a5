"""Re-weight on resume: a running stage's mixture edited between two runs continues from its newest
checkpoint with the new weights, every source keeping its stream position."""

import json
import shutil
import signal
import subprocess

import pytest
import torch

from syllabus.data import load_tokenizer
from syllabus.data.batches import open_source, source_seed
from tests.plan.conftest import losses, make_plan, records, run_argv, write_plan
from tests.train.runs import run, start_and_signal

pytestmark = pytest.mark.slow

ROW = 65  # seq_len 64 + 1: every row of this stage
STAGE = {"name": "mix", "data": {"wiki": 0.5, "code": 0.5}, "budget": {"steps": 80}, "lr": {"peak": 1e-3, "warmup": 2}}


def tokens_at(checkpoint) -> dict[str, int]:
    state = torch.load(checkpoint / "trainer_state.pt", weights_only=True)
    return dict(state["data"]["mixture"]["tokens_total"]) if "mixture" in state["data"] else \
        dict(state["data"]["tokens_total"])


def stream_positions(checkpoint) -> dict[str, dict]:
    state = torch.load(checkpoint / "trainer_state.pt", weights_only=True)["data"]
    streams = (state["mixture"] if "mixture" in state else state)["streams"]
    return {name: {k: s[k] for k in ("unit_seq", "doc", "offset")} for name, s in streams.items()}


def kill_at_step(argv, out, step: int) -> None:
    checkpoint = out / "stages" / "1-mix" / "checkpoints" / f"step_{step}"
    assert start_and_signal(argv, checkpoint, signal.SIGKILL) == -signal.SIGKILL


@pytest.fixture(scope="module")
def edited_runs(demo_corpus, demo_tokenizer, tmp_path_factory):
    """A: killed at 40, plan file edited to 0.8/0.2, run to the end. B: the same kill, the edit given with
    --set, killed again at 60 in the new regime, run to the end."""
    folder = tmp_path_factory.mktemp("reweight")
    plan = make_plan(demo_corpus, demo_tokenizer, [STAGE])
    plan["defaults"].update({"save_interval": 20, "keep_last_n_checkpoints": 5})
    plan["evaluation"]["every"] = 1000
    path = write_plan(folder, plan)
    a = folder / "a"
    kill_at_step(run_argv(path, a), a, 40)
    at_40 = tokens_at(a / "stages" / "1-mix" / "checkpoints" / "step_40")
    b, killed = folder / "b", folder / "killed"
    shutil.copytree(a, b)
    shutil.copytree(a, killed)
    edited = dict(plan, stages=[dict(STAGE, data={"wiki": 0.8, "code": 0.2})])
    edited_path = folder / "edited" / "plan.yaml"
    write_plan(edited_path.parent.mkdir() or edited_path.parent, edited)
    first = run(run_argv(edited_path, a))
    new_weights = ["--set", "stages.0.data.wiki=0.8", "--set", "stages.0.data.code=0.2"]
    kill_at_step(run_argv(path, b, *new_weights), b, 60)
    run(run_argv(path, b, *new_weights))
    return {"a": a, "b": b, "killed": killed, "at_40": at_40, "first": first, "plan": path, "tokenizer": demo_tokenizer,
            "corpus": demo_corpus}


def test_new_weights_apply_from_the_resumed_step_without_losing_or_repeating_rows(edited_runs):
    a, at_40 = edited_runs["a"], edited_runs["at_40"]
    assert "new mixture weights from step 40 on" in edited_runs["first"].stderr
    assert abs(at_40["wiki"] - at_40["code"]) <= ROW  # steps 1-40 at 0.5 / 0.5
    end = records(a, event="data", stage="mix")[-1]["mix"]
    after = {s: end[s]["tokens"] - at_40[s] for s in end}
    assert sum(after.values()) == 40 * 4 * ROW
    assert abs(after["wiki"] - 0.8 * sum(after.values())) <= ROW  # steps 41-80 at 0.8 / 0.2, within one row
    # no row skipped or read twice: each stream stands exactly where reading its tokens in order leads
    tok = load_tokenizer(edited_runs["tokenizer"])
    final = a / "stages" / "1-mix" / "checkpoints" / "final"
    for name, position in stream_positions(final).items():
        fresh = open_source(str(edited_runs["corpus"] / name), tok, seed=source_seed(1337, name))
        for _ in range(end[name]["tokens"] // ROW):
            fresh.read_row(ROW)
        assert {k: fresh.state_dict()[k] for k in position} == position, name
    event = records(a, event="reweight")
    assert [(e["step"], e["planned_after"]) for e in event] == [(40, {"wiki": 0.8, "code": 0.2})]
    assert "| mix | 40 | wiki | 0.500 | 0.800 |" in (a / "report.md").read_text()
    state = json.loads((a / "run_state.json").read_text())
    assert state["reweights"][0]["planned_before"] == {"wiki": 0.5, "code": 0.5}
    assert state["started"]["mix"]["data"] == {"wiki": 0.8, "code": 0.2}


def test_a_second_kill_in_the_new_regime_resumes_exactly(edited_runs):
    a, b = losses(edited_runs["a"]), losses(edited_runs["b"])
    assert a == b  # the --set edit behaves as the file edit, and the kill at 60 changes nothing
    assert len(records(edited_runs["b"], event="reweight")) == 1  # applied once, not again after the second kill


def test_any_other_edit_of_a_started_stage_is_refused(edited_runs):
    refused = subprocess.run(run_argv(edited_runs["plan"], edited_runs["killed"], "--set", "stages.0.lr.peak=0.01",
                                      "--set", "stages.0.data.wiki=0.8", "--set", "stages.0.data.code=0.2"),
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2, refused.stderr
    assert "stages.mix: data, lr changed, but this stage has started" in refused.stderr
    assert "only its data weights and replay.fraction may change" in refused.stderr
