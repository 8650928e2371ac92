"""The model protocol (reslstm_jax.models.base), one table over every model family.

What every family provides the trainer, predict and the counters: a hashable registry config,
init deterministic per key, apply's `(logits, extras)` with the documented extras, training
statistics in the tree of the variables, a dropout key when training with dropout, padding
rows that change no other row and no statistic, loss heads whose weights sum to 1, a finite
penalty, and the exact parameter count from shapes alone. Family-specific behaviour (counts
of the papers, reference parity, packing, gates) stays in each family's own test file.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import reslstm_jax as rj
from reslstm_jax import families
from reslstm_jax.models.base import Model

B, T, C = 4, 9, 3
LENGTHS = jnp.array([T, 5, 0, 2])  # row 2 pads the static batch
REAL = np.array([0, 1, 3])

# Small configurations of each family and their input shapes (one utterance).
FAMILIES = {
    "lstm_sa": ({"hidden_size": 8}, {"x": (T, 6)}),
    "reslstm_sa": ({"hidden_size": 8, "num_att": 2}, {"x": (T, 6)}),
    "ds_lstm": (
        {"hidden_size": 6, "cnn_channels": (3, 2)},
        {"a": (36, 12), "b": (16, 10), "mfcc": (T, 5)},
    ),
    "light_sernet": ({}, {"x": (T, 40)}),
}
EXTRAS = {"lstm_sa": {"attention"}, "reslstm_sa": {"attention"}, "ds_lstm": {"ds", "lstm"},
          "light_sernet": set()}  # fmt: skip


def test_the_table_covers_every_family():
    assert sorted(FAMILIES) == families.names() == sorted(EXTRAS)


def build(family):
    config, shapes = FAMILIES[family]
    return families.build_model(family, shapes, C, config), shapes


def batch(shapes, seed=0, poison=None):
    """Inputs [B, ...] with zeros past each length; `poison` fills the padding row."""
    rng = np.random.default_rng(seed)
    x = {}
    for key, shape in shapes.items():
        a = rng.standard_normal((B, *shape)).astype(np.float32)
        if key in ("x", "mfcc"):
            a[np.arange(shape[0])[None, :] >= np.asarray(LENGTHS)[:, None]] = 0.0
        if poison is not None:
            a[2] = poison
        x[key] = jnp.asarray(a)
    return x["x"] if list(x) == ["x"] else x


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request):
    model, shapes = build(request.param)
    return request.param, model, shapes, jax.jit(model.init)(jax.random.key(0))


@functools.cache
def train_program(model, rate):
    """One compiled training apply per model and rate, shared by the calls."""
    return jax.jit(lambda v, x, k: model.apply(v, x, LENGTHS, train=True, key=k, dropout_rate=rate))


def train_apply(model, variables, x, key, rate):
    return train_program(model, rate)(variables, x, key)


def test_registry_config_is_hashable_and_follows_the_protocol(family):
    name, model, _, _ = family
    again, _ = build(name)
    assert isinstance(model, Model) and model.name == name and name in rj.models.names()
    assert model == again and hash(model) == hash(again)
    fam = families.get(name)
    # a run sets what the data does not decide; dropout is every run's dynamic rate
    assert not set(fam.fields) & {"name", "dropout", "num_classes", *fam.data_fields}
    assert set(fam.key_fields) <= set(fam.fields)


def test_init_is_deterministic_per_key_and_counted_from_shapes(family):
    _, model, _, variables = family
    same, other = (jax.jit(model.init)(jax.random.key(k)) for k in (0, 1))
    for a, b in zip(jax.tree_util.tree_leaves(variables), jax.tree_util.tree_leaves(same),
                    strict=True):  # fmt: skip
        np.testing.assert_array_equal(a, b)  # exact: the same program on the same key
    assert not all(  # another key draws other numbers
        np.array_equal(a, b)
        for a, b in zip(
            jax.tree_util.tree_leaves(variables), jax.tree_util.tree_leaves(other), strict=True
        )  # fmt: skip
    )
    assert rj.param_count(model) == rj.count_params(variables["params"])


def test_apply_returns_logits_and_the_documented_extras(family):
    name, model, shapes, variables = family
    logits, extras = jax.jit(model.apply)(variables, batch(shapes), LENGTHS)
    assert logits.shape == (B, C) and np.isfinite(np.asarray(logits)[REAL]).all()
    assert isinstance(extras, dict) and set(extras) == EXTRAS[name]
    if "attention" in extras:
        weights = np.asarray(extras["attention"])
        assert weights.shape == (B, T)
        # a softmax's weights sum to 1 up to the rounding of a <= 9-term sum (measured 1 eps)
        np.testing.assert_allclose(weights[REAL].sum(1), 1.0, atol=1e-5)  # 84 eps
        assert not weights[REAL][np.arange(T)[None] >= np.asarray(LENGTHS)[REAL][:, None]].any()
    for head in ("ds", "lstm"):
        if head in extras:
            assert extras[head].shape == (B, C)


def test_training_needs_a_key_for_dropout_and_returns_statistics_like_the_variables(family):
    _, model, shapes, variables = family
    x = batch(shapes)
    with pytest.raises(ValueError, match="needs a dropout `key`"):
        model.apply(variables, x, LENGTHS, train=True, dropout_rate=0.5)
    (logits, extras), stats = jax.eval_shape(
        lambda v: model.apply(v, x, LENGTHS, train=True, dropout_rate=0.0), variables
    )
    assert logits.shape == (B, C) and isinstance(extras, dict)
    assert jax.tree_util.tree_structure(stats) == jax.tree_util.tree_structure(
        variables["batch_stats"]
    )


def test_padding_rows_change_no_other_row_and_no_statistic(family):
    """Exact: each comparison is one compiled program on inputs that differ in the padding
    row only, which every family zeroes or masks out before it meets another row."""
    _, model, shapes, variables = family
    key = jax.random.key(3)
    (logits, _), stats = train_apply(model, variables, batch(shapes), key, 0.3)
    for poison in (1e4, np.nan):
        (logits_p, _), stats_p = train_apply(model, variables, batch(shapes, poison=poison),
                                             key, 0.3)  # fmt: skip
        np.testing.assert_array_equal(np.asarray(logits_p)[REAL], np.asarray(logits)[REAL])
        for a, b in zip(jax.tree_util.tree_leaves(stats), jax.tree_util.tree_leaves(stats_p),
                        strict=True):  # fmt: skip
            np.testing.assert_array_equal(a, b)
    forward = jax.jit(model.apply)
    eval_logits, _ = forward(variables, batch(shapes, poison=1e4), LENGTHS)
    clean_logits, _ = forward(variables, batch(shapes), LENGTHS)
    np.testing.assert_array_equal(np.asarray(eval_logits)[REAL], np.asarray(clean_logits)[REAL])


def test_loss_heads_weigh_to_one_and_the_penalty_is_a_finite_scalar(family):
    _, model, shapes, variables = family
    logits, extras = jax.jit(model.apply)(variables, batch(shapes), LENGTHS)
    heads = model.loss_heads(logits, extras)
    assert sum(w for w, _ in heads) == pytest.approx(1.0)  # float64 sums such as w + (1 - w)
    assert all(head.shape == (B, C) for _, head in heads)
    penalty = np.asarray(model.penalty(variables["params"]))
    assert penalty.shape == () and np.isfinite(penalty) and penalty >= 0
