"""The CPU's explicit attention (bmm → softmax → bmm) against scaled_dot_product_attention."""

import pytest
import torch
import torch.nn.functional as F

from syllabus.model import attention, kernels, rotary
from syllabus.model.attention import attend, attention_mask, explicit_attention


def sdpa(q, k, v, mask):
    T, S = q.shape[2], k.shape[2]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None and T > 1,
                                          enable_gqa=k.shape[1] != q.shape[1])


def inputs(B, H, KV, T, S, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, T, 16, generator=g).to(dtype).requires_grad_()
    k, v = (torch.randn(B, KV, S, 16, generator=g).to(dtype).requires_grad_() for _ in range(2))
    return q, k, v


CASES = {  # name -> (B, heads, kv heads, T, S, mask builder)
    "causal": (2, 4, 4, 12, 12, lambda B, T, S: None),
    "grouped-query": (2, 4, 2, 12, 12, lambda B, T, S: None),
    "documents": (2, 4, 4, 12, 12,
                  lambda B, T, S: attention_mask(T, 0, torch.tensor([[0] * 5 + [1] * 7, [0] * 9 + [1] * 3]), "cpu")),
    "cache prefill": (2, 4, 2, 5, 12, lambda B, T, S: attention_mask(T, S - T, None, "cpu")),
    "one new token": (2, 4, 4, 1, 12, lambda B, T, S: None),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
@pytest.mark.parametrize("block", [128, 5])  # one block of queries; blocks of 5 (keys skipped past each)
def test_explicit_attention_matches_sdpa_values_and_gradients(case, dtype, tol, block, monkeypatch):
    monkeypatch.setattr(attention, "QUERY_BLOCK", block)
    B, H, KV, T, S, make_mask = CASES[case]
    mask = make_mask(B, T, S)
    results = []
    for fn in (explicit_attention, sdpa):
        q, k, v = inputs(B, H, KV, T, S, dtype)
        out = fn(q, k, v, mask)
        out.backward(torch.linspace(-1, 1, out.numel()).view_as(out).to(dtype))
        results.append([out, q.grad, k.grad, v.grad])
    for ours, ref in zip(*results):
        assert ours.dtype == ref.dtype
        torch.testing.assert_close(ours.float(), ref.float(), atol=tol, rtol=tol)


def test_without_a_calibration_explicit_is_taken_for_bf16_on_cpu_and_sdpa_for_fp32_and_beyond_the_key_limit(
        monkeypatch):
    calls = []
    real = attention._ExplicitAttention.apply
    monkeypatch.setattr(attention._ExplicitAttention, "apply", lambda *a: calls.append(1) or real(*a))
    q, k, v = inputs(1, 2, 2, 8, 8, torch.bfloat16)
    attend(q, k, v, None)
    assert calls == [1]
    attend(*inputs(1, 2, 2, 8, 8, torch.float32), None)
    assert calls == [1]
    monkeypatch.setattr(kernels, "DEFAULT_EXPLICIT_MAX_KEYS", 4)
    torch.testing.assert_close(attend(q, k, v, None), sdpa(q, k, v, None))
    assert calls == [1]


def test_bf16_autocast_keeps_probabilities_in_bf16():
    """Under autocast the softmax must not fall back to fp32 (that would double the saved memory)."""
    q, k, v = inputs(1, 2, 2, 8, 8, torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attend(q, k, v, None)
    assert out.dtype == torch.bfloat16
    assert out.grad_fn.saved_tensors[3].dtype == out.grad_fn.saved_tensors[-1].dtype == torch.bfloat16


def test_rotary_matches_the_rotate_half_formula_in_values_and_gradients():
    cos, sin = rotary.rotary_tables(16, 32, 10000.0)
    x = torch.randn(2, 32, 3, 16, dtype=torch.float64, requires_grad=True)
    c, s = cos[:, None].double(), sin[:, None].double()
    grad = torch.randn(2, 32, 3, 16, dtype=torch.float64)

    def reference(x):
        return x * c + torch.cat([-x[..., 8:], x[..., :8]], dim=-1) * s

    ours = rotary.apply_rotary(x, c, s)
    (dx_ours,) = torch.autograd.grad(ours, x, grad)
    (dx_ref,) = torch.autograd.grad(reference(x), x, grad)
    torch.testing.assert_close(ours, reference(x))
    torch.testing.assert_close(dx_ours, dx_ref)
    assert torch.autograd.gradcheck(lambda t: rotary.apply_rotary(t, c[:4], s[:4]), (x[:1, :4].detach().requires_grad_(),))


def test_masked_grouped_heads_are_expanded_for_cuda_and_give_the_same_attention():
    """``sdpa_heads``: on CUDA a mask with grouped-query heads expands k and v (so SDPA can keep its
    memory-efficient kernel); the result equals ``enable_gqa`` on the same inputs. Unchanged elsewhere."""
    from syllabus.model.attention import sdpa_heads

    torch.manual_seed(0)
    q, k, v = torch.randn(2, 6, 16, 8), torch.randn(2, 2, 16, 8), torch.randn(2, 2, 16, 8)
    doc_ids = torch.tensor([[0] * 7 + [1] * 9, [0] * 16])
    mask = attention_mask(16, 0, doc_ids, "cpu")
    k2, v2, grouped = sdpa_heads(q, k, v, mask, device_type="cuda")
    assert not grouped and k2.shape == (2, 6, 16, 8) and v2.shape == (2, 6, 16, 8)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    assert torch.allclose(F.scaled_dot_product_attention(q, k2, v2, attn_mask=mask), want, atol=1e-6)
    for args in ((q, k, v, None, "cuda"), (q, k, v, mask, "cpu")):
        same_k, same_v, grouped = sdpa_heads(*args)
        assert same_k is k and same_v is v and grouped
