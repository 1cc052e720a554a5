"""Parity with lm-evaluation-harness: syllabus's multiple-choice scores equal lm-eval's on the exported model.

lm-eval runs its own HellaSwag, ARC and MMLU definitions (fed the local benchmark files through
``dataset_kwargs``) on the Hugging Face export with its ``hf`` model; syllabus scores the same items with
its own prompts and scorer, and lm-eval runs once more on the model in process (``SyllabusLM``). Every
request's log-likelihood must agree within 1e-3 nats and acc / acc_norm must be identical.
"""

import pytest

pytestmark = pytest.mark.slow

HELLASWAG, ARC, MMLU_SUBJECTS, MMLU_PER_SUBJECT = 50, 10, ("anatomy", "astronomy"), 4


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        mp.setenv(name, "1")
    mp.setenv("HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("datasets-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def setup(offline, tmp_path_factory):
    pytest.importorskip("lm_eval")
    pytest.importorskip("accelerate", reason="lm-eval's hf model needs accelerate")
    from syllabus.data.tokenizer import train_tokenizer
    from syllabus.evaluate.lm_eval_tasks import write_local_tasks
    from syllabus.export import export_hf
    from tests.evaluate.conftest import TEXTS, tiny_model

    folder = tmp_path_factory.mktemp("parity")
    tokenizer = train_tokenizer(TEXTS, 400)
    model = tiny_model(tokenizer.get_vocab_size(), seed=3, initializer_range=0.2)  # spread-out scores: no ties
    export = export_hf(model, tokenizer, folder / "hf")
    tasks_dir = write_local_tasks(folder / "tasks", MMLU_SUBJECTS)
    return model, tokenizer, export, tasks_dir


TASKS = {"local_hellaswag": HELLASWAG, "local_arc_easy": ARC, "local_arc_challenge": ARC,
         **{f"local_mmlu_{s}": MMLU_PER_SUBJECT for s in MMLU_SUBJECTS}}


def lm_eval_samples(model, tasks_dir):
    """One ``simple_evaluate`` over every task, the first ``TASKS[task]`` documents of each."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    raw = lm_eval.simple_evaluate(model=model, tasks=list(TASKS), task_manager=TaskManager(include_path=str(tasks_dir)),
                                  samples={t: list(range(n)) for t, n in TASKS.items()}, log_samples=True,
                                  bootstrap_iters=0, verbosity="ERROR")
    samples = {t: sorted(raw["samples"][t], key=lambda s: s["doc_id"]) for t in TASKS}
    return samples, {t: raw["results"][t] for t in TASKS}


@pytest.fixture(scope="module")
def on_export(setup):
    """lm-eval's ``hf`` model on the Hugging Face export."""
    from lm_eval.models.huggingface import HFLM

    _, _, export, tasks_dir = setup
    return lm_eval_samples(HFLM(pretrained=str(export), dtype="float32", device="cpu", batch_size=8), tasks_dir)


def syllabus_items():
    from syllabus.evaluate.multiple_choice import arc_items, hellaswag_items, mmlu_items

    items = {"local_hellaswag": hellaswag_items(HELLASWAG), "local_arc_easy": arc_items(ARC),
             "local_arc_challenge": arc_items(ARC, subset="ARC-Challenge")}
    for subject in MMLU_SUBJECTS:
        items[f"local_mmlu_{subject}"] = mmlu_items(MMLU_PER_SUBJECT, shots=5, subjects=[subject])
    return items


def test_syllabus_scores_equal_lm_eval_on_the_export(setup, on_export):
    from syllabus.evaluate.loglikelihood import loglikelihoods
    from syllabus.evaluate.multiple_choice import score_choices

    model, tokenizer, _, _ = setup
    samples, results = on_export
    items = syllabus_items()
    for task, task_samples in samples.items():
        assert len(task_samples) == TASKS[task] == len(items[task])
        for sample, item in zip(task_samples, items[task]):
            # The same prompts and choices as lm-eval's own task definitions.
            assert [tuple(a) for a in sample["arguments"]] == [(item.context, c) for c in item.choices], task
            theirs = [float(r[0][0]) for r in sample["resps"]]
            ours = [s for s, _ in loglikelihoods(model, tokenizer, [(item.context, c) for c in item.choices])]
            assert max(abs(a - b) for a, b in zip(ours, theirs)) < 1e-3, (task, sample["doc_id"], ours, theirs)
        scores = score_choices(model, tokenizer, items[task])
        assert scores["acc"] == results[task]["acc,none"], task
        if "acc_norm,none" in results[task]:
            assert scores["acc_norm"] == results[task]["acc_norm,none"], task


def test_lm_eval_on_the_model_in_process_equals_lm_eval_on_the_export(setup, on_export):
    from syllabus.evaluate.lm_eval_model import SyllabusLM

    model, tokenizer, _, tasks_dir = setup
    hf_samples, hf_results = on_export
    our_samples, our_results = lm_eval_samples(SyllabusLM(model, tokenizer), tasks_dir)
    for task in TASKS:
        for a, b in zip(hf_samples[task], our_samples[task]):
            diffs = [abs(float(x[0][0]) - float(y[0][0])) for x, y in zip(a["resps"], b["resps"])]
            assert max(diffs) < 1e-3, (task, a["doc_id"])
        for metric in ("acc,none", "acc_norm,none"):
            assert hf_results[task].get(metric) == our_results[task].get(metric), (task, metric)


def test_any_lm_eval_task_is_a_syllabus_task_by_name(setup, offline):
    from syllabus.evaluate import run_tasks

    model, tokenizer, _, _ = setup
    results = run_tasks(model, tokenizer, ["lm_eval:local_arc_easy", "arithmetic"], limit=6)
    assert results["local_arc_easy/n"] == 6 and 0 <= results["local_arc_easy/acc"] <= 1
    assert results["local_arc_easy/acc_stderr"] > 0 and results["arithmetic/n"] > 0
