"""The model's shape: a typed block plus named presets (tiny → large)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PresetName = Literal["tiny", "small", "base", "large"]
# Hugging Face architectures a ModelConfig can come from and be written back as (syllabus/hf/architectures.py).
Architecture = Literal["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"]


class RopeScaling(BaseModel):
    """Llama 3.1's RoPE frequency scaling (``rope_type: llama3``): wavelengths longer than
    ``original_max_position_embeddings / low_freq_factor`` are stretched by ``factor``, those shorter than
    ``… / high_freq_factor`` kept, the ones between blended (transformers' ``_compute_llama3_parameters``)."""

    model_config = ConfigDict(extra="forbid")

    rope_type: Literal["llama3"] = Field("llama3", description="the scaling rule (only llama3)")
    factor: float = Field(gt=0, description="how much long wavelengths are stretched")
    low_freq_factor: float = Field(gt=0, description="original context / this = the longest wavelength kept as is")
    high_freq_factor: float = Field(gt=0, description="original context / this = the shortest stretched wavelength")
    original_max_position_embeddings: int = Field(ge=1, description="the context the base model was trained at")


class ModelConfig(BaseModel):
    """A LLaMA-style decoder. Field names follow Hugging Face ``LlamaConfig`` where one exists; the extras of
    the architectures it imports (q/k/v bias, q/k norm, RoPE scaling, head width) are fields, not subclasses."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    vocab_size: int = Field(8192, ge=2, description="rows of the embedding (>= the tokenizer's size)")
    hidden_size: int = Field(256, ge=8, description="width of the residual stream")
    num_hidden_layers: int = Field(4, ge=1, description="decoder blocks")
    num_attention_heads: int = Field(4, ge=1, description="query heads per block")
    num_key_value_heads: int | None = Field(None, ge=1, description="grouped-query attention; None = heads")
    intermediate_size: int = Field(704, ge=8, description="SwiGLU hidden width")
    max_position_embeddings: int = Field(1024, ge=8, description="longest seq_len the model accepts")
    rope_theta: float = Field(10000.0, gt=0, description="RoPE base frequency")
    rms_norm_eps: float = Field(1e-5, gt=0, description="epsilon added inside RMSNorm")
    tie_word_embeddings: bool = Field(True, description="the output head shares the embedding matrix")
    initializer_range: float = Field(0.02, gt=0, description="standard deviation of the normal weight initialisation")
    head_dim: int | None = Field(None, ge=2, description="width of one attention head; None = hidden_size / "
                                                          "num_attention_heads (Qwen3 sets its own)")
    attention_bias: bool = Field(False, description="the q, k and v projections carry a bias (Qwen2)")
    qk_norm: bool = Field(False, description="RMSNorm over each head's queries and keys before RoPE (Qwen3)")
    rope_scaling: RopeScaling | None = Field(None, description="RoPE frequency scaling (Llama 3.1/3.2: llama3)")
    architecture: Architecture | None = Field(None, description="the Hugging Face architecture the weights came "
                                              "from, written back on export; None: syllabus's own (exported as "
                                              "LlamaForCausalLM)")
    sliding_window: int | None = Field(None, ge=1, description="a Mistral/Qwen sliding window, kept for export; "
                                       "syllabus attends over the whole sequence, so it must be >= every seq_len")

    @model_validator(mode="after")
    def _heads_divide(self) -> "ModelConfig":
        kv = self.num_key_value_heads or self.num_attention_heads
        if self.head_dim is None and self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size: {self.hidden_size} must be a multiple of num_attention_heads ({self.num_attention_heads})"
            )
        if self.num_attention_heads % kv:
            raise ValueError(
                f"num_attention_heads: {self.num_attention_heads} must be a multiple of num_key_value_heads ({kv})"
            )
        if self.head_size % 2:
            raise ValueError(f"head_dim: the head size ({self.head_size}) must be even for rotary embeddings")
        return self

    @property
    def kv_heads(self) -> int:
        return self.num_key_value_heads or self.num_attention_heads

    @property
    def head_size(self) -> int:
        """Width of one attention head: ``head_dim`` when given, else hidden_size / num_attention_heads."""
        return self.head_dim or self.hidden_size // self.num_attention_heads


# Shapes: tiny is for CPU demos and tests; small ~ GPT-2 small; base ~1.3B; large = LLaMA-7B.
PRESETS: dict[str, dict] = {
    "tiny": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=704,
                 max_position_embeddings=1024),
    "small": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=2048,
                  max_position_embeddings=2048, vocab_size=32000),
    "base": dict(hidden_size=2048, num_hidden_layers=24, num_attention_heads=16, intermediate_size=5504,
                 max_position_embeddings=4096, vocab_size=32000),
    "large": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, intermediate_size=11008,
                  max_position_embeddings=4096, vocab_size=32000, tie_word_embeddings=False),
}


def model_config_for(preset: str, **overrides) -> ModelConfig:
    """The preset's shape with ``overrides`` (any ``ModelConfig`` field) applied on top."""
    return ModelConfig(**{**PRESETS[preset], **overrides})
