"""Export to a Hugging Face folder that ``transformers`` loads offline as ``LlamaForCausalLM``.

Written files: ``config.json`` (LlamaConfig fields), ``model.safetensors`` (parameter names are
already Hugging Face's; a tied ``lm_head`` is left out, as ``transformers`` re-ties it from the
embedding), ``generation_config.json``, ``tokenizer.json``, ``tokenizer_config.json`` and
``special_tokens_map.json`` (a ``PreTrainedTokenizerFast`` with our end-of-text and padding tokens).
The model has no separate beginning-of-sequence token: documents are separated by end-of-text, so
``bos_token_id`` is the end-of-text id, as in GPT-2, and the exported tokenizer *adds* it in front of every
encoded text (a ``TemplateProcessing`` post-processor, ``add_bos_token: true``). Every Hugging Face consumer
(``transformers``, lm-evaluation-harness, vLLM) thus feeds the model what it saw in training — a document
that follows an end-of-text token — and scores what syllabus's own evaluation scores (docs/lm-eval.md).
The checkpoint's own ``tokenizer.json`` is left as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, processors

from syllabus.data.tokenizer import eos_id, pad_id
from syllabus.model.transformer import Transformer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def hf_config(model: Transformer, *, bos: int, eos: int, pad: int, dtype: str) -> dict:
    c = model.config
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "num_hidden_layers": c.num_hidden_layers,
        "num_attention_heads": c.num_attention_heads,
        "num_key_value_heads": c.kv_heads,
        "head_dim": c.head_size,
        "hidden_act": "silu",
        "max_position_embeddings": c.max_position_embeddings,
        "initializer_range": c.initializer_range,
        "rms_norm_eps": c.rms_norm_eps,
        "rope_theta": c.rope_theta,  # transformers 4.x
        "rope_parameters": {"rope_type": "default", "rope_theta": c.rope_theta},  # transformers 5.x
        "rope_scaling": None,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "pretraining_tp": 1,
        "tie_word_embeddings": c.tie_word_embeddings,
        "use_cache": True,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "pad_token_id": pad,
        "torch_dtype": dtype,
        "dtype": dtype,
    }


def export_hf(model: Transformer, tokenizer, out: str | Path, *, dtype: str = "float32") -> Path:
    """Write ``model`` and ``tokenizer`` (a ``tokenizers.Tokenizer``) to the folder ``out``; returns it."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    eos, pad = eos_id(tokenizer), pad_id(tokenizer)
    eos_token, pad_token = tokenizer.id_to_token(eos), tokenizer.id_to_token(pad)

    state = {name: tensor.detach().to("cpu", DTYPES[dtype]).contiguous() for name, tensor in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})

    write_json(out / "config.json", hf_config(model, bos=eos, eos=eos, pad=pad, dtype=dtype))
    write_json(out / "generation_config.json", {"bos_token_id": eos, "eos_token_id": eos, "pad_token_id": pad,
                                                "do_sample": False})
    with_bos(tokenizer).save(str(out / "tokenizer.json"))
    special = {"bos_token": eos_token, "eos_token": eos_token, "pad_token": pad_token, "unk_token": eos_token}
    write_json(out / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **special,
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model.config.max_position_embeddings,
    })
    write_json(out / "special_tokens_map.json", special)
    return out


def with_bos(tokenizer) -> Tokenizer:
    """A copy of ``tokenizer`` whose ``encode`` puts the end-of-text token first (when special tokens are added)."""
    copy = Tokenizer.from_str(tokenizer.to_str())
    eos = eos_id(tokenizer)
    token = tokenizer.id_to_token(eos)
    copy.post_processor = processors.TemplateProcessing(single=f"{token} $A", pair=f"{token} $A {token} $B:1",
                                                        special_tokens=[(token, eos)])
    return copy


def export_checkpoint(checkpoint: str | Path, out: str | Path, *, format: str = "hf", dtype: str = "float32") -> Path:
    """Export a checkpoint folder (or a run folder's newest valid checkpoint)."""
    from syllabus.checkpoints import load_model

    if format != "hf":
        raise ValueError(f"export format must be 'hf', got {format!r}")
    model, tokenizer = load_model(checkpoint)
    return export_hf(model, tokenizer, out, dtype=dtype)


def write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2) + "\n")
