"""Tiny random Hugging Face checkpoints made offline with transformers (``save_pretrained``), and the two kinds
of tokenizer people continue from: Llama's (BOS ``<s>`` added in front, ``</s>``, ``<unk>``) and Qwen's (byte-level,
no BOS, ``<|endoftext|>``, chat tokens, ``<think>`` already in the vocabulary)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

TEXTS = ["The quick brown fox jumps over the lazy dog. 342 + 567 = 909.",
         "def add(a, b):\n    return a + b\n", "A man is sitting on a roof. He starts pulling up roofing."] * 20

# Shapes covering GQA, tied and untied heads, rope_scaling llama3, q/k/v biases, q/k norms, a head_dim of its own.
ARCHITECTURES = {
    "llama3_scaled": ("LlamaConfig", "LlamaForCausalLM", dict(
        num_key_value_heads=2, tie_word_embeddings=False, rope_theta=500000.0,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 32})),
    "llama_tied": ("LlamaConfig", "LlamaForCausalLM", dict(num_key_value_heads=4, tie_word_embeddings=True)),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(num_key_value_heads=1, sliding_window=None,
                                                            tie_word_embeddings=False)),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict(num_key_value_heads=2, tie_word_embeddings=True)),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(num_key_value_heads=2, head_dim=24, tie_word_embeddings=False)),
}


def hf_model(kind: str, vocab_size: int = 384, seed: int = 0, **overrides):
    """A tiny transformers model of ``kind`` with every weight random (norms, biases included), in fp32."""
    transformers = pytest.importorskip("transformers")
    config_class, model_class, extra = ARCHITECTURES[kind]
    config = getattr(transformers, config_class)(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=128, rms_norm_eps=1e-6, **{**extra, **overrides})
    torch.manual_seed(seed)
    model = getattr(transformers, model_class)(config).float().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
    return model


def llama_tokenizer() -> Tokenizer:
    """Llama-2-style: SentencePiece-like BPE with ``<unk>`` = 0, ``<s>`` = 1 added in front, ``</s>`` = 2."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Digits(individual_digits=True)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    tok.train_from_iterator(TEXTS, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    return tok


QWEN_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
                r"\s+(?!\S)|\s+")


def qwen_tokenizer() -> Tokenizer:
    """Qwen-style: byte-level BPE, no BOS, ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``, ``<think>``."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([  # Qwen2's own split (digits one by one), then bytes
        pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(TEXTS, trainer=trainer)
    tok.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tok.add_tokens(["<think>", "</think>"])
    return tok


CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}")


def save_tokenizer_folder(tok: Tokenizer, folder: Path, style: str) -> None:
    tok.save(str(folder / "tokenizer.json"))
    if style == "llama":
        config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
                  "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False}
    else:
        config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": None, "eos_token": "<|endoftext|>",
                  "pad_token": "<|endoftext|>", "chat_template": CHAT_TEMPLATE}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))


def hf_folder(tmp: Path, kind: str, *, style: str | None = None, seed: int = 0, **overrides) -> Path:
    """``save_pretrained`` of ``hf_model(kind)`` into ``tmp/kind`` with a tokenizer (llama style for Llama and
    Mistral, qwen style for Qwen unless ``style`` says) whose ids fit the model's vocabulary."""
    style = style or ("qwen" if kind.startswith("qwen") else "llama")
    tok = llama_tokenizer() if style == "llama" else qwen_tokenizer()
    bos = tok.token_to_id("<s>") if style == "llama" else None
    eos = tok.token_to_id("</s>" if style == "llama" else "<|endoftext|>")
    model = hf_model(kind, seed=seed, bos_token_id=bos, eos_token_id=eos, **overrides)
    folder = tmp / kind
    model.save_pretrained(folder, safe_serialization=True)
    save_tokenizer_folder(tok, folder, style)
    return folder
