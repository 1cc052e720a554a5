import json

import pytest

from syllabus.cli.main import main
from syllabus.config.source import as_source_spec
from syllabus.data import open_batches, train_tokenizer
from syllabus.data.corpus import demo_sources
from syllabus.data.records import RecordRenderer
from syllabus.data.sources import read_documents


@pytest.mark.slow
def test_corpus_demo_builds_four_real_domains(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["corpus", "demo", str(out)]) == 0
    printed = capsys.readouterr().out
    expect = {"wiki": ["Anarchism", "Algeria"], "reasoning": ["User: ", "Assistant: <think>", "</think>"],
              "math": ["\\frac", "Solution:", "<step>"], "code": ["def ", "import "]}
    fields = {"wiki": {"text"}, "reasoning": {"messages"}, "math": {"problem", "solution"}, "code": {"text"}}
    texts = {}
    for domain, needles in expect.items():
        assert domain in printed
        train = [json.loads(line) for line in open(out / domain / "train.jsonl")]
        val = [json.loads(line) for line in open(out / domain / "val.jsonl")]
        assert len(train) >= 50 and len(val) >= 20
        assert fields[domain] <= set(train[0])  # the record shape of the real dataset
        spec = as_source_spec(demo_sources(out)[domain])
        rendered = list(read_documents(out / domain / "train.jsonl", renderer=RecordRenderer(spec)))
        held_out = set(read_documents(out / domain / "val.jsonl", renderer=RecordRenderer(spec)))
        assert len(rendered) == len(train) and not set(rendered) & held_out
        assert (out / domain / "train.jsonl").stat().st_size < 5_000_000
        joined = "\n".join(rendered)
        for needle in needles:
            assert needle in joined, (domain, needle)
        texts[domain] = rendered[:50]
    sources = (out / "SOURCES.md").read_text()
    assert "MIT" in sources and "Apache" in sources and "PSF" in sources
    tok = train_tokenizer([t for ts in texts.values() for t in ts], 600)
    batches = open_batches(demo_sources(out), {d: 1 for d in expect}, tok)
    assert batches.next_batch(2, 64)["input_ids"].shape == (2, 64)
