"""The suite's rounding comparison (tests/numerics.py) passes rounding and fails real changes."""

from __future__ import annotations

import numpy as np
import pytest
from numerics import assert_rounding_close, rounding_error

RNG = np.random.default_rng(0)
TERMS = RNG.normal(size=(64, 1000)).astype(np.float32)
EPS32 = np.finfo(np.float32).eps


def _one_changed(array: np.ndarray, relative: float) -> np.ndarray:
    changed = array.copy()
    changed.flat[np.argmax(np.abs(changed))] *= 1 + relative
    return changed


@pytest.mark.parametrize(
    "actual, desired, low, high",
    [
        (np.ones(3), np.ones(3), 0, 0),
        (np.zeros(3, np.float32), np.zeros(3, np.float32), 0, 0),
        # The same sums in reverse order: rounding, a few ulps of the sums' scale.
        (TERMS[:, ::-1].sum(1), TERMS.sum(1), 0.01, 64),
        (_one_changed(TERMS[0], 100 * EPS32), TERMS[0], 99, 101),
        (np.array([0.0, 1.0], np.float32), np.array([1e-3, 1.0], np.float32), 8e3, 9e3),
        (np.array([0.0], np.float32), np.array([1e-30], np.float32), 1 / EPS32, 1 / EPS32),
        (np.array([np.nan, 1.0]), np.array([np.nan, 1.0]), 0, 0),
        (np.array([np.nan, 1.0]), np.array([1.0, 1.0]), np.inf, np.inf),
        (np.array([1, 2]), np.array([1, 2]), 0, 0),
        (np.array([1, 2]), np.array([1, 3]), np.inf, np.inf),
    ],
)
def test_rounding_error_in_ulps_of_the_values_scale(actual, desired, low, high):
    assert low <= rounding_error(actual, desired) <= high


def test_trees_pass_rounding_and_name_the_leaf_that_changed():
    tree = {"w": TERMS.sum(1), "steps": np.arange(4)}
    assert_rounding_close({"w": TERMS[:, ::-1].sum(1), "steps": np.arange(4)}, tree, ulps=64)
    with pytest.raises(AssertionError, match=r"beyond 64 ulps of rounding: \['w'\]"):
        assert_rounding_close({"w": _one_changed(tree["w"], 1e-4), "steps": np.arange(4)}, tree,
                              ulps=64)  # fmt: skip
    with pytest.raises(AssertionError, match=r"\['steps'\]: inf"):
        assert_rounding_close({"w": tree["w"], "steps": np.arange(1, 5)}, tree, ulps=64)
    with pytest.raises(AssertionError, match="shapes differ"):
        assert_rounding_close(np.ones(3), np.ones(4), ulps=64)
