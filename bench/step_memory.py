"""Memory of a training step for ``bench/train_throughput.py``: state bytes, the RSS (or CUDA) high-water mark
above the pre-step level, and a rough estimate."""

from __future__ import annotations

import contextlib
import ctypes

import torch


def _rss_kb(field_name: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field_name):
            return int(line.split()[1])
    return 0


@contextlib.contextmanager
def step_memory(result: dict, device: str):
    """Bytes above the pre-step level at the high-water mark while the block runs, max into ``result``."""
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        yield
        result["transient"] = max(result.get("transient", 0), torch.cuda.max_memory_allocated() - base)
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    base = _rss_kb("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        pass
    yield
    result["transient"] = max(result.get("transient", 0), (_rss_kb("VmHWM") - base) * 1024)


def state_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    opt = sum(v.numel() * v.element_size() for s in optimizer.state.values() for v in s.values()
              if torch.is_tensor(v))
    return params + opt


def memory_estimate(cfg: dict, seq_len: int, batch: int, dtype: str, n_params: int) -> int:
    """Rough bytes: params + grads + AdamW moments (16 B/param, fp32) + activations saved for backward
    (per layer per token ~34·d + 8·ffn bytes in bf16 autocast, 40·d + 16·ffn in fp32) + logits
    (bf16 logits + fp32 copy + fp32 grad, or fp32 logits + grad) when materialised."""
    d, f, L, V = cfg.get("hidden_size", 768), cfg.get("intermediate_size", 2048), cfg.get("num_hidden_layers", 12), \
        cfg["vocab_size"]
    tokens = seq_len * batch
    per_layer = 34 * d + 8 * f if dtype == "bf16" else 40 * d + 16 * f
    logits = V * (10 if dtype == "bf16" else 8)
    return 16 * n_params + tokens * (L * per_layer + logits)
