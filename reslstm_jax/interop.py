"""PyTorch `state_dict` import and export (NumPy in and out; torch is never imported).

Our trees use the reference's module names, so a torch key is the path of a leaf joined with
dots, with two renamings: LSTM tensors carry torch's layer suffix (`weight_ih` <->
`weight_ih_l0`), and BatchNorm running statistics live under `batch_stats` rather than
`params`. Examples: `lstm1.weight_ih_l0`, `bn_residual.running_mean`, `attention_vector`,
`fc.weight`, and `lstm.*` for LSTM-SA. `num_batches_tracked` buffers are ignored on import.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

_LSTM_LEAVES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
_STAT_LEAVES = ("running_mean", "running_var")


def _torch_key(path: tuple[str, ...]) -> str:
    *head, leaf = path
    if leaf in _LSTM_LEAVES:
        leaf += "_l0"
    return ".".join([*head, leaf])


def _flatten(tree: Mapping, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
    flat = {}
    for name, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, (*prefix, name)))
        else:
            flat[(*prefix, name)] = value
    return flat


def _unflatten(flat: Mapping[tuple[str, ...], object]) -> dict:
    tree: dict = {}
    for path, value in flat.items():
        node = tree
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = value
    return tree


def torch_keys(model) -> dict[str, tuple[str, tuple[str, ...], tuple[int, ...]]]:
    """torch key -> (collection, path in that collection, shape) for every variable of `model`."""
    shapes = jax.eval_shape(model.init, jax.random.key(0))
    keys = {}
    for collection in ("params", "batch_stats"):
        for path, leaf in _flatten(shapes[collection]).items():
            keys[_torch_key(path)] = (collection, path, tuple(leaf.shape))
    return keys


def from_torch_state_dict(model, state_dict: Mapping[str, object]) -> dict:
    """Variables for `model` from a reference `state_dict` (values: NumPy arrays or tensors).

    Every key of the model must be present with the same shape and no other key may appear
    (besides `*.num_batches_tracked`), so a state dict of another architecture, hidden size or
    attention variant cannot load silently.

    Returns:
      `{"params": ..., "batch_stats": ...}` of float32 arrays.

    Raises:
      ValueError: naming the missing, unexpected or misshapen keys.
    """
    expected = torch_keys(model)
    given = {k: v for k, v in state_dict.items() if not k.endswith(".num_batches_tracked")}
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    flat: dict[str, dict] = {"params": {}, "batch_stats": {}}
    for key, (collection, path, shape) in expected.items():
        if key not in given:
            continue
        value = np.asarray(given[key], dtype=np.float32)
        if value.shape != shape:
            problems.append(f"{key} has shape {value.shape}, {model.name} expects {shape}")
            continue
        flat[collection][path] = jnp.asarray(value)
    if problems:
        raise ValueError(f"state_dict does not fit {model.name}: " + "; ".join(problems))
    return {name: _unflatten(leaves) for name, leaves in flat.items()}


def to_torch_state_dict(variables: Mapping) -> dict[str, np.ndarray]:
    """The inverse of `from_torch_state_dict`: torch keys -> NumPy arrays.

    A `num_batches_tracked` of 0 is added for each BatchNorm so that torch's strict
    `load_state_dict` accepts the result (it matters in torch only when momentum is None).
    """
    out: dict[str, np.ndarray] = {}
    for collection in ("params", "batch_stats"):
        for path, value in _flatten(variables[collection]).items():
            out[_torch_key(path)] = np.asarray(value)
    for path in _flatten(variables["batch_stats"]):
        if path[-1] == _STAT_LEAVES[0]:
            out[".".join([*path[:-1], "num_batches_tracked"])] = np.zeros((), np.int64)
    return out
