"""A plan over prepared shards made with two different tokenizers stops at the door, at once, in one line
(timed once the modules are imported: before any model is built or tokenizer trained)."""

import time

import yaml

from syllabus.cli.main import main
from syllabus.data import prepare_shards, train_tokenizer
from syllabus.plan import runner  # noqa: F401 (imported before the clock starts)
from tests.data.conftest import real_text, tok  # noqa: F401 (fixtures)
from tests.data.test_records import write


def test_shards_of_two_tokenizers_stop_the_plan_in_one_line(tmp_path, real_text, tok, capsys):
    lines = [line for line in real_text.splitlines() if line.strip()]
    write(tmp_path / "a.jsonl", [{"text": line} for line in lines[:60]])
    prepare_shards(str(tmp_path / "a.jsonl"), tok, tmp_path / "wiki", workers=1, echo=lambda *_: None)
    prepare_shards(str(tmp_path / "a.jsonl"), train_tokenizer(lines, 400), tmp_path / "math", workers=1,
                   echo=lambda *_: None)
    plan = {"name": "p", "sources": {"wiki": str(tmp_path / "wiki"), "math": str(tmp_path / "math")},
            "defaults": {"device": "cpu"},
            "stages": [{"name": "s", "data": {"wiki": 0.5, "math": 0.5}, "budget": {"steps": 1}}]}
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    start = time.perf_counter()
    code = main(["run", str(tmp_path / "plan.yaml"), "--out", str(tmp_path / "run")])
    took = time.perf_counter() - start
    err = capsys.readouterr().err.strip()
    assert code == 2 and took < 1.0, (code, took)
    assert len(err.splitlines()) == 1 and "wiki with tokenizer" in err and "math with tokenizer" in err
