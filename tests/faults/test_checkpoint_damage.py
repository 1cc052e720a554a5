"""A damaged newest checkpoint (truncated, a byte flipped, manifest missing, a file deleted) is caught by its
manifest; ``--resume auto`` takes the previous valid one with a warning on stderr, never a silent load."""

import shutil

import pytest

from tests.faults.harness import finish, ok, pretrain_argv, start

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def saved_run(code_corpus, code_tokenizer, tmp_path_factory):
    """A run with checkpoints at steps 2 and 4."""
    out = tmp_path_factory.mktemp("two_checkpoints")
    ok(pretrain_argv(code_corpus, code_tokenizer, out, "--max-steps", "4", "--save-interval", "2"))
    return out


def damage(checkpoint, how: str) -> str:
    weights = checkpoint / "model.safetensors"
    data = weights.read_bytes()
    weights.unlink()  # a new inode: the hard-linked `final` alias keeps the good bytes
    if how == "truncated":
        weights.write_bytes(data[: len(data) // 2])
        return "model.safetensors has"
    if how == "byte_flipped":
        flipped = bytearray(data)
        flipped[len(flipped) // 2] ^= 0x01
        weights.write_bytes(bytes(flipped))
        return "model.safetensors does not match its checksum"
    weights.write_bytes(data)
    if how == "manifest_missing":
        (checkpoint / "manifest.json").unlink()
        return "manifest.json is missing"
    (checkpoint / "trainer_state.pt").unlink()
    return "trainer_state.pt is missing"


def test_damaged_newest_checkpoint_is_detected_and_the_previous_one_used(saved_run, code_corpus, code_tokenizer,
                                                                         tmp_path):
    runs = {}
    for how in ("truncated", "byte_flipped", "manifest_missing", "file_deleted"):  # one copy of the run each
        out = tmp_path / how
        shutil.copytree(saved_run, out)
        problem = damage(out / "checkpoints" / "step_4", how)
        runs[how] = out, problem, start(pretrain_argv(code_corpus, code_tokenizer, out, "--max-steps", "5",
                                                      "--save-interval", "2", "--resume", "auto"))
    for how, (out, problem, proc) in runs.items():  # run side by side: most of each is start-up
        code, err = finish(proc)
        assert code == 0, (how, err[-2000:])
        assert f"checkpoint {out / 'checkpoints' / 'step_4'} is not usable ({problem}" in err, how
        assert "trying the previous one" in err
        assert f"resumed from {out / 'checkpoints' / 'step_2'} at step 2" in err, how
