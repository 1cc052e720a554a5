"""The forgetting gate: a trainer callback that compares watched domains with their own stage's end.

Invariant kept: a domain is watched only once a stage that trained on it has finished (its reference
perplexity is the value measured at that stage's end); the gate fires when the current perplexity is
more than ``threshold`` times the reference, and every firing is logged as an ``event: forgetting`` record.
Under torchrun the decision is rank 0's, broadcast to every rank before any rank acts on it, so all
ranks change their mixture (or LR, or stop) identically even if their evaluations differ in the last bit.
"""

from __future__ import annotations

import logging
import math

from syllabus.config.plan import ForgettingSpec

log = logging.getLogger("syllabus")


class ForgettingGate:
    def __init__(self, spec: ForgettingSpec, reference_ppl: dict[str, float], stage_weights: dict[str, float],
                 events):
        self.spec = spec
        self.reference = {d: reference_ppl[d] for d in spec.domains if d in reference_ppl}
        self.weights = dict(stage_weights)
        self.planned = dict(stage_weights)  # what the plan asks for now; saved to detect an edit on resume
        self.events = events  # a MetricsLog-like object with .log(record)
        self.firings = 0

    def __call__(self, trainer, record: dict) -> None:
        firings = self.decide(record, trainer.stage) if trainer.dist.is_main else None
        for event in trainer.dist.broadcast_object(firings):
            self.firings += 1
            self._act(trainer, event["domain"], event)
            self.events.log(event)
            if trainer.dist.is_main:
                log.warning("forgetting: %s perplexity %.2f is %.2fx its value at the end of its stage (%.2f); "
                            "action: %s", event["domain"], event["ppl"], event["ratio"], event["reference_ppl"],
                            event["action"])

    def decide(self, record: dict, stage: str | None) -> list[dict]:
        """One ``event: forgetting`` record per watched domain whose perplexity in ``record`` (an evaluation
        with ``val_loss/<domain>`` in nats) exceeds ``threshold`` × its reference; empty when none does."""
        firings = []
        for domain, reference in self.reference.items():
            loss = record.get(f"val_loss/{domain}")
            if loss is None or math.exp(loss) / reference <= self.spec.threshold:
                continue
            firings.append({"step": record["step"], "stage": stage, "event": "forgetting", "domain": domain,
                            "ppl": math.exp(loss), "reference_ppl": reference, "ratio": math.exp(loss) / reference,
                            "action": self.spec.action})
        return firings

    def _act(self, trainer, domain: str, event: dict) -> None:
        action = self.spec.action
        if action == "reduce_lr":
            trainer.lr_multiplier *= self.spec.lr_factor
            event["lr_multiplier"] = trainer.lr_multiplier
        elif action == "replay" and domain not in self.weights:
            event["note"] = "this stage has no source for the domain: warned only"
        elif action == "replay":
            self.weights = raised_share(self.weights, domain, self.spec.replay_step)
            trainer.batches.set_weights(self.weights)
            event["weights"] = self.weights
        elif action == "stop":
            trainer.request_stop(f"forgetting of {domain}")

    def state_dict(self) -> dict:
        return {"weights": self.weights, "firings": self.firings, "planned": self.planned}

    def load_state_dict(self, state: dict) -> None:
        """The gate as checkpointed; ``planned`` stays the current plan's (the runner compares the two)."""
        self.weights, self.firings = state["weights"], state["firings"]


def raised_share(weights: dict[str, float], domain: str, step: float, cap: float = 0.5) -> dict[str, float]:
    """``domain``'s share raised by ``step`` (at most to ``cap``), the others scaled down to keep the sum 1."""
    current = weights.get(domain, 0.0)
    target = min(cap, current + step) if current < cap else current
    rest = 1.0 - current
    scale = (1.0 - target) / rest if rest > 0 else 0.0
    raised = {name: w * scale for name, w in weights.items() if name != domain}
    raised[domain] = target
    return raised
