"""Typed configs (pydantic v2). Every error names the field path and what is allowed; no torch here."""

from syllabus.config.errors import ConfigError
from syllabus.config.load import load_config, validate
from syllabus.config.model import PRESETS, ModelConfig, model_config_for
from syllabus.config.pretrain import PreTrainingConfig

__all__ = ["PRESETS", "ConfigError", "ModelConfig", "PreTrainingConfig", "load_config", "model_config_for", "validate"]
