import pytest
import torch

from syllabus.config.model import PRESETS, model_config_for
from syllabus.model import KVCache, Transformer


def tiny(**overrides):
    base = dict(vocab_size=320, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=160,
                max_position_embeddings=128)
    return model_config_for("tiny", **{**base, **overrides})


@pytest.mark.parametrize("tie, kv_heads", [(True, None), (False, 2)])
def test_matches_hugging_face_llama(tie, kv_heads):
    transformers = pytest.importorskip("transformers")
    config = tiny(tie_word_embeddings=tie, num_key_value_heads=kv_heads)
    torch.manual_seed(0)
    ours = Transformer(config).eval()
    hf_config = transformers.LlamaConfig(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers, num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.kv_heads, max_position_embeddings=config.max_position_embeddings,
        rms_norm_eps=config.rms_norm_eps, rope_theta=config.rope_theta, tie_word_embeddings=tie)
    theirs = transformers.LlamaForCausalLM(hf_config).eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)  # same names, same shapes
    ids = torch.randint(0, config.vocab_size, (2, 40))
    with torch.no_grad():
        assert torch.allclose(ours(ids), theirs(ids).logits, atol=1e-5)


def test_loss_is_cross_entropy_of_logits_and_ignores_minus_100():
    torch.manual_seed(0)
    model = Transformer(tiny()).eval()
    ids = torch.randint(0, 320, (2, 16))
    labels = ids.roll(-1, dims=1)
    labels[:, -3:] = -100
    with torch.no_grad():
        logits = model(ids)
        expected = torch.nn.functional.cross_entropy(logits[:, :-3].reshape(-1, 320), labels[:, :-3].reshape(-1))
        assert torch.allclose(model(ids, labels), expected, atol=1e-6)


def test_document_mask_keeps_attention_within_a_document():
    torch.manual_seed(0)
    model = Transformer(tiny()).eval()
    first, second = torch.randint(2, 320, (1, 10)), torch.randint(2, 320, (1, 14))
    packed = torch.cat([first, second], dim=1)
    doc_ids = torch.tensor([[0] * 10 + [1] * 14])
    with torch.no_grad():
        together = model(packed, doc_ids=doc_ids)
        alone = model(second)
    # Rotary positions are relative, so the second document alone gives the same logits.
    assert torch.allclose(together[:, 10:], alone, atol=1e-5)
    assert not torch.allclose(model(packed)[:, 10:], alone, atol=1e-3)


def test_kv_cache_gives_the_same_logits_as_a_full_pass():
    torch.manual_seed(0)
    config = tiny(num_key_value_heads=2)
    model = Transformer(config).eval()
    ids = torch.randint(0, 320, (2, 20))
    cache = KVCache(config, 2, 64, "cpu", torch.float32)
    with torch.no_grad():
        full = model(ids)
        prefix = model(ids[:, :12], cache=cache)
        steps = [model(ids[:, i:i + 1], cache=cache) for i in range(12, 20)]
    assert torch.allclose(torch.cat([prefix, *steps], dim=1), full, atol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = Transformer(tiny())
    ids = torch.randint(0, 320, (2, 16))
    grads = []
    for checkpointing in (False, True):
        model.zero_grad()
        model.gradient_checkpointing = checkpointing
        model(ids, ids.roll(-1, 1)).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-6)


def test_presets_have_the_advertised_sizes():
    counts = {}
    for name in PRESETS:
        with torch.device("meta"):
            counts[name] = Transformer(model_config_for(name)).num_parameters()
    assert counts["tiny"] < 10e6
    assert 100e6 < counts["small"] < 150e6
    assert 1.1e9 < counts["base"] < 1.5e9
    assert 6.5e9 < counts["large"] < 7.0e9  # LLaMA-7B: 6.74B


def test_flops_per_token():
    model = Transformer(tiny(tie_word_embeddings=False))
    c = model.config
    per_layer = 4 * c.hidden_size**2 + 3 * c.hidden_size * c.intermediate_size
    matmul_params = c.num_hidden_layers * per_layer + c.vocab_size * c.hidden_size
    expected = 6 * (matmul_params + 2 * c.num_hidden_layers * c.hidden_size + c.hidden_size)  # + norm weights
    assert model.flops_per_token(64) == pytest.approx(expected + 12 * 2 * 64 * 64)
