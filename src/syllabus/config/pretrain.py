"""``PreTrainingConfig``: everything one stage of training needs, under the names users already know.

One flat block, like the pre-training scripts it replaces (``max_steps``, ``micro_batch_size``, …),
plus an optional ``model`` block for a custom shape. The CLI flags of ``syllabus pretrain``, the YAML
file and a plan stage's overrides all use these field names; the descriptions are the help text.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from syllabus.config.model import ModelConfig, PresetName, model_config_for


class ModelOverrides(BaseModel):
    """Any ``ModelConfig`` field, applied on top of the preset named by ``model_config_name``."""

    model_config = ConfigDict(extra="forbid")

    vocab_size: int | None = Field(None, ge=2)
    hidden_size: int | None = Field(None, ge=8)
    num_hidden_layers: int | None = Field(None, ge=1)
    num_attention_heads: int | None = Field(None, ge=1)
    num_key_value_heads: int | None = Field(None, ge=1)
    intermediate_size: int | None = Field(None, ge=8)
    max_position_embeddings: int | None = Field(None, ge=8)
    rope_theta: float | None = Field(None, gt=0)
    rms_norm_eps: float | None = Field(None, gt=0)
    tie_word_embeddings: bool | None = None
    initializer_range: float | None = Field(None, gt=0)


class PreTrainingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    # --- model
    model_config_name: PresetName = Field("tiny", description="size preset: tiny, small, base, large")
    model: ModelOverrides = Field(default_factory=ModelOverrides, description="custom shape over the preset")
    max_seq_length: int = Field(256, ge=8, description="tokens per training sequence")
    gradient_checkpointing: bool = Field(False, description="recompute activations in backward to save memory")
    compile: bool = Field(False, description="torch.compile the model")
    fused_kernels: bool = Field(False, description="torch.compile only RMSNorm and SwiGLU into fused kernels, the "
                                                   "rest eager (seconds to build; no effect with compile)")
    strategy: Literal["auto", "ddp", "fsdp"] = Field(
        "auto", description="with several ranks: ddp (replicated weights) or fsdp (FSDP2, sharded weights, "
                            "optimizer state and checkpoints); auto = ddp")
    dist_timeout_seconds: int = Field(600, ge=1, description="collective timeout: a rank that waits longer for "
                                                             "the others fails instead of hanging")

    # --- data
    data_dir: str | None = Field(None, description="folder of JSONL/text files, or of prepared shards")
    data_sources: list[str] = Field(default_factory=list, description="source paths (files, folders, globs)")
    data_mix_weights: list[float] = Field(default_factory=list, description="one weight per source, summing to 1")
    tokenizer: str | None = Field(None, description="tokenizer.json; trained on the data when absent")
    vocab_size: int = Field(8192, ge=256, description="vocabulary size when a tokenizer is trained")
    doc_attention: bool = Field(False, description="attend only within each packed document")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes")
    pin_memory: bool = Field(False, description="pin batches in page-locked memory (CUDA)")

    # --- optimisation
    micro_batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_steps: int = Field(1000, ge=1, description="optimizer steps")
    learning_rate: float = Field(6e-4, gt=0)
    min_learning_rate: float = Field(6e-5, ge=0)
    warmup_steps: int = Field(100, ge=0)
    lr_schedule: Literal["cosine", "constant", "wsd"] = Field("cosine", description="after warmup")
    decay_fraction: float = Field(0.2, gt=0, le=1, description="wsd: final fraction of steps spent decaying")
    weight_decay: float = Field(0.1, ge=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    adam_eps: float = Field(1e-8, gt=0)
    max_grad_norm: float = Field(1.0, ge=0, description="0 disables clipping")
    mixed_precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 where the hardware computes it natively and faster (CUDA with bf16; a CPU "
                            "with bf16 matmul instructions whose measured bf16 peak beats fp32), else fp16 with "
                            "loss scaling on CUDA, fp32 on the CPU; or fp32, bf16, fp16 as given")
    seed: int = Field(1337, ge=0)

    # --- run folder, checkpoints, evaluation, logging
    out_dir: str = Field("runs/pretrain", description="run folder: metrics, checkpoints, tokenizer")
    checkpoint_dir: str | None = Field(None, description="default: OUT_DIR/checkpoints")
    save_interval: int = Field(100, ge=1, description="steps between checkpoints")
    keep_last_n_checkpoints: int = Field(3, ge=1)
    resume: str | None = Field(None, description="'auto' (newest valid checkpoint) or a checkpoint folder")
    eval_interval: int = Field(100, ge=1, description="steps between validation losses")
    eval_batches: int = Field(8, ge=1, description="batches per validation loss")
    log_interval: int = Field(10, ge=1)
    use_tensorboard: bool = False
    use_wandb: bool = False
    wandb_project: str = "syllabus"
    wandb_mode: Literal["online", "offline"] = Field("offline", description="offline works without network")
    device: Literal["auto", "cpu", "cuda"] = "auto"

    # --- faults (see docs/reliability.md)
    max_nonfinite_skips: int = Field(10, ge=1, description="consecutive NaN/inf steps (each skipped) before "
                                                           "on_nonfinite acts")
    on_nonfinite: Literal["rollback", "stop"] = Field(
        "rollback", description="after max_nonfinite_skips: reload the newest valid checkpoint and lower the LR "
                                "(rollback), or stop the run (stop)")
    rollback_lr_factor: float = Field(0.5, gt=0, le=1, description="rollback: multiply the LR by this")
    max_rollbacks: int = Field(3, ge=0, description="rollbacks per stage before the run stops instead")
    on_save_error: Literal["stop", "continue"] = Field(
        "stop", description="a periodic checkpoint that cannot be written (e.g. disk full): stop the run, or warn "
                            "and continue without it; the final checkpoint is always required")

    @model_validator(mode="after")
    def _consistent(self) -> "PreTrainingConfig":
        if self.data_mix_weights and len(self.data_mix_weights) != len(self.data_sources):
            raise ValueError(f"data_mix_weights: {len(self.data_mix_weights)} weights for {len(self.data_sources)} "
                             f"data_sources; give one weight per source")
        if self.data_mix_weights and abs(sum(self.data_mix_weights) - 1.0) > 1e-6:
            raise ValueError(f"data_mix_weights: must sum to 1, got {sum(self.data_mix_weights):g}")
        if any(w < 0 for w in self.data_mix_weights):
            raise ValueError("data_mix_weights: every weight must be >= 0")
        if self.strategy == "fsdp" and self.mixed_precision == "fp16":
            raise ValueError("mixed_precision: fp16 is not supported with strategy fsdp; use bf16 or fp32")
        if self.min_learning_rate > self.learning_rate:
            raise ValueError(f"min_learning_rate: {self.min_learning_rate:g} exceeds learning_rate "
                             f"({self.learning_rate:g})")
        try:
            shape = self.model_shape()
        except ValidationError as err:
            raise ValueError("; ".join("model." + e["msg"].removeprefix("Value error, ") for e in err.errors())) from None
        if self.max_seq_length > shape.max_position_embeddings:
            raise ValueError(f"max_seq_length: {self.max_seq_length} exceeds the model's max_position_embeddings "
                             f"({shape.max_position_embeddings})")
        return self

    def model_shape(self, vocab_size: int | None = None) -> ModelConfig:
        """The model's ``ModelConfig``: the preset, the ``model`` overrides, then ``vocab_size`` if given."""
        overrides = self.model.model_dump(exclude_none=True)
        if vocab_size is not None and "vocab_size" not in overrides:
            overrides["vocab_size"] = vocab_size
        return model_config_for(self.model_config_name, **overrides)

    @property
    def tokens_per_step(self) -> int:
        return self.micro_batch_size * self.gradient_accumulation_steps * self.max_seq_length

