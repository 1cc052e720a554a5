import torch

from syllabus.evaluate.generation import Sampling, choose_next, generate, generate_ids, safe_length, stream_text
from syllabus.model.attention import padded_positions


def test_kv_cache_greedy_matches_full_recompute(model, tokenizer):
    prompt = torch.tensor([tokenizer.encode("The quick brown fox").ids] * 2)
    sampling = Sampling(max_new_tokens=40)
    with_cache = torch.stack(list(generate_ids(model, prompt, sampling, use_cache=True)), dim=1)
    without = torch.stack(list(generate_ids(model, prompt, sampling, use_cache=False)), dim=1)
    assert with_cache.shape == (2, 40)
    assert torch.equal(with_cache, without)


def test_stream_pieces_join_to_generate_output(model, tokenizer):
    for sampling in (Sampling(max_new_tokens=30), Sampling(max_new_tokens=30, temperature=1.0, seed=3),
                     Sampling(max_new_tokens=30, temperature=0.8, top_k=5, top_p=0.9, seed=1)):
        streamed = "".join(stream_text(model, tokenizer, "A man is", sampling))
        assert streamed == generate(model, tokenizer, ["A man is"], sampling)[0]


def test_stop_strings_cut_generation(model, tokenizer):
    full = generate(model, tokenizer, ["def add("], Sampling(max_new_tokens=40))[0]
    assert len(full) > 4
    stop = full[2:4]
    cut = generate(model, tokenizer, ["def add("], Sampling(max_new_tokens=40, stop=(stop,)))[0]
    assert cut == full[: full.find(stop)]
    assert "".join(stream_text(model, tokenizer, "def add(", Sampling(max_new_tokens=40, stop=(stop,)))) == cut


def test_batched_equals_one_by_one(model, tokenizer):
    prompts = ["12 + 34 =", "56 + 78 =", "The fox", "9 - 3 ="]
    sampling = Sampling(max_new_tokens=8)
    batched = generate(model, tokenizer, prompts, sampling, batch_size=4)
    assert batched == [generate(model, tokenizer, [p], sampling)[0] for p in prompts]


def test_sampling_filters():
    logits = torch.tensor([[0.0, 5.0, 4.9, -1.0]])
    assert int(choose_next(logits, Sampling(), None)) == 1
    g = torch.Generator().manual_seed(0)
    picks = [int(choose_next(logits, Sampling(temperature=1.0, top_k=2), g)) for _ in range(200)]
    assert set(picks) == {1, 2}  # both kept tokens are drawn (greedy would give only 1), nothing else is
    assert 0.35 < picks.count(2) / len(picks) < 0.6  # in proportion to exp(4.9) : exp(5.0), about 0.475
    picks = {int(choose_next(logits, Sampling(temperature=1.0, top_p=0.01), g)) for _ in range(20)}
    assert picks == {1}


def test_sampling_draws_from_the_distribution_and_a_seed_repeats_it(model, tokenizer):
    runs = {seed: generate(model, tokenizer, ["A man is"], Sampling(max_new_tokens=12, temperature=1.0, seed=seed))[0]
            for seed in range(4)}
    assert len(set(runs.values())) > 1  # greedy decoding would give one text whatever the seed
    assert runs[2] == generate(model, tokenizer, ["A man is"], Sampling(max_new_tokens=12, temperature=1.0, seed=2))[0]


def test_safe_length_holds_back_possible_stop():
    assert safe_length("hello Ques", ["Question:"]) == len("hello ")
    assert safe_length("hello", ["Question:"]) == 5
    assert safe_length("ab\ufffd", []) == 2


def test_left_padded_rows_compute_as_if_alone(model, tokenizer):
    """A row behind padding gets the same logits as the same tokens alone (positions and attention exact)."""
    ids = tokenizer.encode("The quick brown fox jumps").ids
    alone = model(torch.tensor([ids]))
    padded = torch.tensor([[1, 1, 1] + ids, ids + ids[:3]])
    mask = torch.tensor([[0, 0, 0] + [1] * len(ids), [1] * (len(ids) + 3)])
    both = model(padded, attention_mask=mask)
    assert torch.allclose(both[0, 3:], alone[0], atol=1e-5)
    assert torch.allclose(both[1, :len(ids)], alone[0], atol=1e-5)
    assert not torch.isnan(both).any()
    cos, _, _ = padded_positions(mask.bool(), mask.shape[1], 0, model.rope_cos, model.rope_sin)
    assert torch.equal(cos[0, 3:], model.rope_cos[:len(ids)]) and torch.equal(cos[1], model.rope_cos[:len(ids) + 3])


def test_batched_prompts_of_different_lengths_equal_one_by_one_token_for_token(make_model, tokenizer):
    model = make_model(tokenizer.get_vocab_size(), initializer_range=0.2)  # sharp: padding would show
    prompts = ["12 + 34 =", "The quick brown fox jumps over the lazy", "def add(a, b):\n    return", "x",
               "Question: Olivia has $23. She bought five bagels for $3 each.", "9 - 3 ="]
    eos = tokenizer.token_to_id("<|endoftext|>")
    sampling = Sampling(max_new_tokens=12)

    def ids_of(batch):
        width = max(len(tokenizer.encode(p).ids) for p in batch) + 1
        rows = [[eos] + tokenizer.encode(p).ids for p in batch]
        prompt = torch.tensor([[1] * (width - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        return torch.stack(list(generate_ids(model, prompt, sampling, attention_mask=mask)), dim=1)

    batched = ids_of(prompts)
    for row, prompt in enumerate(prompts):
        assert torch.equal(batched[row], ids_of([prompt])[0]), prompt
    texts = generate(model, tokenizer, prompts, sampling, batch_size=4)
    assert texts == [generate(model, tokenizer, [p], sampling)[0] for p in prompts]
    # Each row stops at its own stop string; the others go on.
    stop = texts[1][3:5]
    cut = generate(model, tokenizer, prompts, Sampling(max_new_tokens=12, stop=(stop,)), batch_size=6)
    assert cut[1] == texts[1][:texts[1].find(stop)] and cut[0] == (texts[0] if stop not in texts[0] else cut[0])
