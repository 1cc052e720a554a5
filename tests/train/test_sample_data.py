"""The documented pre-training idiom on the documented sample layout: data_sources resolve under data_dir."""

import json
import subprocess
import sys

import pytest

from syllabus import PreTrainingConfig
from syllabus.config.errors import ConfigError
from syllabus.data import create_sample_pretraining_data
from syllabus.train.pretrain import resolve_sources
from tests.conftest import TINY_FLAGS


def test_sample_layout_and_names_under_data_dir(tmp_path):
    paths = create_sample_pretraining_data(tmp_path / "pretraining", docs_per_domain=40)
    assert sorted(p.name for p in (tmp_path / "pretraining" / "arxiv").iterdir()) == ["papers_001.jsonl",
                                                                                     "papers_002.jsonl"]
    assert (tmp_path / "pretraining" / "general" / "c4_001.jsonl").is_file()
    assert "Proof." in open(tmp_path / "pretraining" / "arxiv" / "papers_001.jsonl").readline()
    cfg = PreTrainingConfig(data_dir=str(tmp_path / "pretraining"), data_sources=["arxiv", "general"],
                            data_mix_weights=[0.3, 0.7])
    sources, weights = resolve_sources(cfg)
    assert {k: v.path for k, v in sources.items()} == paths and weights == {"arxiv": 0.3, "general": 0.7}
    (tmp_path / "pretraining" / "books.jsonl").write_text('{"text": "a book"}\n')
    sources, _ = resolve_sources(cfg.model_copy(update={"data_sources": ["books"], "data_mix_weights": []}))
    assert sources["books"].path.endswith("books.jsonl")
    with pytest.raises(ConfigError, match=r"'wiki'.*it holds: arxiv/, books.jsonl, general/"):
        resolve_sources(cfg.model_copy(update={"data_sources": ["wiki"], "data_mix_weights": []}))


@pytest.mark.slow
def test_pretrain_cli_on_sample_data_realizes_the_weights(tmp_path):
    create_sample_pretraining_data(tmp_path / "data", docs_per_domain=300)
    argv = [sys.executable, "-m", "syllabus", "pretrain", "--data-dir", str(tmp_path / "data"),
            "--data-sources", "arxiv", "general", "--data-mix-weights", "0.3", "0.7", "--vocab-size", "512",
            "--out", str(tmp_path / "run"), "--max-steps", "30", "--max-seq-length", "64", "--batch-size", "4",
            "--warmup-steps", "2", "--eval-interval", "1000", "--mixed-precision", "fp32", "--device", "cpu",
            *TINY_FLAGS]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    records = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    mix = [r for r in records if r.get("event") == "data"][-1]["mix"]
    total = mix["arxiv"]["tokens"] + mix["general"]["tokens"]
    assert total == 30 * 4 * 65
    assert abs(mix["arxiv"]["tokens"] / total - 0.3) < 0.01 and abs(mix["general"]["tokens"] / total - 0.7) < 0.01
    assert [r for r in records if "loss" in r][-1]["step"] == 30
