"""Parameter counting, from real arrays or from shapes alone."""

from __future__ import annotations

import math

import jax


def count_params(params) -> int:
    """Number of scalars in a parameter tree (arrays or `jax.ShapeDtypeStruct` leaves)."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(params))


def param_count(model) -> int:
    """Trainable parameters of `model`, computed from shapes only (nothing is allocated)."""
    shapes = jax.eval_shape(model.init, jax.random.key(0))
    return count_params(shapes["params"])
