"""Every attention path against fp32 explicit attention, and the model following a KernelChoice per shape class."""

import pytest
import torch
import torch.nn.functional as F

from syllabus.config.model import model_config_for
from syllabus.model import Transformer, attention, rotary, transformer
from syllabus.model.kernels import ATTENTION_PATHS, KernelChoice, attention_class, bucket, loss_class
from syllabus.model.attention import attend, attention_mask, explicit_attention, padded_positions

B, H, KV, T, D = 2, 4, 2, 40, 16


def masks():
    docs = torch.tensor([[0] * 13 + [1] * 20 + [2] * 7, [0] * 31 + [1] * 9])
    valid = torch.ones(B, T, dtype=torch.bool)
    valid[0, :9] = False  # left padding
    valid[1, :3] = False
    cos, sin = rotary.rotary_tables(D, T, 10000.0)
    return {"causal": None, "documents": attention_mask(T, 0, docs, "cpu"),
            "padding": padded_positions(valid, T, 0, cos, sin)[2]}


def run(fn, dtype, mask):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(B, H, T, D, generator=g).to(dtype).requires_grad_()
    k, v = (torch.randn(B, KV, T, D, generator=g).to(dtype).requires_grad_() for _ in range(2))
    grad = torch.randn(B, H, T, D, generator=g).to(dtype)
    out = fn(q, k, v, mask)
    out.backward(grad)
    return [out, q.grad, k.grad, v.grad]


def relative_error(ours, ref):
    return float((ours.detach().float() - ref.detach()).norm() / ref.detach().norm())


@pytest.mark.parametrize("mask_name", ["causal", "documents", "padding"])
@pytest.mark.parametrize("path", ATTENTION_PATHS)
@pytest.mark.parametrize("dtype,bound", [(torch.float32, 1e-5), (torch.bfloat16, 1.5e-2)])
def test_every_path_matches_fp32_explicit_attention_values_and_gradients(path, dtype, bound, mask_name):
    """The inputs are rounded to ``dtype`` first, so the bound measures the path's own arithmetic: fp32 paths
    agree to rounding; bf16 ones within 1.5% relative error (bf16's unit roundoff is 0.4%; measured ~0.5%)."""
    mask = masks()[mask_name]
    reference = run(lambda q, k, v, m: explicit_attention(q.float(), k.float(), v.float(), m),
                    dtype, mask)  # q, k, v rounded to dtype, then fp32 arithmetic
    ours = run(lambda q, k, v, m: attend(q, k, v, m, path), dtype, mask)
    for name, a, r in zip(["out", "dq", "dk", "dv"], ours, reference):
        assert a.dtype == dtype, name
        assert torch.isfinite(a).all(), name
        assert relative_error(a, r.float()) <= bound, (name, relative_error(a, r.float()))


def test_each_path_runs_its_own_kernel_with_scores_in_the_named_precision(monkeypatch):
    seen = []
    real_explicit, real_sdpa = attention._ExplicitAttention.apply, F.scaled_dot_product_attention
    monkeypatch.setattr(attention._ExplicitAttention, "apply",
                        lambda q, k, v, bias: seen.append(("explicit", bias.dtype)) or real_explicit(q, k, v, bias))
    monkeypatch.setattr(attention.F, "scaled_dot_product_attention",
                        lambda *a, **kw: seen.append(("sdpa", None)) or real_sdpa(*a, **kw))
    for path in ATTENTION_PATHS:
        run(lambda q, k, v, m: attend(q, k, v, m, path), torch.bfloat16, None)
    assert seen == [("sdpa", None), ("explicit", torch.float32), ("explicit", torch.bfloat16)]


def tiny_model():
    torch.manual_seed(0)
    config = model_config_for("tiny", vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                              intermediate_size=160, max_position_embeddings=128)
    return Transformer(config)


@pytest.mark.parametrize("path", ["sdpa", "explicit"])
def test_the_model_takes_the_attention_path_its_kernel_choice_names_for_the_shape_class(path, monkeypatch):
    model = tiny_model()
    calls = []
    real = attention._ExplicitAttention.apply
    monkeypatch.setattr(attention._ExplicitAttention, "apply", lambda *a: calls.append(1) or real(*a))
    ids = torch.randint(0, 300, (2, 48))
    model.use_kernels(KernelChoice(attention={attention_class("bf16", 16, 48): path}))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(ids, ids)
        assert len(calls) == (2 if path == "explicit" else 0)
        calls.clear()
        model(ids[:, :20], ids[:, :20])  # keys 20: bucket 64 as well, same class
        assert len(calls) == (2 if path == "explicit" else 0)
        calls.clear()
        model(torch.randint(0, 300, (1, 100)))  # bucket 128: not calibrated, the default rule (explicit)
    assert len(calls) == 2


@pytest.mark.parametrize("group", [None, 1])
def test_the_model_passes_the_chosen_loss_group_and_the_loss_does_not_change(group, monkeypatch):
    model = tiny_model()
    ids = torch.randint(0, 300, (2, 48))
    expected = model(ids, ids)
    seen = []
    real = transformer.linear_cross_entropy
    monkeypatch.setattr(transformer, "linear_cross_entropy", lambda *a: seen.append(a[3]) or real(*a))
    loss_group = {} if group is None else {loss_class("fp32", 64, 300, 96): group}
    model.use_kernels(KernelChoice(loss_group=loss_group))
    torch.testing.assert_close(model(ids, ids), expected)
    assert seen == [group]


def test_shape_classes_round_lengths_up_to_powers_of_two():
    assert [bucket(n) for n in (1, 64, 65, 256, 257, 1024)] == [64, 64, 128, 256, 512, 1024]
    assert attention_class(torch.bfloat16, 64, 200) == "attention|bf16|d64|s256"
    assert loss_class("bf16", 384, 8192, 2048) == "loss|bf16|h384|v8192|n2048"
    choice = KernelChoice(attention={"attention|bf16|d64|s256": "sdpa"})
    assert choice.attention_path("cpu", torch.bfloat16, 64, 256) == "sdpa"
    assert choice.attention_path("cpu", torch.bfloat16, 64, 512) == "explicit"  # default rule
    assert choice.attention_path("cpu", torch.float32, 64, 512) == "sdpa"
    assert choice.attention_path("cuda", torch.bfloat16, 64, 256) == "sdpa"
    assert KernelChoice.from_dict(choice.to_dict()) == choice
