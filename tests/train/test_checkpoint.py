import logging
import pickle

import pytest
import torch

from syllabus.config.model import model_config_for
from syllabus.model import Transformer
from syllabus.train import checkpoint as ckpt


def save(root, step, model):
    return ckpt.save_checkpoint(root, step, ckpt.model_state_for_saving(model), {"step": step, "x": torch.ones(3)},
                                json_files={"model_config.json": model.config.model_dump()})


@pytest.fixture
def model():
    torch.manual_seed(0)
    return Transformer(model_config_for("tiny", vocab_size=128, hidden_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, intermediate_size=64))


def test_round_trip_and_manifest(tmp_path, model):
    path = save(tmp_path, 5, model)
    assert ckpt.verify_checkpoint(path) is None
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "model.safetensors", "model_config.json",
                                                      "trainer_state.pt"]
    fresh = Transformer(model.config)
    ckpt.load_weights(fresh, ckpt.load_model_state(path))
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    assert ckpt.load_trainer_state(path)["step"] == 5
    assert not list(tmp_path.glob(".tmp-*"))


@pytest.mark.parametrize("damage", ["truncate", "flip", "manifest", "delete"])
def test_torn_checkpoint_falls_back_to_previous_with_warning(tmp_path, model, caplog, damage):
    save(tmp_path, 10, model)
    newest = save(tmp_path, 20, model)
    weights = newest / "model.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "flip":
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "manifest":
        (newest / "manifest.json").unlink()
    else:
        (newest / "trainer_state.pt").unlink()
    with caplog.at_level(logging.WARNING, logger="syllabus"):
        assert ckpt.latest_valid_checkpoint(tmp_path).name == "step_10"
    assert "step_20 is not usable" in caplog.text


def test_keep_last_n_and_aliases(tmp_path, model):
    for step in (1, 2, 3, 4):
        path = save(tmp_path, step, model)
        ckpt.prune_checkpoints(tmp_path, keep=2)
    best = ckpt.alias_checkpoint(path, "best")
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step_4", "step_3"]
    assert ckpt.verify_checkpoint(best) is None
    ckpt.prune_checkpoints(tmp_path, keep=1)
    assert ckpt.verify_checkpoint(best) is None  # hard links outlive the pruned step folder


class Boom:
    def __reduce__(self):
        return (print, ("code ran",))


def test_a_pickle_that_runs_code_is_refused(tmp_path, model, capsys):
    path = save(tmp_path, 1, model)
    (path / "trainer_state.pt").write_bytes(pickle.dumps({"step": Boom()}))
    with pytest.raises(ckpt.CheckpointError, match="refused"):
        ckpt.load_trainer_state(path)
    assert "code ran" not in capsys.readouterr().out


def test_checksums_taken_while_writing_match_the_files_and_catch_a_flip_in_any_file(tmp_path, model):
    import json

    import xxhash

    path = save(tmp_path, 7, model)
    manifest = json.loads((path / "manifest.json").read_text())["files"]
    for name, entry in manifest.items():
        data = (path / name).read_bytes()
        assert entry == {"size": len(data), "xxh3_128": xxhash.xxh3_128(data).hexdigest()}, name
    for name in manifest:  # the same size, one bit changed: only the checksum can tell
        data = bytearray((path / name).read_bytes())
        data[len(data) // 2] ^= 0x10
        (path / name).write_bytes(bytes(data))
        assert ckpt.verify_checkpoint(path) == f"{name} does not match its checksum"
        data[len(data) // 2] ^= 0x10
        (path / name).write_bytes(bytes(data))
    assert ckpt.verify_checkpoint(path) is None


def test_a_manifest_written_with_sha256_still_verifies(tmp_path, model):
    import hashlib
    import json

    path = save(tmp_path, 3, model)
    files = {name: {"size": (path / name).stat().st_size,
                    "sha256": hashlib.sha256((path / name).read_bytes()).hexdigest()}
             for name in json.loads((path / "manifest.json").read_text())["files"]}
    (path / "manifest.json").write_text(json.dumps({"step": 3, "files": files}))
    assert ckpt.verify_checkpoint(path) is None
    (path / "model_config.json").write_text((path / "model_config.json").read_text().replace("1", "2", 1))
    assert ckpt.verify_checkpoint(path) == "model_config.json does not match its checksum"


def test_equal_tensors_give_equal_checkpoint_files(tmp_path):
    """safetensors writes its metadata keys in a random order; the saved file must not depend on it."""
    import hashlib

    import torch
    from safetensors.torch import load_file

    from syllabus.train.checkpoint import save_checkpoint

    state = {"model.embed_tokens.weight": torch.arange(12.0).reshape(3, 4), "model.norm.weight": torch.ones(4)}
    digests = set()
    for i in range(12):
        folder = save_checkpoint(tmp_path / f"run{i}", 7, state, {"step": 7}, json_files={"run_config.json": {"a": 1}})
        digests.add(tuple(hashlib.sha256((folder / name).read_bytes()).hexdigest()
                          for name in ("model.safetensors", "trainer_state.pt", "manifest.json")))
        loaded = load_file(folder / "model.safetensors")
        assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert len(digests) == 1
