"""Stopping decisions on constructed cases."""

import numpy as np
import pytest

from metabo.stopping.model import QUANTILES, CurveModel
from metabo.stopping.rules import Checkpoint, StoppingRule


def point(prefix, others=(), finals=(), fraction=0.5):
    return Checkpoint(np.asarray(prefix, float), np.zeros(2), fraction, np.asarray(others, float), np.asarray(finals, float))


def test_median_rule_waits_for_its_startup_trials_then_compares_with_the_median():
    rule = StoppingRule("median", startup=3)
    assert not rule.should_stop(point([0.1, 0.2], others=[0.5, 0.6]))  # 2 < startup
    assert rule.should_stop(point([0.1, 0.2], others=[0.5, 0.6, 0.1]))  # median 0.5 > best 0.2
    assert not rule.should_stop(point([0.1, 0.5], others=[0.5, 0.6, 0.1]))  # best == median: continue


def test_asha_keeps_the_top_third_of_its_rung():
    rule = StoppingRule("asha", startup=2, eta=3.0)
    others = [0.9, 0.8, 0.7, 0.6, 0.5]  # with the trial, 6 at the rung: the top 2 go on
    assert not rule.should_stop(point([0.95], others))  # first
    assert not rule.should_stop(point([0.85], others))  # second
    assert rule.should_stop(point([0.75], others))  # third
    assert not rule.should_stop(point([0.1], others[:1]))  # before its startup trials


def _uniform_model():
    """A curve model whose predictive final score is uniform on [best - 1, best + 1]."""
    p = 7  # features of a 2-D configuration
    return CurveModel("regression", (0.5,), np.zeros((1, p)), np.zeros((1, p)), np.linspace(-1, 1, len(QUANTILES))[None], 10)


def test_curve_rule_stops_when_beating_the_best_final_is_unlikely():
    rule = StoppingRule("curve", p_min=0.05, model=_uniform_model())
    # P(final > 0.95) = (1 - 0.95) / 2 = 0.025 < 0.05: stop; P(final > 0.8) = 0.1: go on.
    assert rule.should_stop(point([-0.5, 0.0], finals=[0.95, 0.3]))
    assert not rule.should_stop(point([-0.5, 0.0], finals=[0.8]))
    assert not rule.should_stop(point([-0.5, 0.0], finals=[]))  # no complete run to beat yet
    with pytest.raises(ValueError, match="needs a pre-trained curve model"):
        StoppingRule("curve").should_stop(point([0.0], finals=[1.0]))
    with pytest.raises(ValueError, match="unknown stopping rule"):
        StoppingRule("hyperband").should_stop(point([0.0]))
