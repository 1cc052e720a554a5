"""``compile: auto`` (``train/compile_choice.py``): the decision from measured eager steps and cached or assumed
figures, the measurement it caches after compiling, and the regional compile's wrapping. The end-to-end run
(auto compiling mid-stage, losses equal to eager's) is in ``test_compile.py``."""

import pytest
import torch

from syllabus.config.pretrain import PreTrainingConfig
from syllabus.model import Transformer
from syllabus.train import compile_choice
from syllabus.train.compile_choice import (AutoCompile, TrainingCompiled, auto_compile_for, compile_blocks,
                                            compile_class)
from syllabus.train.distributed import DistContext
from syllabus.train.schedule import Phase
from syllabus.config.model import model_config_for


def tiny_config():
    return model_config_for("tiny", vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=128)


class Recorder:
    def __init__(self):
        self.compiled, self.stored = [], []

    def compile(self, model):
        self.compiled.append(model)

    def store(self, values):
        self.stored.append(values)


def watcher(figures, recorder, key="k", device="cpu"):
    return AutoCompile("model", key, device, DistContext.single("cpu"), compile=recorder.compile,
                       figures=lambda: figures, store=recorder.store)


def feed(auto, seconds, start=0, max_steps=1000):
    records = [auto.observe(start + i + 1, max_steps, s) for i, s in enumerate(seconds)]
    return [r for r in records if r is not None]


def test_a_long_stage_compiles_and_the_measured_figures_are_cached():
    rec = Recorder()
    auto = watcher({"k": {"warmup_s": 20.0, "speedup": 1.25}}, rec)
    # first step (allocations) ignored; then 3 eager steps of 0.5 s; 996 steps left: saving 996*0.5*0.2 = 99.6 s
    (decided,) = feed(auto, [9.0, 0.5, 0.4, 0.6])
    assert rec.compiled == ["model"] and decided["compiled"] is True and decided["figures"] == "measured"
    assert decided["eager_step_seconds"] == 0.5 and decided["steps_left"] == 996
    assert decided["expected_saving_seconds"] == pytest.approx(996 * 0.5 * 0.2)
    # first compiled step: 25.5 s = 25 s of warm-up over the eager step; then 0.4 s steps: 1.25x
    (measured,) = feed(auto, [25.5, 0.4, 0.41, 0.39], start=4)
    assert measured["measured_warmup_seconds"] == pytest.approx(25.0)
    assert measured["measured_speedup"] == pytest.approx(0.5 / 0.4)
    (stored,) = rec.stored
    assert stored["k"]["warmup_s"] == pytest.approx(25.0) and stored["k"]["speedup"] == pytest.approx(1.25)
    assert feed(auto, [0.4] * 5, start=8) == [] and rec.compiled == ["model"]  # decided once


def test_a_short_stage_stays_eager():
    rec = Recorder()
    auto = watcher({"k": {"warmup_s": 20.0, "speedup": 1.25}}, rec)
    # 296 steps left at 0.5 s: saving 29.6 s, more than one warm-up but less than MARGIN (2) of them
    (decided,) = feed(auto, [9.0, 0.5, 0.5, 0.5], max_steps=300)
    assert decided["compiled"] is False and rec.compiled == [] and auto.state == "eager"
    assert feed(auto, [0.5] * 10, start=4, max_steps=300) == [] and rec.stored == []


def test_no_figures_for_the_class_uses_the_assumed_ones(monkeypatch):
    monkeypatch.setattr(compile_choice, "ASSUMED", {"cpu": (10.0, 2.0)})
    rec = Recorder()
    auto = watcher({"other": {"warmup_s": 0.0, "speedup": 100.0}}, rec)
    (decided,) = feed(auto, [1.0, 0.1, 0.1, 0.1], max_steps=104)  # 100 steps x 0.1 s x 0.5 = 5 s < 20 s
    assert decided["figures"] == "assumed" and decided["expected_warmup_seconds"] == 10.0
    assert decided["compiled"] is False
    auto = watcher({}, rec)
    (decided,) = feed(auto, [1.0, 0.1, 0.1, 0.1], max_steps=404)  # 400 x 0.1 x 0.5 = 20 s >= 20 s
    assert decided["compiled"] is True


def test_a_compile_that_does_not_speed_up_is_never_expected_to_pay():
    rec = Recorder()
    auto = watcher({"k": {"warmup_s": 0.0, "speedup": 0.9}}, rec)
    (decided,) = feed(auto, [1.0, 1.0, 1.0, 1.0], max_steps=10**6)
    assert decided["compiled"] is False and decided["expected_saving_seconds"] == 0.0


class Rank1:
    """A non-main rank whose rank 0 decided ``decision``."""

    is_main = False

    def __init__(self, decision):
        self.decision = decision

    def broadcast_object(self, value):
        return self.decision


@pytest.mark.parametrize("rank0", [True, False])
def test_every_rank_follows_rank_0(rank0):
    for figures in ({"k": {"warmup_s": 0.0, "speedup": 10.0}}, {"k": {"warmup_s": 1e9, "speedup": 1.01}}):
        rec = Recorder()
        auto = AutoCompile("model", "k", "cpu", Rank1(rank0), compile=rec.compile, figures=lambda: figures,
                           store=rec.store)
        (decided,) = feed(auto, [1.0, 1.0, 1.0, 1.0])
        assert decided["compiled"] is rank0 and rec.compiled == (["model"] if rank0 else [])
        feed(auto, [2.0, 0.5, 0.5, 0.5], start=4)
        assert rec.stored == []  # only rank 0 writes the cache


def test_setting_and_strategy_decide_whether_there_is_a_watcher():
    model = Transformer(tiny_config())
    single = DistContext.single("cpu")
    phases = [Phase(0, 250, 2, 1)]
    assert auto_compile_for(PreTrainingConfig(compile=False), single, model, "bf16", phases) is None
    assert auto_compile_for(PreTrainingConfig(compile=True), single, model, "bf16", phases) is None
    auto = auto_compile_for(PreTrainingConfig(), single, model, "bf16", phases)  # auto is the default
    assert auto.key == compile_class(model.config, "bf16", 500, "cpu")
    assert auto.key.endswith("|n512") and auto.key.startswith("cpu|bf16|")
    fsdp = DistContext(0, 2, 0, single.device, "fsdp", None)
    assert auto_compile_for(PreTrainingConfig(), fsdp, model, "bf16", phases) is None


def test_each_curriculum_shape_still_ahead_counts_one_warm_up():
    model = Transformer(tiny_config())
    phases = [Phase(0, 32, 4, 1), Phase(20, 64, 4, 1), Phase(40, 48, 2, 1), Phase(60, 64, 4, 1, lr_scale=0.5)]
    auto = auto_compile_for(PreTrainingConfig(), DistContext.single("cpu"), model, "bf16", phases)
    assert [auto.shapes_left(s) for s in (4, 19, 20, 45, 70)] == [3, 3, 2, 2, 1]
    rec = Recorder()
    auto._compile, auto._figures = rec.compile, lambda: {auto.key: {"warmup_s": 10.0, "speedup": 2.0}}
    # 96 steps left x 0.5 s x 0.5 = 24 s: more than 2 x 10 s, less than 2 x 3 x 10 s
    (decided,) = feed(auto, [1.0, 0.5, 0.5, 0.5], max_steps=100)
    assert decided["shapes_left"] == 3 and decided["expected_warmup_seconds"] == 30.0
    assert decided["compiled"] is False and rec.compiled == []


@pytest.mark.parametrize("bad", [{"warmup_s": 0.0}, {"warmup_s": 0.0, "speedup": None}, {"warmup_s": "x", "speedup": 2},
                                 {"warmup_s": -1, "speedup": 2}, {"warmup_s": 0, "speedup": float("nan")}, 7, [1, 2]])
def test_malformed_cached_figures_are_ignored_with_one_warning(bad, caplog, monkeypatch):
    monkeypatch.setattr(compile_choice, "ASSUMED", {"cpu": (1.0, 2.0)})
    rec = Recorder()
    auto = watcher({"k": bad}, rec)
    with caplog.at_level("WARNING", logger="syllabus"):
        (decided,) = feed(auto, [1.0, 1.0, 1.0, 1.0])
    assert decided["figures"] == "assumed" and decided["compiled"] is True
    (line,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert "ignoring the cached figures for k" in line and "\n" not in line
    rec = Recorder()
    broken = AutoCompile("model", "k", "cpu", DistContext.single("cpu"), compile=rec.compile, figures=lambda: [1],
                         store=rec.store)  # the whole "compile" entry is not a mapping
    assert feed(broken, [1.0, 1.0, 1.0, 1.0])[0]["figures"] == "assumed"
    (measured,) = feed(broken, [1.0, 0.5, 0.5, 0.5], start=4)  # a warm cache: no extra time on the first
    assert measured["measured_warmup_seconds"] == 0.0 and measured["measured_speedup"] == 2.0
    assert rec.stored == [{"k": {"warmup_s": 0.0, "speedup": 2.0, "taken": rec.stored[0]["k"]["taken"]}}]


def test_compile_true_compiles_each_block_in_place_for_training_only():
    model = Transformer(tiny_config())
    names = [n for n, _ in model.named_parameters()]
    wrapped = DistContext.single("cpu").wrap(model, PreTrainingConfig(compile=True))
    assert wrapped is model and [n for n, _ in model.named_parameters()] == names
    assert all(isinstance(block.forward, TrainingCompiled) for block in model.model.layers)
    assert model._compiled_call_impl is None and "forward" not in vars(model)  # regional: blocks, not the model
    eager = Transformer(tiny_config())
    DistContext.single("cpu").wrap(eager, PreTrainingConfig(compile="auto"))
    assert all("forward" not in vars(block) for block in eager.model.layers)


def test_a_compiled_block_runs_compiled_only_in_training_with_gradients():
    calls = []

    def compiler(fn):
        return lambda *args, **kwargs: calls.append("compiled") or fn(*args, **kwargs)

    model = Transformer(tiny_config())
    ids = torch.randint(0, 128, (2, 8))
    compile_blocks(model, compiler)
    compile_blocks(model, compiler)  # idempotent: not compiled twice over
    model(ids, ids).backward()
    assert calls == ["compiled"] * 2  # both blocks, in training
    calls.clear()
    with torch.no_grad():
        model(ids, ids)  # training mode, no gradients (e.g. a no_grad probe)
        model.eval()
        model(ids)  # validation, generation
    assert calls == []


def test_a_wrong_compile_value_names_the_field():
    with pytest.raises(ValueError, match="compile"):
        PreTrainingConfig(compile="sometimes")
