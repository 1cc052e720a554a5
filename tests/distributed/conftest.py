"""A 2-rank DDP run shared by the tests of this folder (the reference the others are compared with)."""

import pytest

from tests.distributed.launch import pretrain_args, run, torchrun_argv

STEPS = 12


@pytest.fixture(scope="session")
def ddp_reference(code_corpus, code_tokenizer, tmp_path_factory):
    """2 ranks × micro batch 4, uninterrupted, ``STEPS`` steps: its run folder."""
    out = tmp_path_factory.mktemp("ddp_reference")
    run(torchrun_argv(2, pretrain_args(code_corpus, code_tokenizer, out, "--batch-size", "4",
                                       "--max-steps", str(STEPS), "--strategy", "ddp")))
    return out
