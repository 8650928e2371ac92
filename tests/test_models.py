"""Model zoo: exact parameter counts, initialisation, registry and the apply contract."""

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

# The paper's six configurations and their parameter counts (docs/models.md).
PAPER_COUNTS = [
    ("reslstm_sa", 32, 27_988),
    ("reslstm_sa", 64, 46_772),
    ("reslstm_sa", 128, 108_916),
    ("lstm_sa", 32, 10_600),
    ("lstm_sa", 64, 29_384),
    ("lstm_sa", 128, 91_528),
]


@pytest.mark.parametrize("name,hidden,expected", PAPER_COUNTS)
def test_paper_parameter_counts(name, hidden, expected):
    model = rj.models.get(name, hidden_size=hidden, input_size=46, num_classes=8)
    variables = model.init(jax.random.key(0))
    assert rj.count_params(variables["params"]) == expected
    assert rj.param_count(model) == expected  # from shapes alone


@pytest.mark.parametrize(
    "name,hidden,num_att,expected",
    [
        # results/*.txt of the reference (spec §4): base + (K - 1) * H.
        ("lstm_sa", 32, 2, 10_632),
        ("lstm_sa", 32, 4, 10_696),
        ("lstm_sa", 32, 8, 10_824),
        ("lstm_sa", 32, 16, 11_080),
        ("lstm_sa", 32, 32, 11_592),
        ("lstm_sa", 128, 2, 91_656),
        ("lstm_sa", 128, 4, 91_912),
        ("lstm_sa", 128, 8, 92_424),
        ("lstm_sa", 128, 16, 93_448),
        ("lstm_sa", 128, 32, 95_496),
        ("reslstm_sa", 64, 2, 46_836),
    ],
)
def test_num_att_counts(name, hidden, num_att, expected):
    assert rj.param_count(rj.models.get(name, hidden_size=hidden, num_att=num_att)) == expected


@pytest.mark.parametrize("name", ["lstm_sa", "reslstm_sa"])
@pytest.mark.parametrize("hidden", [16, 32, 64, 128])
@pytest.mark.parametrize("num_att", [1, 3])
@pytest.mark.parametrize("classes", [4, 8])
def test_count_formula(name, hidden, num_att, classes):
    """LSTM-SA = 4H(D+H) + 8H + KH + 2H + CH + C; ResLSTM-SA adds 4D(2D) + 8D + 2D per block."""
    d = 46
    lstm_sa = 4 * hidden * (d + hidden) + 8 * hidden + num_att * hidden + 2 * hidden
    lstm_sa += classes * hidden + classes
    block = 4 * d * (2 * d) + 8 * d + 2 * d
    expected = lstm_sa + (block if name == "reslstm_sa" else 0)
    model = rj.models.get(name, hidden_size=hidden, num_att=num_att, num_classes=classes)
    assert rj.param_count(model) == expected


@pytest.mark.parametrize("blocks", [1, 2, 3])
def test_each_extra_residual_block_adds_17388(blocks):
    model = rj.models.get("reslstm_sa", hidden_size=64, res_blocks=blocks)
    assert rj.param_count(model) == 46_772 + (blocks - 1) * 17_388


def test_linear_combiner_adds_k_weights():
    """The reference's Variant A `head_combine`: 46,773 for h64 with K = 1 (spec §5)."""
    model = rj.models.get("reslstm_sa", hidden_size=64, att_combine="linear")
    assert rj.param_count(model) == 46_773


def test_reference_initialisation():
    """xavier-normal / orthogonal over whole matrices, forget biases 1 in both vectors."""
    d, h = 46, 128
    model = rj.models.get("reslstm_sa", hidden_size=h)
    params = model.init(jax.random.key(3))["params"]
    for name, rows, cols in [("lstm1", 4 * d, d), ("lstm2", 4 * h, d)]:
        lstm = params[name]
        size = rows // 4
        std = float(np.std(lstm["weight_ih"]))
        # a sample std of >= 184 * 46 draws: standard error 1 / sqrt(2n) <= 0.8%, 5% is > 6
        assert std == pytest.approx(math.sqrt(2 / (cols + rows)), rel=0.05)
        # In float64 Q^T Q - I is the init's own float32 rounding: Gram-Schmidt twice keeps the
        # columns orthonormal to a few eps (measured 2.4e-7, 2 eps); 1e-5 is 84 eps.
        w_hh = np.asarray(lstm["weight_hh"], np.float64)
        np.testing.assert_allclose(w_hh.T @ w_hh, np.eye(size), atol=1e-5)
        for bias in ("bias_ih", "bias_hh"):
            expected = np.zeros(rows)
            expected[size : 2 * size] = 1
            np.testing.assert_array_equal(lstm[bias], expected)  # constants: exact
    # attention vector [H, 1]: std sqrt(2 / (H + 1)); fc: U(+-sqrt(6 / (H + C))), zero bias.
    # (a sample std of H = 128 draws: standard error 1 / sqrt(2 * 128) = 6%, 25% is 4 of them)
    assert float(np.std(params["attention_vector"])) == pytest.approx(
        math.sqrt(2 / (h + 1)), rel=0.25
    )
    bound = math.sqrt(6 / (h + 8))
    assert float(np.abs(params["fc"]["weight"]).max()) <= bound
    assert float(np.abs(params["fc"]["weight"]).max()) > 0.9 * bound
    np.testing.assert_array_equal(params["fc"]["bias"], 0)  # constants: exact
    stats = model.init(jax.random.key(3))["batch_stats"]
    np.testing.assert_array_equal(stats["bn_residual"]["running_var"], 1)
    np.testing.assert_array_equal(stats["bn"]["running_mean"], 0)


def test_state_dict_names():
    res = rj.interop.torch_keys(rj.models.get("reslstm_sa", hidden_size=8))
    assert {
        "lstm1.weight_ih_l0",
        "bn_residual.running_mean",
        "lstm2.bias_hh_l0",
        "attention_vector",
        "bn.running_var",
        "fc.weight",
    } <= set(res)
    base = rj.interop.torch_keys(rj.models.get("lstm_sa", hidden_size=8))
    assert {"lstm.weight_ih_l0", "lstm.weight_hh_l0"} <= set(base)
    assert not any(k.startswith(("lstm1", "lstm2", "bn_residual")) for k in base)


@pytest.mark.parametrize(
    "name,config,message",
    [
        (
            "resnet",
            {},
            "unknown model 'resnet'; known models: ds_lstm, light_sernet, lstm_sa, reslstm_sa",
        ),
        ("lstm_sa", {"res_blocks": 1}, "lstm_sa has no residual blocks"),
        ("reslstm_sa", {"res_blocks": 0}, "reslstm_sa needs res_blocks >= 1"),
        ("reslstm_sa", {"hidden_size": 0}, "hidden_size must be a positive integer"),
        ("reslstm_sa", {"num_att": 2.5}, "num_att must be a positive integer"),
        ("reslstm_sa", {"att_combine": "max"}, "att_combine must be 'mean' or 'linear'"),
        ("reslstm_sa", {"dropout": 1.0}, "dropout must be in [0, 1)"),
        ("reslstm_sa", {"row_block": 0}, "row_block must be a positive integer or None, got 0"),
        ("lstm_sa", {"row_block": 4, "unroll": 2}, "unroll must be 1 with a row_block"),
    ],
)
def test_bad_configs_raise_clear_errors(name, config, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        rj.models.get(name, **config)


def test_models_are_hashable_static_configs():
    a = rj.models.get("reslstm_sa", hidden_size=32)
    assert a == rj.models.get("reslstm_sa", hidden_size=32)
    assert hash(a) == hash(rj.models.get("reslstm_sa", hidden_size=32))
    assert a != rj.models.get("reslstm_sa", hidden_size=32, paper_compat=True)


@pytest.mark.parametrize("name", ["lstm_sa", "reslstm_sa"])
@pytest.mark.parametrize("paper_compat", [False, True])
def test_apply_contract(name, paper_compat):
    model = rj.models.get(name, hidden_size=8, num_classes=5, paper_compat=paper_compat)
    variables = model.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (4, 10, 46))
    lengths = jnp.array([10, 3, 0, 7])  # a length-0 row is a padding row of a static batch

    logits, extras = jax.jit(model.apply)(variables, x, lengths)
    attention = extras["attention"]
    assert logits.shape == (4, 5) and attention.shape == (4, 10)
    assert np.all(np.isfinite(logits))
    # A softmax's weights sum to 1 up to the rounding of two 10-term sums (measured <= 2 eps);
    # the padding row's are exact zeros. 2e-6 is 17 eps of 1.
    np.testing.assert_allclose(attention.sum(1), [1, 1, 0, 1], atol=2e-6)

    @jax.jit
    def train_step(variables, x, key, rate):
        return model.apply(variables, x, lengths, train=True, key=key, dropout_rate=rate)

    (logits, extras), stats = train_step(variables, x, jax.random.key(2), 0.3)
    assert logits.shape == (4, 5) and extras["attention"].shape == (4, 10)
    assert jax.tree_util.tree_structure(stats) == jax.tree_util.tree_structure(
        variables["batch_stats"]
    )
    assert not np.allclose(stats["bn"]["running_mean"], 0)  # 0.1 * a batch mean: ~1e-2 here
    # The padding row is no sample of the statistics: its features change nothing. Exact: the
    # same program on inputs that differ in the padding row only.
    x_other = x.at[2].set(100.0)
    (_, _), stats_other = train_step(variables, x_other, jax.random.key(2), 0.3)
    for a, b in zip(
        jax.tree_util.tree_leaves(stats), jax.tree_util.tree_leaves(stats_other), strict=True
    ):
        np.testing.assert_array_equal(a, b)


# Packing reorders the sums of the batch: BatchNorm's statistics over the B*T = 50 frames, the
# weight gradients over the same 50 (step, row) terms, and 10 recurrent steps that carry the
# rounding of each step into the next. A reordered sum of n terms moves by at most about
# n * eps of its terms' size; 256 ulps (5 * 50) bounds that with room for the recurrence. The
# same bound in units of the dtype's epsilon holds in float32 (measured on an Intel Xeon with
# AVX-512, where a per-element atol of 2e-5 failed: <= 13 ulps) and in float64 (<= 11 ulps):
# rounding shrinks with the precision, a change in what packing computes would not. In float64
# 256 ulps is 6e-14 of a leaf's scale, so any real difference is caught there (a phase that
# stops one step early: 4e15 ulps; one gradient element scaled by 1 + 1e-11: 4.5e4 ulps).
PACKING_ULPS = 256


@pytest.mark.parametrize(
    "name, paper_compat, dtype",
    [
        ("reslstm_sa", False, "float32"),
        ("lstm_sa", True, "float32"),
        ("reslstm_sa", False, "float64"),
    ],
)  # both models and both modes in float32, the run of the models; float64 shows it is rounding
def test_packing_changes_no_result(name, paper_compat, dtype):
    """row_block sorts the rows by length and skips padded steps; logits, attention, batch
    statistics and gradients stay those of the unpacked model up to rounding, in the caller's
    row order (the same dropout masks included)."""
    cast = functools.partial(jax.tree_util.tree_map, lambda a: jnp.asarray(a, dtype))
    lengths = jnp.array([3, 10, 0, 7, 9])  # unsorted, with a padding row

    def run(row_block):
        model = rj.models.get(
            name, hidden_size=8, num_classes=5, paper_compat=paper_compat, row_block=row_block
        )
        variables = cast(model.init(jax.random.key(0)))
        x = jax.random.normal(jax.random.key(1), (5, 10, 46), dtype)

        def loss(params):
            (logits, attention), stats = model.apply(
                {**variables, "params": params}, x, lengths, train=True,
                key=jax.random.key(2), dropout_rate=0.3,
            )  # fmt: skip
            return (logits * jnp.arange(5.0, dtype=dtype)).sum(), (logits, attention, stats)

        grads, outputs = jax.jit(jax.grad(loss, has_aux=True))(variables["params"])
        results = grads, outputs, jax.jit(model.apply)(variables, x, lengths)
        assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(results)} == {jnp.dtype(dtype)}
        return results

    with jax.enable_x64(dtype == "float64"):
        packed, unpacked = run(2), run(None)
    assert_rounding_close(packed, unpacked, ulps=PACKING_ULPS, err_msg=f"{name} {dtype}")


def test_dropout_rate_is_dynamic_and_seeded():
    model = rj.models.get("lstm_sa", hidden_size=32)
    variables = model.init(jax.random.key(0))
    x, lengths = jax.random.normal(jax.random.key(1), (6, 5, 46)), jnp.full((6,), 5)

    def run(key, rate):
        return model.apply(variables, x, lengths, train=True, key=key, dropout_rate=rate)[0][0]

    no_drop = run(jax.random.key(0), 0.0)
    # exact: the same program (run op by op), key and inputs
    np.testing.assert_array_equal(run(jax.random.key(7), 0.5), run(jax.random.key(7), 0.5))
    assert not np.allclose(run(jax.random.key(7), 0.5), no_drop)  # by ~3 here
    # exact at rate 0 whatever the key: every element kept (uniform >= 0) and scaled by 1 / 1
    np.testing.assert_array_equal(run(jax.random.key(7), 0.0), no_drop)
