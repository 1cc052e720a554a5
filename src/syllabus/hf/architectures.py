"""``config.json`` ↔ ``ModelConfig`` for the architectures syllabus continues from and writes back.

Pure data (no torch): ``model_config_from_hf`` reads a Hugging Face config (transformers 4.x ``rope_theta`` /
``rope_scaling`` or 5.x ``rope_parameters``) into a ``ModelConfig`` whose ``architecture`` remembers where it
came from; ``hf_config_of`` writes one back with that architecture's own fields, so a Qwen2 model is exported
as ``Qwen2ForCausalLM``. Anything the decoder cannot compute exactly is refused in one line naming it.
"""

from __future__ import annotations

from syllabus.config.errors import ConfigError
from syllabus.config.model import ModelConfig, RopeScaling

SUPPORTED = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM")
MODEL_TYPES = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "Qwen2ForCausalLM": "qwen2",
               "Qwen3ForCausalLM": "qwen3"}


def model_config_from_hf(cfg: dict, where: str = "model.from") -> ModelConfig:
    """The ``ModelConfig`` of a Hugging Face ``config.json`` (a dict). Raises ``ConfigError`` (one line, prefixed
    ``where``) for an unsupported architecture, activation, RoPE type, bias layout or sliding attention."""
    names = cfg.get("architectures") or []
    architecture = names[0] if names else None
    if architecture not in SUPPORTED:
        raise ConfigError(f"{where}: architecture {architecture or cfg.get('model_type', 'unknown')} is not "
                          f"supported (supported: {', '.join(SUPPORTED)})")
    if cfg.get("hidden_act", "silu") != "silu":
        raise ConfigError(f"{where}: hidden_act {cfg['hidden_act']!r} is not supported (only silu)")
    bias = architecture == "Qwen2ForCausalLM"  # Qwen2's q/k/v always carry biases; its o_proj never does
    if architecture != "Qwen2ForCausalLM" and (cfg.get("attention_bias") or cfg.get("mlp_bias")):
        raise ConfigError(f"{where}: attention_bias/mlp_bias true is not supported for {architecture}")
    heads = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim")
    theta, scaling = _rope(cfg, where)
    return ModelConfig(
        vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_size"], num_hidden_layers=cfg["num_hidden_layers"],
        num_attention_heads=heads, num_key_value_heads=cfg.get("num_key_value_heads") or heads,
        intermediate_size=cfg["intermediate_size"], max_position_embeddings=cfg["max_position_embeddings"],
        rope_theta=theta, rope_scaling=scaling, rms_norm_eps=cfg.get("rms_norm_eps", 1e-6),
        tie_word_embeddings=cfg.get("tie_word_embeddings", False),
        initializer_range=cfg.get("initializer_range", 0.02),
        head_dim=head_dim if head_dim and head_dim != cfg["hidden_size"] // heads else None,
        attention_bias=bias, qk_norm=architecture == "Qwen3ForCausalLM", architecture=architecture,
        sliding_window=_sliding_window(cfg, architecture))


def _rope(cfg: dict, where: str) -> tuple[float, RopeScaling | None]:
    params = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    theta = params.get("rope_theta", cfg.get("rope_theta", 10000.0))
    kind = params.get("rope_type", params.get("type", "default"))
    if kind == "default":
        return theta, None
    if kind != "llama3":
        raise ConfigError(f"{where}: rope_scaling type {kind!r} is not supported (supported: default, llama3)")
    return theta, RopeScaling(**{k: params[k] for k in RopeScaling.model_fields if k in params})


def _sliding_window(cfg: dict, architecture: str) -> int | None:
    if architecture == "MistralForCausalLM":
        return cfg.get("sliding_window")
    if architecture in ("Qwen2ForCausalLM", "Qwen3ForCausalLM") and cfg.get("use_sliding_window"):
        return cfg.get("sliding_window")
    return None


def check_sliding_window(config: ModelConfig, longest_seq_len: int, where: str = "model.from") -> None:
    """Refuse (``ConfigError``) a sliding window shorter than the longest sequence trained: syllabus attends over
    the whole sequence, which equals windowed attention only while every query sees no farther than the window."""
    if config.sliding_window is not None and config.sliding_window < longest_seq_len:
        raise ConfigError(f"{where}: {config.architecture} has a sliding window of {config.sliding_window} tokens, "
                          f"shorter than the longest seq_len {longest_seq_len}; syllabus attends over whole "
                          f"sequences, so keep every seq_len <= {config.sliding_window}")


def hf_config_of(config: ModelConfig, *, bos: int | None, eos: int, pad: int, dtype: str) -> dict:
    """``config.json`` for ``config`` as its own architecture (``LlamaForCausalLM`` for syllabus's own models),
    with the token ids given; readable by transformers 4.x (``rope_theta``/``rope_scaling``) and 5.x
    (``rope_parameters``)."""
    c = config
    architecture = c.architecture or "LlamaForCausalLM"
    scaling = c.rope_scaling.model_dump() if c.rope_scaling else None
    out = {
        "architectures": [architecture], "model_type": MODEL_TYPES[architecture], "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size, "intermediate_size": c.intermediate_size,
        "num_hidden_layers": c.num_hidden_layers, "num_attention_heads": c.num_attention_heads,
        "num_key_value_heads": c.kv_heads, "head_dim": c.head_size, "hidden_act": "silu",
        "max_position_embeddings": c.max_position_embeddings, "initializer_range": c.initializer_range,
        "rms_norm_eps": c.rms_norm_eps,
        "rope_theta": c.rope_theta, "rope_scaling": scaling,  # transformers 4.x
        "rope_parameters": {**(scaling or {"rope_type": "default"}), "rope_theta": c.rope_theta},  # 5.x
        "attention_dropout": 0.0, "tie_word_embeddings": c.tie_word_embeddings, "use_cache": True,
        "bos_token_id": bos, "eos_token_id": eos, "pad_token_id": pad, "torch_dtype": dtype, "dtype": dtype,
    }
    if architecture == "LlamaForCausalLM":
        out.update(attention_bias=False, mlp_bias=False, pretraining_tp=1)
    elif architecture == "MistralForCausalLM":
        out.update(sliding_window=c.sliding_window)
    else:  # Qwen2 / Qwen3
        out.update(use_sliding_window=c.sliding_window is not None, sliding_window=c.sliding_window,
                   max_window_layers=c.num_hidden_layers)
        if architecture == "Qwen3ForCausalLM":
            out.update(attention_bias=False)
    return out
