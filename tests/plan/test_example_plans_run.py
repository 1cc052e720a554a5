"""plans/reasoning.yaml, fast-track.yaml and interleaved.yaml run as written, at tiny scale: their header's
`syllabus prepare` commands are run on local stand-ins with the real datasets' record shapes (a few hundred
records each, written here; `hf:` names swapped for the stand-in folders), then each plan runs over the
prepared shards with only its scale shrunk (model, budgets, sequence lengths, batch sizes)."""

import json
import random
import shlex
import sysconfig
from pathlib import Path

import pytest

from syllabus.cli.main import main
from syllabus.config.load import validate
from syllabus.config.load import read_yaml
from syllabus.config.plan import PlanConfig
from syllabus.plan.runner import run_plan
from tests.data.conftest import package_dir
from tests.plan.conftest import TINY_MODEL

pytestmark = pytest.mark.slow
PLANS = Path(__file__).parents[2] / "plans"


def prose() -> list[str]:
    text = (package_dir("gensim") / "test" / "test_data" / "lee_background.cor").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if len(line.strip()) > 80]


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def write_standins(root: Path) -> dict[str, Path]:
    """Folders shaped like the hub datasets of plans/reasoning.yaml's header."""
    rng = random.Random(0)
    paras = prose()
    write_jsonl(root / "wikipedia" / "train.jsonl", [
        {"id": str(i), "url": f"https://en.wikipedia.org/wiki/{i}", "title": p.split()[0], "text": p}
        for i, p in enumerate(paras * 2)])
    chats = []
    for i in range(300):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        chats.append({"messages": [
            {"role": "user", "content": f"What is {a} + {b}? {rng.choice(paras)[:80]}"},
            {"role": "assistant", "content": f"<think>\nAdd the tens, then the units: {a} + {b} = {a + b}.\n"
                                             f"</think>\nThe answer is {a + b}."}], "num_tokens": 60})
    write_jsonl(root / "mot" / "train.jsonl", chats)
    write_jsonl(root / "open-web-math" / "train.jsonl", [
        {"url": f"https://math.example/{i}", "text": f"Let $x = {i}$. Then $x^2 = {i * i}$ and {p}", "date": "2023",
         "metadata": "{}"} for i, p in enumerate(paras)])

    def gsm(i):
        a, b = rng.randint(2, 60), rng.randint(2, 9)
        return {"question": f"Sam has {a} boxes with {b} pens each. He gives away {b} pens. How many are left?",
                "answer": f"Sam has {a}*{b} = <<{a}*{b}={a * b}>>{a * b} pens.\nHe has {a * b}-{b} = "
                          f"<<{a * b}-{b}={a * b - b}>>{a * b - b} left.\n#### {a * b - b}"}

    write_jsonl(root / "gsm8k" / "train.jsonl", [gsm(i) for i in range(300)])
    write_jsonl(root / "gsm8k" / "test.jsonl", [gsm(i) for i in range(60)])
    stdlib = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("json/*.py"))
    code = [{"content": p.read_text(), "lang": "Python", "path": p.name, "size": 1} for p in stdlib]
    code += [{"content": f"function f{i}(x) {{ return x + {i}; }}\n", "lang": "JavaScript", "path": f"f{i}.js",
              "size": 1} for i in range(100)]
    code += [{"content": "int main(void) { return 0; }\n", "lang": "C", "path": "main.c", "size": 1}] * 50
    write_jsonl(root / "the-stack-smol" / "train.jsonl", code)
    return {"hf:wikimedia/wikipedia:20231101.en": root / "wikipedia", "hf:open-r1/Mixture-of-Thoughts:all": root / "mot",
            "hf:open-web-math/open-web-math": root / "open-web-math", "hf:openai/gsm8k:main": root / "gsm8k",
            "hf:bigcode/the-stack-smol": root / "the-stack-smol"}


def header_commands(plan: Path) -> list[list[str]]:
    return [shlex.split(line.split("#", 1)[1])[1:] for line in plan.read_text().splitlines()
            if line.startswith("#") and line.split("#", 1)[1].strip().startswith("syllabus prepare")]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """The header's commands of plans/reasoning.yaml run on the stand-ins; returns the folder holding data/."""
    root = tmp_path_factory.mktemp("example_plans")
    standins = write_standins(root / "hub")
    commands = header_commands(PLANS / "reasoning.yaml")
    assert len(commands) == 7  # five sources, then the task form and the final step of the first
    for argv in commands:
        argv = [str(standins.get(a, root / a if a.startswith("data/") else a)) for a in argv]
        assert main(argv + ["--workers", "1", "--val-fraction", "0.1"]) == 0, argv
    code = json.loads((root / "data" / "code" / "train" / "header.json").read_text())
    assert code["removed"].get("language", 0) + code["skipped"].get("language", 0) == 50  # the C records
    return root


def tiny(plan: dict, root: Path) -> dict:
    """Only the scale changes: paths under ``root``, a tiny model, 3 steps a stage, short sequences."""
    plan["sources"] = {k: str(root / v) for k, v in plan["sources"].items()}
    plan["model"] = {"size": "tiny", "overrides": {**TINY_MODEL, "max_position_embeddings": 128}}
    plan["defaults"].update(micro_batch_size=2, gradient_accumulation_steps=1, max_seq_length=64,
                            mixed_precision="fp32", compile=False, gradient_checkpointing=False,
                            save_interval=1000, log_interval=1, use_tensorboard=False, device="cpu")
    for stage in plan["stages"]:
        stage["budget"] = {"steps": 3}
        for point in stage.get("curriculum", []):
            point["seq_len"] = max(8, min(64, point["seq_len"] // 32))
            if "micro_batch_size" in point:
                point["micro_batch_size"] = 2
    plan["evaluation"].update(every=2, batches=1, tasks=[], limit=2)
    return plan


@pytest.mark.parametrize("name", ["reasoning", "fast-track", "interleaved"])
def test_example_plan_runs_at_tiny_scale(name, prepared, tmp_path):
    plan = validate(PlanConfig, tiny(read_yaml(PLANS / f"{name}.yaml"), prepared))
    summary = run_plan(plan, tmp_path / "run")
    assert summary["status"] == "finished"
    state = json.loads((tmp_path / "run" / "run_state.json").read_text())
    assert state["completed"] == [s.name for s in plan.stages]
    last = state["results"][plan.stages[-1].name]
    assert {f"ppl/{d}" for d in plan.evaluation.perplexity} <= set(last)
