"""MFU is per device: the same model at the same per-device batch reports the same MFU on 1 and on 2 ranks,
against a matmul peak injected through the machine's peak cache (so no measuring, and no noise in the peak)."""

from __future__ import annotations

import json
import os
import statistics

import pytest
import torch

from syllabus.train import peaks
from tests.distributed.launch import pretrain_args, records, run, single_argv, torchrun_argv

pytestmark = pytest.mark.slow

PEAK = 1e12  # FLOP/s, far above what a CPU core runs the tiny model at: no MFU above 1, so nothing re-measured


def injected_cache(folder, monkeypatch) -> dict:
    """A peak cache holding ``PEAK`` for this machine as a 1-thread worker sees it; the env that points at it."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)  # the workers run with OMP_NUM_THREADS=1
    key = peaks.machine_key("cpu")
    monkeypatch.undo()
    (folder / "peaks.json").write_text(json.dumps({key: {"fp32": PEAK, "bf16": PEAK, "load": 0.0}}))
    return {peaks.CACHE_ENV: str(folder)}


def step_records(run_dir) -> list[dict]:
    return [r for r in records(run_dir) if "mfu" in r and r["step"] > 2]  # past the first steps' warm-up


def flops_per_token(run_dir) -> float:
    from syllabus.config.model import ModelConfig
    from syllabus.model.transformer import Transformer

    config = json.loads((run_dir / "checkpoints" / "final" / "model_config.json").read_text())
    return Transformer(ModelConfig(**config)).flops_per_token(64)


def test_mfu_is_per_device_on_one_and_two_ranks(code_corpus, code_tokenizer, tmp_path, monkeypatch):
    env = injected_cache(tmp_path, monkeypatch)
    monkeypatch.setitem(os.environ, peaks.CACHE_ENV, env[peaks.CACHE_ENV])  # the launcher passes os.environ on
    runs = {}
    for world, argv in ((1, single_argv), (2, lambda a: torchrun_argv(2, a))):
        out = tmp_path / f"world{world}"
        run(argv(pretrain_args(code_corpus, code_tokenizer, out, "--batch-size", "4", "--max-steps", "10")))
        runs[world] = out
    fpt = flops_per_token(runs[1])
    for world, out in runs.items():
        rows = step_records(out)
        assert rows and all(r["peak_flops"] == PEAK for r in rows)
        for r in rows:  # one device's share of the global rate, against one device's peak
            assert r["tokens_per_step"] == 4 * 64 * world
            assert r["mfu"] == pytest.approx(fpt * r["tokens_per_sec"] / world / PEAK, rel=1e-9)
    one, two = (statistics.median(r["mfu"] for r in step_records(runs[w])) for w in (1, 2))
    # Each rank runs its own core, so the per-device figures agree when the machine is quiet; a busy machine
    # slows the two-rank run (0.36x seen at load 10), never speeds it up, so only the upper side is a check:
    # an MFU of the global rate would read about twice the one-rank figure. The exact guard is the formula above.
    assert two / one < 1.5, (one, two)
