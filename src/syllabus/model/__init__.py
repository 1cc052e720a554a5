"""The LLaMA-style decoder and its presets."""

from syllabus.model.attention import KVCache
from syllabus.model.transformer import Transformer

__all__ = ["KVCache", "Transformer"]
