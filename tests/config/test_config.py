import subprocess
import sys
import time

import pytest

from syllabus import PreTrainingConfig
from syllabus.config import ConfigError, load_config


def problems(**fields) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_config(PreTrainingConfig, flags=fields)
    return err.value.problems


def test_defaults_are_valid_and_familiar():
    c = PreTrainingConfig()
    for name in ["model_config_name", "max_seq_length", "data_dir", "data_sources", "data_mix_weights",
                 "micro_batch_size", "gradient_accumulation_steps", "max_steps", "warmup_steps", "learning_rate",
                 "min_learning_rate", "mixed_precision", "gradient_checkpointing", "max_grad_norm",
                 "checkpoint_dir", "save_interval", "keep_last_n_checkpoints", "log_interval", "use_wandb",
                 "use_tensorboard", "num_workers", "pin_memory"]:
        assert hasattr(c, name), name


@pytest.mark.parametrize("fields, expected", [
    ({"max_stepz": 10}, "max_stepz: unknown field; did you mean 'max_steps'?"),
    ({"max_steps": "many"}, "max_steps: Input should be a valid integer"),
    ({"max_steps": 0}, "max_steps: Input should be greater than or equal to 1"),
    ({"num_workers": "many"}, "num_workers: expected a whole number >= 0 or 'auto'"),
    ({"num_workers": -1}, "num_workers: expected a whole number >= 0 or 'auto'"),
    ({"mixed_precision": "fp8"}, "mixed_precision: Input should be 'auto', 'fp32', 'bf16' or 'fp16'"),
    ({"model_config_name": "huge"}, "model_config_name: Input should be 'tiny', 'small', 'base' or 'large'"),
    ({"model": {"hiden_size": 3}}, "model.hiden_size: unknown field; did you mean 'hidden_size'?"),
    ({"data_sources": ["a", "b"], "data_mix_weights": [0.5, 0.2]}, "data_mix_weights: must sum to 1"),
    ({"data_sources": ["a"], "data_mix_weights": [0.5, 0.5]}, "data_mix_weights: 2 weights for 1 data_sources"),
    ({"learning_rate": 1e-4, "min_learning_rate": 1e-3}, "min_learning_rate: 0.001 exceeds learning_rate"),
    ({"max_seq_length": 4096}, "max_seq_length: 4096 exceeds the model's max_position_embeddings (1024)"),
    ({"model": {"hidden_size": 100, "num_attention_heads": 3}}, "model.hidden_size: 100 must be a multiple of num_attention_heads"),
])
def test_each_bad_config_names_the_field(fields, expected):
    found = problems(**fields)
    assert len(found) == 1
    assert found[0].startswith(expected), found


def test_several_problems_one_line_each():
    assert len(problems(max_steps=0, micro_batch_size=-1, bogus=1)) == 3


def test_yaml_then_flags_then_set(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("max_steps: 5\nlearning_rate: 1.0e-3\nmodel: {hidden_size: 128}\n")
    c = load_config(PreTrainingConfig, path, ["learning_rate=2e-3", "model.num_hidden_layers=2"], {"max_steps": 7})
    assert (c.max_steps, c.learning_rate) == (7, 2e-3)
    shape = c.model_shape(vocab_size=1000)
    assert (shape.hidden_size, shape.num_hidden_layers, shape.vocab_size) == (128, 2, 1000)


def test_bad_yaml_file_is_one_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("max_steps: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(PreTrainingConfig, path)


@pytest.mark.parametrize("argv, expected", [
    (["--max-steps", "0"], "max_steps: Input should be greater than or equal to 1"),
    (["--mixed-precision", "fp8"], "mixed_precision: Input should be"),
    (["--set", "bogus=1"], "bogus: unknown field"),
    (["--learning-rate", "abc"], "learning_rate: Input should be a valid number"),
])
def test_cli_rejects_bad_config_fast_without_traceback(argv, expected, tmp_path):
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "syllabus", "pretrain", "--out", str(tmp_path), *argv],
                         capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - t0
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], out.stderr
    assert "Traceback" not in out.stderr
    assert elapsed < 1.0, f"took {elapsed:.2f}s"
