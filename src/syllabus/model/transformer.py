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

from syllabus.config.model import ModelConfig, RopeScaling
from syllabus.model.fused import eager_rms_norm, fused_rms_norm, fused_swiglu, rms_norm, swiglu
from syllabus.model.kernels import DEFAULT, KernelChoice
from syllabus.model.loss import linear_cross_entropy
from syllabus.model.rope_scaling import scaled_inv_freq


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.fused = False  # Transformer.use_fused_kernels

    def forward(self, x: Tensor) -> Tensor:
        # Normalise in fp32 (as LLaMA does); return the dtype the next matmul computes in.
        device = x.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
        if self.fused and self.training:
            return fused_rms_norm(x, self.weight, self.eps, dtype)
        if torch.compiler.is_compiling():  # inductor fuses the plain definition itself
            return rms_norm(x, self.weight, self.eps, dtype)
        return eager_rms_norm(x, self.weight, self.eps, dtype)


def rotary_tables(head_dim: int, max_len: int, theta: float,
                  scaling: RopeScaling | None = None) -> tuple[Tensor, Tensor]:
    """cos and sin of shape [max_len, head_dim] in the half-split layout (first half, second half); frequencies
    stretched by ``scaling`` when given (``model/rope_scaling.py``)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    if scaling is not None:
        inv_freq = scaled_inv_freq(inv_freq, scaling)
    angles = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the last dimension (head_dim) by position; cos/sin broadcast against x ([T, head_dim] for
    [B, heads, T, head_dim], [T, 1, head_dim] for [B, T, heads, head_dim]). Computed in x's dtype."""
    return _Rotary.apply(x, cos.to(x.dtype), sin.to(x.dtype))


class _Rotary(torch.autograd.Function):
    """x·cos + rotate_half(x)·sin in three passes over x (no concatenated copy, no negation). The gradient
    is the rotation by minus the angle, because the tables repeat their angles in both halves."""

    @staticmethod
    def forward(ctx, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        ctx.save_for_backward(cos, sin)
        return _rotate(x, cos, sin, 1.0)

    @staticmethod
    def backward(ctx, grad: Tensor):
        cos, sin = ctx.saved_tensors
        return _rotate(grad, cos, sin, -1.0), None, None


def _rotate(x: Tensor, cos: Tensor, sin: Tensor, sign: float) -> Tensor:
    half = x.shape[-1] // 2
    out = x * cos
    out[..., :half].addcmul_(x[..., half:], sin[..., :half], value=-sign)
    out[..., half:].addcmul_(x[..., :half], sin[..., half:], value=sign)
    return out


class KVCache:
    """Keys and values of every layer for incremental decoding, pre-allocated to ``max_len`` positions.

    ``keys[layer]`` and ``values[layer]`` are [batch_size, kv_heads, max_len, head_dim] tensors (2 × layers ×
    that shape); ``length`` is the number of positions filled. With ``dtype=None`` a layer's buffers are
    allocated at its first write, in the dtype and on the device of the keys computed there: the compute
    dtype, which is not the parameters' under autocast or FSDP2's ``MixedPrecisionPolicy`` (its parameters
    are fp32 shards outside a forward, while k/v come out in bf16). ``Transformer.forward(..., cache=cache)``
    writes the new positions and advances ``length``; writing past ``max_len`` fails with an index error, so
    size it to prompt + new tokens."""

    def __init__(self, config: ModelConfig, batch_size: int, max_len: int, device=None, dtype=None):
        self.shape = (batch_size, config.kv_heads, max_len, config.head_size)
        layers = config.num_hidden_layers
        allocate = dtype is not None
        self.keys = [torch.zeros(self.shape, device=device, dtype=dtype) if allocate else None for _ in range(layers)]
        self.values = [torch.zeros(self.shape, device=device, dtype=dtype) if allocate else None
                       for _ in range(layers)]
        self.length = 0  # positions filled so far

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        if self.keys[layer] is None:
            self.keys[layer] = k.new_zeros(self.shape)
            self.values[layer] = v.new_zeros(self.shape)
        end = self.length + k.shape[2]
        self.keys[layer][:, :, self.length:end] = k
        self.values[layer][:, :, self.length:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]


class Attention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_heads, self.n_kv, self.head_dim = config.num_attention_heads, config.kv_heads, config.head_size
        d, bias = config.hidden_size, config.attention_bias
        self.q_proj = nn.Linear(d, self.n_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(d, self.n_kv * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(d, self.n_kv * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, d, bias=False)
        if config.qk_norm:  # Qwen3: each head's queries and keys normalised before RoPE
            self.q_norm = RMSNorm(self.head_dim, config.rms_norm_eps)
            self.k_norm = RMSNorm(self.head_dim, config.rms_norm_eps)
        self.kernels: KernelChoice = DEFAULT  # Transformer.use_kernels

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None,
                cache: KVCache | None = None, layer: int = 0) -> Tensor:
        B, T, _ = x.shape
        H, KV = self.n_heads, self.n_kv
        # One matmul for q, k and v (the three weights stay separate parameters, as Hugging Face names them).
        bias = self.q_proj.bias
        qkv = F.linear(x, torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight]),
                       None if bias is None else torch.cat([bias, self.k_proj.bias, self.v_proj.bias]))
        # split, not slicing: its backward is one cat, where each slice's would zero-fill a full-size gradient
        qk, v = qkv.view(B, T, H + 2 * KV, self.head_dim).split([H + KV, KV], dim=2)
        if hasattr(self, "q_norm"):
            q, k = qk.split([H, KV], dim=2)
            qk = torch.cat([self.q_norm(q), self.k_norm(k)], dim=2)
        # q and k rotated together; cos/sin are [T, hd] (shared positions) or [B, T, hd] (per row)
        q, k = apply_rotary(qk, cos.unsqueeze(-2), sin.unsqueeze(-2)).split([H, KV], dim=2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if cache is not None:
            k, v = cache.update(layer, k, v)
        y = attend(q, k, v, mask, self.kernels.attention_path(q.device.type, q.dtype, self.head_dim, k.shape[2]))
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, path: str | None = None) -> Tensor:
    """softmax(q·kᵀ/√d, masked)·v for q [B, heads, T, d] and k, v [B, kv_heads, S, d].

    ``mask`` is None for plain causal attention (queries at the last T of S positions), else boolean
    [B|1, 1, T, S] and never wider than causal. ``path`` (``model/kernels.py``): ``explicit`` (fp32 scores) or
    ``explicit-bf16`` (scores in the input dtype) is ``explicit_attention``, ``sdpa`` is
    ``scaled_dot_product_attention``; None takes ``KernelChoice``'s default rule (explicit in bf16/fp16 on the
    CPU up to 1,024 keys). The trainer's choice is measured per machine and shape class
    (``train/calibration.py``): the two differ by up to 1.5x either way depending on the CPU and the length.
    """
    if path is None:
        path = DEFAULT.attention_path(q.device.type, q.dtype, q.shape[-1], k.shape[2])
    if path != "sdpa":
        return explicit_attention(q, k, v, mask, bf16_scores=path == "explicit-bf16")
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None and q.shape[2] > 1,
                                          enable_gqa=k.shape[1] != q.shape[1])


def explicit_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bf16_scores: bool = False) -> Tensor:
    """``attend`` as batched matmuls and a softmax (``_ExplicitAttention``); ``bf16_scores``: scores, softmax and
    its gradient in q's dtype instead of fp32."""
    T, S = q.shape[2], k.shape[2]
    if k.shape[1] != q.shape[1]:  # grouped-query: each kv head serves heads/kv_heads query heads
        rep = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    if mask is None:
        mask = _causal(T, S, q.device)
    scores_dtype = q.dtype if bf16_scores else torch.float32
    bias = torch.zeros(mask.shape, device=q.device, dtype=scores_dtype).masked_fill_(~mask, float("-inf"))
    with torch.autocast(q.device.type, enabled=False):  # q, k, v are already in the compute dtype
        return _ExplicitAttention.apply(q, k, v, bias)


def _causal(T: int, S: int, device) -> Tensor:
    """[1, 1, T, S]: query i (at position S - T + i) sees keys 0 … S - T + i."""
    return (torch.arange(S - T, S, device=device)[:, None] >= torch.arange(S, device=device))[None, None]


class _ExplicitAttention(torch.autograd.Function):
    """Attention as bmm → softmax → bmm, keeping the probabilities for backward.

    Precision as in flash attention: scores, softmax and the gradient's ``dp - rowsum(p·dp)`` in fp32 (the
    dtype of ``bias``); the probabilities and score gradients in the input dtype for the matmuls with v, k and
    q. A bias in the input dtype keeps the scores there too (``explicit-bf16``).
    Queries go in blocks of ``QUERY_BLOCK``; a block reads only the keys up to its last query (the mask is
    at most causal), so at sequence 256 (blocks of 64) 3/8 of the score matrix is never computed.
    """

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, bias: Tensor) -> Tensor:
        B, H, T, D = q.shape
        S = k.shape[2]
        scale = D ** -0.5
        q3, k3, v3 = q.reshape(B * H, T, D), k.reshape(B * H, S, D), v.reshape(B * H, S, D)
        q32, k32 = q3.to(bias.dtype), k3.to(bias.dtype)
        blocks, probs, outs = _query_blocks(T, S), [], []
        for i0, i1, end in blocks:
            if bias.shape[0] == 1:  # one mask for the batch: added inside the matmul
                scores = torch.baddbmm(bias[0, :, i0:i1, :end], q32[:, i0:i1], k32[:, :end].transpose(1, 2), alpha=scale)
            else:  # a mask per row (documents): [B, 1, T, S] broadcast over heads
                scores = torch.bmm(q32[:, i0:i1], k32[:, :end].transpose(1, 2)).mul_(scale)
                scores = scores.view(B, H, i1 - i0, end).add_(bias[:, :, i0:i1, :end]).view(B * H, i1 - i0, end)
            p = torch.softmax(scores, dim=-1).to(q.dtype)
            outs.append(torch.bmm(p, v3[:, :end]))
            probs.append(p)
        ctx.save_for_backward(q3, k3, v3, *probs)
        ctx.scale, ctx.blocks, ctx.scores_dtype = scale, blocks, bias.dtype
        return torch.cat(outs, dim=1).view(B, H, T, D)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        q3, k3, v3, *probs = ctx.saved_tensors
        g3 = grad_out.reshape(q3.shape)
        sd = ctx.scores_dtype
        g32, v32 = g3.to(sd), v3.to(sd)
        dqs, dk, dv = [], torch.zeros_like(k3), torch.zeros_like(v3)
        for (i0, i1, end), p in zip(ctx.blocks, probs):
            dv[:, :end].baddbmm_(p.transpose(1, 2), g3[:, i0:i1])
            dp = torch.bmm(g32[:, i0:i1], v32[:, :end].transpose(1, 2))
            dscores = torch._softmax_backward_data(dp, p.to(sd), -1, sd).to(p.dtype)
            dqs.append(torch.bmm(dscores, k3[:, :end]).mul_(ctx.scale))
            dk[:, :end].baddbmm_(dscores.transpose(1, 2), q3[:, i0:i1], alpha=ctx.scale)
        B, H = grad_out.shape[:2]
        dq = torch.cat(dqs, dim=1).view(grad_out.shape)
        return dq, dk.view(B, H, *k3.shape[1:]), dv.view(B, H, *k3.shape[1:]), None


QUERY_BLOCK = 64


def _query_blocks(T: int, S: int) -> list[tuple[int, int, int]]:
    """(first query, end query, end key) per block; the T queries are the last T of S positions."""
    return [(i, min(i + QUERY_BLOCK, T), S - T + min(i + QUERY_BLOCK, T)) for i in range(0, T, QUERY_BLOCK)]


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


def padded_positions(valid: Tensor, T: int, start: int, rope_cos: Tensor, rope_sin: Tensor):
    """cos, sin [B, T, head_dim] and a boolean mask [B, 1, T, start + T] for rows with padding.

    ``valid`` [B, start + T] is True at real tokens. A token's position counts the real tokens before it;
    it attends causally to real tokens only. A padding query attends to itself alone (its output is never
    read, and a query with no key would turn into NaN and spread through the values of later layers).
    """
    S = start + T
    positions = (valid.long().cumsum(-1) - 1).clamp(min=0)[:, start:]
    query_at = torch.arange(start, S, device=valid.device)
    itself = torch.arange(S, device=valid.device)[None, :] == query_at[:, None]
    mask = _causal(T, S, valid.device) & (valid[:, None, None, :] | itself)
    return rope_cos[positions], rope_sin[positions], mask


def attention_mask(T: int, start: int, doc_ids: Tensor | None, device) -> Tensor | None:
    """None when plain causal attention will do; else a boolean [B|1, 1, T, start+T] mask.

    With ``doc_ids`` a token attends only to earlier tokens of its own document.
    """
    if doc_ids is None and (start == 0 or T == 1):
        return None
    causal = _causal(T, start + T, device)
    if doc_ids is None:
        return causal
    return causal & (doc_ids[:, :, None] == doc_ids[:, None, :])[:, None]


causal_or_document_mask = attention_mask  # the name ``forward`` uses, where ``attention_mask`` is its argument
