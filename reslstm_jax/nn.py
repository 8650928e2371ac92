"""Pure layers: LSTM on `lax.scan`, masked soft attention, masked BatchNorm, dropout, dense.

Every layer is a pair of plain functions over nested dicts of arrays, with PyTorch's parameter
layout and semantics, so that a torch `state_dict` maps onto the parameters one to one and a
stack of models is one `jax.vmap` away.

Axis letters: b batch, t time, f feature, h hidden, g gates (4h), k attention vectors.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

Params = dict  # nested dict of arrays

# PyTorch's BatchNorm defaults: running <- (1 - momentum) * running + momentum * batch.
BN_MOMENTUM = 0.1
BN_EPS = 1e-5


def xavier_normal(key: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """`torch.nn.init.xavier_normal_` for a 2-D tensor: fan_in = shape[1], fan_out = shape[0]."""
    std = math.sqrt(2.0 / (shape[0] + shape[1]))
    return std * jax.random.normal(key, shape, jnp.float32)


def xavier_uniform(key: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """`torch.nn.init.xavier_uniform_` for a 2-D tensor."""
    bound = math.sqrt(6.0 / (shape[0] + shape[1]))
    return jax.random.uniform(key, shape, jnp.float32, -bound, bound)


def orthogonal(key: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """`torch.nn.init.orthogonal_` for a 2-D tensor: Q of the QR factorisation of a Gaussian
    matrix, with the signs that make diag(R) positive (so Q is Haar-distributed).

    Orthonormal columns when rows >= cols, orthonormal rows otherwise. Computed by classical
    Gram-Schmidt applied twice per column ("twice is enough") in plain XLA ops rather than
    LAPACK's QR: the batched LAPACK kernel of jaxlib 0.10 waits on its own CPU thread pool,
    and two of them at once (a vmapped init, or two devices initialising together) deadlock
    the process (observed as a training run that sat idle; docs/performance.md).
    """
    rows, cols = shape
    tall = (max(rows, cols), min(rows, cols))
    a = jax.random.normal(key, tall, jnp.float32)

    def add_column(j, q):
        # Columns not yet written are zero, so projecting on all of q projects on q[:, :j].
        v = a[:, j]
        v = v - q @ (q.T @ v)
        v = v - q @ (q.T @ v)
        return q.at[:, j].set(v / jnp.linalg.norm(v))

    q = jax.lax.fori_loop(0, tall[1], add_column, jnp.zeros(tall, jnp.float32))
    return q if rows >= cols else q.T


def length_mask(lengths: jax.Array, num_steps: int) -> jax.Array:
    """lengths: [B] int -> mask [B, T] bool, True on the first `lengths[b]` steps."""
    return jnp.arange(num_steps)[None, :] < lengths[:, None]


# ----------------------------------------------------------------------------- LSTM


def init_lstm(key: jax.Array, input_size: int, hidden_size: int) -> Params:
    """LSTM parameters in PyTorch's layout and with the reference's initialisation.

    Returns `weight_ih [4H, D]`, `weight_hh [4H, H]`, `bias_ih [4H]`, `bias_hh [4H]`, gate rows
    ordered i, f, g, o. Xavier-normal and orthogonal act on the *whole* matrices (as
    `nn.init.*_` does on the torch parameter), not per gate. Both biases hold 1 on the forget
    slice, so the effective forget bias is 2, as in the reference.
    """
    key_ih, key_hh = jax.random.split(key)
    g = 4 * hidden_size
    bias = jnp.zeros((g,), jnp.float32).at[hidden_size : 2 * hidden_size].set(1.0)
    return {
        "weight_ih": xavier_normal(key_ih, (g, input_size)),
        # Orthonormal columns over the whole [4H, H] matrix, like torch.nn.init.orthogonal_.
        "weight_hh": orthogonal(key_hh, (g, hidden_size)),
        "bias_ih": bias,
        "bias_hh": bias,
    }


def lstm(
    params: Params,
    x: jax.Array,
    lengths: jax.Array,
    *,
    unroll: int = 1,
    row_block: int | None = None,
) -> jax.Array:
    """Unidirectional LSTM over padded sequences, zero initial state.

    Args:
      params: from `init_lstm`.
      x: [B, T, D] float32.
      lengths: [B] int; steps t >= lengths[b] are padding.
      unroll: `lax.scan` unroll factor (a speed knob, never changes results).
      row_block: skip padded steps, like torch's packed sequences, with rows dropped in blocks
        of this many: see `lstm_time_major` (a speed knob; results equal up to float
        rounding, since the matmuls run on fewer rows).

    Returns:
      outputs [B, T, H] float32: h_t on valid steps and exactly 0 on padded steps, as
      `pad_packed_sequence` returns them. The state is frozen on padded steps, so the result on
      valid steps equals the LSTM run on the truncated sequence.

    The gradient is hand-written (`_lstm_bwd`): the backward recurrence does one matmul per
    step, and the weight gradients are one large matmul over all steps afterwards, instead of
    the small per-step outer products that autodiff of the scan accumulates.
    """
    mask = length_mask(lengths, x.shape[1])
    out = lstm_time_major(params, jnp.swapaxes(x, 0, 1), mask.T, unroll=unroll, row_block=row_block)
    return jnp.swapaxes(out, 0, 1)


def lstm_time_major(
    params: Params,
    x: jax.Array,
    mask: jax.Array,
    *,
    unroll: int = 1,
    row_block: int | None = None,
) -> jax.Array:
    """`lstm` on time-major arrays: x [T, B, D], mask [T, B] bool (a length mask: the valid
    steps of every row come first) -> [T, B, H].

    The recurrence runs over time-major arrays anyway; a model that stacks LSTMs keeps its
    activations time-major and skips two transposes of [B, T, 4H] arrays per layer and pass.

    `row_block` = k packs the batch the way torch's `pack_padded_sequence` does, at a coarser
    grain that static shapes allow: the recurrence runs in phases over the first B, B - k,
    B - 2k, ... rows, each phase only until the rows it drops next have ended, so steps where
    a whole block of rows is padding are never computed. With rows sorted by length, longest
    first, that skips most of the padding (the caller sorts: `attention_lstm` does); any row
    order gives the same results, only less is skipped. None runs every row for all T steps.
    Phases have dynamic lengths, so `unroll` must be 1 with a `row_block`.
    """
    batch = x.shape[1]
    if error := lstm_settings_error(unroll, row_block):
        raise ValueError(error)
    if row_block is not None and row_block >= batch:
        row_block = None  # one phase over every row: the static-length scan
    return _lstm(
        params["weight_ih"], params["weight_hh"], params["bias_ih"], params["bias_hh"], x,
        mask.astype(x.dtype), unroll, row_block,
    )  # fmt: skip


def lstm_settings_error(unroll: int, row_block: int | None) -> str | None:
    """What is wrong with these LSTM speed settings (`lstm_time_major`), or None. One check
    for the LSTM and the models that configure it."""
    if row_block is not None and (
        not isinstance(row_block, int) or isinstance(row_block, bool) or row_block < 1
    ):
        return f"row_block must be a positive integer or None, got {row_block!r}"
    if row_block is not None and unroll != 1:
        return f"unroll must be 1 with a row_block (got unroll={unroll}; set row_block=None)"
    return None


def _phases(mask: jax.Array, row_block: int | None) -> list[tuple[int, jax.Array, jax.Array]]:
    """The phases of a (packed) recurrence: (rows, start, stop) per phase, in time order.

    Phase p runs the first rows[p] = B - p * row_block rows over steps [start, stop), where stop
    is the last step of the longest row that no later phase runs. One phase over all rows and
    all T steps (static bounds) without a `row_block`.
    """
    steps, batch = mask.shape
    if row_block is None:
        return [(batch, 0, steps)]
    rows = list(range(batch, 0, -row_block))
    lengths = mask.sum(0).astype(jnp.int32)  # [B]
    longest_from = jax.lax.cummax(lengths[::-1])[::-1]  # [B]: max(lengths[r:])
    stops = [longest_from[n] for n in rows[1:]] + [longest_from[0]]
    starts = [jnp.int32(0)] + stops[:-1]
    return list(zip(rows, starts, stops, strict=True))


def _step_slice(array: jax.Array, t, rows: int) -> jax.Array:
    """array[t, :rows] for a traced step t: [T, B, F] -> [rows, F]."""
    zero = jnp.zeros_like(t)  # indices of t's integer type, also under jax_enable_x64
    return jax.lax.dynamic_slice(array, (t, zero, zero), (1, rows, array.shape[2]))[0]


def _set_step(array: jax.Array, t, value: jax.Array) -> jax.Array:
    """array[t, :rows] = value ([rows, F]), in place inside a loop."""
    zero = jnp.zeros_like(t)
    return jax.lax.dynamic_update_slice(array, value[None], (t, zero, zero))


def _lstm_scan(w_ih, w_hh, b_ih, b_hh, x, mask, unroll, row_block):
    """Forward recurrence over time-major arrays.

    Returns:
      out [T, B, H]: the outputs, 0 on padded steps.
      c [T, B, H]: the cell state carried out of each step (frozen on padded steps that a
        phase runs, 0 on those it skips).
      acts [T, B, 4H]: the gate activations i, f, g, o of each step that runs (other steps
        hold stale values that the backward masks out).
    That is all the backward needs: the state entering a step is the previous step's.
    """
    hidden = w_hh.shape[1]
    steps, batch = mask.shape
    # The input projection of all steps is one big matmul outside the recurrence. The
    # recurrence then overwrites each step's slice of it with that step's activations, in
    # place: no second [T, B, 4H] buffer to allocate and zero, and the step writes the cache
    # lines it has just read.
    x_proj = x @ w_ih.T + (b_ih + b_hh)  # [T, B, 4H]
    w_hh_t = w_hh.T  # [H, 4H]
    # One tanh over all four gates: sigmoid(z) = (1 + tanh(z / 2)) / 2 on the i, f, o lanes,
    # tanh(z) on the g lanes. One vectorised op per step instead of four sliced ones, and
    # XLA's CPU tanh is cheaper than its exp-and-divide sigmoid (docs/performance.md).
    is_g = (jnp.arange(4 * hidden) // hidden) == 2
    scale = jnp.where(is_g, 1.0, 0.5).astype(x.dtype)
    shift = jnp.where(is_g, 0.0, 0.5).astype(x.dtype)

    def step(t, carry):
        h, c, acts_all, out, cells = carry
        rows = h.shape[0]
        gates = _step_slice(acts_all, t, rows) + h @ w_hh_t  # one recurrent matmul per step
        acts = jnp.tanh(gates * scale) * scale + shift
        i, f, g, o = jnp.split(acts, 4, axis=-1)
        c_new = f * c + i * g
        h_new = o * jnp.tanh(c_new)
        keep = _step_slice(mask[..., None], t, rows) > 0  # [rows, 1]
        c_kept = jnp.where(keep, c_new, c)
        out = _set_step(out, t, jnp.where(keep, h_new, 0.0))
        cells = _set_step(cells, t, c_kept)
        return jnp.where(keep, h_new, h), c_kept, _set_step(acts_all, t, acts), out, cells

    zeros = jnp.zeros((steps, batch, hidden), x.dtype)
    h = c = jnp.zeros((batch, hidden), x.dtype)
    acts_all, out, cells = x_proj, zeros, zeros
    for rows, start, stop in _phases(mask, row_block):
        carry = (h[:rows], c[:rows], acts_all, out, cells)
        h, c, acts_all, out, cells = jax.lax.fori_loop(start, stop, step, carry, unroll=unroll)
    return out, cells, acts_all


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7))
def _lstm(w_ih, w_hh, b_ih, b_hh, x, mask, unroll, row_block):
    return _lstm_scan(w_ih, w_hh, b_ih, b_hh, x, mask, unroll, row_block)[0]


def _lstm_fwd(w_ih, w_hh, b_ih, b_hh, x, mask, unroll, row_block):
    out, c, acts = _lstm_scan(w_ih, w_hh, b_ih, b_hh, x, mask, unroll, row_block)
    return out, (w_ih, w_hh, x, mask, out, c, acts)


def _lstm_bwd(unroll, row_block, residuals, d_out):
    """Needs `mask` to be a length mask (valid steps first), as `lstm` builds it: then the
    padded steps at the end carry zero gradients and need no special case in the recurrence."""
    w_ih, w_hh, x, mask, out, c, acts = residuals
    hidden = w_hh.shape[1]
    steps, batch = mask.shape

    def previous(v):  # the state entering each step: the previous step's, zeros at t = 0
        return jnp.concatenate([jnp.zeros_like(v[:1]), v[:-1]], 0)

    h_prev, c_prev = previous(out), previous(c)
    i, f, g, o = jnp.split(acts, 4, axis=-1)
    tanh_c = jnp.tanh(c)
    # Everything that does not depend on the backward recurrence, over all steps at once:
    # d gates = [dc, dc, dc, dh] * coef, with the activation derivatives in coef [T, B, 4H]
    # (one array read per step and one multiply: cheaper than slicing and concatenating four).
    # Padded steps get coef 0: a packed recurrence skips some of them, and they must hold
    # zero gradients all the same.
    valid = mask[..., None]  # [T, B, 1]
    d_out = d_out * valid  # [T, B, H]
    coef = valid * jnp.concatenate(
        [g * i * (1 - i), c_prev * f * (1 - f), i * (1 - g * g), tanh_c * o * (1 - o)], -1
    )
    h_to_c = o * (1 - tanh_c * tanh_c)

    def step(t, carry):
        dh_next, dc_next, d_gates_all = carry  # gradients reaching the state carried out of t
        rows = dh_next.shape[0]
        dh = _step_slice(d_out, t, rows) + dh_next  # 0 on padded steps (all after the valid)
        dc = dc_next + dh * _step_slice(h_to_c, t, rows)
        d_gates = _step_slice(d_gates_all, t, rows) * jnp.concatenate([dc, dc, dc, dh], -1)
        # d gates overwrite the coefficients of their step in place (see _lstm_scan).
        d_gates_all = _set_step(d_gates_all, t, d_gates)
        return d_gates @ w_hh, dc * _step_slice(f, t, rows), d_gates_all

    dh = dc = jnp.zeros((0, hidden), x.dtype)
    d_gates = coef
    for rows, start, stop in reversed(_phases(mask, row_block)):

        def backwards(k, carry, start=start, stop=stop):
            return step(start + stop - 1 - k, carry)

        # The rows this phase adds have ended before it: zero gradients enter them.
        pad = ((0, rows - dh.shape[0]), (0, 0))
        carry = (jnp.pad(dh, pad), jnp.pad(dc, pad), d_gates)
        dh, dc, d_gates = jax.lax.fori_loop(start, stop, backwards, carry, unroll=unroll)
    # All weight and bias gradients in one matmul over the T * B rows: [x | h_prev | 1]^T @
    # d_gates. Transposing the narrow [N, D + H + 1] operand explicitly and multiplying as
    # [K, N] @ [N, 4H] is about twice as fast on XLA's CPU as two einsums, for which XLA
    # transposes the wide [N, 4H] d_gates instead (docs/performance.md). The barrier keeps
    # the transpose a transpose: with its intra-op threads on, XLA would otherwise fold it
    # into the matmul for some shapes and not for others, and a run on one device with
    # threads would then differ in the last bits from the same run on one device per core.
    inputs = jnp.concatenate([x, h_prev, jnp.ones_like(x[..., :1])], -1)
    num_rows, width = steps * batch, inputs.shape[-1]
    inputs_t = jax.lax.optimization_barrier(inputs.reshape(num_rows, width).T)  # [K, N]
    d_w = inputs_t @ d_gates.reshape(num_rows, 4 * hidden)
    d_w_ih, d_w_hh, d_bias = d_w[: x.shape[-1]].T, d_w[x.shape[-1] : -1].T, d_w[-1]
    d_x = d_gates @ w_ih  # [T, B, D]
    return d_w_ih, d_w_hh, d_bias, d_bias, d_x, jnp.zeros_like(mask)


_lstm.defvjp(_lstm_fwd, _lstm_bwd)


# ----------------------------------------------------------------------------- attention


def soft_attention(
    u: jax.Array, h: jax.Array, mask: jax.Array, combine: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """Soft attention pooling over time (Mirsamadi et al. 2017), masked.

    Args:
      u: [H, K] attention vectors (K = `num_att`; K = 1 is the paper's single vector).
      h: [B, T, H] sequence.
      mask: [B, T] bool; False frames get exactly zero weight. A row with no True frame gets
        all-zero weights and a zero context (never NaN).
      combine: [K] weights combining the K per-vector scores into one (the reference's
        `head_combine`, "Variant A"), or None for their mean (no parameters).

    Returns:
      context [B, H], weights [B, T] (each row sums to 1, or to 0 for an empty row).
    """
    scores = h @ u  # [B, T, K]
    energy = scores.mean(-1) if combine is None else scores @ combine  # [B, T]
    energy = jnp.where(mask, energy, -jnp.inf)
    peak = jnp.max(energy, axis=1, keepdims=True)
    peak = jnp.where(jnp.isfinite(peak), peak, 0.0)  # empty rows: avoid -inf - -inf
    expo = jnp.where(mask, jnp.exp(energy - peak), 0.0)
    total = expo.sum(axis=1, keepdims=True)
    weights = expo / jnp.where(total > 0, total, 1.0)
    context = jnp.einsum("bt,bth->bh", weights, h)
    return context, weights


# ----------------------------------------------------------------------------- batch norm


def init_batch_norm(num_features: int) -> tuple[Params, Params]:
    """Affine parameters (`weight` = 1, `bias` = 0) and running statistics (mean 0, var 1)."""
    params = {
        "weight": jnp.ones((num_features,), jnp.float32),
        "bias": jnp.zeros((num_features,), jnp.float32),
    }
    stats = {
        "running_mean": jnp.zeros((num_features,), jnp.float32),
        "running_var": jnp.ones((num_features,), jnp.float32),
    }
    return params, stats


def batch_norm(
    params: Params,
    stats: Params,
    x: jax.Array,
    mask: jax.Array,
    *,
    train: bool,
    momentum: float = BN_MOMENTUM,
    eps: float = BN_EPS,
) -> tuple[jax.Array, Params]:
    """BatchNorm over the last axis with statistics over the positions where `mask` is True.

    Args:
      params: `weight`, `bias` [F].
      stats: `running_mean`, `running_var` [F].
      x: [..., F] (e.g. [B, T, F] frames or [B, F] vectors).
      mask: x.shape[:-1] bool; which positions count as samples of the batch statistics.
      train: normalise with the (biased) batch statistics and update the running ones, as
        PyTorch does: the stored variance is the unbiased one (times n / (n - 1)).

    Returns:
      y with x's shape, and the running statistics (updated in training, unchanged otherwise).
      A batch with no True position leaves the running statistics unchanged.
    """
    if train:
        weight = mask[..., None].astype(x.dtype)
        axes = tuple(range(x.ndim - 1))
        count = weight.sum()
        safe_count = jnp.maximum(count, 1.0)
        mean = (weight * x).sum(axes) / safe_count
        var = (weight * jnp.square(x - mean)).sum(axes) / safe_count
        unbiased = var * count / jnp.maximum(count - 1.0, 1.0)
        seen = count > 0
        new_stats = {
            "running_mean": jnp.where(
                seen,
                (1 - momentum) * stats["running_mean"] + momentum * mean,
                stats["running_mean"],
            ),
            "running_var": jnp.where(
                seen,
                (1 - momentum) * stats["running_var"] + momentum * unbiased,
                stats["running_var"],
            ),
        }
    else:
        mean, var = stats["running_mean"], stats["running_var"]
        new_stats = stats
    y = (x - mean) * jax.lax.rsqrt(var + eps) * params["weight"] + params["bias"]
    return y, new_stats


# ----------------------------------------------------------------------------- dropout, dense


def dropout(key: jax.Array, x: jax.Array, rate: float | jax.Array) -> jax.Array:
    """Inverted dropout: zero with probability `rate`, scale the rest by 1 / (1 - rate).

    `rate` may be a traced scalar (each stacked model has its own); rate 0 is the identity.
    """
    keep = jax.random.uniform(key, x.shape) >= rate
    # Guard rate = 1: the unselected branch of `where` must stay finite for its gradient.
    scale = jnp.where(rate < 1.0, 1.0 / jnp.maximum(1.0 - rate, 1e-12), 0.0)
    return jnp.where(keep, x * scale, 0.0)


def dropout_rate(
    name: str, default: float, override: float | jax.Array | None, *, train: bool, key
) -> float | jax.Array:
    """The dropout rate of an `apply` call: `override` (may be traced) or the model's default.

    Raises:
      ValueError: training with a rate that is not literally 0 and no dropout `key`.
    """
    rate = default if override is None else override
    if train and key is None and not (isinstance(rate, float | int) and rate == 0):
        raise ValueError(f"{name}.apply(train=True) needs a dropout `key`")
    return rate


def scaled_uniforms(
    key: jax.Array, shapes: list[tuple[int, ...]], bounds: list[float]
) -> list[jax.Array]:
    """U(-bound, bound) arrays of `shapes`, cut from one U(-1, 1) draw of their total size.

    The same distribution as one draw per array, but XLA compiles one threefry instead of one
    per array (a large saving in compile time for models with many tensors).
    """
    sizes = [math.prod(shape) for shape in shapes]
    flat = jax.random.uniform(key, (sum(sizes),), jnp.float32, -1.0, 1.0)
    offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    return [
        bound * flat[start:stop].reshape(shape)
        for shape, bound, start, stop in zip(shapes, bounds, offsets[:-1], offsets[1:], strict=True)
    ]


def init_dense(key: jax.Array, in_features: int, out_features: int) -> Params:
    """Linear layer in torch layout (`weight [out, in]`), xavier-uniform weight, zero bias."""
    return {
        "weight": xavier_uniform(key, (out_features, in_features)),
        "bias": jnp.zeros((out_features,), jnp.float32),
    }


def dense(params: Params, x: jax.Array) -> jax.Array:
    """x: [..., in] -> [..., out]."""
    return x @ params["weight"].T + params["bias"]
