"""Export to a Hugging Face folder that ``transformers`` loads offline, as the architecture the model came from.

Written files: ``config.json`` (``syllabus.hf.architectures.hf_config_of``: ``LlamaForCausalLM`` for syllabus's own
models, the imported architecture otherwise, so Qwen stays Qwen), ``model.safetensors`` (parameter names are
already Hugging Face's; a tied ``lm_head`` is left out, as ``transformers`` re-ties it from the embedding),
``generation_config.json``, ``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json`` (a
``PreTrainedTokenizerFast``).

Special tokens keep the tokenizer's own names (``special_token_names``): bos, eos, unk and pad are what it calls
them, and ``config.json``'s ids are theirs. BOS follows what training fed the model:
- a tokenizer that puts BOS in front (Llama's ``<s>``) is written as is, ``add_bos_token: true``;
- an imported model whose tokenizer adds none (Qwen) is written as is, no BOS;
- syllabus's own model with a tokenizer that adds none: documents were separated by end-of-text, so
  ``bos_token_id`` is the end-of-text id, as in GPT-2, and the exported tokenizer *adds* it in front of every
  encoded text (a ``TemplateProcessing`` post-processor, ``add_bos_token: true``). Every Hugging Face consumer
  (``transformers``, lm-evaluation-harness, vLLM) thus feeds the model what it saw in training — a document that
  follows an end-of-text token — and scores what syllabus's own evaluation scores (docs/lm-eval.md).
The checkpoint's own ``tokenizer.json`` is left as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, processors

from syllabus.data.tokenizer import eos_id, special_token_names
from syllabus.hf.architectures import hf_config_of
from syllabus.model.transformer import Transformer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def export_hf(model: Transformer, tokenizer, out: str | Path, *, dtype: str = "float32") -> Path:
    """Write ``model`` and ``tokenizer`` (a ``tokenizers.Tokenizer``) to the folder ``out``; returns it."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = special_token_names(tokenizer)
    eos_as_bos = names["bos"] is None and model.config.architecture is None
    if eos_as_bos:  # syllabus's own model: each document followed an end-of-text token
        names["bos"] = names["eos"]
    ids = {role: None if name is None else tokenizer.token_to_id(name) for role, name in names.items()}

    state = {name: tensor.detach().to("cpu", DTYPES[dtype]).contiguous() for name, tensor in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})

    write_json(out / "config.json", hf_config_of(model.config, bos=ids["bos"], eos=ids["eos"], pad=ids["pad"],
                                                 dtype=dtype))
    write_json(out / "generation_config.json", {"bos_token_id": ids["bos"], "eos_token_id": ids["eos"],
                                                "pad_token_id": ids["pad"], "do_sample": False})
    (with_bos(tokenizer) if eos_as_bos else tokenizer).save(str(out / "tokenizer.json"))
    special = {f"{role}_token": name for role, name in names.items() if name is not None}
    if eos_as_bos and names["unk"] is None:
        special["unk_token"] = names["eos"]  # as exports before kept it
    write_json(out / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **special,
        "add_bos_token": names["bos"] is not None,
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
