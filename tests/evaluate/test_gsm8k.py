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
