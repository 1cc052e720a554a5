"""syllabus: multi-stage language-model pre-training."""

from syllabus.config.pretrain import PreTrainingConfig

__all__ = ["PreTrainer", "PreTrainingConfig"]


def __getattr__(name: str):  # PreTrainer imports torch; the config alone does not
    if name == "PreTrainer":
        from syllabus.train.pretrain import PreTrainer

        return PreTrainer
    raise AttributeError(name)
