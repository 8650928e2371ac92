"""DS-LSTM: exact counts and shapes (from shapes alone), parity with a step-by-step NumPy port
of the reference's forward pass, padding rows and frames, the loss heads, and training.

Default-size checks use `jax.eval_shape` (nothing is allocated or compiled); only the tiny
configuration below is compiled.
"""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numerics import assert_rounding_close

import reslstm_jax as rj
from reslstm_jax.models.ds_lstm import DSLSTM, gate_activations

# A: T 36 -> 35 -> 17 -> 16 -> 8 (3 aligned steps), F 12 -> 11 -> 5 -> 4 -> 2 (x_size 4).
# B: T 16 -> 15 -> 7 -> 6 -> 3 (truncated to 3), F 10 -> 9 -> 4 -> 3 -> 1 (y_size 2).
TINY = dict(
    num_classes=3, hidden_size=6, cnn_channels=(3, 2), n_mels_a=12, frames_a=36,
    n_mels_b=10, frames_b=16, mfcc_size=5,
)  # fmt: skip
T_MFCC = 7


# One static batch for every compiled test: row 1 is a padding row (length 0) full of NaN,
# which must change nothing; MFCC frames past each length hold garbage that must be ignored.
LENGTHS = jnp.array([7, 0, 3, 5])
REAL = np.array([0, 2, 3])
LABELS = jnp.array([0, 0, 2, 1])
LR = 0.1


def tiny(**overrides) -> DSLSTM:
    return DSLSTM(**{**TINY, **overrides})


def tiny_batch(model: DSLSTM, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    batch = len(LENGTHS)
    x = {
        "a": rng.normal(size=(batch, model.frames_a, model.n_mels_a)),
        "b": rng.normal(size=(batch, model.frames_b, model.n_mels_b)),
        "mfcc": rng.normal(size=(batch, T_MFCC, model.mfcc_size)),
    }
    for b, n in enumerate(np.asarray(LENGTHS)):
        x["mfcc"][b, n:] = 1e3
        if n == 0:
            for v in x.values():
                v[b] = np.nan
    if model.branches == "ds":
        del x["mfcc"]
    return {k: jnp.asarray(v, jnp.float32) for k, v in x.items()}


@functools.cache
def init(model: DSLSTM):
    """One set of variables per configuration, shared by the tests."""
    return model.init(jax.random.key(1))


@functools.cache
def evaluate(model: DSLSTM):
    """One compiled eval apply per configuration, shared by the tests."""
    return jax.jit(model.apply)


@functools.cache
def sgd_step(model: DSLSTM):
    """One compiled training step per configuration, shared by the tests (its forward pass is
    the train-mode apply): the loss of `loss_heads` over the real rows, its gradients and an
    SGD update.

    Returns `step(params, stats, x) -> (loss, (logits, aux), new_stats, grads, new_params)`.
    """

    def loss_fn(params, stats, x):
        (logits, aux), new_stats = model.apply(
            {"params": params, "batch_stats": stats}, x, LENGTHS, train=True
        )
        real = (LENGTHS > 0).astype(jnp.float32)
        loss = 0.0
        for weight, head in model.loss_heads(logits, aux):
            nll = -jnp.take_along_axis(jax.nn.log_softmax(head), LABELS[:, None], 1)[:, 0]
            loss = loss + weight * jnp.where(real > 0, nll, 0.0).sum() / real.sum()
        return loss, ((logits, aux), new_stats)

    @jax.jit
    def step(params, stats, x):
        (loss, (out, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, stats, x
        )
        new_params = jax.tree_util.tree_map(lambda p, g: p - LR * g, params, grads)
        return loss, out, new_stats, grads, new_params

    return step


def abstract_inputs(model: DSLSTM, batch: int = 2, t_mfcc: int = 50):
    x = {
        "a": jax.ShapeDtypeStruct((batch, model.frames_a, model.n_mels_a), jnp.float32),
        "b": jax.ShapeDtypeStruct((batch, model.frames_b, model.n_mels_b), jnp.float32),
        "mfcc": jax.ShapeDtypeStruct((batch, t_mfcc, model.mfcc_size), jnp.float32),
    }
    return x, jax.ShapeDtypeStruct((batch,), jnp.int32)


# ----------------------------------------------------------------------------- counts, shapes

# Each equals the `model_parameters` of the DS-LSTM authors' logs (docs/models.md).
LOGGED_COUNTS = [
    ({}, 3_732_296),  # model4 / model8, PyTorch's two LSTM biases
    ({"branches": "ds"}, 3_217_092),  # model10 (M_DS-LSTM)
    ({"cnn_channels": (64, 32), "kernel_a": (4, 4), "kernel_b": (4, 4)}, 6_294_568),
    ({"cnn_channels": (64, 32), "kernel_a": (4, 4), "kernel_b": (4, 4), "branches": "ds"},
     5_779_364),
    ({"cnn_channels": (64, 32), "kernel_a": (5, 3), "kernel_b": (3, 5)}, 6_386_344),
    ({"cnn_channels": (32, 64)}, 11_284_264),
    # The plain-sigmoid variant lacks BN_t's gamma and beta: 2 * 800 per layer.
    ({"gate_norm": "sigmoid"}, 3_732_296 - 2 * 1_600),
    ({"gate_norm": "sigmoid", "branches": "ds"}, 3_217_092 - 2 * 1_600),
]  # fmt: skip


@pytest.mark.parametrize("config,expected", LOGGED_COUNTS)
def test_logged_parameter_counts(config, expected):
    assert rj.param_count(rj.models.get("ds_lstm", **config)) == expected


@pytest.mark.parametrize(
    "config,x_size,y_size,bn_channels",
    [
        ({}, 496, 1008, 64 + 16),
        ({"gate_norm": "sigmoid"}, 496, 1008, 64 + 16),
        ({"cnn_channels": (64, 32), "kernel_a": (4, 4), "kernel_b": (4, 4)}, 992, 2016, 64 + 32),
        ({"cnn_channels": (64, 32), "kernel_a": (5, 3), "kernel_b": (3, 5)}, 1024, 2048, 64 + 32),
    ],
)
def test_aligned_shapes_and_running_statistics(config, x_size, y_size, bn_channels):
    model = DSLSTM(**config)
    assert (model.steps, model.x_size, model.y_size) == (27, x_size, y_size)
    variables = jax.eval_shape(model.init, jax.random.key(0))
    x, lengths = abstract_inputs(model, batch=2)
    (x_seq, y_seq), cnn_stats = jax.eval_shape(model.front_end, variables, x, lengths)
    assert x_seq.shape == (2, 27, x_size) and y_seq.shape == (2, 27, y_size)
    # Non-trainable state: CNN BN2d 2 * channels per spectrogram; per DS layer BN_t [27, 800]
    # mean and variance (batchnorm gates only) and BN_out 2 * 200.
    stats = variables["batch_stats"]
    assert rj.count_params(cnn_stats) == rj.count_params(stats) - rj.count_params(stats["ds"])
    assert rj.count_params(cnn_stats) == 2 * 2 * bn_channels
    for layer in ("layer0", "layer1"):
        assert rj.count_params(stats["ds"][layer]["bn_out"]) == 400
        if model.gate_norm == "batchnorm":
            assert stats["ds"][layer]["bn_t"]["running_mean"].shape == (27, 800)
            assert rj.count_params(stats["ds"][layer]["bn_t"]) == 27 * 800 * 2
        else:
            assert "bn_t" not in stats["ds"][layer]
            assert "bn_t" not in variables["params"]["ds"][layer]


@pytest.mark.parametrize("branches", ["full", "ds"])
def test_default_apply_contract_from_shapes(branches):
    model = DSLSTM(branches=branches)
    variables = jax.eval_shape(model.init, jax.random.key(0))
    x, lengths = abstract_inputs(model, batch=3)
    if branches == "ds":
        del x["mfcc"]  # M_DS-LSTM needs no MFCC input
    logits, aux = jax.eval_shape(model.apply, variables, x, lengths)
    assert logits.shape == (3, 4)
    assert sorted(aux) == (["ds", "lstm"] if branches == "full" else ["ds"])
    assert all(a.shape == (3, 4) for a in aux.values())
    (_, _), stats = jax.eval_shape(
        functools.partial(model.apply, train=True), variables, x, lengths
    )
    assert jax.tree_util.tree_structure(stats) == jax.tree_util.tree_structure(
        variables["batch_stats"]
    )


# ----------------------------------------------------------------------------- NumPy reference


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def reference_forward(model: DSLSTM, variables, x, lengths, *, train: bool):
    """model4.py's forward in float64 NumPy, in its own structure: (B, C, F, T) layout, a
    time-outer / layer-inner DS-LSTM loop, one unpadded MFCC sequence at a time.

    Returns (logits, aux, new batch_stats); no padding rows (the reference has none).
    """
    params = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), variables["params"])
    stats = jax.tree_util.tree_map(lambda a: np.array(a, np.float64), variables["batch_stats"])

    def bn(p, s, v):
        """BatchNorm over axis 1 of v; s is updated in place in training."""
        axes = tuple(i for i in range(v.ndim) if i != 1)
        shape = [1, -1] + [1] * (v.ndim - 2)
        if train:
            mean, var = v.mean(axes), v.var(axes)
            n = v.size / v.shape[1]
            s["running_mean"][...] = 0.9 * s["running_mean"] + 0.1 * mean
            s["running_var"][...] = 0.9 * s["running_var"] + 0.1 * var * n / (n - 1)
        else:
            mean, var = s["running_mean"], s["running_var"]
        v = (v - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + 1e-5)
        return v * p["weight"].reshape(shape) + p["bias"].reshape(shape)

    def conv(p, v):  # v [B, C, F, T]
        w = p["weight"]
        kf, kt = w.shape[2:]
        v = np.pad(v, ((0, 0), (0, 0), ((kf - 1) // 2,) * 2, ((kt - 1) // 2,) * 2))
        f_out, t_out = v.shape[2] - kf + 1, v.shape[3] - kt + 1
        out = np.zeros((v.shape[0], w.shape[0], f_out, t_out)) + p["bias"][None, :, None, None]
        for i in range(kf):
            for j in range(kt):
                out += np.einsum(
                    "oc,bcft->boft", w[:, :, i, j], v[:, :, i : i + f_out, j : j + t_out]
                )
        return out

    def cnn(branch, spec):
        v = np.transpose(np.asarray(spec, np.float64), (0, 2, 1))[:, None]  # (B, 1, F, T)
        for i in range(len(model.cnn_channels)):
            p, s = params[f"cnn_{branch}"][f"lflb{i}"], stats[f"cnn_{branch}"][f"lflb{i}"]
            v = np.maximum(bn(p["bn"], s["bn"], conv(p["conv"], v)), 0)
            b, c, f, t = v.shape
            v = v[:, :, : f // 2 * 2, : t // 2 * 2].reshape(b, c, f // 2, 2, t // 2, 2).max((3, 5))
        return v.reshape(v.shape[0], -1, v.shape[3])  # torch.flatten(start_dim=1, end_dim=2)

    input1, input2 = cnn("a", x["a"]), cnn("b", x["b"])
    input2 = input2[:, :, : input1.shape[2] // 2 - 1]  # MultiSpectrogramModel.alignment
    inputx = np.stack([input1[:, :, 2 * i : 2 * i + 3].mean(2) for i in range(input2.shape[2])], 2)

    hidden, batch = model.hidden_size, inputx.shape[0]
    state = [(np.zeros((batch, hidden)), np.zeros((batch, hidden)))] * model.ds_layers
    outputs = []
    for t in range(inputx.shape[2]):  # FTLSTM.forward
        xt, yt = inputx[:, :, t], input2[:, :, t]
        for i in range(model.ds_layers):
            p, s = params["ds"][f"layer{i}"], stats["ds"][f"layer{i}"]
            h, c = state[i]
            gates = _sigmoid(np.concatenate([xt, yt, h], 1) @ p["W"]["weight"].T + p["W"]["bias"])
            if model.gate_norm == "batchnorm":
                step = {k: v[t] for k, v in s["bn_t"].items()}  # views: updated in place
                gates = bn(p["bn_t"], step, gates)
            f, i_t, o, i_f = np.split(gates, 4, axis=1)
            c_t = np.tanh(np.concatenate([xt, h], 1) @ p["W_T"]["weight"].T + p["W_T"]["bias"])
            c_f = np.tanh(np.concatenate([yt, h], 1) @ p["W_F"]["weight"].T + p["W_F"]["bias"])
            c = f * c + i_t * c_t + i_f * c_f
            h = o * np.tanh(c)
            state[i] = (h, c)
            xt = bn(p["bn_out"], s["bn_out"], h)
        outputs.append(xt)
    head_ds = np.mean(outputs, 0) @ params["head_ds"]["weight"].T + params["head_ds"]["bias"]
    aux = {"ds": head_ds}
    logits = head_ds
    if model.branches == "full":
        pooled = []
        for b, n in enumerate(np.asarray(lengths)):
            seq = np.asarray(x["mfcc"][b, :n], np.float64)  # truncated: padding never seen
            for i in range(model.lstm_layers):
                p = params["lstm"][f"layer{i}"]
                h, c, out = np.zeros(hidden), np.zeros(hidden), []
                for x_t in seq:
                    z = p["weight_ih"] @ x_t + p["weight_hh"] @ h + p["bias_ih"] + p["bias_hh"]
                    i_g, f_g, g_g, o_g = np.split(z, 4)
                    c = _sigmoid(f_g) * c + _sigmoid(i_g) * np.tanh(g_g)
                    h = _sigmoid(o_g) * np.tanh(c)
                    out.append(h)
                seq = np.stack(out)
            pooled.append(seq.mean(0))
        head = params["head_lstm"]
        aux["lstm"] = np.stack(pooled) @ head["weight"].T + head["bias"]
        logits = model.head_weight * head_ds + (1 - model.head_weight) * aux["lstm"]
    return logits, aux, stats


# The reference runs in float64 and in its own order, so what differs is the model's float32
# rounding (the reference is rounded to float32 for the comparison: half an ulp more). In eval
# mode that is short sums (small conv windows, the gates' x + y + h = 12 terms, the LSTM's
# 5 + 6) through a few layers: measured <= 1.4 ulps of a leaf's scale over 12 seeds; 64. In
# train mode every BatchNorm normalises by the statistics of only 3 rows (the DS-LSTM's, per
# step): dividing by the spread of 3 values amplifies their rounding, and running means that
# cancel to ~1% of the values they average (BN_out's, 6e-4) carry it in ulps of their own,
# smaller scale. Measured on an Intel Xeon (AVX-512): <= 58 ulps here, <= 120 over 12 other
# seeds and initialisations; 1024 ulps, 1.2e-4 of a leaf's scale (the per-element 1e-4 this
# replaced, on values of size ~1).
REFERENCE_EVAL_ULPS = 64
REFERENCE_TRAIN_ULPS = 1024


def assert_matches_reference(actual, expected, ulps):
    assert jax.tree_util.tree_structure(actual) == jax.tree_util.tree_structure(expected)
    expected = jax.tree_util.tree_map(lambda e: np.asarray(e, np.float32), expected)
    assert_rounding_close(actual, expected, ulps=ulps)


def assert_trees_equal(actual, expected):
    assert jax.tree_util.tree_structure(actual) == jax.tree_util.tree_structure(expected)
    for a, e in zip(
        jax.tree_util.tree_leaves(actual), jax.tree_util.tree_leaves(expected), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


# The second configuration: M_DS-LSTM alone, plain sigmoid gates, odd kernels.
CONFIGS = [{}, {"gate_norm": "sigmoid", "branches": "ds", "kernel_a": (3, 3), "kernel_b": (2, 5)}]


def real_rows(tree):
    return jax.tree_util.tree_map(lambda a: np.asarray(a)[REAL], tree)


@pytest.mark.parametrize("config", CONFIGS)
def test_matches_the_reference_forward(config):
    """Train mode (batch statistics, every running update), then eval with the new stats.

    The reference runs the real rows alone: the padding row must change nothing, neither the
    real rows' outputs nor any running statistic.
    """
    model = tiny(**config)
    variables = init(model)
    x = tiny_batch(model)
    _, (logits, aux), stats, _, _ = sgd_step(model)(
        variables["params"], variables["batch_stats"], x
    )
    x_real, lengths_real = real_rows(x), LENGTHS[REAL]
    ref_logits, ref_aux, ref_stats = reference_forward(
        model, variables, x_real, lengths_real, train=True
    )
    ulps = REFERENCE_TRAIN_ULPS
    assert_matches_reference(np.asarray(logits)[REAL], ref_logits, ulps)
    assert_matches_reference(real_rows(aux), ref_aux, ulps)
    assert_matches_reference(stats, ref_stats, ulps)
    assert np.all(np.isfinite(logits))  # even the NaN padding row
    if model.gate_norm == "batchnorm":  # one set of running statistics per step
        running = np.asarray(stats["ds"]["layer0"]["bn_t"]["running_mean"])
        assert not np.allclose(running[0], running[1])  # by ~5e-3 here

    trained = {"params": variables["params"], "batch_stats": stats}
    logits, aux = evaluate(model)(trained, x, LENGTHS)
    ref_logits, ref_aux, _ = reference_forward(model, trained, x_real, lengths_real, train=False)
    assert_matches_reference(np.asarray(logits)[REAL], ref_logits, REFERENCE_EVAL_ULPS)
    assert_matches_reference(real_rows(aux), ref_aux, REFERENCE_EVAL_ULPS)


def test_padding_rows_change_nothing():
    """Whatever a length-0 row holds, the real rows' outputs, the statistics and the
    gradients stay the same (its inputs are zeroed and it is no sample of any statistic).

    Exact: one compiled step on inputs that differ in the padding row only.
    """
    model = tiny()
    variables = init(model)
    x = tiny_batch(model)
    other = {k: v.at[1].set(1e4) for k, v in x.items()}
    results = [
        sgd_step(model)(variables["params"], variables["batch_stats"], v) for v in (x, other)
    ]
    (loss, out, stats, grads, _), (loss_o, out_o, stats_o, grads_o, _) = results
    np.testing.assert_array_equal(loss, loss_o)
    assert_trees_equal(real_rows(out_o), real_rows(out))
    assert_trees_equal(stats_o, stats)
    assert_trees_equal(grads_o, grads)


def test_mfcc_frames_past_each_length_are_ignored():
    """Exact: each comparison is one compiled program on inputs that differ in the ignored
    frames (or, at the end, in another row's frame) only."""
    model = tiny()
    variables = init(model)
    x = tiny_batch(model)
    valid = rj.nn.length_mask(LENGTHS, T_MFCC)[..., None]
    other = {**x, "mfcc": jnp.where(valid, x["mfcc"], -7.0)}
    params, stats = variables["params"], variables["batch_stats"]
    out, out_other = (evaluate(model)(variables, v, LENGTHS) for v in (x, other))
    assert_trees_equal(real_rows(out_other), real_rows(out))
    (loss, out, new_stats, *_), (loss_o, out_o, new_stats_o, *_) = (
        sgd_step(model)(params, stats, v) for v in (x, other)
    )
    np.testing.assert_array_equal(loss_o, loss)
    assert_trees_equal(real_rows(out_o), real_rows(out))
    assert_trees_equal(new_stats_o, new_stats)
    # A changed valid frame does change the MFCC head, and only it.
    changed = {**x, "mfcc": x["mfcc"].at[2, 2].add(1.0)}
    _, aux = evaluate(model)(variables, x, LENGTHS)
    _, aux_changed = evaluate(model)(variables, changed, LENGTHS)
    assert not np.allclose(aux["lstm"][2], aux_changed["lstm"][2])  # by ~1e-3 here
    np.testing.assert_array_equal(
        aux["lstm"][np.array([0, 3])], aux_changed["lstm"][np.array([0, 3])]
    )
    np.testing.assert_array_equal(aux["ds"], aux_changed["ds"])


# ----------------------------------------------------------------------------- heads, gates


def test_loss_heads_and_fusion():
    model = tiny(head_weight=0.3)
    logits, aux = jnp.ones((2, 3)), {"ds": jnp.zeros((2, 3)), "lstm": 2 * jnp.ones((2, 3))}
    heads = model.loss_heads(logits, aux)
    # 1 - 0.3 in float64: within an ulp of 0.7
    assert [w for w, _ in heads] == pytest.approx([0.3, 0.7])
    assert heads[0][1] is aux["ds"] and heads[1][1] is aux["lstm"]
    ds_heads = tiny(branches="ds").loss_heads(logits, {"ds": logits})
    assert len(ds_heads) == 1 and ds_heads[0][0] == 1.0 and ds_heads[0][1] is logits


@pytest.mark.parametrize("gate_norm", ["batchnorm", "sigmoid"])
def test_gates(gate_norm):
    """Plain sigmoid gates stay in [0, 1]; BN_t gates are 0.1 z-scores at initialisation."""
    z = 10 * jax.random.normal(jax.random.key(0), (16, 8))
    bn_params = {"weight": jnp.full(8, 0.1), "bias": jnp.zeros(8)}  # as `init` sets BN_t
    step_stats = {"running_mean": jnp.zeros(8), "running_var": jnp.ones(8)}
    if gate_norm == "sigmoid":
        bn_params = step_stats = None
    mask = jnp.ones(16, bool)
    gates, new_stats = gate_activations(
        bn_params, step_stats, z, mask, train=True, gate_norm=gate_norm
    )
    if gate_norm == "sigmoid":
        assert float(gates.min()) >= 0 and float(gates.max()) <= 1 and new_stats is None
    else:
        # 0 up to the rounding of a mean of 16 values |g| <= 0.4 (0.1 z-scores of 16 samples):
        # measured 8e-9; 1e-5 is 200 eps of 0.4
        np.testing.assert_allclose(gates.mean(0), 0, atol=1e-5)
        # BN_t's eps (1e-5) against the sigmoids' variances (>= 0.16) shrinks the std by up to
        # 1e-5 / (2 var) = 3.2e-5 relative; the unbiased variance would shrink it by 3%.
        np.testing.assert_allclose(gates.std(0), 0.1, rtol=1e-3)
        assert float(gates.min()) < 0


def test_pytorch_default_initialisation():
    model = tiny()
    params = init(model)["params"]
    layer = params["ds"]["layer0"]
    fans = [
        (params["cnn_a"]["lflb1"]["conv"]["weight"], 3 * 4 * 2),
        (layer["W"]["weight"], model.x_size + model.y_size + model.hidden_size),
        (layer["W_F"]["weight"], model.y_size + model.hidden_size),
        (params["lstm"]["layer1"]["weight_hh"], model.hidden_size),  # LSTM: 1 / sqrt(H)
        (params["lstm"]["layer0"]["bias_ih"], model.hidden_size),
        (params["head_lstm"]["weight"], model.hidden_size),
    ]
    for array, fan_in in fans:
        bound = 1 / np.sqrt(fan_in)
        assert bound * 0.7 < float(np.abs(array).max()) <= bound
    np.testing.assert_array_equal(layer["bn_out"]["weight"], 1)  # constants: exact
    np.testing.assert_array_equal(params["cnn_b"]["lflb0"]["bn"]["bias"], 0)
    np.testing.assert_allclose(layer["bn_t"]["weight"], 0.1)  # float32's 0.1: half an ulp off
    np.testing.assert_array_equal(layer["bn_t"]["bias"], 0)
    stats = init(model)["batch_stats"]["ds"]["layer1"]["bn_t"]
    np.testing.assert_array_equal(stats["running_var"], np.ones((model.steps, 24)))


# ----------------------------------------------------------------------------- training


@pytest.mark.parametrize("config", CONFIGS)
def test_finite_gradients_and_the_loss_decreases(config):
    model = tiny(**config)
    variables = init(model)
    x = tiny_batch(model, seed=1)
    params, stats = variables["params"], variables["batch_stats"]
    losses = []
    for step in range(6):
        loss, _, stats, grads, params = sgd_step(model)(params, stats, x)
        losses.append(float(loss))
        if step == 0:
            leaves = jax.tree_util.tree_leaves(grads)
            assert all(np.all(np.isfinite(g)) for g in leaves)
            assert all(np.any(g != 0) for g in leaves)  # every parameter is used
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0]


# ----------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "config,message",
    [
        ({"hidden_size": 0}, "hidden_size must be a positive integer"),
        ({"cnn_channels": ()}, "cnn_channels must be a non-empty tuple of positive integers"),
        ({"kernel_a": (4, 2, 1)}, "kernel_a must be a (freq, time) pair of positive integers"),
        ({"branches": "lstm"}, "branches must be 'full' or 'ds'"),
        ({"gate_norm": "layernorm"}, "gate_norm must be 'batchnorm' or 'sigmoid'"),
        ({"head_weight": 1.5}, "head_weight must be in [0, 1]"),
        ({"dropout": 1.0}, "dropout must be in [0, 1)"),
        ({"n_mels_a": 3}, "spectrogram A is too small for its CNN"),
        ({"frames_a": 12}, "frames_a=12 leaves no aligned step"),
        ({"frames_b": 50}, "spectrogram B has 11 steps after its CNN, fewer than the 27"),
    ],
)
def test_bad_configs_raise_clear_errors(config, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        rj.models.get("ds_lstm", **config)


def test_bad_inputs_raise_clear_errors():
    model = DSLSTM()
    variables = jax.eval_shape(model.init, jax.random.key(0))
    x, lengths = abstract_inputs(model)
    with pytest.raises(ValueError, match=re.escape("input dict lacks 'mfcc'")):
        jax.eval_shape(model.apply, variables, {"a": x["a"], "b": x["b"]}, lengths)
    transposed = {**x, "a": jax.ShapeDtypeStruct((2, 128, 230), jnp.float32)}
    with pytest.raises(ValueError, match=re.escape("x['a'] must be [B, 230, 128] (time first)")):
        jax.eval_shape(model.apply, variables, transposed, lengths)


@pytest.mark.parametrize("branches", ["full", "ds"])
def test_example_input_fits_apply(branches):
    model = DSLSTM(branches=branches)
    x, lengths = jax.eval_shape(functools.partial(model.example_input, batch=2), jax.random.key(0))
    assert sorted(x) == sorted(model.input_keys) and lengths.shape == (2,)
    variables = jax.eval_shape(model.init, jax.random.key(0))
    assert jax.eval_shape(model.apply, variables, x, lengths)[0].shape == (2, 4)


def test_registry_and_hashable_static_config():
    a = rj.models.get("ds_lstm", cnn_channels=[64, 32])  # lists (JSON, sweeps) become tuples
    assert isinstance(a, DSLSTM) and a.name == "ds_lstm" and a.cnn_channels == (64, 32)
    assert a == DSLSTM(cnn_channels=(64, 32)) and hash(a) == hash(DSLSTM(cnn_channels=(64, 32)))
    assert a != DSLSTM(cnn_channels=(64, 32), gate_norm="sigmoid")
    assert "ds_lstm" in rj.models.names()
