"""Disk full while writing a checkpoint (``SYLLABUS_FAULT_SAVE_ERROR_STEPS`` makes the save of a step fail half-way
with ``OSError(ENOSPC)``): the previous checkpoint stays intact and nothing half-written is left; the run stops
with one clear line (``on_save_error: stop``, the default) or warns and goes on without that save (``continue``)."""

import pytest

from syllabus.train import checkpoint as ckpt
from tests.faults.harness import metric_records, pretrain_argv, syllabus

pytestmark = pytest.mark.slow
FULL_AT_4 = {"SYLLABUS_FAULT_SAVE_ERROR_STEPS": "4"}


def argv(corpus, tokenizer, out, *extra):
    return pretrain_argv(corpus, tokenizer, out, "--max-steps", "6", "--save-interval", "2", *extra)


def test_disk_full_stops_the_run_with_a_clear_line_and_the_previous_checkpoint_intact(code_corpus, code_tokenizer,
                                                                                        tmp_path):
    done = syllabus(argv(code_corpus, code_tokenizer, tmp_path), env=FULL_AT_4)
    assert done.returncode == 1, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    root = tmp_path / "checkpoints"
    assert last.startswith(f"syllabus pretrain: stopped: could not write the checkpoint of step 4 in {root}: ")
    assert "No space left on device" in last and f"the previous checkpoint {root / 'step_2'} is intact" in last
    assert "Traceback" not in done.stderr
    assert [p.name for p in root.iterdir()] == ["step_2"]  # no step_4, no .tmp-step_4-* left behind
    assert ckpt.verify_checkpoint(root / "step_2") is None


def test_disk_full_with_on_save_error_continue_warns_and_finishes(code_corpus, code_tokenizer, tmp_path):
    done = syllabus(argv(code_corpus, code_tokenizer, tmp_path, "--on-save-error", "continue"), env=FULL_AT_4)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "could not write the checkpoint of step 4" in done.stderr and "continuing without it" in done.stderr
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["best", "final", "step_2", "step_6"]  # no step_4, no .tmp
    assert all(ckpt.verify_checkpoint(path) is None for path in root.iterdir())
    (event,) = [r for r in metric_records(tmp_path) if r.get("event") == "save_failed"]
    assert event["step"] == 4 and "No space left on device" in event["error"]
