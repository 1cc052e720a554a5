"""A malicious checkpoint (a trainer state whose unpickling would run code) is refused by ``--resume PATH``:
exit 2 with one line naming the file, and the code never runs (its marker file is not created)."""

import os

import pytest
import torch

from syllabus.train import checkpoint as ckpt
from tests.faults.harness import pretrain_argv, syllabus

pytestmark = pytest.mark.slow


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_that_would_run_code_is_refused_and_nothing_runs(code_corpus, code_tokenizer, tmp_path):
    marker = tmp_path / "the_payload_ran"
    evil = ckpt.save_checkpoint(tmp_path / "evil", 3, {"model.norm.weight": torch.ones(64)},
                                {"step": 3, "optimizer": Payload(marker)}, json_files={})
    assert ckpt.verify_checkpoint(evil) is None  # a consistent manifest: only the content gives it away
    out = tmp_path / "run"
    done = syllabus(pretrain_argv(code_corpus, code_tokenizer, out, "--max-steps", "4", "--resume", str(evil)))
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"syllabus pretrain: resume: checkpoint {evil}: trainer_state.pt holds objects other "
                           f"than tensors and plain data; refused to load it (nothing in it was run)")
    assert "Traceback" not in done.stderr
    assert not marker.exists()
    assert not (out / "checkpoints").exists() and not (out / "metrics.jsonl").read_text().strip()
