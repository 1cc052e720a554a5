"""A LLaMA-style decoder: RMSNorm, rotary embeddings, SwiGLU, grouped-query attention, SDPA.

Parameter names map one-to-one onto Hugging Face ``LlamaForCausalLM`` (``model.layers.0.self_attn.q_proj``,
…, ``lm_head``), and rotary embeddings use the same half-split layout, so a state dict moves between the
two unchanged. The file reads top to bottom along a forward pass; wrapping (FSDP, compile) lives in the
trainer, not here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from syllabus.config.model import ModelConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        # Normalise in fp32 (as LLaMA does), scale in the input's dtype.
        return self.weight * F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps).to(x.dtype)


def rotary_tables(head_dim: int, max_len: int, theta: float) -> tuple[Tensor, Tensor]:
    """cos and sin of shape [max_len, head_dim] in the half-split layout (first half, second half)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate [B, heads, T, head_dim] by position; cos/sin are [T, head_dim]."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)  # in x's dtype: no fp32 copy under autocast


class KVCache:
    """Keys and values of every layer for incremental decoding, pre-allocated to ``max_len``."""

    def __init__(self, config: ModelConfig, batch_size: int, max_len: int, device, dtype):
        shape = (batch_size, config.kv_heads, max_len, config.head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.num_hidden_layers)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.num_hidden_layers)]
        self.length = 0  # positions filled so far

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        end = self.length + k.shape[2]
        self.keys[layer][:, :, self.length:end] = k
        self.values[layer][:, :, self.length:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]


class Attention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_heads, self.n_kv, self.head_dim = config.num_attention_heads, config.kv_heads, config.head_dim
        d = config.hidden_size
        self.q_proj = nn.Linear(d, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d, self.n_kv * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, self.n_kv * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, d, bias=False)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None,
                cache: KVCache | None = None, layer: int = 0) -> Tensor:
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_kv, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv, self.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.update(layer, k, v)
        is_causal = mask is None and k.shape[2] == T and T > 1
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal,
                                           enable_gqa=self.n_kv != self.n_heads)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))


class MLP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        d, h = config.hidden_size, config.intermediate_size
        self.gate_proj = nn.Linear(d, h, bias=False)
        self.up_proj = nn.Linear(d, h, bias=False)
        self.down_proj = nn.Linear(h, d, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


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


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.gradient_checkpointing = False
        self.model = Decoder(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        cos, sin = rotary_tables(config.head_dim, config.max_position_embeddings, config.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Normal(0, initializer_range); residual output projections scaled by 1/sqrt(2·layers)."""
        std = self.config.initializer_range
        for name, p in self.named_parameters():
            if name.endswith("layernorm.weight") or name == "model.norm.weight":
                nn.init.ones_(p)
            elif name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(p, std=std / math.sqrt(2 * self.config.num_hidden_layers))
            else:
                nn.init.normal_(p, std=std)

    def forward(self, input_ids: Tensor, labels: Tensor | None = None, *, doc_ids: Tensor | None = None,
                cache: KVCache | None = None) -> Tensor:
        """Logits [B, T, vocab], or the mean cross-entropy over labels != -100 when labels are given."""
        B, T = input_ids.shape
        start = cache.length if cache is not None else 0
        if start + T > self.config.max_position_embeddings:
            raise ValueError(f"sequence of {start + T} tokens exceeds max_position_embeddings "
                             f"({self.config.max_position_embeddings})")
        cos, sin = self.rope_cos[start:start + T], self.rope_sin[start:start + T]
        mask = attention_mask(T, start, doc_ids, input_ids.device)
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
        return linear_cross_entropy(x.reshape(B * T, -1), self.lm_head.weight, labels.reshape(-1))

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


def linear_cross_entropy(x: Tensor, weight: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of ``x @ weight.T`` over labels != -100, the logits made a chunk of rows at a time.

    The same value and gradients as ``F.cross_entropy(lm_head(x).float(), labels)`` (matmuls in the
    autocast dtype, softmax in fp32), but the [tokens, vocab] fp32 logits never exist: when gradients are
    needed they are computed chunk by chunk in the forward pass, so backward is two multiplications.
    """
    device = x.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
    x, weight = x.to(dtype), weight.to(dtype)
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    return _LinearCrossEntropy.apply(x, weight, labels, needs_grad)


class _LinearCrossEntropy(torch.autograd.Function):
    CHUNK_ELEMENTS = 2**22  # fp32 logits per chunk (16 MB)

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, labels: Tensor, needs_grad: bool) -> Tensor:
        valid = labels != -100
        count = valid.sum().clamp(min=1).float()
        rows = max(256, _LinearCrossEntropy.CHUNK_ELEMENTS // weight.shape[0])
        loss = torch.zeros((), device=x.device)
        dx = torch.empty_like(x) if needs_grad else None
        dw = torch.zeros(weight.shape, device=x.device, dtype=torch.float32) if needs_grad else None
        with torch.autocast(x.device.type, enabled=False):
            for i in range(0, x.shape[0], rows):
                xc, lc, vc = x[i:i + rows], labels[i:i + rows].clamp(min=0)[:, None], valid[i:i + rows]
                logits = (xc @ weight.T).float()
                lse = torch.logsumexp(logits, dim=-1)
                loss += torch.where(vc, lse - logits.gather(1, lc)[:, 0], 0.0).sum()
                if needs_grad:  # d loss / d logits = (softmax - onehot) / count, for valid rows
                    grad = torch.exp_(logits.sub_(lse[:, None])).scatter_add_(1, lc, torch.full_like(lse, -1.0)[:, None])
                    grad = grad.mul_((vc / count)[:, None]).to(x.dtype)
                    dx[i:i + rows] = grad @ weight
                    dw += (grad.T @ xc).float()  # summed over chunks in fp32
        ctx.save_for_backward(dx, dw)
        return loss / count

    @staticmethod
    def backward(ctx, grad_loss: Tensor):
        dx, dw = ctx.saved_tensors
        return (dx * grad_loss).to(dx.dtype), (dw * grad_loss).to(dx.dtype), None, None


def attention_mask(T: int, start: int, doc_ids: Tensor | None, device) -> Tensor | None:
    """None when plain causal attention will do; else a boolean [B|1, 1, T, start+T] mask.

    With ``doc_ids`` a token attends only to earlier tokens of its own document.
    """
    if doc_ids is None and (start == 0 or T == 1):
        return None
    q_pos = torch.arange(start, start + T, device=device)
    causal = q_pos[:, None] >= torch.arange(start + T, device=device)[None, :]
    if doc_ids is None:
        return causal[None, None]
    same_doc = doc_ids[:, :, None] == doc_ids[:, None, :]
    return (causal[None] & same_doc)[:, None]
