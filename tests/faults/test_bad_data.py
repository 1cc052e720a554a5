"""Bad data: invalid JSON, wrong field types, empty documents, invalid UTF-8, a 100 MB single line, a missing
file, files that change or vanish while a run streams them. Records are skipped and counted per source, or the
run ends with a clear line naming the file, and never mid-run without a checkpoint it can continue from."""

import json
import os
import shutil
import signal

import pytest

from tests.faults.harness import (checkpoint_steps, finish, last_logged_step, metric_records, ok, pretrain_argv,
                                  signal_and_wait, start, step_losses, syllabus, wait_until)

pytestmark = pytest.mark.slow


def good_documents(code_corpus, n: int, chars: int = 1000) -> list[str]:
    docs = [json.loads(line)["text"] for line in open(code_corpus / "train.jsonl")]
    return [d[:chars] for d in docs if d.strip()][:n]


def write_jsonl(path, docs):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for text in docs:
            f.write(json.dumps({"text": text}) + "\n")


def data_report(run_dir) -> dict:
    return [r for r in metric_records(run_dir) if r.get("event") == "data"][-1]["skipped"]


def test_malformed_records_are_skipped_and_counted_per_source(code_corpus, code_tokenizer, tmp_path):
    messy, clean = tmp_path / "messy", tmp_path / "clean"
    write_jsonl(clean / "train.jsonl", good_documents(code_corpus, 20))
    write_jsonl(messy / "train.jsonl", good_documents(code_corpus, 8))
    with open(messy / "train.jsonl", "ab") as f:
        f.write(b'{"text": "unterminated\n')                         # invalid JSON
        f.write(b'{"text": 42}\n{"text": ["a", "list"]}\n')            # wrong field types
        f.write(b'["not", "an", "object"]\n{"body": "no text field"}\n')
        f.write(b'{"text": ""}\n{"text": "   \\n  "}\n')                # empty documents
        f.write(b'{"text": "caf\xe9 latin-1"}\n')                      # invalid UTF-8
        f.write(b'{"text": "' + b"x" * (100 << 20) + b'"}\n')          # a 100 MB single line
        f.write(json.dumps({"text": "a last good document after all that"}).encode() + b"\n")
    for folder in (messy, clean):
        shutil.copy(clean / "train.jsonl", folder / "val.jsonl")
    out = tmp_path / "run"
    done = ok(pretrain_argv(code_corpus, code_tokenizer, out, "--data-dir", "", "--data-sources", str(messy),
                            str(clean), "--data-mix-weights", "0.8", "0.2", "--max-steps", "30"))
    assert data_report(out) == {"messy": {"invalid_json": 1, "wrong_type": 2, "not_an_object": 1,
                                          "missing_field": 1, "empty": 2, "invalid_utf8": 1, "too_long": 1},
                                "clean": {}}
    assert "skipped malformed records" in done.stderr


def test_a_missing_data_file_is_one_clear_line_and_exit_2(code_corpus, code_tokenizer, tmp_path):
    missing = tmp_path / "nowhere" / "train.jsonl"
    done = syllabus(pretrain_argv(code_corpus, code_tokenizer, tmp_path / "run", "--data-dir", "",
                                  "--data-sources", str(missing), "--max-steps", "2"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"syllabus pretrain: data_sources: file not found: {missing}"]
    assert "Traceback" not in done.stderr


def text_files(code_corpus, folder, n: int):
    """``n`` one-document files (each its own unit of the stream) and a val file."""
    folder.mkdir()
    docs = good_documents(code_corpus, n + 1, chars=600)
    for i, text in enumerate(docs[:n]):
        (folder / f"train-{i:03d}.txt").write_text(text)
    (folder / "val.txt").write_text(docs[n])
    return sorted(folder.glob("train-*.txt"))


def test_files_that_change_or_vanish_while_streaming_are_skipped_and_counted(code_corpus, code_tokenizer, tmp_path):
    files = text_files(code_corpus, tmp_path / "data", 30)
    out = tmp_path / "run"
    proc = start(pretrain_argv(code_corpus, code_tokenizer, out, "--data-dir", str(tmp_path / "data"),
                               "--max-steps", "100000", "--save-interval", "100000"))
    assert wait_until(proc, lambda: last_logged_step(out) >= 1)
    for i, path in enumerate(files):
        if i % 3 == 0:
            path.unlink()                                      # vanishes
        elif i % 3 == 1:
            path.write_bytes(b"rewritten \xff\xfe not UTF-8")  # changes under the reader
        else:
            with open(path, "a") as f:                         # grows
                f.write("\n# appended while the run reads it\n")
    assert wait_until(proc, lambda: last_logged_step(out) >= 60)  # well past one epoch of what is left
    code, err = signal_and_wait(proc, signal.SIGTERM)
    assert code == 0, err[-2000:]
    skipped = data_report(out)["data"]
    assert skipped.get("unreadable", 0) >= 1 and skipped.get("invalid_utf8", 0) >= 1
    assert "it cannot be read (No such file or directory)" in err


def test_all_data_vanishing_mid_run_stops_with_a_checkpoint_that_resumes_exactly(code_corpus, code_tokenizer,
                                                                                  tmp_path):
    data, spare = tmp_path / "data", tmp_path / "spare"
    text_files(code_corpus, data, 30)
    shutil.copytree(data, spare)
    argv = pretrain_argv(code_corpus, code_tokenizer, tmp_path / "reference", "--data-dir", str(data),
                         "--max-steps", "40", "--save-interval", "100000")
    ok(argv)
    reference = step_losses(tmp_path / "reference")
    out = tmp_path / "run"
    argv[argv.index("--out") + 1] = str(out)
    proc = start(argv + ["--resume", "auto"])
    assert wait_until(proc, lambda: last_logged_step(out) >= 2)
    for path in data.glob("train-*.txt"):
        os.unlink(path)
    code, err = finish(proc)
    assert code == 2, err[-2000:]
    assert err.strip().splitlines()[-1].startswith(f"syllabus pretrain: data source {data}: no documents")
    (saved,) = checkpoint_steps(out / "checkpoints")
    assert saved == last_logged_step(out) and f"so the run can continue from step {saved}" in err
    shutil.rmtree(data)
    shutil.copytree(spare, data)  # the data is back: the run continues exactly where it stopped
    ok(argv + ["--resume", "auto"])
    assert step_losses(out) == reference
