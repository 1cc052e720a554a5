"""A GPT-2 trained the way nanoGPT's ``model.py`` and ``train.py`` do it: the speed anchor of the benchmark.

Written for this benchmark after nanoGPT's design (plain ``nn.Linear`` without biases as its ``train.py``
defaults, ``LayerNorm``, a GELU MLP of 4×d, causal ``scaled_dot_product_attention``, learned positions, the
token embedding tied to the LM head, weight decay on matrices only, ``AdamW(fused=True)``, clipping at 1.0);
no framework wrappers. Hugging Face's ``GPT2LMHeadModel`` at the same shape runs 20–25% slower than
nanoGPT's own loop, so it is not the anchor. Used by ``bench/train_throughput.py`` (system ``nanogpt``);
its FLOPs per token are counted by the same formula as syllabus's (6·matmul parameters + 12·L·d·T).
"""

from __future__ import annotations

import contextlib
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, d: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(d, 3 * d, bias=False)
        self.c_proj = nn.Linear(d, d, bias=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.c_fc = nn.Linear(d, 4 * d, bias=False)
        self.c_proj = nn.Linear(4 * d, d, bias=False)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, d: int, n_head: int):
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(d, bias=False), CausalSelfAttention(d, n_head)
        self.ln_2, self.mlp = nn.LayerNorm(d, bias=False), MLP(d)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab_size: int, block_size: int, n_layer: int, n_head: int, d: int):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab_size, d), nn.Embedding(block_size, d)
        self.h = nn.ModuleList(Block(d, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d, bias=False)
        self.lm_head = nn.Linear(d, vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight  # tied
        self.n_layer, self.d = n_layer, d
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets):
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)

    def flops_per_token(self, seq_len: int) -> float:
        """6·(matmul parameters, LM head included) + 12·layers·d·seq_len (syllabus's formula)."""
        matmul = sum(p.numel() for n, p in self.named_parameters() if p.ndim == 2 and not n.startswith("wpe"))
        return 6.0 * matmul + 12.0 * self.n_layer * self.d * seq_len

    def configure_optimizer(self, lr: float, weight_decay: float, betas=(0.9, 0.95)) -> torch.optim.AdamW:
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=True)


def nanogpt_step(shape: dict, seq_len: int, micro_batch: int, dtype: str, next_batch, device: str,
                 lr: float = 6e-4, weight_decay: float = 0.1, compiled: bool = False, seed: int = 0):
    """(model, optimizer, step) for ``shape`` (syllabus's ``ModelConfig`` field names); ``step()`` runs one
    nanoGPT training step on ``next_batch(micro_batch, seq_len)`` and returns (seconds, data seconds, loss)."""
    torch.manual_seed(seed)
    model = GPT(shape["vocab_size"], shape.get("max_position_embeddings", seq_len), shape["num_hidden_layers"],
                shape["num_attention_heads"], shape["hidden_size"]).to(device).train()
    forward = torch.compile(model) if compiled else model
    optimizer = model.configure_optimizer(lr, weight_decay)
    amp = torch.autocast(device, dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()

    def step():
        t0 = time.perf_counter()
        batch = next_batch(micro_batch, seq_len)
        x, y = batch["input_ids"].to(device), batch["labels"].to(device)
        t_data = time.perf_counter() - t0
        with amp:
            loss = forward(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - t0, t_data, loss.detach()

    return model, optimizer, step
