from pathlib import Path

import pytest

from syllabus.config.load import load_config
from syllabus.config.plan import PlanConfig

PLANS = sorted((Path(__file__).parents[2] / "plans").glob("*.yaml"))


@pytest.mark.parametrize("path", PLANS, ids=[p.name for p in PLANS])
def test_example_plans_are_valid(path):
    plan = load_config(PlanConfig, path)
    assert plan.stages


def test_the_examples_are_there():
    assert {p.name for p in PLANS} >= {"demo.yaml", "reasoning.yaml", "fast-track.yaml", "interleaved.yaml"}
