"""Attention: the module (fused q/k/v projection, q/k norms, rotary, grouped-query heads), its KV cache for
decoding, the kernels it can run on (``attend``: SDPA or the explicit bmm → softmax → bmm path, chosen per shape
class by ``model/kernels.py``), and the masks (causal, per document, padded rows)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from syllabus.config.model import ModelConfig
from syllabus.model.kernels import DEFAULT, KernelChoice
from syllabus.model.norm import RMSNorm
from syllabus.model.rotary import apply_rotary


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
    k, v, grouped = sdpa_heads(q, k, v, mask)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None and q.shape[2] > 1,
                                          enable_gqa=grouped)


def sdpa_heads(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None,
               device_type: str | None = None) -> tuple[Tensor, Tensor, bool]:
    """k, v and ``enable_gqa`` for ``scaled_dot_product_attention``. On CUDA a mask (documents, padding) with
    grouped-query heads would leave SDPA only its math kernel, which builds the whole [B, heads, T, S] score
    matrix: the flash kernel takes no mask, and the memory-efficient one (which does) takes no ``enable_gqa``
    (torch's SDPA notes). There k and v are expanded to every query head instead ([B, heads, S, d] each, far
    smaller than the scores), which keeps the memory-efficient kernel. Elsewhere (CPU, no mask, equal heads)
    they pass unchanged, with ``enable_gqa`` where the heads differ. ``device_type`` defaults to q's."""
    grouped = k.shape[1] != q.shape[1]
    if grouped and mask is not None and (device_type or q.device.type) == "cuda":
        rep = q.shape[1] // k.shape[1]
        return k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1), False
    return k, v, grouped


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
    at most causal), so at sequence 256 (blocks of 64) 3/8 of the score matrix is never computed. Inside
    ``torch.compile`` the queries are one block: the same step time at cpu-v8k, and a block's graph compiled
    once instead of four times (the regional compile's cold warm-up 25.8 -> 19.2 s, docs/performance.md).
    """

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, bias: Tensor) -> Tensor:
        B, H, T, D = q.shape
        S = k.shape[2]
        scale = D ** -0.5
        q3, k3, v3 = q.reshape(B * H, T, D), k.reshape(B * H, S, D), v.reshape(B * H, S, D)
        q32, k32 = q3.to(bias.dtype), k3.to(bias.dtype)
        # compiled, one block: inductor fuses the mask itself, and each block's shapes are kernels to build
        blocks, probs, outs = _query_blocks(T, S, T if torch.compiler.is_compiling() else QUERY_BLOCK), [], []
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


def _query_blocks(T: int, S: int, size: int = QUERY_BLOCK) -> list[tuple[int, int, int]]:
    """(first query, end query, end key) per block of ``size`` queries; the T queries are the last T of S
    positions."""
    return [(i, min(i + size, T), S - T + min(i + size, T)) for i in range(0, T, size)]


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
