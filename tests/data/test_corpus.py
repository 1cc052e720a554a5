import json

import pytest

from syllabus.cli.main import main
from syllabus.data import open_batches, train_tokenizer


@pytest.mark.slow
def test_corpus_demo_builds_four_real_domains(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["corpus", "demo", str(out)]) == 0
    printed = capsys.readouterr().out
    expect = {"wiki": ["Anarchism", "Algeria"], "reasoning": ["Problem:", "Solution"],
              "math": ["\\frac", "Solution:"], "code": ["def ", "import "]}
    texts = {}
    for domain, needles in expect.items():
        assert domain in printed
        train = [json.loads(line) for line in open(out / domain / "train.jsonl")]
        val = [json.loads(line) for line in open(out / domain / "val.jsonl")]
        assert len(train) >= 50 and len(val) >= 20
        assert not {r["text"] for r in train} & {r["text"] for r in val}
        assert (out / domain / "train.jsonl").stat().st_size < 5_000_000
        joined = "\n".join(r["text"] for r in train)
        for needle in needles:
            assert needle in joined, (domain, needle)
        texts[domain] = [r["text"] for r in train[:50]]
    sources = (out / "SOURCES.md").read_text()
    assert "MIT" in sources and "Apache" in sources and "PSF" in sources
    tok = train_tokenizer([t for ts in texts.values() for t in ts], 600)
    batches = open_batches({d: str(out / d) for d in expect}, {d: 1 for d in expect}, tok)
    assert batches.next_batch(2, 64)["input_ids"].shape == (2, 64)
