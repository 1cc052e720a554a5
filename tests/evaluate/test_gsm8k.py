import re

import pytest

from syllabus.evaluate import benchmark_files
from syllabus.evaluate.gsm8k import canonical_number, evaluate_gsm8k, exemplars, extract_answer, prompt_for


def test_extracts_the_published_answer_of_every_real_item():
    records = benchmark_files.gsm8k_requests()
    assert len(records) == 1319
    kinds = set()
    for record in records:
        doc = record["doc"]
        final = doc["answer"].split("####")[-1].strip()
        kinds |= {"comma"} if "," in final else set()
        kinds |= {"negative"} if final.startswith("-") else set()
        assert extract_answer(doc["answer"]) == final.replace(",", "")
        # The model-side convention of the exemplars: "So the answer is N."
        assert extract_answer(doc["choices"][0]) == final.replace(",", "")
    assert kinds == {"comma", "negative"}


@pytest.mark.parametrize("text, expected", [
    ("She makes 9 * 2 = $18 every day.", "18"),
    ("So the answer is $1,234.50.", "1234.5"),
    ("The temperature fell to -7 degrees. So the answer is -7.", "-7"),
    ("It costs 0.25 each, 3 cost 0.75", "0.75"),
    ("#### 1,450,000", "1450000"),
    ("18.00 dollars", "18"),
    ("So the answer is - 10.", "-10"),
    ("no number here", None),
])
def test_extraction_cases(text, expected):
    assert extract_answer(text) == expected


def test_canonical_number():
    assert canonical_number("$2,125") == "2125" and canonical_number("3.50") == "3.5"
    assert canonical_number("abc") is None


def test_prompt_uses_published_exemplars():
    assert len(exemplars()) == 8
    prompt = prompt_for("How many?", shots=2)
    assert prompt.count("Question:") == 3 and prompt.endswith("Question: How many?\nAnswer:")
    assert re.search(r"So the answer is \d+\.", prompt)


def test_evaluate_runs_on_a_tiny_model(model, tokenizer):
    result = evaluate_gsm8k(model, tokenizer, limit=2, shots=1, max_new_tokens=8)
    assert result["n"] == 2 and 0 <= result["exact_match"] <= 1


def test_a_prompt_longer_than_the_room_left_loses_whole_exemplars_counted_and_logged(tokenizer, make_model,
                                                                                     monkeypatch, caplog):
    import syllabus.evaluate.gsm8k as gsm8k
    from syllabus.evaluate.generation import encode_prompt
    from syllabus.evaluate.gsm8k import Problem, fit_prompt

    question = benchmark_files.gsm8k_requests()[0]["doc"]["question"]
    sizes = [len(encode_prompt(tokenizer, prompt_for(question, k))) for k in range(9)]
    room = (sizes[5] + sizes[6]) // 2  # five exemplars fit, six do not
    prompt, used = fit_prompt(tokenizer, question, 8, room)
    assert used == 5 and prompt == prompt_for(question, 5)  # whole exemplars, the first five, never cut
    assert fit_prompt(tokenizer, question, 8, sizes[0] - 1) is None
    model = make_model(tokenizer.get_vocab_size(), max_position_embeddings=room + 8)
    seen = []
    monkeypatch.setattr(gsm8k, "generate", lambda m, t, prompts, s: seen.extend(prompts) or [""] * len(prompts))
    monkeypatch.setattr(gsm8k, "problems", lambda limit, items: [Problem(question, "1")] * 2)
    with caplog.at_level("WARNING", logger="syllabus"):
        result = evaluate_gsm8k(model, tokenizer, limit=2, shots=8, max_new_tokens=8)
    assert seen == [prompt_for(question, 5)] * 2
    assert result["shortened_n"] == 2 and result["dropped_shots_n"] == 6 and result["n"] == 2
    assert "2 lost whole exemplars (6 dropped in all, 8-shot asked)" in caplog.text


def test_shots_and_a_users_own_items_file(tmp_path, model, tokenizer, monkeypatch):
    import json

    import syllabus.evaluate.gsm8k as gsm8k
    from syllabus.config.errors import ConfigError
    from syllabus.evaluate import run_tasks

    mine = tmp_path / "test.jsonl"
    mine.write_text("".join(json.dumps({"question": f"What is {i} + {i}?", "answer": f"{i}+{i}={2 * i}\n#### {2 * i}"})
                            + "\n" for i in range(3)))
    seen = []
    monkeypatch.setattr(gsm8k, "generate", lambda m, t, prompts, s: seen.extend(prompts) or ["So the answer is 2."] * 3)
    results = run_tasks(model, tokenizer, ["gsm8k"], shots={"gsm8k": 2}, items={"gsm8k": str(mine)})
    assert results["gsm8k/n"] == 3 and results["gsm8k/shots_n"] == 2
    assert results["gsm8k/exact_match"] == pytest.approx(1 / 3)  # only "1 + 1" is 2
    assert seen[0] == prompt_for("What is 0 + 0?", 2)
    (tmp_path / "bad.jsonl").write_text('{"q": 1}\n')
    with pytest.raises(ConfigError, match=r"bad.jsonl line 1 .*question and answer"):
        run_tasks(model, tokenizer, ["gsm8k"], items={"gsm8k": str(tmp_path / "bad.jsonl")})
    with pytest.raises(ConfigError, match="only gsm8k"):
        run_tasks(model, tokenizer, ["arc"], items={"arc": str(mine)})
