"""Layer properties: masking, padding invariance, truncation equivalence, finite gradients."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numerics import assert_rounding_close

import reslstm_jax as rj
from reslstm_jax import nn

B, T, D = 4, 9, 46
SETTINGS = settings(max_examples=12, deadline=None)
lengths_strategy = st.lists(st.integers(1, T), min_size=B, max_size=B)

# Two programs of one LSTM (the hand-written scan against a float64 NumPy loop, against itself
# unrolled, packed or vmapped over models, against `lax.scan` differentiated by JAX) differ by
# rounding: each step's gates are sums of D + H = 53 products, the weight gradients sums over
# the B * T = 36 (row, step) terms, carried through up to T = 9 recurrent steps. A reordered
# n-term sum moves by at most about n * eps of its terms' size, and the gates' slopes (<= 1)
# do not amplify it: 64 ulps of a leaf's scale. Measured on an Intel Xeon (AVX-512): <= 3.6.
LSTM_ULPS = 64
# The models on another batch shape (padding steps appended, a row alone) sum the same terms in
# another order: BatchNorm's statistics over the B * T frames, the LSTMs' 53-term (ResLSTM's
# 92-term) gate sums over 9 steps, the softmax over T. The same 64 ulps; measured <= 4.7 (run
# op by op; 0 in one jitted program).
MODEL_ULPS = 64


def lstm_reference(params, x):
    """A plain per-step loop over one unpadded sequence: x [t, D] -> [t, H] (NumPy, float64)."""
    w_ih, w_hh = np.asarray(params["weight_ih"], np.float64), np.asarray(params["weight_hh"])
    bias = np.asarray(params["bias_ih"], np.float64) + np.asarray(params["bias_hh"])
    hidden = w_hh.shape[1]
    h, c, out = np.zeros(hidden), np.zeros(hidden), []

    def sigmoid(z):
        return 1 / (1 + np.exp(-z))

    for x_t in np.asarray(x, np.float64):
        i, f, g, o = np.split(w_ih @ x_t + w_hh @ h + bias, 4)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        out.append(h)
    return np.stack(out)


@functools.cache
def lstm_params(hidden=7):
    return nn.init_lstm(jax.random.key(0), D, hidden)


@SETTINGS
@given(lengths=lengths_strategy, seed=st.integers(0, 2**16))
def test_masked_lstm_equals_lstm_on_truncated_sequences(lengths, seed):
    params = lstm_params()
    x = np.random.default_rng(seed).standard_normal((B, T, D)).astype(np.float32)
    out = np.asarray(jax.jit(nn.lstm)(params, x, jnp.array(lengths)))
    for b, n in enumerate(lengths):
        reference = lstm_reference(params, x[b, :n]).astype(np.float32)  # + half an ulp
        assert_rounding_close(out[b, :n], reference, ulps=LSTM_ULPS)
        assert np.all(out[b, n:] == 0)  # like pad_packed_sequence


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"row_block": 0}, "row_block must be a positive integer or None, got 0"),
        ({"row_block": True}, "row_block must be a positive integer or None, got True"),
        ({"row_block": 2, "unroll": 2}, "unroll must be 1 with a row_block"),
    ],
)
def test_bad_lstm_settings_raise(kwargs, message):
    x, lengths = jnp.zeros((B, T, D)), jnp.full((B,), T)
    with pytest.raises(ValueError, match=message):
        nn.lstm(lstm_params(), x, lengths, **kwargs)


@pytest.mark.parametrize("unroll", [1, 2, 4])
def test_unroll_does_not_change_results(unroll):
    params = lstm_params()
    x = jax.random.normal(jax.random.key(1), (B, T, D))
    lengths = jnp.array([9, 4, 1, 6])
    assert_rounding_close(
        nn.lstm(params, x, lengths, unroll=unroll), nn.lstm(params, x, lengths), ulps=LSTM_ULPS
    )  # another program: XLA fuses `unroll` steps at a time (measured <= 0.7 ulps)


def test_attention_masks_padding_exactly_and_survives_empty_rows():
    u = jax.random.normal(jax.random.key(0), (5, 2))
    h = jax.random.normal(jax.random.key(1), (3, 6, 5)) * 50  # large energies
    mask = jnp.array([[1, 1, 1, 0, 0, 0], [1] * 6, [0] * 6], bool)
    context, weights = nn.soft_attention(u, h, mask)
    assert np.all(np.asarray(weights)[0, 3:] == 0)
    # A softmax's weights sum to 1 up to the rounding of a <= 6-term sum (measured 0); the
    # empty row's are exact zeros. 1e-6 is 8 eps of 1.
    np.testing.assert_allclose(weights.sum(1), [1, 1, 0], atol=1e-6)
    assert np.all(np.isfinite(context)) and np.all(np.asarray(context)[2] == 0)

    def loss(h):
        return nn.soft_attention(u, h, mask)[0].sum()

    assert np.all(np.isfinite(jax.grad(loss)(h)))


def test_masked_batch_norm_statistics_count_valid_frames_only():
    params, stats = nn.init_batch_norm(3)
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]], bool)
    x_pad = np.where(mask[..., None], x, 1e3)  # garbage on padding must not matter
    y, new = nn.batch_norm(params, stats, x_pad, mask, train=True)
    frames = x[mask]  # [5, 3]
    mean, var = frames.mean(0), frames.var(0)
    # NumPy's float32 formulas against ours: 5-frame means and variances summed in another
    # order, a division against a multiplication by rsqrt: a few ulps (measured <= 0.6); 16.
    assert_rounding_close(np.asarray(y)[mask], (frames - mean) / np.sqrt(var + 1e-5), ulps=16)
    assert_rounding_close(new["running_mean"], 0.1 * mean, ulps=16)
    assert_rounding_close(new["running_var"], 0.9 + 0.1 * frames.var(0, ddof=1), ulps=16)
    # eval uses the running statistics; an all-False mask leaves them unchanged
    y_eval, same = nn.batch_norm(params, new, x, mask, train=False)
    assert_rounding_close(
        y_eval, (x - new["running_mean"]) / np.sqrt(new["running_var"] + 1e-5), ulps=16
    )
    _, unchanged = nn.batch_norm(params, stats, x, np.zeros_like(mask), train=True)
    # exact: with no sample, `where` selects the old statistics themselves
    np.testing.assert_array_equal(unchanged["running_var"], stats["running_var"])


def test_dropout_is_inverted_and_rate_zero_is_identity():
    x = jnp.ones((20000,))
    y = nn.dropout(jax.random.key(0), x, 0.25)
    kept = np.asarray(y) != 0
    # a sample of 20000 draws: standard error sqrt(0.75 * 0.25 / 20000) = 0.003, 0.02 is 6.5 of them
    assert kept.mean() == pytest.approx(0.75, abs=0.02)
    # 1 * (1 / 0.75) in float32 against float64: half an ulp; 1e-6 is 8 eps
    np.testing.assert_allclose(np.asarray(y)[kept], 1 / 0.75, rtol=1e-6)
    # exact: rate 0 keeps every element (uniform >= 0) and scales it by 1 / 1
    np.testing.assert_array_equal(nn.dropout(jax.random.key(0), x, 0.0), x)
    assert np.all(jax.grad(lambda r: nn.dropout(jax.random.key(0), x, r).sum())(1.0) == 0)


def model_and_variables(name, paper_compat=False):
    model = rj.models.get(name, hidden_size=8, num_att=2, paper_compat=paper_compat)
    return model, model.init(jax.random.key(0))


@pytest.mark.parametrize("name", ["lstm_sa", "reslstm_sa"])
@SETTINGS
@given(
    lengths=lengths_strategy,
    extra=st.sampled_from([1, 6]),
    pad_value=st.sampled_from([0.0, -3.0, 1e4]),
    train=st.booleans(),
)
def test_appending_padding_changes_nothing_in_masked_mode(name, lengths, extra, pad_value, train):
    model, variables = model_and_variables(name)
    x = np.random.default_rng(sum(lengths)).standard_normal((B, T, D)).astype(np.float32)
    lengths = jnp.array(lengths)
    x_long = np.concatenate([x, np.full((B, extra, D), pad_value, np.float32)], axis=1)
    kwargs = {"train": True, "key": jax.random.key(5)} if train else {}
    out_short = model.apply(variables, x, lengths, **kwargs)
    out_long = model.apply(variables, x_long, lengths, **kwargs)
    if train:
        (out_short, stats_short), (out_long, stats_long) = out_short, out_long
        for a, b in zip(
            jax.tree_util.tree_leaves(stats_short),
            jax.tree_util.tree_leaves(stats_long),
            strict=True,
        ):
            assert_rounding_close(b, a, ulps=MODEL_ULPS)
    assert_rounding_close(out_long[0], out_short[0], ulps=MODEL_ULPS)
    attention_long, attention_short = out_long[1]["attention"], out_short[1]["attention"]
    assert_rounding_close(attention_long[:, :T], attention_short, ulps=MODEL_ULPS)
    assert np.all(np.asarray(attention_long)[:, T:] == 0)


@pytest.mark.parametrize("name", ["lstm_sa", "reslstm_sa"])
def test_masked_prediction_does_not_depend_on_batch_mates(name):
    """The reference's pitfall #1 gone: one utterance alone or in a batch, the same logits."""
    model, variables = model_and_variables(name)
    x = jax.random.normal(jax.random.key(1), (B, T, D))
    lengths = jnp.array([3, 9, 5, 9])
    batched, _ = model.apply(variables, x, lengths)
    alone, _ = model.apply(variables, x[:1, :3], lengths[:1])
    assert_rounding_close(batched[0], alone[0], ulps=MODEL_ULPS)
    # paper_compat reproduces the dependency on the batch's longest sequence
    model_p, _ = model_and_variables(name, paper_compat=True)
    batched_p, _ = model_p.apply(variables, x, lengths)
    alone_p, _ = model_p.apply(variables, x[:1, :3], lengths[:1])
    # (by about 0.1 here: the padded steps run through the LSTM; rounding is ~1e-7)
    assert np.abs(np.asarray(batched_p[0]) - np.asarray(alone_p[0])).max() > 1e-4


@pytest.mark.parametrize("name", ["lstm_sa", "reslstm_sa"])
@pytest.mark.parametrize("paper_compat", [False, True])
def test_gradients_are_finite_for_length_one(name, paper_compat):
    model, variables = model_and_variables(name, paper_compat)
    x = jax.random.normal(jax.random.key(1), (3, 5, D))
    lengths = jnp.array([1, 1, 0])
    labels = jnp.array([0, 3, 0])

    def loss(params):
        (logits, _), _ = model.apply(
            {"params": params, "batch_stats": variables["batch_stats"]},
            x,
            lengths,
            train=True,
            key=jax.random.key(0),
        )
        return -jax.nn.log_softmax(logits[:2])[jnp.arange(2), labels[:2]].mean()

    grads = jax.grad(loss)(variables["params"])
    leaves = jax.tree_util.tree_leaves(grads)
    assert all(np.all(np.isfinite(g)) for g in leaves)
    assert any(np.abs(g).max() > 0 for g in leaves)


@pytest.mark.parametrize("shape", [(256, 64), (184, 46), (12, 3), (3, 7), (5, 5)])
def test_orthogonal_is_the_qr_factor_of_a_gaussian_with_positive_diagonal(shape):
    """torch.nn.init.orthogonal_: Q of QR(A), A Gaussian, signs making diag(R) positive."""
    key = jax.random.key(7)
    q = np.asarray(nn.orthogonal(key, shape))
    a = np.asarray(jax.random.normal(key, (max(shape), min(shape))), np.float64)
    expected, r = np.linalg.qr(a)
    expected = expected * np.sign(np.diag(r))
    expected = expected if shape[0] >= shape[1] else expected.T
    assert q.shape == shape
    # float32 Gram-Schmidt (twice) against float64 Householder: rounding, which A's conditioning
    # may amplify (cond(A) <= 3 for the tall draws, 98 for the 5 x 5): measured <= 1.5 ulps; 32.
    assert_rounding_close(q, expected.astype(np.float32), ulps=32)
    # In float64 Q^T Q - I is Q's own rounding: Gram-Schmidt twice keeps Q orthonormal to a few
    # float32 eps whatever A's conditioning (measured <= 2 eps, 2.2e-7); 32 eps.
    q = q.astype(np.float64)
    gram = q.T @ q if shape[0] >= shape[1] else q @ q.T
    np.testing.assert_allclose(gram, np.eye(min(shape)), atol=32 * np.finfo(np.float32).eps)


@pytest.mark.parametrize("name", rj.models.names())
def test_stacked_initialisation_calls_no_lapack_kernel(name):
    """A batched LAPACK QR in the init deadlocked jaxlib 0.10's CPU thread pool (two at once)."""
    model = rj.models.get(name)
    keys = jax.random.split(jax.random.key(0), 3)
    assert "custom_call" not in jax.jit(jax.vmap(model.init)).lower(keys).as_text()


def autodiff_lstm(params, x, lengths):
    """The textbook masked LSTM on `lax.scan`, differentiated by JAX itself: [B, T, H]."""
    mask = nn.length_mask(lengths, x.shape[1])
    bias = params["bias_ih"] + params["bias_hh"]
    hidden = params["weight_hh"].shape[1]

    def step(carry, inputs):
        h, c = carry
        x_t, keep = inputs
        i, f, g, o = jnp.split(
            x_t @ params["weight_ih"].T + h @ params["weight_hh"].T + bias, 4, -1
        )
        c_new = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h_new = jax.nn.sigmoid(o) * jnp.tanh(c_new)
        keep = keep[:, None]
        out = jnp.where(keep, h_new, 0.0)
        return (jnp.where(keep, h_new, h), jnp.where(keep, c_new, c)), out

    zeros = jnp.zeros((x.shape[0], hidden))
    _, out = jax.lax.scan(step, (zeros, zeros), (jnp.swapaxes(x, 0, 1), mask.T))
    return jnp.swapaxes(out, 0, 1)


@pytest.mark.parametrize(
    "lengths, row_block",
    [
        ([9, 4, 1, 6], None),
        ([9, 9, 9, 9], None),
        ([0, 3, 9, 0], None),
        ([9, 6, 4, 1], 1),  # packed, sorted longest first: four phases
        ([9, 4, 1, 6], 1),  # packed, unsorted: a later row outlasts an earlier phase
        ([0, 3, 9, 0], 3),  # packed, rows of length 0, a last block smaller than row_block
        ([5, 5, 2, 2], 2),
    ],
)
def test_hand_written_lstm_gradient_equals_autodiff(lengths, row_block):
    params = lstm_params()
    x = jax.random.normal(jax.random.key(2), (B, T, D))
    weights = jax.random.normal(jax.random.key(3), (B, T, 7))
    lengths = jnp.array(lengths)

    def ours_fn(p, x, lengths):
        return nn.lstm(p, x, lengths, row_block=row_block)

    def loss(fn):
        return jax.grad(lambda p, x: (fn(p, x, lengths) * weights).sum(), argnums=(0, 1))

    ours, reference = jax.jit(loss(ours_fn))(params, x), loss(autodiff_lstm)(params, x)
    forward = ours_fn(params, x, lengths), autodiff_lstm(params, x, lengths)
    assert_rounding_close(*forward, ulps=LSTM_ULPS)
    assert_rounding_close(ours, reference, ulps=LSTM_ULPS)


def test_packed_lstm_batched_over_models_equals_each_model():
    # The training engine vmaps the model over M models; packed LSTMs then have per-model
    # phase bounds (batched loop bounds) and must still be right (the executors run them
    # unpacked, but `nn.lstm` is public).
    row_block = 2
    models = 3
    params = jax.vmap(lambda k: nn.init_lstm(k, D, 5))(jax.random.split(jax.random.key(0), models))
    x = jax.random.normal(jax.random.key(1), (models, B, T, D))
    lengths = jnp.array([[9, 4, 1, 6], [2, 9, 0, 3], [5, 5, 5, 5]])

    def loss(p, x, lengths):
        return (nn.lstm(p, x, lengths, row_block=row_block) ** 2).sum()

    together = jax.jit(jax.vmap(jax.value_and_grad(loss, argnums=(0, 1))))(params, x, lengths)
    for m in range(models):
        alone = jax.value_and_grad(loss, argnums=(0, 1))(
            jax.tree_util.tree_map(lambda a, m=m: a[m], params), x[m], lengths[m]
        )
        row = jax.tree_util.tree_map(lambda b, m=m: b[m], together)
        assert_rounding_close(alone, row, ulps=LSTM_ULPS, err_msg=f"model {m}")
