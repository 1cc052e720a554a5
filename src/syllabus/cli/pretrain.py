"""``syllabus pretrain``: every ``PreTrainingConfig`` field is a flag (its description is the help)."""

from __future__ import annotations

import argparse
import logging

from syllabus.cli.options import add_config_flags, config_from_args
from syllabus.config.pretrain import PreTrainingConfig

# The names users of the original pre-training script type, beside the field names.
ALIASES = {"model_config_name": ["--model-size"], "micro_batch_size": ["--batch-size"], "out_dir": ["--out"]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_flags(parser, PreTrainingConfig, ALIASES)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(PreTrainingConfig, args)  # checked before torch is even imported
    from syllabus.train.pretrain import PreTrainer

    result = PreTrainer(config).train()
    where = result.final_checkpoint or config.out_dir
    logging.getLogger("syllabus").info(
        "%s at step %d (%d tokens); results in %s", "stopped by " + result.stopped_by if result.stopped_by
        else "finished", result.step, result.tokens_seen, where)
    return 0
