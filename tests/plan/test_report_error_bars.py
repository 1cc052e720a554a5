"""The report prints task scores with error bars and marks only changes beyond two standard errors."""

from syllabus.config import validate
from syllabus.config.plan import PlanConfig
from syllabus.plan.report import write_report

PLAN = {"name": "p", "sources": {"wiki": "data/wiki"},
        "stages": [{"name": n, "data": {"wiki": 1.0}} for n in ("one", "two", "three")]}


def result(acc: float, n: int) -> dict:
    from syllabus.evaluate.error_bars import with_stderr

    return {f"arithmetic/{k}": v for k, v in with_stderr({"acc": acc, "n": float(n)}).items()}


def test_report_marks_a_change_beyond_two_standard_errors_and_not_a_smaller_one(tmp_path):
    plan = validate(PlanConfig, PLAN)
    # one → two: 0.30 → 0.40 on 100 items (SE of the difference 0.067: within noise);
    # two → three: 0.40 → 0.70 (well beyond two SE).
    state = {"completed": ["one", "two", "three"],
             "results": {"one": result(0.3, 100), "two": result(0.4, 100), "three": result(0.7, 100)}}
    text = write_report(plan, tmp_path, state).read_text()
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert "0.300 ± 0.046 (n=100)" in rows["one"]
    assert "▲" not in rows["two"] and "▼" not in rows["two"]
    assert "0.700 ± 0.046 (n=100) ▲" in rows["three"]


def test_report_on_ten_items_shows_the_noise(tmp_path):
    plan = validate(PlanConfig, PLAN)
    state = {"completed": ["one", "two"], "results": {"one": result(0.3, 10), "two": result(0.6, 10)}}
    text = write_report(plan, tmp_path, state).read_text()
    assert "0.300 ± 0.145 (n=10)" in text
    row = next(line for line in text.splitlines() if line.startswith("| two |"))
    # 0.3 → 0.6 on 10 items is within two standard errors of the difference (0.42)
    assert "0.600 ± 0.155 (n=10)" in row and "▲" not in row
