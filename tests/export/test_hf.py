import json

import pytest
import torch

from syllabus.export import export_hf


transformers = pytest.importorskip("transformers")


@pytest.mark.parametrize("tie", [True, False])
def test_transformers_loads_the_export_with_identical_logits(tmp_path, tokenizer, tie, make_model):
    model = make_model(tokenizer.get_vocab_size(), tie=tie)
    out = export_hf(model, tokenizer, tmp_path / "hf")
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["num_key_value_heads"] == 2
    assert config["tie_word_embeddings"] is tie

    hf = transformers.AutoModelForCausalLM.from_pretrained(out, local_files_only=True).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(out, local_files_only=True)
    text = "The quick brown fox: 342 + 567 = 909"
    ids = tokenizer.encode(text).ids
    eos = tokenizer.token_to_id("<|endoftext|>")
    assert hf_tok(text)["input_ids"] == [eos, *ids]  # the document separator the model trained with, as BOS
    assert hf_tok(text, add_special_tokens=False)["input_ids"] == ids and hf_tok.bos_token_id == eos
    assert hf_tok.eos_token == "<|endoftext|>" and hf_tok.pad_token == "<|pad|>"
    assert hf_tok.decode(ids) == text and hf_tok.decode(hf_tok(text)["input_ids"], skip_special_tokens=True) == text

    input_ids = torch.tensor([ids, ids[::-1]])
    with torch.no_grad():
        ours = model(input_ids)
        theirs = hf(input_ids).logits
    assert torch.allclose(ours, theirs, atol=1e-4, rtol=0), (ours - theirs).abs().max()
    if tie:
        assert hf.lm_head.weight.data_ptr() == hf.model.embed_tokens.weight.data_ptr()
    else:
        assert torch.equal(hf.lm_head.weight, model.lm_head.weight)
