import math

import torch

from syllabus.evaluate.perplexity import perplexity, perplexity_by_domain


def make_batches(vocab: int):
    g = torch.Generator().manual_seed(0)
    batches = []
    for rows, width in ((3, 17), (1, 9), (2, 33)):
        ids = torch.randint(2, vocab, (rows, width + 1), generator=g)
        labels = ids[:, 1:].clone()
        labels[0, : width // 3] = -100  # ragged: some positions are not scored
        batches.append({"input_ids": ids[:, :-1], "labels": labels})
    return batches


def test_perplexity_is_exp_of_mean_token_loss(model, tokenizer):
    batches = make_batches(tokenizer.get_vocab_size())
    # Independent reference: per-token negative log-likelihoods, gathered by hand, averaged over all tokens.
    losses = []
    with torch.no_grad():
        for b in batches:
            logp = torch.log_softmax(model(b["input_ids"]).double(), dim=-1)
            for r in range(b["labels"].shape[0]):
                for t in range(b["labels"].shape[1]):
                    y = int(b["labels"][r, t])
                    if y != -100:
                        losses.append(-float(logp[r, t, y]))
    expected = sum(losses) / len(losses)

    result = perplexity(model, iter(batches))
    assert result["tokens"] == len(losses)
    assert math.isclose(result["loss"], expected, rel_tol=1e-5)
    assert math.isclose(result["ppl"], math.exp(expected), rel_tol=1e-5)
    assert perplexity(model, batches) == result  # deterministic


def test_perplexity_by_domain_and_training_flag(model, tokenizer):
    batches = make_batches(tokenizer.get_vocab_size())
    model.train()
    results = perplexity_by_domain(model, {"prose": batches[:1], "code": batches[1:]})
    assert list(results) == ["prose", "code"]
    assert model.training  # restored
    assert all(r["ppl"] > 1 for r in results.values())
