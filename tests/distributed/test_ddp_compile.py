"""``compile: auto`` under DDP on 2 CPU ranks: rank 0 decides, the ranks compile their blocks mid-stage (the
gradient hooks DDP registers keep working), and the run's numbers stay those of the eager reference."""

import json
import os
import shutil

import pytest

from tests.distributed.conftest import STEPS
from tests.distributed.launch import assert_close, pretrain_args, records, run, step_values, torchrun_argv

pytestmark = pytest.mark.slow


def test_auto_compiles_both_ranks_mid_stage_with_the_eager_numbers(ddp_reference, code_corpus, code_tokenizer,
                                                                    tmp_path, monkeypatch):
    (decided,) = [r for r in records(ddp_reference) if r.get("event") == "compile"]
    assert decided["compiled"] is False and decided["figures"] == "assumed"  # 8 steps left: eager
    cache = tmp_path / "cache"  # the suite's cache (peaks, kernels) plus figures saying compiling pays, under
    shutil.copytree(os.environ["SYLLABUS_CACHE_DIR"], cache)  # each machine key (the ranks' thread count is theirs)
    entries = json.loads((cache / "peaks.json").read_text())
    for entry in entries.values():
        entry["compile"] = {decided["class"]: {"warmup_s": 0.0, "speedup": 10.0, "taken": 0}}
    (cache / "peaks.json").write_text(json.dumps(entries))
    monkeypatch.setenv("SYLLABUS_CACHE_DIR", str(cache))
    out = tmp_path / "auto"
    done = run(torchrun_argv(2, pretrain_args(code_corpus, code_tokenizer, out, "--batch-size", "4",
                                              "--max-steps", str(STEPS), "--strategy", "ddp")), timeout=300)
    assert "compile: auto: compiling the blocks" in done.stderr, done.stderr[-3000:]  # (rank 0 logs; rank 1
    # follows rank 0's decision: test_compile_choice.test_every_rank_follows_rank_0)
    events = [r for r in records(out) if r.get("event") == "compile"]
    assert events[0]["step"] == 4 and events[0]["compiled"] is True and events[0]["figures"] == "measured"
    assert events[1]["step"] == 8 and "measured_speedup" in events[1]
    cached = json.loads((cache / "peaks.json").read_text())
    assert any(entry["compile"][decided["class"]]["taken"] for entry in cached.values())  # measured, cached
    steps = range(1, STEPS + 1)
    assert_close(step_values(out), step_values(ddp_reference), steps, 1e-4)
    assert_close(step_values(out, "grad_norm"), step_values(ddp_reference, "grad_norm"), steps, 1e-4)
