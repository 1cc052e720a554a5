"""The LLaMA-style decoder and its presets."""

from syllabus.model.transformer import KVCache, Transformer

__all__ = ["KVCache", "Transformer"]
