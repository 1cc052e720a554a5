import math

import pytest

from syllabus.train.schedule import Phase, lr_at, phase_at


def test_warmup_then_cosine_to_minimum():
    kw = dict(peak=1.0, minimum=0.1, warmup=10, total=110, schedule="cosine")
    assert lr_at(0, **kw) == pytest.approx(0.1)
    assert lr_at(9, **kw) == pytest.approx(1.0)
    assert lr_at(10, **kw) == pytest.approx(1.0)
    assert lr_at(60, **kw) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 0.5)))
    assert lr_at(110, **kw) == pytest.approx(0.1)
    assert lr_at(500, **kw) == pytest.approx(0.1)


def test_constant_and_warmup_stable_decay():
    assert lr_at(50, peak=1.0, minimum=0.0, warmup=5, total=100, schedule="constant") == 1.0
    wsd = dict(peak=1.0, minimum=0.0, warmup=5, total=100, schedule="wsd", decay_fraction=0.2)
    assert lr_at(79, **wsd) == 1.0
    assert lr_at(90, **wsd) == pytest.approx(0.5)
    assert lr_at(100, **wsd) == pytest.approx(0.0)


def test_phase_in_force():
    phases = [Phase(0, 64, 32, 1), Phase(200, 256, 8, 1, 0.8)]
    assert phase_at(phases, 199).seq_len == 64
    assert phase_at(phases, 200).seq_len == 256
    assert phases[0].tokens_per_step == phases[1].tokens_per_step == 2048
