"""A LLaMA-style decoder: RMSNorm, rotary embeddings, SwiGLU, grouped-query attention, SDPA.

Parameter names map one-to-one onto Hugging Face ``LlamaForCausalLM`` (``model.layers.0.self_attn.q_proj``,
…, ``lm_head``), and rotary embeddings use the same half-split layout, so a state dict moves between the
two unchanged. This file holds the model's frame (MLP, block, decoder, initialisation, ``Transformer``); its
parts live beside it: ``norm.py`` (RMSNorm), ``rotary.py``, ``attention.py`` (the attention module, its kernels,
KV cache and masks) and ``loss.py`` (the LM head's fused cross-entropy). Wrapping (FSDP, compile) lives in the
trainer, not here.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from syllabus.config.model import ModelConfig
from syllabus.model.attention import Attention, KVCache, causal_or_document_mask, padded_positions
from syllabus.model.fused import fused_swiglu, swiglu
from syllabus.model.kernels import DEFAULT, KernelChoice
from syllabus.model.loss import linear_cross_entropy
from syllabus.model.norm import RMSNorm
from syllabus.model.rotary import rotary_tables


class MLP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        d, h = config.hidden_size, config.intermediate_size
        self.gate_proj = nn.Linear(d, h, bias=False)
        self.up_proj = nn.Linear(d, h, bias=False)
        self.down_proj = nn.Linear(h, d, bias=False)
        self.fused = False  # Transformer.use_fused_kernels

    def forward(self, x: Tensor) -> Tensor:
        act = fused_swiglu if self.fused and self.training else swiglu
        return self.down_proj(act(self.gate_proj(x), self.up_proj(x)))


class Block(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None,
                cache: KVCache | None = None, layer: int = 0) -> Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache, layer)
        return x + self.mlp(self.post_attention_layernorm(x))


class Decoder(nn.Module):
    """The body (``model.`` in Hugging Face names): embeddings, blocks, final norm."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


def init_parameter_(name: str, p: Tensor, config: ModelConfig) -> None:
    """The initial value of parameter ``name``, drawn into ``p`` in place from the global RNG: norms 1 (q/k norms
    too), biases 0, residual output projections (``o_proj``, ``down_proj``) Normal(0, initializer_range /
    sqrt(2 * layers)) (GPT-2's scaling), everything else Normal(0, initializer_range)."""
    std = config.initializer_range
    if name.endswith(("layernorm.weight", "_norm.weight")) or name == "model.norm.weight":
        nn.init.ones_(p)
    elif name.endswith(".bias"):
        nn.init.zeros_(p)
    elif name.endswith(("o_proj.weight", "down_proj.weight")):
        nn.init.normal_(p, std=std / math.sqrt(2 * config.num_hidden_layers))
    else:
        nn.init.normal_(p, std=std)


class Transformer(nn.Module):
    """The LLaMA-style decoder, with the parameter names of Hugging Face's ``LlamaForCausalLM``.

    Unlike that model, ``forward`` takes ``labels`` **already shifted**: ``labels[:, t]`` is the token that
    follows ``input_ids[:, t]`` (the data pipeline cuts rows of ``seq_len + 1`` tokens into ``row[:-1]`` and
    ``row[1:]``). Passing Hugging Face-style labels (``labels = input_ids``) trains the model to copy its input:
    shift them first (``labels = input_ids[:, 1:]`` against ``input_ids[:, :-1]``).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.gradient_checkpointing = False
        self.kernels: KernelChoice = DEFAULT  # use_kernels
        self.model = Decoder(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        cos, sin = rotary_tables(config.head_size, config.max_position_embeddings, config.rope_theta,
                                 config.rope_scaling)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every parameter, in ``named_parameters`` order, as ``init_parameter_`` says."""
        for name, p in self.named_parameters():
            init_parameter_(name, p, self.config)

    def forward(self, input_ids: Tensor, labels: Tensor | None = None, *, doc_ids: Tensor | None = None,
                cache: KVCache | None = None, attention_mask: Tensor | None = None) -> Tensor:
        """Logits, or the mean cross-entropy over the labels that are not -100.

        ``input_ids``: int64 [B, T] token ids, T + cached positions <= ``max_position_embeddings`` (else
        ``ValueError``). ``labels``: int64 [B, T], **already shifted** (``labels[:, t]`` follows
        ``input_ids[:, t]``; -100 is ignored), not Hugging Face's unshifted convention. ``doc_ids``: int32
        [B, T] document index of each position in a packed row; attention stays within a document. ``cache``:
        a ``KVCache`` to append this call's keys and values to (its ``length`` advances by T).
        ``attention_mask``: bool or 0/1 [B, cached + T] marking real tokens; padding (0) is never attended to
        and does not count as a position, so a left-padded row is computed as if it were alone.

        Returns float logits [B, T, vocab_size] in the autocast dtype when ``labels`` is None, else a scalar
        float32 loss (mean over counted tokens)."""
        B, T = input_ids.shape
        start = cache.length if cache is not None else 0
        if start + T > self.config.max_position_embeddings:
            raise ValueError(f"sequence of {start + T} tokens exceeds max_position_embeddings "
                             f"({self.config.max_position_embeddings})")
        if attention_mask is None:
            cos, sin = self.rope_cos[start:start + T], self.rope_sin[start:start + T]
            mask = causal_or_document_mask(T, start, doc_ids, input_ids.device)
        else:
            cos, sin, mask = padded_positions(attention_mask.bool(), T, start, self.rope_cos, self.rope_sin)
        x = self.model.embed_tokens(input_ids)
        for i, block in enumerate(self.model.layers):
            if self.gradient_checkpointing and self.training:
                x = checkpoint(block, x, cos, sin, mask, use_reentrant=False)
            else:
                x = block(x, cos, sin, mask, cache, i)
        if cache is not None:
            cache.length += T
        x = self.model.norm(x)
        if labels is None:
            return self.lm_head(x)
        group = self.kernels.loss_group_elements(x.dtype if not torch.is_autocast_enabled(x.device.type) else
                                                 torch.get_autocast_dtype(x.device.type), x.shape[-1],
                                                 self.lm_head.weight.shape[0], B * T)
        return linear_cross_entropy(x.reshape(B * T, -1), self.lm_head.weight, labels.reshape(-1), group)

    def use_kernels(self, choice: KernelChoice) -> None:
        """Compute attention and the loss with the kernels ``choice`` names per shape class (``model/kernels.py``;
        the trainer's comes from ``train/calibration.py``)."""
        self.kernels = choice
        for module in self.modules():
            if isinstance(module, Attention):
                module.kernels = choice

    def use_fused_kernels(self, enabled: bool = True) -> None:
        """Train with RMSNorm and SwiGLU compiled into fused kernels (``model/fused.py``); eval stays eager."""
        for module in self.modules():
            if isinstance(module, (RMSNorm, MLP)):
                module.fused = enabled

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            n -= self.model.embed_tokens.weight.numel()
        return n

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token: 6·(matmul parameters) + 12·layers·hidden·seq_len for attention."""
        c = self.config
        matmul_params = self.num_parameters(exclude_embeddings=True)
        if c.tie_word_embeddings:
            matmul_params += self.lm_head.weight.numel()
        return 6.0 * matmul_params + 12.0 * c.num_hidden_layers * c.hidden_size * seq_len
