"""Whether a stage is compiled: ``compile: true``, ``false`` or ``auto`` (the default), and how.

How: regional compilation. Each transformer block's forward is compiled in place, for training steps only
(``TrainingCompiled``; evaluation and generation stay eager), not the whole model: the blocks share one graph,
compiled once for all of them, so the cold warm-up is about half a whole-model compile's (cpu-v8k bf16 on the
AMX Xeon, a fresh inductor cache: 25.8 s against 49.6 s for 2.5 % slower steps, docs/performance.md), and
parameter names, checkpoints, DDP and FSDP2 wrapping stay as in eager. It is PyTorch's recipe for repeated regions ("regional compilation" in its compile tutorials) and
torchtitan's. The embeddings, the final norm and the loss stay eager.

``auto`` decides per stage, by measurement (``AutoCompile``): the stage starts eager; after ``PROBE_STEPS``
timed steps (the first step, which allocates, is not timed) it knows the eager step time t and the steps left
n. With this machine's compile figures for the shape class (a warm-up of W seconds and a speed-up s, measured
the last time such a stage compiled, cached with the matmul peaks), it compiles when the expected saving
n·t·(1 − 1/s) is at least ``MARGIN``·W·k, k the number of distinct micro-batch shapes the stage's curriculum
still trains at (each new shape recompiles). A machine without figures assumes ``ASSUMED`` (a guess, logged as
such), and the first compiled stage measures and caches the real ones: the first compiled step's extra time
is W, the median of the next ``PROBE_STEPS`` steps gives s. Rank 0 decides and every rank follows
(``DistContext.broadcast_object``). Under FSDP2 blocks must be compiled before they are sharded, so ``auto``
stays eager there (``compile: true`` compiles). The decision is logged and written to ``metrics.jsonl`` as an
``event: compile`` record.
"""

from __future__ import annotations

import logging
import math
import statistics
import time

import torch

from syllabus.train import peaks

log = logging.getLogger("syllabus")

PROBE_STEPS = 3  # timed steps before a decision (eager) and for the speed-up (compiled)
MARGIN = 2.0  # compile when the expected saving is at least twice the expected warm-up
ASSUMED = {"cpu": (60.0, 1.2), "cuda": (90.0, 1.3)}  # (warm-up seconds, speed-up) before any measurement
_now = time.time


def compile_blocks(model: torch.nn.Module, compiler=torch.compile) -> None:
    """Compile the forward of each block of a syllabus ``Transformer`` (``model.model.layers``; another model:
    its own forward) in place, for training only (``TrainingCompiled``); a block already compiled is left as it
    is. Names and state dicts do not change.
    ``compiler`` is ``torch.compile`` (tests inject a recorder)."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    for module in layers if layers is not None else [model]:
        if not isinstance(module.forward, TrainingCompiled):  # once: a second call changes nothing
            module.forward = TrainingCompiled(module, compiler)


class TrainingCompiled:
    """A module's ``forward`` that runs compiled while the module trains with gradients enabled, and eager
    otherwise: validation, benchmark generation (a KV cache whose length changes every token would recompile
    each step) and merges never wait for a compile of their own shapes. Set as the module's ``forward``
    attribute, so module hooks (DDP's included) run as before."""

    def __init__(self, module: torch.nn.Module, compiler=torch.compile):
        self.eager = module.forward  # the class's bound forward
        self.compiled = compiler(self.eager)

    def __call__(self, *args, **kwargs):
        if self.eager.__self__.training and torch.is_grad_enabled():
            return self.compiled(*args, **kwargs)
        return self.eager(*args, **kwargs)


def compile_class(model_config, precision: str, tokens: int, device_type: str) -> str:
    """The cache key of a run's compile figures, e.g. ``cpu|bf16|h384|l6|v8192|n2048``: width, depth, vocabulary
    and tokens per micro-batch (rounded up to a power of two)."""
    n = 1 << max(0, int(tokens) - 1).bit_length()
    return (f"{device_type}|{precision}|h{model_config.hidden_size}|l{model_config.num_hidden_layers}"
            f"|v{model_config.vocab_size}|n{n}")


class AutoCompile:
    """``compile: auto`` for one stage: watch the eager steps, decide, compile the blocks, measure what it cost.

    ``observe(step, max_steps, seconds)`` is called by the trainer after every optimizer step (``step`` counts
    finished steps, ``seconds`` is that step's wall time); it returns a record for ``metrics.jsonl`` when it has
    decided or finished measuring, else None. ``shapes_left(step)`` is the number of distinct micro-batch shapes
    the stage's curriculum phases still train at from ``step`` on: compiled, each may cost a warm-up of its own
    (dynamo recompiles on a new shape), so the expected warm-up is the cached one times that number.
    ``compile``, ``figures`` (the cached ``{class: {warmup_s, speedup, taken}}``) and ``store`` are injectable
    for tests; figures that are not a positive warm-up and speed-up are ignored, with one warning."""

    def __init__(self, model: torch.nn.Module, key: str, device_type: str, dist, *, compile=compile_blocks,
                 figures=None, store=None, shapes_left=lambda step: 1):
        self.model, self.key, self.device_type, self.dist = model, key, device_type, dist
        self.shapes_left = shapes_left
        self._compile = compile
        self._figures = figures if figures is not None else (lambda: peaks.cached_entry(device_type).get("compile", {}))
        self._store = store if store is not None else (lambda values: peaks.store_entry(device_type, {"compile": values}))
        self.state = "probing"  # -> "eager" | "measuring" -> "compiled"
        self.seen = 0  # steps observed
        self.eager: list[float] = []
        self.compiled: list[float] = []
        self.eager_seconds = 0.0
        self.warmup_seconds: float | None = None  # the first compiled step's time over an eager one

    def observe(self, step: int, max_steps: int, seconds: float) -> dict | None:
        """Feed one finished step; returns an ``event: compile`` record when there is something to log."""
        if self.state == "probing":
            self.seen += 1
            if self.seen > 1:  # the stage's first step allocates: not a step's time
                self.eager.append(seconds)
            if len(self.eager) < PROBE_STEPS:
                return None
            return self._decide(step, max_steps - step)
        if self.state == "measuring":
            if self.warmup_seconds is None:
                self.warmup_seconds = max(0.0, seconds - self.eager_seconds)
                return None
            self.compiled.append(seconds)
            if len(self.compiled) < PROBE_STEPS:
                return None
            return self._measured()
        return None

    def _decide(self, step: int, remaining: int) -> dict:
        self.eager_seconds = statistics.median(self.eager)
        known = self._cached_figures()
        warmup, speedup = known or ASSUMED["cpu" if self.device_type == "cpu" else "cuda"]
        shapes = max(1, int(self.shapes_left(step)))
        warmup *= shapes
        saving = remaining * self.eager_seconds * (1 - 1 / speedup) if speedup > 1 else 0.0
        decision = self.dist.broadcast_object(saving > 0 and saving >= MARGIN * warmup)
        source = "measured" if known else "assumed"
        record = {"event": "compile", "compiled": bool(decision), "eager_step_seconds": self.eager_seconds,
                  "steps_left": remaining, "expected_saving_seconds": saving, "expected_warmup_seconds": warmup,
                  "expected_speedup": speedup, "figures": source, "class": self.key, "shapes_left": shapes}
        log.info("compile: auto: %s (%d steps left at %.3f s eager: saving %.0f s expected against a %.0f s "
                 "warm-up, speed-up %.2f, %s figures)", "compiling the blocks" if decision else "eager",
                 remaining, self.eager_seconds, saving, warmup, speedup, source)
        if decision:
            self._compile(self.model)
            self.state = "measuring"
        else:
            self.state = "eager"
        return record

    def _cached_figures(self) -> tuple[float, float] | None:
        """(warm-up seconds, speed-up) cached for this class, or None (none cached, or not numbers: warned)."""
        try:
            known = self._figures().get(self.key)
            if known is None:
                return None
            warmup, speedup = float(known["warmup_s"]), float(known["speedup"])
            if not (math.isfinite(warmup) and warmup >= 0 and math.isfinite(speedup) and speedup > 0):
                raise ValueError("not a warm-up >= 0 and a speed-up > 0")
            return warmup, speedup
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            log.warning("compile: auto: ignoring the cached figures for %s in %s (%s: %s); assuming them",
                        self.key, peaks.cache_file(), type(err).__name__, err)
            return None

    def _measured(self) -> dict:
        self.state = "compiled"
        compiled = statistics.median(self.compiled)
        speedup = self.eager_seconds / compiled if compiled > 0 else 1.0
        cached = self._figures()
        figures = {**(cached if isinstance(cached, dict) else {}),  # a hand-edited entry that is not a mapping
                   self.key: {"warmup_s": self.warmup_seconds, "speedup": speedup, "taken": _now()}}
        if self.dist.is_main:
            self._store(figures)
        log.info("compile: auto: measured a %.1f s warm-up and a %.2fx speed-up (%.3f -> %.3f s a step); cached",
                 self.warmup_seconds, speedup, self.eager_seconds, compiled)
        return {"event": "compile", "measured_warmup_seconds": self.warmup_seconds, "measured_speedup": speedup,
                "compiled_step_seconds": compiled}


def auto_compile_for(config, dist, model: torch.nn.Module, precision: str, phases) -> AutoCompile | None:
    """The ``AutoCompile`` of a stage with ``config.compile == "auto"``; None when the setting is true or false,
    and under FSDP2, where blocks compile before sharding (``auto`` stays eager there, logged). ``phases``: the
    stage's curriculum (``schedule.Phase``, ordered by ``at``); the first one's tokens per micro-batch give the
    shape class's ``n``."""
    if config.compile != "auto":
        return None
    if dist.strategy == "fsdp":
        log.info("compile: auto stays eager under fsdp (compile: true compiles the blocks before sharding)")
        return None
    tokens = phases[0].micro_batch_size * phases[0].seq_len
    config_of_model = getattr(model, "config", None)
    key = (compile_class(config_of_model, precision, tokens, dist.device.type)
           if hasattr(config_of_model, "num_hidden_layers") else f"{type(model).__name__}|{precision}|n{tokens}")

    def shapes_left(step: int) -> int:
        current = max((i for i, p in enumerate(phases) if p.at <= step), default=0)
        return len({(p.micro_batch_size, p.seq_len) for p in phases[current:]})

    return AutoCompile(model, key, dist.device.type, dist, shapes_left=shapes_left)
