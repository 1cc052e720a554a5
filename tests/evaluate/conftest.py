"""A small tokenizer and tiny models for evaluation tests (seconds on a CPU)."""

from __future__ import annotations

import pytest
import torch

from syllabus.config.model import ModelConfig
from syllabus.data.tokenizer import train_tokenizer
from syllabus.model.transformer import Transformer

TEXTS = [
    "The quick brown fox jumps over the lazy dog. A man is sitting on a roof; he starts pulling up roofing.",
    "Question: Olivia has $23. She bought five bagels for $3 each. How much money does she have left?\n"
    "Answer: 5 x 3 = 15. 23 - 15 is 8. So the answer is 8.",
    "def add(a, b):\n    return a + b\n\nprint(add(342, 567))  # 909\n",
    "Which technology was developed most recently? cellular telephone, television, refrigerator, airplane.",
] * 20


@pytest.fixture(scope="session")
def tokenizer():
    return train_tokenizer(TEXTS, 400)


def tiny_model(vocab_size: int, seed: int = 0, **overrides) -> Transformer:
    torch.manual_seed(seed)
    fields = dict(vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, intermediate_size=128, max_position_embeddings=2048)
    return Transformer(ModelConfig(**{**fields, **overrides})).eval()


@pytest.fixture
def model(tokenizer) -> Transformer:
    return tiny_model(tokenizer.get_vocab_size())


@pytest.fixture
def make_model():
    """The tiny-model factory (a fixture, since test folders' conftest modules share one name)."""
    return tiny_model
