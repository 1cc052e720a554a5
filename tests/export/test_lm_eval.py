"""lm-evaluation-harness runs on an exported checkpoint, with a local task and local data only."""

import json
import os

import pytest

from syllabus.evaluate.loglikelihood import loglikelihoods
from syllabus.evaluate.multiple_choice import ChoiceItem, score_choices
from syllabus.export import export_hf


ITEMS = [
    {"question": "The quick brown fox jumps over the lazy", "choices": ["dog.", "roof."], "answer": 0},
    {"question": "def add(a, b):\n    return", "choices": [" a + b", " a man"], "answer": 0},
    {"question": "342 + 567 =", "choices": [" 909", " 111"], "answer": 0},
]

TASK_YAML = """\
task: syllabus_local_probe
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


@pytest.mark.slow
def test_simple_evaluate_on_a_local_task(tmp_path, tokenizer, monkeypatch, make_model):
    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))
    lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install lm-eval accelerate)")
    pytest.importorskip("accelerate", reason="lm-eval's hf model needs accelerate")
    from lm_eval.tasks import TaskManager

    data = tmp_path / "probe.jsonl"
    data.write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    (tasks_dir / "probe.yaml").write_text(TASK_YAML.format(data=data))
    model = make_model(tokenizer.get_vocab_size(), tie=True)
    out = export_hf(model, tokenizer, tmp_path / "hf")

    results = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={out},dtype=float32", tasks=["syllabus_local_probe"],
        task_manager=TaskManager(include_path=str(tasks_dir)), device="cpu", batch_size=2, log_samples=True,
    )
    metrics = results["results"]["syllabus_local_probe"]
    # the harness's accuracy is syllabus's own on the same items (lm-eval joins context and choice with a space)
    ours = score_choices(model.eval(), tokenizer, [ChoiceItem(i["question"], tuple(" " + c for c in i["choices"]),
                                                              i["answer"]) for i in ITEMS])
    assert metrics["acc,none"] == pytest.approx(ours["acc"], abs=1e-9)
    # and every request's log-likelihood is the one syllabus computes for the same (context, continuation)
    samples = results["samples"]["syllabus_local_probe"]
    requests = [tuple(args) for sample in samples for args in sample["arguments"]]
    theirs = [float(resp[0]) for sample in samples for resp in sample["filtered_resps"]]
    mine = [score for score, _ in loglikelihoods(model, tokenizer, requests)]
    assert len(requests) == 2 * len(ITEMS) and max(abs(a - b) for a, b in zip(theirs, mine)) < 1e-3, (theirs, mine)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
