"""The door checks data first: a missing source is the first and only line, before a tokenizer is trained, a
warning printed or a file written; the demo corpus names the command that builds it; a misspelt field's
"did you mean" comes first. Run as the user runs it: the ``syllabus`` command in a fresh process."""

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def syllabus(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "syllabus", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_the_demo_plan_before_its_corpus_says_which_command_builds_it(tmp_path):
    done = syllabus("run", str(REPO / "plans" / "demo.yaml"), "--out", "out", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("syllabus run: sources.wiki, sources.reasoning, sources.math, sources.code: the demo "
                           "corpus is not there (file not found: data/demo-corpus/wiki")
    assert f"relative to the current folder {tmp_path}" in line
    assert line.endswith("build it first: syllabus corpus demo data/demo-corpus")
    assert not (tmp_path / "out").exists()


def test_a_missing_source_is_the_first_and_only_line_and_nothing_is_written(tmp_path):
    (tmp_path / "wiki").mkdir()
    (tmp_path / "wiki" / "train.jsonl").write_text('{"text": "a document"}\n')
    plan = {"name": "p", "sources": {"wiki": str(tmp_path / "wiki"), "code": str(tmp_path / "nowhere" / "code")},
            "tokenizer": {"vocab_size": 300},
            "stages": [{"name": "s", "data": {"wiki": 0.5, "code": 0.5}, "budget": {"steps": 2}}]}
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan))
    done = syllabus("run", "plan.yaml", "--out", "out", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [f"syllabus run: sources.code: file not found: {tmp_path}/nowhere/code"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.yaml", "wiki"]


def test_pretrain_on_a_missing_folder_says_so_before_any_warning_or_tokenizer(tmp_path):
    done = syllabus("pretrain", "--data-dir", "/nonexistent", "--max-steps", "5", "--out", "out", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["syllabus pretrain: data_dir: file not found: /nonexistent"]
    assert not (tmp_path / "out").exists()


def test_a_misspelt_field_leads_with_did_you_mean(tmp_path):
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump({"name": "p", "sources": {"wiki": "wiki"},
                                                        "stagse": [{"name": "s", "data": {"wiki": 1.0}}]}))
    done = syllabus("run", "plan.yaml", cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and lines[0] == "syllabus run: stagse: unknown field; did you mean 'stages'?"
    assert lines[1] == "stages: required field is missing"
