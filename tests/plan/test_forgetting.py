"""The gate's arithmetic and each action, on a stand-in trainer (the end-to-end firing is in test_plan_run)."""

import math

import pytest

from syllabus.config.plan import ForgettingSpec
from syllabus.plan.forgetting import ForgettingGate, raised_share
from syllabus.train.distributed import DistContext


class Sink:
    def __init__(self):
        self.records = []

    def log(self, record):
        self.records.append(record)


class Batches:
    def __init__(self):
        self.weights = None

    def set_weights(self, weights):
        self.weights = weights


class StandIn:
    stage = "math"
    dist = DistContext.single("cpu")

    def __init__(self):
        self.lr_multiplier, self.batches, self.stopped = 1.0, Batches(), None

    def request_stop(self, reason):
        self.stopped = reason


def fire(action: str, wiki_loss: float):
    sink, trainer = Sink(), StandIn()
    gate = ForgettingGate(ForgettingSpec(watch=["wiki", "code"], threshold=1.5, action=action),
                          {"wiki": 20.0}, {"math": 0.9, "wiki": 0.1}, sink)
    gate(trainer, {"step": 40, "val_loss/wiki": wiki_loss, "val_loss/code": 9.0})
    return gate, trainer, sink.records


def test_quiet_below_threshold_and_for_domains_whose_stage_has_not_ended():
    _, trainer, records = fire("stop", math.log(29.0))  # 1.45x; code has no reference yet
    assert records == [] and trainer.stopped is None


@pytest.mark.parametrize("action", ["warn", "reduce_lr", "replay", "stop"])
def test_each_action(action):
    gate, trainer, records = fire(action, math.log(40.0))  # 2x
    (event,) = records
    assert event["domain"] == "wiki" and event["ratio"] == pytest.approx(2.0) and event["action"] == action
    assert (trainer.lr_multiplier == 0.5) == (action == "reduce_lr")
    assert (trainer.stopped is not None) == (action == "stop")
    if action == "replay":
        assert trainer.batches.weights == pytest.approx({"math": 0.8, "wiki": 0.2})
        assert gate.state_dict()["weights"] == trainer.batches.weights


def test_replay_of_a_domain_without_a_source_in_this_stage_only_warns():
    """The demo's last stage (code, math, wiki) saw reasoning's perplexity cross the threshold."""
    sink, trainer = Sink(), StandIn()
    gate = ForgettingGate(ForgettingSpec(watch=["reasoning"], threshold=1.5, action="replay"),
                          {"reasoning": 20.0}, {"math": 0.9, "wiki": 0.1}, sink)
    gate(trainer, {"step": 40, "val_loss/reasoning": math.log(40.0)})
    (event,) = sink.records
    assert event["domain"] == "reasoning" and "no source" in event["note"]
    assert trainer.batches.weights is None and gate.state_dict()["weights"] == {"math": 0.9, "wiki": 0.1}


def test_raised_share_keeps_the_sum_and_caps():
    raised = raised_share({"a": 0.6, "b": 0.3, "c": 0.1}, "c", 0.1)
    assert sum(raised.values()) == pytest.approx(1.0) and raised["c"] == pytest.approx(0.2)
    assert raised["a"] / raised["b"] == pytest.approx(2.0)
    assert raised_share({"a": 0.5, "c": 0.5}, "c", 0.1)["c"] == pytest.approx(0.5)
