"""Light-SERNet: exact counts and shapes (spec §2.2-2.3), Keras layer semantics, the contract."""

from __future__ import annotations

import functools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numerics import assert_rounding_close

import reslstm_jax as rj
from reslstm_jax.models.light_sernet import (
    LightSERNet,
    avg_pool_same,
    conv2d_same,
    same_padding,
)

# Numerical tests use a short input: the network is fully convolutional, so T only sets the cost.
FRAMES = 24


def _batch(rows: int, frames: int = FRAMES, seed: int = 1) -> jax.Array:
    return jax.random.normal(jax.random.key(seed), (rows, frames, 40))


def _leaves_equal(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


# ----------------------------------------------------------------------------- counts, shapes


@pytest.mark.parametrize(
    "classes,trainable,keras_total",
    [(4, 460_740, 462_468), (7, 461_703, 463_431)],  # IEMOCAP, EMO-DB
)
def test_parameter_counts(classes, trainable, keras_total):
    model = rj.models.get("light_sernet", num_classes=classes)
    assert rj.param_count(model) == trainable
    shapes = jax.eval_shape(model.init, jax.random.key(0))
    assert rj.count_params(shapes["batch_stats"]) == 1_728  # Keras "non-trainable params"
    assert trainable + 1_728 == keras_total


SHAPES_3S = [
    ("input", (184, 40, 1)),
    ("path1", (92, 20, 32)),
    ("path2", (92, 20, 32)),
    ("path3", (92, 20, 32)),
    ("concat", (92, 20, 96)),
    ("lflb1", (46, 10, 64)),
    ("lflb2", (23, 5, 96)),
    ("lflb3", (12, 5, 128)),
    ("lflb4", (6, 5, 160)),
    ("lflb5", (6, 5, 320)),
    ("pooled", (320,)),
    ("logits", (4,)),
]
SHAPES_7S = [
    ("input", (434, 40, 1)),
    ("path1", (217, 20, 32)),
    ("path2", (217, 20, 32)),
    ("path3", (217, 20, 32)),
    ("concat", (217, 20, 96)),
    ("lflb1", (109, 10, 64)),
    ("lflb2", (55, 5, 96)),
    ("lflb3", (28, 5, 128)),
    ("lflb4", (14, 5, 160)),
    ("lflb5", (14, 5, 320)),
    ("pooled", (320,)),
    ("logits", (4,)),
]


@pytest.mark.parametrize("frames,expected", [(184, SHAPES_3S), (434, SHAPES_7S)])
def test_block_shapes(frames, expected):
    model = LightSERNet(num_classes=4)
    assert model.block_shapes(frames, batch=3) == [(n, (3, *s)) for n, s in expected]


def test_apply_shapes_from_eval_shape():
    model = LightSERNet(num_classes=4)
    variables = jax.eval_shape(model.init, jax.random.key(0))
    x = jax.ShapeDtypeStruct((2, 434, 40), jnp.float32)
    lengths = jax.ShapeDtypeStruct((2,), jnp.int32)
    logits, extras = jax.eval_shape(model.apply, variables, x, lengths)
    assert logits.shape == (2, 4) and extras == {}


# ----------------------------------------------------------------------------- Keras layers


@pytest.mark.parametrize(
    "size,window,stride,expected",
    [
        (5, 2, 2, (0, 1)),  # odd size: one padded cell at the end
        (4, 2, 2, (0, 0)),
        (5, 1, 1, (0, 0)),
        (184, 11, 1, (5, 5)),
        (40, 9, 1, (4, 4)),
        (10, 4, 1, (1, 2)),  # even kernel: the extra pad at the end
        (3, 2, 1, (0, 1)),
    ],
)
def test_keras_same_padding(size, window, stride, expected):
    assert same_padding(size, window, stride) == expected


def test_avg_pool_excludes_padded_cells():
    x = jnp.arange(15.0).reshape(1, 3, 5, 1)  # odd H and W
    # Windows: rows {0, 1}, {2}; columns {0, 1}, {2, 3}, {4}; means over the real cells only.
    expected = [[(0 + 1 + 5 + 6) / 4, (2 + 3 + 7 + 8) / 4, (4 + 9) / 2], [10.5, 12.5, 14.0]]
    # Means of small integers over 1, 2 or 4 cells: exact in float32 in any order (the default
    # rtol, 1e-7, is under one ulp), as below.
    np.testing.assert_allclose(avg_pool_same(x, (2, 2))[0, ..., 0], expected)
    # (2, 1) pools time only: rows {0, 1} and {2}.
    expected_21 = np.concatenate([np.arange(2.5, 7.5)[None], np.arange(10.0, 15.0)[None]])
    np.testing.assert_allclose(avg_pool_same(x, (2, 1))[0, ..., 0], expected_21)


def _numpy_conv_same(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Direct loops: Keras `same` (extra pad at the end), stride 1, NHWC / HWIO."""
    kh, kw, _, cout = kernel.shape
    b, h, w, _ = x.shape
    pad_h, pad_w = (kh - 1) // 2, (kw - 1) // 2
    xp = np.pad(x, ((0, 0), (pad_h, kh - 1 - pad_h), (pad_w, kw - 1 - pad_w), (0, 0)))
    out = np.zeros((b, h, w, cout))
    for i in range(h):
        for j in range(w):
            out[:, i, j] = np.einsum("bhwc,hwco->bo", xp[:, i : i + kh, j : j + kw], kernel)
    return out


def test_conv_same_hand_case_even_kernel():
    x = jnp.array([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1)
    # Kernel (2, 1) of ones: pad (0, 1), so y_i = x_i + x_{i+1} with x_3 = 0.
    y = conv2d_same(x, jnp.ones((2, 1, 1, 1)))
    np.testing.assert_allclose(y[0, :, 0, 0], [3.0, 5.0, 3.0])  # small integers: exact


@pytest.mark.parametrize("kernel_hw", [(3, 3), (2, 2), (1, 4), (11, 1), (1, 9), (1, 1)])
def test_conv_same_matches_numpy(kernel_hw):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 5, 3)).astype(np.float32)
    kernel = rng.normal(size=(*kernel_hw, 3, 4)).astype(np.float32)
    # float32 sums of <= 33 products (11 x 1 x 3) against float64 ones: at most about n eps of
    # the terms' size (measured <= 1.3 ulps of the output's scale); 32 ulps.
    expected = _numpy_conv_same(x, kernel).astype(np.float32)  # + half an ulp
    assert_rounding_close(conv2d_same(jnp.asarray(x), jnp.asarray(kernel)), expected, ulps=32)


# ----------------------------------------------------------------------------- fixtures

# Every test shares one C = 4 initialisation and one compiled training forward per batch shape:
# compiling, not computing, is what costs time here.


@pytest.fixture(scope="module")
def model_and_variables():
    model = LightSERNet(num_classes=4)
    return model, jax.jit(model.init)(jax.random.key(0))


# Two programs of the network (another batch shape, another jit) may run its sums in another
# order: the convolutions' (up to 3 x 3 x 128 = 1152 terms) and BatchNorm's over B x T x F
# cells, through 6 layers, about sqrt(n) eps each (sqrt(1152) = 34). Measured on an Intel Xeon
# (AVX-512): <= 7 ulps of a leaf's scale (logits), <= 2 (statistics); 128.
PROGRAM_ULPS = 128


@functools.partial(jax.jit, static_argnums=0)
def _train(model, variables, x, lengths, key, rate):
    return model.apply(variables, x, lengths, train=True, key=key, dropout_rate=rate)


# ----------------------------------------------------------------------------- init, config


def test_keras_initialisation(model_and_variables):
    model, variables = model_and_variables
    params, stats = variables["params"], variables["batch_stats"]
    shapes = {
        "path1": (11, 1, 1, 32),
        "path2": (1, 9, 1, 32),
        "path3": (3, 3, 1, 32),
        "lflb1": (3, 3, 96, 64),
        "lflb2": (3, 3, 64, 96),
        "lflb3": (3, 3, 96, 128),
        "lflb4": (3, 3, 128, 160),
        "lflb5": (1, 1, 160, 320),
    }
    kernels = {name: params[name]["conv"]["kernel"] for name in shapes}
    kernels["dense"] = params["dense"]["kernel"]
    shapes["dense"] = (320, 4)
    for name, kernel in kernels.items():
        kh, kw, cin, cout = (1, 1, *shapes[name]) if name == "dense" else shapes[name]
        bound = math.sqrt(6 / (kh * kw * (cin + cout)))  # glorot_uniform
        assert kernel.shape == shapes[name], name
        assert 0.9 * bound < float(jnp.abs(kernel).max()) <= bound, name
        assert abs(float(kernel.mean())) < 0.1 * bound, name
    # Kernels are independent draws, not copies of one another (they differ by up to ~0.1).
    assert not np.allclose(kernels["lflb1"][..., :64, :], kernels["lflb2"][..., :64, :64])
    assert all("bias" not in params[f"lflb{i}"]["conv"] for i in range(1, 6))
    for name in ("path1", "path2", "path3", "dense"):  # constants below: exact
        bias = params[name]["conv"]["bias"] if name != "dense" else params[name]["bias"]
        np.testing.assert_array_equal(bias, 0)
    for name in shapes.keys() - {"dense"}:
        np.testing.assert_array_equal(params[name]["bn"]["weight"], 1)
        np.testing.assert_array_equal(params[name]["bn"]["bias"], 0)
        np.testing.assert_array_equal(stats[name]["bn"]["running_mean"], 0)
        np.testing.assert_array_equal(stats[name]["bn"]["running_var"], 1)


def test_l2_kernels_are_the_five_body_kernels(model_and_variables):
    model, variables = model_and_variables
    params = variables["params"]
    kernels = model.l2_kernels(params)
    assert [k.size for k in kernels] == [55_296, 55_296, 110_592, 184_320, 51_200]
    for name, k in zip(["lflb1", "lflb2", "lflb3", "lflb4", "lflb5"], kernels, strict=True):
        assert k is params[name]["conv"]["kernel"]
    expected = 1e-6 * sum(float(np.sum(np.square(np.asarray(k, np.float64)))) for k in kernels)
    # A float32 sum of 456,704 squares against a float64 one. XLA's CPU kernel keeps many partial
    # sums (vector lanes, tiles), far under the n eps worst case: measured 3e-9 relative here;
    # 1e-5 (84 eps) leaves 3000x.
    assert float(model.l2_penalty(params)) == pytest.approx(expected, rel=1e-5)
    grads = jax.jit(jax.grad(model.l2_penalty))(params)
    # 1e-6 * 2 * w against 2e-6 * w: float32 products in another order, <= 2 ulps; 1e-6 is 8 eps
    np.testing.assert_allclose(
        grads["lflb2"]["conv"]["kernel"], 2e-6 * params["lflb2"]["conv"]["kernel"], rtol=1e-6
    )
    for name in ("path1", "path2", "path3", "dense"):
        assert all(not np.any(g) for g in jax.tree_util.tree_leaves(grads[name]))


def test_registry_and_hashable_config():
    model = rj.models.get("light_sernet", num_classes=4)
    assert model == LightSERNet(num_classes=4) and hash(model) == hash(LightSERNet(num_classes=4))
    assert model != LightSERNet(num_classes=4, dropout=0.1)
    assert "light_sernet" in rj.models.names() and model.name == "light_sernet"
    assert (model.input_size, model.bn_momentum, model.bn_eps, model.l2) == (40, 0.99, 1e-3, 1e-6)
    assert (LightSERNet().num_classes, LightSERNet().dropout) == (7, 0.3)


@pytest.mark.parametrize(
    "config,message",
    [
        ({"num_classes": 0}, "num_classes must be a positive integer"),
        ({"input_size": 2.5}, "input_size must be a positive integer"),
        ({"dropout": 1.0}, "dropout must be in [0, 1)"),
        ({"bn_momentum": 1.5}, "bn_momentum must be in [0, 1]"),
        ({"bn_eps": 0.0}, "bn_eps must be > 0"),
        ({"l2": -1.0}, "l2 must be finite and >= 0"),
    ],
)
def test_bad_configs_raise_clear_errors(config, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        rj.models.get("light_sernet", **config)


def test_wrong_input_width_is_a_clear_error():
    model = LightSERNet(input_size=40)
    variables = jax.eval_shape(model.init, jax.random.key(0))
    x = jax.ShapeDtypeStruct((2, 30, 39), jnp.float32)
    with pytest.raises(ValueError, match=re.escape("x must be [B, T, 40], got shape (2, 30, 39)")):
        jax.eval_shape(model.apply, variables, x, jnp.array([30, 30]))


# ----------------------------------------------------------------------------- apply contract


def test_batch_norm_is_keras_momentum_with_fused_variance(model_and_variables):
    """running = 0.99 * running + 0.01 * batch; the stored variance is the n / (n - 1) one."""
    model, variables = model_and_variables
    x, lengths = _batch(4), jnp.array([FRAMES, 0, FRAMES, FRAMES])
    _, stats = _train(model, variables, x, lengths, jax.random.key(0), 0.0)
    real = np.asarray(x)[[0, 2, 3], ..., None]  # the padding row is no sample
    kernel = variables["params"]["path1"]["conv"]["kernel"]
    samples = np.asarray(conv2d_same(jnp.asarray(real), kernel)).reshape(-1, 32)  # bias is 0
    # The means of 2880 samples (|s| <= 1.1) cancel to < 1% of them: their rounding (a sum in
    # another order, and the samples' own) is eps of the samples' size, not of the mean's. The
    # bound, 1e-7, is 75 eps of 0.01 * max|s| (measured 1e-10).
    np.testing.assert_allclose(
        stats["path1"]["bn"]["running_mean"], 0.01 * samples.mean(0), rtol=0, atol=1e-7
    )
    # ~ 1 + 0.01 var: the variance's rounding shrinks by 0.01 (measured 0 ulps); 16 ulps
    assert_rounding_close(
        stats["path1"]["bn"]["running_var"], 0.99 + 0.01 * samples.var(0, ddof=1), ulps=16
    )


def test_padding_rows_change_no_statistic_and_no_other_row(model_and_variables):
    model, variables = model_and_variables
    x, lengths = _batch(4), jnp.array([FRAMES, 7, 0, FRAMES])  # row 2 pads the static batch
    real = jnp.array([0, 1, 3])
    key = jax.random.key(5)
    (logits, aux), stats = _train(model, variables, x, lengths, key, 0.3)
    assert aux == {}  # no attention, one head
    assert not np.allclose(stats["lflb5"]["bn"]["running_mean"], 0)  # ~1e-2 here
    for poison in (100.0, jnp.nan):
        (logits_p, _), stats_p = _train(model, variables, x.at[2].set(poison), lengths, key, 0.3)
        # exact: the same program on inputs that differ in the padding row only
        _leaves_equal(stats, stats_p)
        np.testing.assert_array_equal(logits_p[real], logits[real])
        assert np.all(np.isfinite(logits_p))
    # The same real rows without the padding row: the same statistics and logits (no dropout),
    # up to the rounding of another program (another batch shape).
    (logits_pad, _), stats_pad = _train(model, variables, x, lengths, key, 0.0)
    (logits_real, _), stats_real = _train(model, variables, x[real], lengths[real], key, 0.0)
    assert_rounding_close(
        (logits_pad[real], stats_pad), (logits_real, stats_real), ulps=PROGRAM_ULPS
    )


def test_eval_is_deterministic_and_dropout_only_in_training(model_and_variables):
    model, variables = model_and_variables
    x, lengths = _batch(4), jnp.full((4,), FRAMES)
    forward = jax.jit(model.apply)
    logits, aux = forward(variables, x, lengths)
    assert logits.shape == (4, 4) and aux == {}
    np.testing.assert_array_equal(logits, forward(variables, x, lengths)[0])  # the same program
    # Eval mode uses the running statistics and ignores a dropout key and rate: the same ops in
    # another jitted program (x a constant there), so rounding at most (measured 0).
    with_key = jax.jit(lambda v, k: model.apply(v, x, lengths, key=k, dropout_rate=0.9))
    assert_rounding_close(with_key(variables, jax.random.key(9))[0], logits, ulps=PROGRAM_ULPS)

    def run(key, rate):
        return _train(model, variables, x, lengths, key, rate)[0][0]

    no_drop = run(jax.random.key(0), 0.0)
    # exact: the same program, key and inputs
    np.testing.assert_array_equal(run(jax.random.key(7), 0.5), run(jax.random.key(7), 0.5))
    assert not np.allclose(run(jax.random.key(7), 0.5), no_drop)  # by ~1.7 here
    # exact at rate 0 whatever the key: every element kept (uniform >= 0) and scaled by 1 / 1
    np.testing.assert_array_equal(run(jax.random.key(8), 0.0), no_drop)
    # Training (batch statistics) and eval (running statistics at init) differ (by ~1 here).
    assert not np.allclose(no_drop, logits, atol=1e-3)


def test_sgd_steps_reduce_the_loss_with_finite_gradients(model_and_variables):
    """Plain SGD on an 8-row 3 s batch (one padding row), dropout on, L2 in the loss."""
    model, variables = model_and_variables
    x = _batch(8, frames=184, seed=2)
    lengths = jnp.array([184] * 7 + [0])
    labels = jnp.array([0, 1, 2, 3, 0, 1, 2, 0])
    valid = lengths > 0

    def loss_fn(params, stats, key):
        (logits, _), new_stats = model.apply(
            {"params": params, "batch_stats": stats}, x, lengths, train=True, key=key
        )
        nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1)[:, 0]
        loss = jnp.sum(jnp.where(valid, nll, 0.0)) / valid.sum()
        return loss + model.l2_penalty(params), new_stats

    @jax.jit
    def step(params, stats, key):
        (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, key)
        params = jax.tree_util.tree_map(lambda p, g: p - 0.1 * g, params, grads)
        return params, new_stats, loss, grads

    params, stats = variables["params"], variables["batch_stats"]
    losses = []
    for i in range(4):
        params, stats, loss, grads = step(params, stats, jax.random.key(i))
        assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))
        assert np.any(grads["path1"]["conv"]["kernel"]) and np.any(grads["dense"]["kernel"])
        losses.append(float(loss))
    # Train-mode losses before each step (about 1.76, 0.72, 0.36, 0.22 here); dropout makes them
    # noisy, so only the first and the last are compared.
    assert losses[-1] < 0.7 * losses[0], losses
    assert all(np.all(np.isfinite(s)) for s in jax.tree_util.tree_leaves(stats))
