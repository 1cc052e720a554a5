"""A small tokenizer and a checkpoint-shaped folder for export tests."""

from __future__ import annotations

import pytest
import torch

from syllabus.config.model import ModelConfig
from syllabus.data.tokenizer import train_tokenizer
from syllabus.model.transformer import Transformer

TEXTS = ["The quick brown fox jumps over the lazy dog. 342 + 567 = 909.",
         "def add(a, b):\n    return a + b\n", "A man is sitting on a roof. He starts pulling up roofing."] * 20


@pytest.fixture(scope="session")
def tokenizer():
    return train_tokenizer(TEXTS, 320)


def tiny_model(vocab_size: int, *, tie: bool, seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=128, max_position_embeddings=128,
                         tie_word_embeddings=tie, rope_theta=5000.0)
    model = Transformer(config)
    with torch.no_grad():  # make the norms non-trivial so a missed weight shows up in the logits
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


@pytest.fixture
def make_model():
    """The tiny-model factory (a fixture, since test folders' conftest modules share one name)."""
    return tiny_model
