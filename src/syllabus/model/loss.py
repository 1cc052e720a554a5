"""The language-model loss: the LM head's matmul and cross-entropy in one autograd Function.

``Transformer.forward`` calls ``linear_cross_entropy`` with the final hidden states and the LM head's weight
when it is given labels, so the [tokens, vocab] fp32 logits never exist in training.
"""

from __future__ import annotations

import torch
from torch import Tensor


def linear_cross_entropy(x: Tensor, weight: Tensor, labels: Tensor, group_elements: int | None = None) -> Tensor:
    """Mean cross-entropy of ``x @ weight.T`` over labels != -100, without materialising fp32 logits.

    ``x``: [tokens, hidden], ``weight``: [vocab, hidden], ``labels``: int64 [tokens] (-100 = not counted).
    Returns a float32 scalar. The same value and gradients as ``F.cross_entropy(lm_head(x).float(), labels)``
    (matmuls in the autocast dtype, softmax in fp32). When gradients are needed they are computed in the
    forward pass, so backward is two multiplications by a scalar. Memory: one [rows, vocab] buffer in the
    matmul dtype (``group_elements`` logits, rounded to whole chunks; default ``LOSS_GROUP_ELEMENTS``, the
    trainer's is measured per machine: ``train/calibration.py``) and one fp32 softmax chunk
    (``LOSS_CHUNK_ELEMENTS``). The group size changes only how the work is split, not the result.
    """
    device = x.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
    x, weight = x.to(dtype), weight.to(dtype)
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    return _LinearCrossEntropy.apply(x, weight, labels, needs_grad, group_elements or default_group_elements(device))


LOSS_CHUNK_ELEMENTS = 2**22  # fp32 softmax per chunk of rows (16 MB)
LOSS_GROUP_ELEMENTS = 2**24  # logits, then their gradient, per group of rows in the matmul dtype (32 MB in bf16)
LOSS_GROUP_ELEMENTS_GPU = 2**29  # 1 GiB of bf16 logits: a GPU's memory, not a cache, bounds the group


def default_group_elements(device_type: str) -> int:
    """The group size when no calibration names one: ``LOSS_GROUP_ELEMENTS`` on the CPU (where calibration
    measures it per machine), ``LOSS_GROUP_ELEMENTS_GPU`` elsewhere. On a GPU every extra group costs a full
    [vocab, hidden] dw product and fp32 add: with the CPU's figure at a 128k vocabulary a group would be
    256 rows, 64 such adds of 2 GB for 16k tokens at hidden 4096; 1 GiB groups make it 4 groups of 4,096
    rows, and one group up to a 32k vocabulary at 16k tokens."""
    return LOSS_GROUP_ELEMENTS if device_type == "cpu" else LOSS_GROUP_ELEMENTS_GPU


class _LinearCrossEntropy(torch.autograd.Function):
    """Per group of rows, three matmuls: logits = x·Wᵀ into one buffer in the matmul dtype; per chunk of its rows
    a fused fp32 log-softmax (one kernel reading the matmul dtype), the loss -log p[target] gathered from it
    (exact in the log domain: no underflow however unlikely the target), and, when gradients are needed,
    p = exp(log p) in place and the unscaled gradient p - onehot written back over the chunk's logits; then
    dx = grad·W and dw = gradᵀ·x (two large matmuls, not one small pair per chunk, and no fp32 dw accumulator
    unless there are several groups). Padding rows (label -100) are zeroed on the small side (rows of x and
    of dx). 1/count and the upstream gradient scale dx and dw in backward. No data-dependent branch: compiles
    as one graph. (log-softmax + exp measured 17 ms against 26 ms for softmax + two row maxima + log at
    2,048 × 8,192 in bf16 on the AMX Xeon, docs/performance.md.)"""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, labels: Tensor, needs_grad: bool, group_elements: int) -> Tensor:
        valid = labels != -100
        count = valid.sum().clamp(min=1).float()
        keep = valid[:, None].to(x.dtype)  # 1 for rows with a label, 0 for padding
        targets = labels.clamp(min=0)[:, None]
        rows = max(256, LOSS_CHUNK_ELEMENTS // weight.shape[0])
        group = max(rows, group_elements // weight.shape[0] // rows * rows)
        loss = torch.zeros((), device=x.device)
        minus = torch.full((rows, 1), -1.0, device=x.device)  # the one-hot's -1 at each row's target
        starts = range(0, x.shape[0], group)
        dx = torch.empty_like(x) if needs_grad else None
        dw = torch.zeros(weight.shape, device=x.device) if needs_grad and len(starts) > 1 else None  # fp32 sum
        with torch.autocast(x.device.type, enabled=False):
            for g in starts:
                xg, kg = x[g:g + group], keep[g:g + group]
                logits = xg @ weight.T
                for i in range(0, xg.shape[0], rows):
                    chunk, tc, kc = logits[i:i + rows], targets[g + i:g + i + rows], kg[i:i + rows]
                    logp = torch.log_softmax(chunk, dim=-1, dtype=torch.float32)  # one kernel, cast inside
                    loss -= (logp.gather(1, tc) * kc).sum()
                    if needs_grad:  # d loss / d logits = (p - onehot) / count on rows with a label
                        chunk.copy_(logp.exp_().scatter_add_(1, tc, minus[:tc.shape[0]]))
                if needs_grad:
                    dx[g:g + group] = (logits @ weight).mul_(kg)
                    dw_g = logits.T @ (xg * kg)
                    dw = dw_g if dw is None else dw.add_(dw_g)
        ctx.save_for_backward(dx, dw, count)
        return loss / count

    @staticmethod
    def backward(ctx, grad_loss: Tensor):
        dx, dw, count = ctx.saved_tensors
        scale = grad_loss / count
        return (dx * scale).to(dx.dtype), (dw * scale).to(dx.dtype), None, None, None
