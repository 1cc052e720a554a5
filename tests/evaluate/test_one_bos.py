"""One BOS: scoring, rolling log-likelihood and generation put the tokenizer's sequence start in front exactly
once, whether the tokenizer adds nothing (syllabus's own), adds end-of-text (its Hugging Face export) or adds a
Llama-style ``<s>``; a continuation's token count never includes it."""

import pytest
import torch
from tokenizers import Tokenizer, processors

import syllabus.evaluate.generation as generation
import syllabus.evaluate.loglikelihood as loglikelihood
from syllabus.data.tokenizer import encode_text, sequence_start_ids
from syllabus.evaluate.generation import Sampling, encode_prompt, generate
from syllabus.evaluate.loglikelihood import loglikelihoods, split_tokens
from syllabus.export.hf import export_hf

TEXT = "The quick brown fox jumps over the lazy dog."


def llama_style(tok) -> Tokenizer:
    copy = Tokenizer.from_str(tok.to_str())
    copy.add_special_tokens(["<s>", "</s>"])
    bos = copy.token_to_id("<s>")
    copy.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B:1",
                                                        special_tokens=[("<s>", bos)])
    return copy


@pytest.fixture(params=["own", "hf_export", "llama"])
def case(request, tokenizer, model, tmp_path):
    """(tokenizer, the one BOS id it must give)."""
    if request.param == "own":
        return tokenizer, 0
    if request.param == "hf_export":
        folder = export_hf(model, tokenizer, tmp_path / "hf")
        exported = Tokenizer.from_file(str(folder / "tokenizer.json"))
        assert exported.encode(TEXT).ids[0] == 0  # the export adds end-of-text as its BOS
        return exported, 0
    tok = llama_style(tokenizer)
    return tok, tok.token_to_id("<s>")


def test_the_sequence_start_is_decided_from_the_tokenizer(case, tokenizer):
    tok, bos = case
    assert sequence_start_ids(tok) == [bos]
    assert encode_text(tok, TEXT) == encode_text(tokenizer, TEXT)  # the text itself: as training encodes it


def test_split_tokens_and_loglikelihoods_score_one_bos(case, tokenizer, model, monkeypatch):
    tok, bos = case
    text_ids = encode_text(tokenizer, TEXT)
    assert split_tokens(tok, "", TEXT) == ([], text_ids)
    ctx, cont = split_tokens(tok, "The quick brown", " fox jumps")
    assert ctx + cont == encode_text(tokenizer, "The quick brown fox jumps")
    seen = []
    monkeypatch.setattr(loglikelihood, "score_tokens", lambda m, encoded, **k: seen.extend(encoded) or
                        [(0.0, False)] * len(encoded))
    loglikelihoods(model, tok, [("", TEXT), ("The quick brown", " fox jumps")])
    (empty, n_empty), (pair, n_pair) = seen
    assert empty == [bos] + text_ids and n_empty == len(text_ids)
    assert pair[0] == bos and pair.count(bos) == 1 and n_pair == len(cont)


def test_loglikelihood_rolling_scores_one_bos(case, tokenizer, model, monkeypatch):
    pytest.importorskip("lm_eval")
    import syllabus.evaluate.lm_eval_model as lm_eval_model
    from lm_eval.api.instance import Instance

    tok, bos = case
    seen = []
    monkeypatch.setattr(lm_eval_model, "score_tokens", lambda m, encoded, **k: seen.extend(encoded) or
                        [(0.0, False)] * len(encoded))
    request = Instance(request_type="loglikelihood_rolling", doc={}, arguments=(TEXT,), idx=0)
    lm_eval_model.SyllabusLM(model, tok).loglikelihood_rolling([request])
    ((tokens, n),) = seen
    text_ids = encode_text(tokenizer, TEXT)
    assert tokens == [bos] + text_ids and n == len(text_ids)


def test_encode_prompt_and_batched_generation_see_one_bos(case, tokenizer, make_model, monkeypatch):
    tok, bos = case
    model = make_model(tok.get_vocab_size())
    prompts = [TEXT, "A man is sitting", "Question: Olivia has $23."]
    assert encode_prompt(tok, prompts[1]) == [bos] + encode_text(tokenizer, prompts[1])
    fed = []
    real = generation.generate_ids

    def spy(model, prompt_ids, sampling, *, attention_mask=None, **kwargs):
        mask = torch.ones_like(prompt_ids, dtype=torch.bool) if attention_mask is None else attention_mask
        fed.extend(row[m].tolist() for row, m in zip(prompt_ids, mask.bool()))
        return real(model, prompt_ids, sampling, attention_mask=attention_mask, **kwargs)

    monkeypatch.setattr(generation, "generate_ids", spy)
    generate(model, tok, prompts, Sampling(max_new_tokens=3), batch_size=3)
    assert sorted(fed) == sorted([bos] + encode_text(tokenizer, p) for p in prompts)
    assert all(row.count(bos) == 1 for row in fed)


def test_a_prompt_cut_to_fit_is_never_cut_silently(tokenizer, make_model, caplog):
    model = make_model(tokenizer.get_vocab_size(), max_position_embeddings=24)
    with caplog.at_level("WARNING", logger="syllabus"):
        generate(model, tokenizer, [TEXT * 3, "A man"], Sampling(max_new_tokens=8))
    assert "generation: 1 of 2 prompts are longer than the 16 tokens left for a prompt" in caplog.text
