"""syllabus: multi-stage language-model pre-training."""

from syllabus.config.pretrain import PreTrainingConfig

from syllabus.config.plan import PlanConfig

__all__ = ["PlanConfig", "PreTrainer", "PreTrainingConfig", "run_plan"]


def __getattr__(name: str):  # PreTrainer and run_plan import torch; the configs alone do not
    if name == "PreTrainer":
        from syllabus.train.pretrain import PreTrainer

        return PreTrainer
    if name == "run_plan":
        from syllabus.plan.runner import run_plan

        return run_plan
    raise AttributeError(name)
