import pytest
import torch
import torch.nn.functional as F

from syllabus.config.model import model_config_for
from syllabus.model import Transformer
from syllabus.model import loss as loss_module
from syllabus.model.loss import linear_cross_entropy


def _reference(x, weight, labels):
    return F.cross_entropy((x @ weight.T).float(), labels, ignore_index=-100)


def _model_and_batch(rows: int, length: int, padded: int):
    """A 2-layer model (vocab 512, tied embeddings) and a [rows, length] batch whose last ``padded`` labels are -100."""
    torch.manual_seed(0)
    config = model_config_for("tiny", vocab_size=512, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                              intermediate_size=160, max_position_embeddings=128)
    ids = torch.randint(0, 512, (rows, length))
    labels = ids.roll(-1, 1)
    labels[:, -padded:] = -100
    return Transformer(config), ids, labels


@pytest.mark.parametrize("group_elements", [2**24, 1], ids=["one-group", "a-group-per-chunk"])
@pytest.mark.parametrize("vocab", [96, 5000])
def test_chunked_loss_and_gradients_match_full_logits_fp32(vocab, group_elements, monkeypatch):
    monkeypatch.setattr(loss_module, "LOSS_CHUNK_ELEMENTS", 256 * 64)  # several chunks of 256 rows
    monkeypatch.setattr(loss_module, "LOSS_GROUP_ELEMENTS", group_elements)
    torch.manual_seed(0)
    x = torch.randn(700, 48, dtype=torch.float64).float().requires_grad_()
    weight = (0.1 * torch.randn(vocab, 48)).requires_grad_()
    labels = torch.randint(0, vocab, (700,))
    labels[::7] = -100
    losses, grads = [], []
    for fn in (_reference, linear_cross_entropy):
        loss = fn(x, weight, labels)
        (3.0 * loss).backward()  # a non-unit upstream gradient
        losses.append(loss.detach())
        grads.append((x.grad.clone(), weight.grad.clone()))
        x.grad = weight.grad = None
    assert torch.allclose(losses[0], losses[1], atol=1e-5, rtol=1e-5)
    for ref, ours in zip(grads[0], grads[1]):
        assert torch.allclose(ref, ours, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("group_elements", [2**24, 1], ids=["one-group", "a-group-per-chunk"])
def test_model_loss_and_gradients_match_full_logits_with_tied_embeddings(group_elements, monkeypatch):
    monkeypatch.setattr(loss_module, "LOSS_CHUNK_ELEMENTS", 1)  # 256-row chunks
    monkeypatch.setattr(loss_module, "LOSS_GROUP_ELEMENTS", group_elements)
    model, ids, labels = _model_and_batch(rows=4, length=100, padded=5)
    full = F.cross_entropy(model(ids).float().view(-1, 512), labels.reshape(-1), ignore_index=-100)
    full.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    loss = model(ids, labels)
    loss.backward()
    assert torch.allclose(loss, full, atol=1e-5)
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, expected[n], atol=1e-5), n


def test_no_grad_loss_matches_and_bf16_autocast_is_close():
    torch.manual_seed(0)
    x, weight = torch.randn(300, 32), 0.1 * torch.randn(1000, 32)
    labels = torch.randint(0, 1000, (300,))
    with torch.no_grad():
        assert torch.allclose(linear_cross_entropy(x, weight, labels), _reference(x, weight, labels), atol=1e-5)
    xg, wg = x.clone().requires_grad_(), weight.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = linear_cross_entropy(xg, wg, labels)
        ref = F.cross_entropy((xg @ wg.T).float(), labels)
    assert ours.dtype == torch.float32
    assert torch.allclose(ours, ref, atol=1e-2)
    ours.backward()
    assert wg.grad.dtype == torch.float32 and torch.isfinite(wg.grad).all()


def test_a_label_far_below_the_best_logit_keeps_its_exact_loss():
    """Its probability underflows fp32 (exp(-300) = 0): the loss must still be logsumexp - logit, not inf."""
    x = torch.zeros(3, 2)
    x[:, 0] = 1.0
    weight = torch.tensor([[300.0, 0.0], [0.0, 0.0], [1.0, 0.0]]).requires_grad_()
    labels = torch.tensor([1, 0, 2])
    loss = linear_cross_entropy(x, weight, labels)
    expected = _reference(x, weight, labels)
    assert torch.isfinite(loss) and loss.item() > 99  # row 0: 300 nats below its best logit
    assert torch.allclose(loss, expected, rtol=1e-6)
    loss.backward()
    assert torch.isfinite(weight.grad).all()


def test_training_forward_compiles_as_one_graph_without_breaks():
    """``compile: true`` gets the whole model and loss as one graph: no data-dependent branch in the loss."""
    import torch._dynamo

    model, ids, labels = _model_and_batch(rows=2, length=32, padded=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        explained = torch._dynamo.explain(model)(ids, labels)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons


def test_a_hopeless_target_gives_its_exact_loss_not_inf():
    """A target logit 300 below the row's largest: p[target] underflows fp32 (e^-300), but the loss is read in the
    log domain, so it is ~300 nats and its gradient finite, as in the full fp32 reference."""
    x = torch.zeros(4, 8)
    x[:, 0] = 1.0
    weight = torch.zeros(16, 8)
    weight[3, 0] = 300.0  # every row's logit for token 3 is 300, the rest 0
    weight.requires_grad_()
    labels = torch.tensor([5, 5, 3, 7])
    got = linear_cross_entropy(x, weight, labels)
    want = _reference(x, weight.detach(), labels)
    assert torch.isfinite(got) and abs(got.item() - want.item()) < 1e-3 * want.item()
    got.backward()
    assert torch.isfinite(weight.grad).all()


def test_off_the_cpu_the_default_group_is_sized_by_memory(monkeypatch):
    """Without a calibration the CPU keeps its cache-sized group; a GPU's holds 1 GiB of bf16 logits, so a
    128k vocabulary computes 16k tokens in 4 groups of 4,096 rows, not 64 of 256 (each group adds a full
    [vocab, hidden] dw), and the group size is what the loss is called with."""
    assert loss_module.default_group_elements("cpu") == loss_module.LOSS_GROUP_ELEMENTS
    assert loss_module.default_group_elements("cuda") // 131072 == 4096
    seen = []
    real = loss_module._LinearCrossEntropy.apply
    monkeypatch.setattr(loss_module._LinearCrossEntropy, "apply", lambda *a: seen.append(a[4]) or real(*a))
    monkeypatch.setattr(loss_module, "LOSS_GROUP_ELEMENTS", 12345)
    linear_cross_entropy(torch.randn(4, 8), torch.randn(16, 8), torch.tensor([1, 2, 3, 4]))
    assert seen == [12345]
