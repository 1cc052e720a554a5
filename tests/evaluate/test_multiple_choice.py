import pytest
import torch

from syllabus.evaluate.loglikelihood import loglikelihoods, split_tokens
from syllabus.evaluate.multiple_choice import ChoiceItem, arc_items, hellaswag_items, mmlu_items, score_choices


# Each item: a context holding a phrase, then the start of its repetition; the right ending copies it.
PHRASES = ["red fox jumps over the lazy dog", "man sits on a roof and waves", "cellular telephone beats airplane",
           "bagels cost three dollars each", "the quick brown dog sleeps", "ducks lay sixteen eggs a day"]


def copy_items() -> list[ChoiceItem]:
    items = []
    for i, phrase in enumerate(PHRASES):
        head, tail = phrase.split(" ", 2)[:2], phrase.split(" ", 2)[2]
        wrong = [p.split(" ", 2)[2] for j, p in enumerate(PHRASES) if j != i][:3]
        choices = [" " + tail] + [" " + w for w in wrong]
        answer = i % 4
        choices[0], choices[answer] = choices[answer], choices[0]
        items.append(ChoiceItem(f"Say it twice: {phrase}. Again: {' '.join(head)}", tuple(choices), answer))
    return items


@pytest.mark.slow
def test_picks_the_copied_ending_after_brief_training(tokenizer, make_model):
    items = copy_items()
    texts = [item.context + item.choices[item.answer] + "." for item in items]
    model = make_model(tokenizer.get_vocab_size(), seed=1)
    rows = [torch.tensor(tokenizer.encode(t).ids) for t in texts]
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    labels = torch.full((len(rows), width), -100)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = r
        labels[i, :len(r) - 1] = r[1:]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(40):
        optimizer.zero_grad()
        model(ids, labels).backward()
        optimizer.step()
    result = score_choices(model, tokenizer, items)
    assert result == {"acc": 1.0, "acc_norm": 1.0, "n": float(len(items))}


def test_random_model_is_at_chance_on_real_hellaswag(model, tokenizer):
    items = hellaswag_items(limit=40)
    assert len(items) == 40 and all(len(i.choices) == 4 for i in items)
    result = score_choices(model, tokenizer, items)
    assert 0.1 <= result["acc_norm"] <= 0.45
    assert 0.05 <= result["acc"] <= 0.5


def test_real_item_formats():
    h = hellaswag_items(limit=2, shots=2)
    assert h[0].context.count("\n\n") == 2 and h[0].context.endswith("A man is sitting on a roof. He")
    assert h[0].choices[3] == " starts pulling up roofing on a roof." and h[0].answer == 3
    a = arc_items(limit=3)
    assert a[0].context.startswith("Question: ") and a[0].context.endswith("\nAnswer:")
    m = mmlu_items(limit=3, shots=5)
    assert len(m) == 3 and m[0].choices == (" A", " B", " C", " D")
    assert m[0].context.startswith("The following are multiple choice questions (with answers) about abstract algebra.")
    assert m[0].context.count("\nAnswer:") == 6


def test_loglikelihood_is_sum_of_token_logprobs(model, tokenizer):
    ctx, cont = split_tokens(tokenizer, "Answer: ", "the quick fox")
    assert tokenizer.decode(ctx + cont) == "Answer: the quick fox"
    eos = tokenizer.token_to_id("<|endoftext|>")
    tokens = torch.tensor([[eos] + ctx + cont])
    with torch.no_grad():
        logp = torch.log_softmax(model(tokens[:, :-1]).double(), -1)[0]
    expected = sum(float(logp[len(ctx) + i, t]) for i, t in enumerate(cont))
    (score, _), (score2, _) = loglikelihoods(model, tokenizer, [("Answer: ", "the quick fox"), ("x", "yz")],
                                             batch_size=2)
    assert abs(score - expected) < 1e-4
