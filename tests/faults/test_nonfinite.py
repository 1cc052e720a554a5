"""NaN/inf loss or gradients (``SYLLABUS_FAULT_NAN_STEPS`` poisons the listed steps): each update is skipped and
counted; after ``max_nonfinite_skips`` in a row the run rolls back to its newest checkpoint with a lower LR and
goes on (``on_nonfinite: rollback``), or stops with one clear line (``stop``); it never trains on garbage."""

import math

import pytest

from syllabus.train import checkpoint as ckpt
from tests.faults.harness import metric_records, pretrain_argv, syllabus

pytestmark = pytest.mark.slow


def argv(corpus, tokenizer, out, *extra):
    return pretrain_argv(corpus, tokenizer, out, "--max-steps", "9", "--save-interval", "3",
                         "--max-nonfinite-skips", "3", "--lr-schedule", "constant", *extra)


def test_nan_steps_are_skipped_then_the_run_rolls_back_with_a_lower_lr(code_corpus, code_tokenizer, tmp_path):
    done = syllabus(argv(code_corpus, code_tokenizer, tmp_path), env={"SYLLABUS_FAULT_NAN_STEPS": "5,6,7"})
    assert done.returncode == 0, done.stderr[-2000:]
    records = metric_records(tmp_path)
    (rollback,) = [r for r in records if r.get("event") == "rollback"]
    first, second = records[:records.index(rollback)], records[records.index(rollback) + 1:]
    skipped = [r for r in first if "loss" in r and r["loss"] is None]  # non-finite: JSON null
    assert [(r["step"], r["nonfinite_skips"]) for r in skipped] == [(5, 1), (6, 2), (7, 3)]
    # no checkpoint was taken during the streak: back to step 3, LR halved, the skips still counted
    assert rollback["from_step"] == 7 and rollback["step"] == 3 and rollback["checkpoint"].endswith("step_3")
    assert rollback["lr_multiplier"] == 0.5 and rollback["nonfinite_skips"] == 3
    lr_before = {r["step"]: r["lr"] for r in first if "lr" in r}
    after = {r["step"]: r for r in second if "loss" in r}
    assert sorted(after) == list(range(4, 10))
    assert all(math.isfinite(r["loss"]) for r in after.values())
    assert after[4]["lr"] == pytest.approx(0.5 * lr_before[4])
    state = ckpt.load_trainer_state(tmp_path / "checkpoints" / "final")
    assert state["nonfinite_skips"] == 3 and state["rollbacks"] == 1 and state["lr_multiplier"] == 0.5
    assert "rolled back to step_3 (step 3) with the LR multiplied by 0.5" in done.stderr


def test_nan_steps_with_on_nonfinite_stop_end_the_run_with_a_clear_line(code_corpus, code_tokenizer, tmp_path):
    done = syllabus(argv(code_corpus, code_tokenizer, tmp_path, "--on-nonfinite", "stop"),
                    env={"SYLLABUS_FAULT_NAN_STEPS": "2,3,4"})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "syllabus pretrain: stopped: 3 consecutive steps with non-finite loss or gradients up to step 4 "
        "(on_nonfinite: stop); lower the learning rate or check the data")
    assert "Traceback" not in done.stderr
    assert not any(r.get("event") == "rollback" for r in metric_records(tmp_path))
