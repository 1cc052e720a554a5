"""``PreTrainingConfig``: everything one stage of training needs, under the names users already know.

One flat block, like the pre-training scripts it replaces (``max_steps``, ``micro_batch_size``, …),
plus an optional ``model`` block for a custom shape. The CLI flags of ``syllabus pretrain``, the YAML
file and a plan stage's overrides all use these field names; the descriptions are the help text.
"""

from __future__ import annotations

from typing import Literal

from pydantic import (BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError, field_validator,
                      model_validator)

from syllabus.config.model import ModelConfig, PresetName, model_config_for


RECORD_FIELDS = ("format", "text_field", "template", "calculator", "languages", "loss_on")


class ModelOverrides(BaseModel):
    """Any ``ModelConfig`` field, applied on top of the preset named by ``model_config_name``."""

    model_config = ConfigDict(extra="forbid")

    vocab_size: int | None = Field(None, ge=2,
                                 description="embedding rows (default: the tokenizer's size rounded up to 64)")
    hidden_size: int | None = Field(None, ge=8, description="width of the residual stream")
    num_hidden_layers: int | None = Field(None, ge=1, description="decoder blocks")
    num_attention_heads: int | None = Field(None, ge=1, description="query heads per block")
    num_key_value_heads: int | None = Field(None, ge=1, description="key/value heads per block (fewer than query "
                                                                    "heads: grouped-query attention)")
    intermediate_size: int | None = Field(None, ge=8, description="width of the SwiGLU feed-forward layer")
    max_position_embeddings: int | None = Field(None, ge=8,
                                              description="longest sequence the RoPE tables cover, in tokens")
    rope_theta: float | None = Field(None, gt=0, description="RoPE base frequency")
    rms_norm_eps: float | None = Field(None, gt=0, description="epsilon added inside RMSNorm")
    tie_word_embeddings: bool | None = Field(None, description="the output head shares the embedding matrix")
    initializer_range: float | None = Field(None, gt=0,
                                          description="standard deviation of the normal weight initialisation")


class PreTrainingConfig(BaseModel):
    """Every setting of one stage of training, checked at construction (``ValidationError`` naming the field).

    Units: lengths and batch sizes in tokens and sequences per rank, ``max_steps``/``warmup_steps``/intervals
    in optimizer steps, learning rates per step. Assignment is validated too. See ``docs/plan.md`` for every
    field, its type, default and meaning."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    # --- model
    model_config_name: PresetName = Field("tiny", description="size preset: tiny, small, base, large")
    model: ModelOverrides = Field(default_factory=ModelOverrides, description="custom shape over the preset")
    init_from: str | None = Field(None, description="start from a Hugging Face model: a folder (config.json, "
                                                    "safetensors, tokenizer.json) or hf:owner/name[@revision]; its "
                                                    "config sets the shape, its tokenizer.json the tokens")
    max_seq_length: int = Field(256, ge=8, description="tokens per training sequence")
    gradient_checkpointing: bool = Field(False, description="recompute activations in backward to save memory")
    compile: bool | Literal["auto"] = Field(
        "auto", description="torch.compile each transformer block (regional compilation); auto = compile when "
                            "the stage's measured eager steps say the warm-up pays back (never under fsdp)")
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
    packing: bool = Field(True, description="pack documents into full rows; false: whole documents truncated to "
                                            "max_seq_length and padded to the longest in the micro-batch (the loss "
                                            "is then the mean over the step's real target tokens)")
    format: Literal["text", "chat"] = Field("text", description="records: text (text_field) or chat (messages / "
                                                                "conversations rendered with their roles)")
    text_field: str = Field("text", description="JSONL/Parquet field holding the text")
    template: str | None = Field(None, description='fill {field} names from each record, e.g. '
                                                   '"Question: {question}\nAnswer: {answer}"')
    calculator: Literal["keep", "tags", "strip"] = Field("keep", description="GSM8K <<expr=value>> notes: keep, "
                                                                           "tags (<calculation>…</calculation>), strip")
    languages: list[str] = Field(default_factory=list, description="keep only records/files of these languages")
    loss_on: Literal["all", "assistant"] = Field("all", description="assistant: loss on assistant turns only "
                                                                    "(format chat)")
    num_workers: NonNegativeInt | Literal["auto"] = Field(
        "auto", description="worker processes per raw (unprepared) source that read, render and tokenize ahead "
                            "of the trainer; auto: the cores left free by the ranks' compute threads, shared among the "
                            "raw sources (at most 4 each; 0 where none is free); prepared shards need none")
    pin_memory: bool = Field(False, description="CUDA: copy each batch to page-locked memory so its transfer to "
                                                "the GPU is asynchronous (no effect on CPU)")

    # --- optimisation
    micro_batch_size: int = Field(8, ge=1, description="sequences per forward/backward pass on each rank")
    gradient_accumulation_steps: int = Field(1, ge=1, description="micro-batches summed into one optimizer step")
    max_steps: int = Field(1000, ge=1, description="optimizer steps")
    learning_rate: float = Field(6e-4, gt=0, description="peak learning rate, reached at the end of warmup")
    min_learning_rate: float = Field(6e-5, ge=0, description="learning rate at the end of the decay")
    warmup_steps: int = Field(100, ge=0, description="optimizer steps of linear warmup from 0 to learning_rate")
    lr_schedule: Literal["cosine", "constant", "wsd"] = Field("cosine", description="after warmup")
    decay_fraction: float = Field(0.2, gt=0, le=1, description="wsd: final fraction of steps spent decaying")
    weight_decay: float = Field(0.1, ge=0,
                              description="AdamW decoupled weight decay (matrices only; not norms or embeddings)")
    beta1: float = Field(0.9, ge=0, lt=1, description="AdamW first-moment decay")
    beta2: float = Field(0.95, ge=0, lt=1, description="AdamW second-moment decay")
    adam_eps: float = Field(1e-8, gt=0, description="AdamW epsilon")
    max_grad_norm: float = Field(1.0, ge=0, description="0 disables clipping")
    mixed_precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 where the hardware computes it natively and faster (CUDA with bf16; a CPU "
                            "with bf16 matmul instructions whose measured bf16 peak beats fp32), else fp16 with "
                            "loss scaling on CUDA, fp32 on the CPU; or fp32, bf16, fp16 as given")
    seed: int = Field(1337, ge=0, description="seeds model initialisation and data order")

    # --- run folder, checkpoints, evaluation, logging
    out_dir: str = Field("runs/pretrain", description="run folder: metrics, checkpoints, tokenizer")
    checkpoint_dir: str | None = Field(None, description="default: OUT_DIR/checkpoints")
    save_interval: int = Field(100, ge=1, description="steps between checkpoints")
    async_save: bool = Field(False, description="copy the state to host memory, then write the periodic "
                                                "checkpoint in the background while training goes on (FSDP2: "
                                                "torch.distributed.checkpoint.async_save)")
    keep_last_n_checkpoints: int = Field(3, ge=1,
                                       description="step checkpoints kept on disk (best and final are kept besides)")
    resume: str | None = Field(None, description="'auto' (newest valid checkpoint) or a checkpoint folder")
    eval_interval: int = Field(100, ge=1, description="steps between validation losses")
    eval_batches: int = Field(8, ge=1, description="batches per validation loss")
    log_interval: int = Field(10, ge=1, description="optimizer steps between metrics records and progress updates")
    use_tensorboard: bool = Field(False, description="also log scalars to TensorBoard (OUT_DIR/tensorboard)")
    use_wandb: bool = Field(False, description="also log to Weights & Biases")
    wandb_project: str = Field("syllabus", description="Weights & Biases project name")
    wandb_mode: Literal["online", "offline"] = Field("offline", description="offline works without network")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = cuda when available, else cpu")

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

    @field_validator("compile", mode="before")
    @classmethod
    def _compile(cls, value):
        """One line for a wrong value: true, false or auto (YAML's and the flag's spellings of true/false too)."""
        words = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False,
                 "0": False, "auto": "auto"}
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in words:
            return words[value.strip().lower()]
        raise ValueError("expected true, false or auto")

    @field_validator("num_workers", mode="before")
    @classmethod
    def _workers(cls, value):
        """One line for a wrong value, naming both forms (pydantic would give one line per union member)."""
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            return value
        raise ValueError("expected a whole number >= 0 or 'auto'")

    @model_validator(mode="before")
    @classmethod
    def _without_resolved_precision(cls, data):
        """A run folder's ``run_config.yaml`` reads back as a config: the ``precision`` block a run writes into
        it (what ``mixed_precision`` resolved to: a mapping with ``requested`` and ``chosen``) is a record of
        that run, not a setting, and is dropped here, as is the ``kernels`` block (a mapping with ``attention`` and
        ``loss_group``). Anything else named ``precision`` or ``kernels`` is still refused."""
        if not isinstance(data, dict):
            return data
        records = {"precision": {"requested", "chosen"}, "kernels": {"attention", "loss_group"}}
        return {k: v for k, v in data.items()
                if not (k in records and isinstance(v, dict) and records[k] <= set(v))}

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
        if self.init_from is not None:  # the checkpoint's config.json is the shape (checked where it is read)
            given = [f"model.{k}" for k in self.model.model_dump(exclude_none=True)]
            given += ["model_config_name"] if self.model_config_name != "tiny" else []
            if given:
                raise ValueError(f"init_from: the shape comes from the checkpoint's config.json; drop "
                                 f"{', '.join(given)}")
            return self
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

    def schedule_warnings(self) -> list[str]:
        """Settings that validate but are almost surely not meant; the caller logs each once, at the door."""
        if self.warmup_steps >= self.max_steps:
            return [f"warmup_steps ({self.warmup_steps}) >= max_steps ({self.max_steps}): the learning rate never "
                    f"reaches its peak {self.learning_rate:g}; lower warmup_steps below max_steps"]
        return []

    def record_options(self) -> dict:
        """The record options set explicitly (``SourceSpec`` fields for every source of the run)."""
        return {k: getattr(self, k) for k in RECORD_FIELDS if k in self.model_fields_set}

    @property
    def tokens_per_step(self) -> int:
        return self.micro_batch_size * self.gradient_accumulation_steps * self.max_seq_length

