"""Sampled mixtures respect bounds and epoch limits, over many seeds; impossible bounds are one clear line."""

import numpy as np
import pytest

from syllabus.config.errors import ConfigError
from syllabus.mix.space import MixSpace, sample_mixtures

CENTRE = {"wiki": 0.4, "math": 0.3, "code": 0.1, "replay": 0.2}
# math is tiny: 20 epochs per unit of share, so 3 epochs cap it at 0.15 (the plan's 0.3 would repeat it 6 times)
EPOCHS = {"wiki": 0.5, "math": 20.0, "code": 2.0}


def space() -> MixSpace:
    return MixSpace.build(CENTRE, {"code": (0.05, 0.5), "replay": (0.1, 0.3)}, EPOCHS, max_epochs=3.0)


@pytest.mark.parametrize("seed", range(25))
def test_every_sampled_mixture_keeps_bounds_and_epoch_limits(seed):
    s = space()
    mixtures = sample_mixtures(s, 24, seed)
    assert len(mixtures) == 24 and mixtures[0].kind == "plan" and mixtures[1].kind == "uniform"
    for m in mixtures[1:]:
        assert s.contains(m.weights), (m.name, m.weights)
        assert all(e <= 3.0 + 1e-6 for e in s.epochs(m.weights).values()), (m.name, s.epochs(m.weights))
        assert 0.05 - 1e-6 <= m.weights["code"] <= 0.5 + 1e-6
        assert 0.1 - 1e-6 <= m.weights["replay"] <= 0.3 + 1e-6
    # the plan's own mixture is kept as written and said to be outside: math would repeat 6 epochs
    assert mixtures[0].weights == CENTRE
    assert s.outside(mixtures[0].weights) == ["math = 0.3 > 0.15 (would repeat 6 epochs)"]
    # draws differ (a real search space, not one point)
    spread = np.std([[m.weights[n] for n in s.names] for m in mixtures[2:]], axis=0)
    assert spread.min() > 0.01


def test_same_seed_same_mixtures_and_other_seed_others():
    assert sample_mixtures(space(), 10, 3) == sample_mixtures(space(), 10, 3)
    assert sample_mixtures(space(), 10, 3) != sample_mixtures(space(), 10, 4)


def test_projection_is_onto_the_bounded_simplex():
    s = space()
    w = s.project([0.9, 0.9, 0.0, 0.0])
    assert s.contains(s.as_dict(w)) and abs(w.sum() - 1) < 1e-9


def test_impossible_bounds_are_one_line_naming_the_flag():
    with pytest.raises(ConfigError, match=r"--bound/--max-epochs: no mixture fits \(mins sum to 1.2"):
        MixSpace.build(CENTRE, {"wiki": (0.6, 1.0), "math": (0.6, 1.0)})
    with pytest.raises(ConfigError, match="--bound books: not a component"):
        MixSpace.build(CENTRE, {"books": (0.0, 0.5)})
