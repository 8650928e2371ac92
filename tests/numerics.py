"""Comparing floating-point results in the suite: which comparison, and why its tolerance.

A comparison of computed numbers is one of three kinds (docs/architecture.md, "Tolerances"):

- **Exact** (`np.testing.assert_array_equal`): the same compiled program on the same inputs on
  the same machine, e.g. a rerun, a resumed run, a value saved and loaded, a row of a batch
  whose other rows change. XLA on CPU is deterministic, so any difference there is a bug.
- **Rounding** (`assert_rounding_close`): the same mathematics computed in another order: a
  packed or padded batch, another executor's program, another library (numpy, PyTorch,
  onnxruntime). Two such float results differ by rounding, which depends on the order of the
  sums, and the order depends on the program and on the CPU (XLA picks other vector kernels
  on an AVX-512 Intel than on an AMD EPYC). A per-element bound that one machine happens to
  meet is not enough: the bound is stated in units of the dtype's epsilon and scaled by the
  size of the values compared.
- **Modelled**: an approximation with an error of its own (a random sample, a quantised model,
  a finite difference, a printed decimal): its tolerance comes from that error, stated beside it.
"""

from __future__ import annotations

import jax
import numpy as np


def rounding_error(actual, desired) -> float:
    """max |actual - desired| in units of eps(dtype) * max(|actual|, |desired|): how far apart
    two results are, measured on the scale of their values. 0 for equal arrays (all-zero ones
    too); 1 / eps when one side is 0 where the other is not."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    if actual.shape != desired.shape:
        raise AssertionError(f"shapes differ: {actual.shape} and {desired.shape}")
    if not np.issubdtype(desired.dtype, np.floating) or not actual.size:
        return 0.0 if np.array_equal(actual, desired) else np.inf
    eps = np.finfo(np.result_type(actual.dtype, desired.dtype)).eps
    a, d = actual.astype(np.float64), desired.astype(np.float64)
    if not (np.isfinite(a).all() and np.isfinite(d).all()):
        return 0.0 if np.array_equal(a, d, equal_nan=True) else np.inf
    scale = max(np.abs(a).max(), np.abs(d).max())
    return float(np.abs(a - d).max() / (eps * scale)) if scale else 0.0


def assert_rounding_close(actual, desired, *, ulps: float, err_msg: str = "") -> None:
    """Every leaf of two pytrees (or two arrays) within `ulps` units of rounding
    (`rounding_error`): |a - d| <= ulps * eps * max(|a|, |d|) over the leaf. Integer and bool
    leaves must be equal. The caller states why `ulps` is what it is (the size and depth of the
    reductions whose order changed)."""
    paths = jax.tree_util.tree_leaves_with_path(actual)
    expected = jax.tree_util.tree_leaves(desired)
    if len(paths) != len(expected):
        raise AssertionError(f"{err_msg}: {len(paths)} leaves against {len(expected)}")
    worst = [
        (error, jax.tree_util.keystr(path))
        for (path, a), d in zip(paths, expected, strict=True)
        if (error := rounding_error(a, d)) > ulps
    ]
    if worst:
        listed = ", ".join(f"{path or 'array'}: {error:.3g}" for error, path in sorted(worst)[::-1])
        raise AssertionError(f"{err_msg} beyond {ulps} ulps of rounding: {listed}".lstrip())
