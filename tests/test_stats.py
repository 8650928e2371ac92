"""Bootstrap interval and paired tests against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reslstm_jax import stats


@pytest.mark.parametrize(
    ("a", "b", "p"),
    [
        # all n differences positive and distinct: exact two-sided p = 2 / 2^n
        ([0.5, 0.6, 0.7, 0.8, 0.9], [0.4, 0.45, 0.5, 0.55, 0.6], 2 / 2**5),
        ([0.5, 0.6, 0.7, 0.8, 0.9, 1.0], [0.49, 0.57, 0.66, 0.75, 0.84, 0.93], 2 / 2**6),
        # ranks 1..4 with signs + - + +: W- = 2, P(W <= 2) = 3/16, two-sided 6/16
        ([0.11, 0.18, 0.33, 0.44], [0.1, 0.2, 0.3, 0.4], 6 / 16),
    ],
)
def test_wilcoxon_exact_p_values(a, b, p):
    result = stats.wilcoxon_paired(a, b)
    # an exact p: a count over 2^n, a binary fraction; approx's rel 1e-6 leaves scipy its own
    # float64 arithmetic (measured: equal)
    assert result["p_value"] == pytest.approx(p)
    assert result["n"] == len(a)


def test_wilcoxon_identical_runs_have_p_one():
    assert stats.wilcoxon_paired([0.3, 0.4], [0.3, 0.4])["p_value"] == 1.0  # set, not computed
    with pytest.raises(ValueError, match="paired values"):
        stats.wilcoxon_paired([0.1, 0.2], [0.1])


@pytest.mark.parametrize(
    ("only_a", "only_b", "p"),
    [
        (10, 2, 2 * (1 + 12 + 66) / 4096),  # two-sided binomial(2; 12, 1/2)
        (3, 3, 1.0),
        (5, 0, 2 / 32),
        (0, 0, 1.0),
    ],
)
def test_mcnemar_exact_p_values(only_a, only_b, p):
    both = 7
    correct_a = [True] * (only_a + both) + [False] * only_b + [False] * 4
    correct_b = [False] * only_a + [True] * both + [True] * only_b + [False] * 4
    result = stats.mcnemar_exact(correct_a, correct_b)
    assert (result["only_a_correct"], result["only_b_correct"]) == (only_a, only_b)
    # an exact binomial p: a count over 2^n, a binary fraction; rel 1e-6 leaves scipy its own
    # float64 arithmetic (measured: equal)
    assert result["p_value"] == pytest.approx(p)


def test_mcnemar_paired_pools_seeds_and_reports_each():
    y = np.array([0, 1, 0, 1])
    a = np.array([[0, 1, 0, 1], [0, 1, 0, 0]])
    b = np.array([[1, 0, 0, 1], [0, 1, 0, 0]])
    result = stats.mcnemar_paired(y, a, b)
    assert (result["only_a_correct"], result["only_b_correct"]) == (2, 0)
    # 2 / 2^2 from scipy (as above); 1.0 set for a seed where the models never disagree
    assert result["per_seed_p_values"] == [pytest.approx(0.5), 1.0]


def test_bootstrap_interval_brackets_the_estimate_and_is_deterministic():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    preds = np.where(rng.random((3, 400)) < 0.6, y, rng.integers(0, 4, (3, 400)))
    point = np.mean([stats.uar(y, p, 4) for p in preds])
    low, high = stats.bootstrap_uar_ci(y, preds, 4, resamples=1000)
    assert low < point < high
    # the standard error of a proportion near 0.7 with 400 samples is about 0.023: a 95%
    # interval about 4 se = 0.09 wide
    assert 0.05 < high - low < 0.15
    assert (low, high) == stats.bootstrap_uar_ci(y, preds, 4, resamples=1000)  # seeded: exact
    # every resample's UAR of perfect predictions is a mean of recalls n / n = 1: exactly 1
    assert stats.bootstrap_uar_ci(y, y[None], 4, resamples=200) == (1.0, 1.0)


def test_uar_matches_the_definition():
    y = np.array([0, 0, 0, 1, 2, 2])
    p = np.array([0, 1, 0, 1, 0, 2])
    # float64 arithmetic in another order (2/3 is no binary fraction): approx's rel 1e-6
    assert stats.uar(y, p, 3) == pytest.approx((2 / 3 + 1 + 0.5) / 3)
    assert not math.isnan(stats.uar(y, p, 5))  # absent classes are excluded
