import json
import math

import pytest

from syllabus.config.errors import ConfigError
from syllabus.evaluate import run_tasks
from syllabus.evaluate.arithmetic import arithmetic_problems


@pytest.fixture
def checkpoint(tmp_path, model, tokenizer):
    from syllabus.train.checkpoint import model_state_for_saving, save_checkpoint

    return save_checkpoint(tmp_path / "run" / "checkpoints", 5, model_state_for_saving(model), {"step": 5},
                           {"model_config.json": model.config.model_dump(), "run_config.json": {}},
                           {"tokenizer.json": tokenizer.to_str()})


def test_arithmetic_problems_are_deterministic_and_correct():
    problems = arithmetic_problems(per_digits=5, digits=(1, 3))
    assert problems == arithmetic_problems(per_digits=5, digits=(1, 3))
    for p in problems:
        a, op, b, _ = p.prompt.split()
        assert str(eval(f"{a} {op} {b}")) == p.answer
        if p.digits == 3:
            assert len(a) == len(b) == 3


@pytest.mark.slow
def test_run_tasks_returns_a_flat_dict_of_floats(model, tokenizer):
    results = run_tasks(model, tokenizer, ["arithmetic", "arc", "mmlu", "humaneval"], limit=2)
    assert all(isinstance(v, float) for v in results.values())
    for key in ("arithmetic/acc", "arithmetic/acc_1digit", "arc/acc", "arc/acc_norm", "mmlu/acc", "humaneval/pass@1"):
        assert 0 <= results[key] <= 1
    assert results["humaneval/n"] == 2


def test_unknown_task_and_missing_data_are_config_errors(model, tokenizer):
    with pytest.raises(ConfigError, match="unknown nope"):
        run_tasks(model, tokenizer, ["nope"])
    with pytest.raises(ConfigError, match="ppl needs"):
        run_tasks(model, tokenizer, ["ppl"])


def test_cli_eval_generate_export(checkpoint, tmp_path, capsys):
    from syllabus.cli.main import main

    out = tmp_path / "results.json"
    assert main(["eval", str(checkpoint.parent.parent), "--tasks", "arithmetic,hellaswag", "--limit", "4",
                 "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["checkpoint"] == str(checkpoint) and "hellaswag/acc_norm" in written["results"]
    assert "arithmetic/acc" in capsys.readouterr().out

    assert main(["generate", str(checkpoint), "--prompt", "The fox", "--max-new-tokens", "5"]) == 0
    assert capsys.readouterr().out.startswith("The fox")

    assert main(["export", str(checkpoint), str(tmp_path / "hf")]) == 0
    assert (tmp_path / "hf" / "config.json").exists() and (tmp_path / "hf" / "tokenizer_config.json").exists()


def test_ppl_task_reads_held_out_data(model, tokenizer, tmp_path):
    folder = tmp_path / "prose"
    folder.mkdir()
    docs = [{"text": "The quick brown fox jumps over the lazy dog. " * 20}] * 6
    for split in ("train", "val"):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    results = run_tasks(model, tokenizer, ["ppl"], data={"prose": folder}, seq_len=32, batch_size=2, limit=3)
    assert results["ppl/prose/tokens"] > 0 and math.isfinite(results["ppl/prose/ppl"])
