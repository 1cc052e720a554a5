"""fused_kernels: RMSNorm and SwiGLU compiled by inductor give the eager model's loss and gradients."""

import warnings

import pytest
import torch

from syllabus.config.model import model_config_for
from syllabus.config.pretrain import PreTrainingConfig
from syllabus.model import Transformer, fused
from syllabus.train.distributed import DistContext


def _pair():
    torch.manual_seed(0)
    config = model_config_for("tiny", vocab_size=128, hidden_size=64, num_hidden_layers=2,
                              num_attention_heads=4, intermediate_size=160, max_position_embeddings=64)
    eager = Transformer(config)
    fast = Transformer(config)
    fast.load_state_dict(eager.state_dict())
    fast.use_fused_kernels(True)
    ids = torch.randint(0, 128, (2, 32))
    return eager, fast, ids


def _loss_and_grads(model, ids, dtype):
    model.zero_grad()
    with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        loss = model(ids, ids)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.slow
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_fused_kernels_match_eager(dtype, tol):
    eager, fast, ids = _pair()
    loss_fast, grads_fast = _loss_and_grads(fast, ids, dtype)
    loss_eager, grads_eager = _loss_and_grads(eager, ids, dtype)
    assert fused._unavailable is None  # a fallback to eager would pass for the wrong reason
    assert {"rms_norm", "swiglu"} <= fused._built  # the compiled kernels really ran
    torch.testing.assert_close(loss_fast, loss_eager, rtol=tol, atol=tol)
    for name, grad in grads_eager.items():
        scale = grad.abs().max().clamp(min=1e-6)
        assert (grads_fast[name] - grad).abs().max() / scale < tol * 5, name


def test_eval_and_flag_off_stay_eager(monkeypatch):
    called = []
    monkeypatch.setattr(fused, "_fused", lambda name, fn: called.append(name) or fn)
    eager, fast, ids = _pair()
    fast.eval()
    with torch.no_grad():
        torch.testing.assert_close(fast(ids), eager.eval()(ids))
    eager.train()(ids, ids)
    assert called == []
    fast.train()(ids, ids)
    assert set(called) == {"rms_norm", "swiglu"}


def test_build_failure_warns_once_and_runs_eager(monkeypatch):
    def broken(*args):
        raise RuntimeError("no C++ compiler found\nmore detail")

    monkeypatch.setattr(fused, "_compiled", lambda name, fn: broken)
    monkeypatch.setattr(fused, "_unavailable", None)
    monkeypatch.setattr(fused, "_built", set())
    eager, fast, ids = _pair()
    with pytest.warns(UserWarning, match="could not build the rms_norm kernel .*no C\\+\\+ compiler found"):
        loss_fast, _ = _loss_and_grads(fast, ids, torch.float32)
    loss_eager, _ = _loss_and_grads(eager, ids, torch.float32)
    assert loss_fast == loss_eager
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="fused_kernels")  # once is enough
        _loss_and_grads(fast, ids, torch.float32)


@pytest.mark.parametrize("compile_model, expected", [(False, True), (True, False)])
def test_config_switches_modules(compile_model, expected):
    model = Transformer(model_config_for("tiny", vocab_size=128, hidden_size=64, num_hidden_layers=1,
                                         num_attention_heads=4, intermediate_size=160))
    config = PreTrainingConfig(fused_kernels=True, compile=compile_model)
    DistContext.single("cpu").wrap(model, config)
    assert model.model.layers[0].mlp.fused is expected
    assert model.model.norm.fused is expected


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_eager_rms_norm_matches_the_definition(dtype):
    """The hand-written backward (``_EagerRMSNorm``) against autograd through ``rms_norm``: output, dx and dw,
    with a weight that is not all ones and leading dimensions [2, 5]."""
    torch.manual_seed(0)
    x0 = (3 * torch.randn(2, 5, 48)).to(dtype)
    w0 = 1 + 0.3 * torch.randn(48)
    grad = torch.randn(2, 5, 48).to(dtype)
    results = []
    for fn in (fused.rms_norm, fused.eager_rms_norm):
        x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
        y = fn(x, w, 1e-5, dtype)
        y.backward(grad)
        results.append((y.float(), x.grad.float(), w.grad))
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    for name, want, got in zip(("y", "dx", "dw"), *results):
        assert got.dtype == want.dtype or name != "y"
        assert torch.allclose(got, want, rtol=tol, atol=tol), (name, (got - want).abs().max())
