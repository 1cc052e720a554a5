"""Each supported architecture, made tiny and random by transformers, computes the same logits, loss and
gradients in syllabus's decoder after import (fp32, 1e-4)."""

import json

import pytest
import torch

from syllabus.config.errors import ConfigError
from syllabus.hf.architectures import check_sliding_window, model_config_from_hf
from syllabus.hf.weights import load_hf_model
from tests.hf.conftest import ARCHITECTURES, hf_folder

transformers = pytest.importorskip("transformers")


@pytest.mark.parametrize("kind", list(ARCHITECTURES))
def test_logits_loss_and_gradients_match_transformers(tmp_path, kind):
    folder = hf_folder(tmp_path, kind)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).train()
    ours = load_hf_model(folder).train()
    assert ours.config.architecture == ARCHITECTURES[kind][1]
    ids = torch.randint(0, 384, (2, 48), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(ours(ids), theirs(ids).logits, atol=1e-4, rtol=0)
    loss_theirs = theirs(ids, labels=ids).loss  # transformers shifts inside
    loss_ours = ours(ids[:, :-1], ids[:, 1:])
    assert abs(loss_theirs.item() - loss_ours.item()) < 1e-4
    loss_theirs.backward()
    loss_ours.backward()
    grads = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert torch.allclose(p.grad, grads[name].grad, atol=1e-4, rtol=0), name


def test_extras_are_read_from_the_config(tmp_path):
    config = model_config_from_hf(json.loads((hf_folder(tmp_path, "llama3_scaled") / "config.json").read_text()))
    assert config.rope_scaling.factor == 8.0 and config.rope_theta == 500000.0 and config.kv_heads == 2
    assert not config.tie_word_embeddings
    qwen3 = model_config_from_hf(json.loads((hf_folder(tmp_path, "qwen3") / "config.json").read_text()))
    assert qwen3.qk_norm and qwen3.head_size == 24 and not qwen3.attention_bias
    qwen2 = model_config_from_hf(json.loads((hf_folder(tmp_path, "qwen2") / "config.json").read_text()))
    assert qwen2.attention_bias and qwen2.tie_word_embeddings


def test_an_unsupported_architecture_is_refused_in_one_line():
    with pytest.raises(ConfigError) as err:
        model_config_from_hf({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"})
    assert str(err.value) == ("model.from: architecture GPT2LMHeadModel is not supported (supported: "
                              "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)")


def test_a_sliding_window_shorter_than_the_longest_seq_len_is_refused(tmp_path):
    config = model_config_from_hf(json.loads((hf_folder(tmp_path, "mistral", sliding_window=64)
                                              / "config.json").read_text()))
    check_sliding_window(config, 64)
    with pytest.raises(ConfigError, match="sliding window of 64 tokens, shorter than the longest seq_len 96"):
        check_sliding_window(config, 96)


def test_a_sharded_checkpoint_loads_like_a_single_file(tmp_path):
    from tests.hf.conftest import hf_model

    model = hf_model("qwen3")
    model.save_pretrained(tmp_path / "one")
    model.save_pretrained(tmp_path / "sharded", max_shard_size="60KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    assert len(list((tmp_path / "sharded").glob("model-*.safetensors"))) > 2
    one, sharded = load_hf_model(tmp_path / "one").state_dict(), load_hf_model(tmp_path / "sharded").state_dict()
    assert all(torch.equal(one[name], sharded[name]) for name in one)
