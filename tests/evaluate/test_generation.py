import torch

from syllabus.evaluate.generation import Sampling, choose_next, generate, generate_ids, safe_length, stream_text


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
