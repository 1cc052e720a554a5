"""Branch mode: at a paused run's decision point every proxy starts from the real final of the stage before; the
written plan continues that run with the recommended mixture, and its report says so."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from syllabus.config.load import load_config
from syllabus.config.plan import PlanConfig
from syllabus.plan.runner import run_plan
from tests.plan.conftest import make_plan, records, write_plan

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]


def first_batch_loss(proxy: Path, real: Path) -> float:
    """The loss of the real run's final 'first' weights on the first batch the proxy's 'second' stage draws."""
    from syllabus.data import load_tokenizer, open_batches
    from syllabus.plan.handover import stage_model, stage_tokenizer
    from syllabus.plan.stages import resolve_stages

    plan = load_config(PlanConfig, proxy / "plan.yaml")
    stage, previous = resolve_stages(plan, proxy, {})[1], resolve_stages(plan, real, {})[0]
    tokenizer, new_ids = stage_tokenizer(load_tokenizer(plan.tokenizer.path or real / "tokenizer.json"), stage)
    model = stage_model(stage, previous, tokenizer, new_ids, None)
    batches = open_batches(stage.sources, stage.weights, tokenizer, seed=stage.config.seed,
                           doc_attention=stage.config.doc_attention, packed=stage.config.packing)
    phase = stage.phases[0]
    batch = batches.next_batch(phase.micro_batch_size, phase.seq_len)
    with torch.no_grad():
        return float(model(batch["input_ids"], batch["labels"], doc_ids=batch.get("doc_ids")))


def test_branch_proxies_start_from_the_real_final_and_the_written_plan_continues_the_run(
        demo_corpus, demo_tokenizer, tmp_path):
    plan = make_plan(demo_corpus, demo_tokenizer, [
        {"name": "first", "data": {"wiki": 1.0}, "budget": {"steps": 4}, "lr": {"peak": 3e-3, "warmup": 1}},
        {"name": "second", "data": {"math": 0.6, "code": 0.2}, "replay": {"fraction": 0.2, "from": ["first"]},
         "budget": {"steps": 12}, "lr": {"peak": 3e-3, "warmup": 3}}])
    plan_file = write_plan(tmp_path, plan)
    real = tmp_path / "run"
    assert run_plan(load_config(PlanConfig, plan_file), real, pause_after="first")["status"] == "paused"
    written = tmp_path / "continued.yaml"
    search = subprocess.run([sys.executable, "-m", "syllabus", "mix", "search", str(plan_file), "--stage", "second",
                             "--from-run", str(real), "--out", str(tmp_path / "search"), "-k", "5",
                             "--proxy-steps", "2", "--threads", "1", "--write", str(written)],
                            capture_output=True, text=True)
    assert search.returncode == 0, search.stderr[-3000:]
    summary = json.loads((tmp_path / "search" / "results.json").read_text())
    assert summary["mode"] == "branch" and summary["components"] == ["math", "code", "replay"]
    real_init = records(real, event="stage_end", stage="first")
    assert real_init
    for row in summary["rows"]:
        proxy = tmp_path / "search" / "proxies" / row["name"]
        start = records(proxy, event="stage_start", stage="second")[0]
        assert start["init_from"] == str(proxy / "stages" / "1-first" / "checkpoints" / "final")
        first = records(proxy, stage="second", step=1)
        assert first[0]["loss"] == pytest.approx(first_batch_loss(proxy, real), abs=1e-5)
    # every proxy's start is the same real weights (hard links of the real final)
    digests = {records(tmp_path / "search" / "proxies" / r["name"], event="stage_start")[0]["init_sha256"]
               for r in summary["rows"]}
    assert len(digests) == 1
    # the written plan continues the paused run: stage 'second' trains with the recommended mixture
    assert run_plan(load_config(PlanConfig, written), real)["status"] == "finished"
    rec = summary["recommended"]["weights"]
    mix = records(real, event="data", stage="second")[-1]["mix"]
    share = {"math": rec["math"], "code": rec["code"], "wiki": rec["replay"]}
    assert {k: round(v["target_share"], 3) for k, v in mix.items() if v["target_share"] > 0} == \
        {k: round(v, 3) for k, v in share.items() if v > 0}
    report = (real / "report.md").read_text()
    assert f"Stage 'second': its planned mixture is the one recommended by mix search {tmp_path / 'search'}" in report
