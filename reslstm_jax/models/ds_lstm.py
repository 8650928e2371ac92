"""DS-LSTM: the dual-sequence LSTM of Wang et al. (ICASSP 2020, arXiv 1910.08874).

(Over 500 lines on purpose: one model family whose CNN front end, DS-LSTM cell, PyTorch-style
initialisation and reference quirks are read together against the spec; split, each part
would need the others' shapes to make sense.)

Sources: the paper and its official PyTorch code (github.com/diaoenmao/Speech-Emotion-Recognition-
with-Dual-Sequence-LSTM-Architecture, `src/final_model_random/model4.py`: `FTLSTMCell`,
`CNN_FTLSTM`); the layers and their parameter counts are in docs/models.md.

```
spectrogram A [230 t, 128 mel] -> CNN (Conv k_A -> BN2d -> ReLU -> MaxPool 2x2) x 2 -> [56, 16*31]
                                   -> avg-pool k3 s2 over time -> x [27, 496] --+
spectrogram B [120 t, 256 mel] -> CNN (same, kernel k_B) -> [29, 16*63] -> y[:27] [27, 1008]
                                                                                |
    DS-LSTM layer 1 (x, y) -> out [27, H] -> DS-LSTM layer 2 (out, the same raw y) -> [27, H]
    -> mean over the 27 steps -> Linear(H->C) = head_ds                       (M_DS-LSTM)
MFCC [T_m, 39] -> LSTM (39->H) -> LSTM (H->H) -> mean over the valid frames
    -> Linear(H->C) = head_lstm                                                (M_LSTM)
logits = p * head_ds + (1 - p) * head_lstm, p = 0.5 fixed
```

The DS-LSTM cell (per step t; `[x; y; h]` is concatenation, gate order [f | i_T | o | i_F]):
```
g = BN_t(sigmoid(W [x_t; y_t; h_{t-1}] + b))      # BN_t: per-step running statistics
c_t = f * c_{t-1} + i_T * tanh(W_T [x_t; h_{t-1}] + b_T) + i_F * tanh(W_F [y_t; h_{t-1}] + b_F)
h_t = o * tanh(c_t)                               # the recurrent state is not normalised
out_t = BN_out(h_t)                               # to the next layer's x, or to the pooling
```
`gate_norm="sigmoid"` drops BN_t: the paper's equations, gates in [0, 1].

Conventions (all as the reference, PyTorch semantics):
* Inputs are time-first, as `reslstm_jax.extractors.LogmelDual` writes them; inside, the
  reference's (B, C, F, T) reasoning is kept with channels last: [B, F, T, C].
* Conv padding is PyTorch's symmetric floor((k - 1) / 2) per axis, so an even kernel shrinks
  the output by one; MaxPool 2x2 stride 2 floors; flattening is channel-major (c * F + f).
* Every BatchNorm uses momentum 0.1 (running = 0.9 * running + 0.1 * batch), eps 1e-5, biased
  batch variance for normalising and the unbiased one for the running variance. BN_t and
  BN_out see one time step at a time (statistics over the batch only): BN_t keeps running
  statistics per step ([T, 4H]) with affine parameters shared over time (gamma 0.1, beta 0);
  BN_out is one BatchNorm1d(H) whose running statistics are updated once per step, 27 times
  per forward pass in training, as calling the torch module at every step does.
* Rows with length 0 are padding rows of a static batch: they are excluded from every batch
  statistic (CNN BN2d, BN_t, BN_out) and their inputs are zeroed, so they change nothing for
  the real rows.
* Initialisation is PyTorch's default: U(+-1/sqrt(fan_in)) for Conv and Linear weights and
  biases, U(+-1/sqrt(H)) for the MFCC LSTM, BatchNorm gamma 1 (BN_t: 0.1) and beta 0.
* No dropout in the reference's forward pass; `dropout` (default 0) is an optional extra on
  the pooled features before both heads.

Names of the reference's `state_dict` (for a future weight import):
```
cnn_a / cnn_b.lflb{i}.conv, .bn      cnn_multi.spec_cell{0,1}.lflb_cell{i}.cnn, .batch
ds.layer{i}.W, .W_T, .W_F            ftlstm.ftlstm_cell{i}.W, .WTc, .WFc
ds.layer{i}.bn_t  [T, 4H] stats      ftlstm.ftlstm_cell{i}.batch (running_mean_{t}, ...)
ds.layer{i}.bn_out                   ftlstm.ftlstm_cell{i}.batchhT
lstm.layer{i}                        LSTM_Audio.lstm.*_l{i}
head_ds, head_lstm                   classification_raw, classification_hand
head_weight (static config)          weight (a requires_grad=False parameter)
```
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp

from reslstm_jax import conv, nn
from reslstm_jax.models.base import ModelBase

Branches = Literal["full", "ds"]
GateNorm = Literal["batchnorm", "sigmoid"]

BN_T_GAMMA = 0.1  # the reference's FTLSTMCell.reset_parameters


# ----------------------------------------------------------------------------- initialisation


class Uniform(NamedTuple):
    """Placeholder leaf of a parameter spec: U(-bound, bound) of `shape`, drawn by `fill`."""

    shape: tuple[int, ...]
    bound: float


def fill(key: jax.Array, spec: dict) -> dict:
    """Replace every `Uniform` leaf of `spec` by its random draw; other leaves stay as they are.

    All the draws come from one `jax.random.uniform` call: each call inlines a threefry hash,
    and one per tensor (about 40 here) made `jit(init)` take seconds to compile on a CPU.
    """
    leaves, treedef = jax.tree_util.tree_flatten(spec, is_leaf=lambda s: isinstance(s, Uniform))
    pieces = iter(_draw(key, tuple(leaf for leaf in leaves if isinstance(leaf, Uniform))))
    filled = [next(pieces) if isinstance(leaf, Uniform) else leaf for leaf in leaves]
    return jax.tree_util.tree_unflatten(treedef, filled)


@functools.partial(jax.jit, static_argnums=1)
def _draw(key: jax.Array, uniforms: tuple[Uniform, ...]) -> list[jax.Array]:
    # Jitted so that an eager `init` is one compiled program, not one dispatch per slice.
    return nn.scaled_uniforms(key, [u.shape for u in uniforms], [u.bound for u in uniforms])


def linear_spec(in_features: int, out_features: int) -> dict:
    """torch.nn.Linear's default: weight [out, in] and bias [out], both U(+-1/sqrt(in))."""
    bound = 1.0 / math.sqrt(in_features)
    return {
        "weight": Uniform((out_features, in_features), bound),
        "bias": Uniform((out_features,), bound),
    }


def conv_spec(in_channels: int, out_channels: int, kernel: tuple[int, int]) -> dict:
    """torch.nn.Conv2d's default: weight [O, I, kF, kT], bias [O], U(+-1/sqrt(I * kF * kT))."""
    bound = 1.0 / math.sqrt(in_channels * kernel[0] * kernel[1])
    return {
        "weight": Uniform((out_channels, in_channels, *kernel), bound),
        "bias": Uniform((out_channels,), bound),
    }


def torch_lstm_spec(input_size: int, hidden_size: int) -> dict:
    """torch.nn.LSTM's default, in `nn.lstm`'s layout: every tensor U(+-1/sqrt(H)).

    (`nn.init_lstm` is the ResLSTM reference's xavier/orthogonal initialisation instead.)
    """
    bound = 1.0 / math.sqrt(hidden_size)
    g = 4 * hidden_size
    return {
        "weight_ih": Uniform((g, input_size), bound),
        "weight_hh": Uniform((g, hidden_size), bound),
        "bias_ih": Uniform((g,), bound),
        "bias_hh": Uniform((g,), bound),
    }


# ----------------------------------------------------------------------------- layers


def conv_block(params: dict, stats: dict, x: jax.Array, row_mask: jax.Array, *, train: bool):
    """Conv (PyTorch padding) -> BatchNorm2d -> ReLU -> MaxPool 2x2 stride 2 (floor).

    Args:
      params: `conv` (`weight [O, I, kF, kT]`, `bias [O]`) and `bn` (`weight`, `bias` [O]).
      stats: `bn` running statistics [O].
      x: [B, F, T, I] float32, channels last.
      row_mask: [B] bool, the rows that count in the BatchNorm statistics.
      train: batch statistics (and updated running ones) or the running ones.

    Returns:
      [B, F', T', O] with F' = (F + 2 * floor((kF - 1) / 2) - kF + 1) // 2 (T' alike), and the
      new `{"bn": running statistics}`.
    """
    weight = params["conv"]["weight"]
    pad = tuple(((k - 1) // 2, (k - 1) // 2) for k in weight.shape[2:])  # torch: symmetric, floor
    y = conv.conv2d(x, weight.transpose(2, 3, 1, 0), pad)  # OIHW -> HWIO
    y = y + params["conv"]["bias"]
    # BatchNorm2d: one sample per (row, f, t) position of the real rows.
    mask = jnp.broadcast_to(row_mask[:, None, None], y.shape[:-1])
    y, bn_stats = nn.batch_norm(params["bn"], stats["bn"], y, mask, train=train)
    y = jax.nn.relu(y)
    y = jax.lax.reduce_window(y, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    return y, {"bn": bn_stats}


def gate_activations(
    bn_params: dict | None,
    bn_stats: dict | None,
    z: jax.Array,
    row_mask: jax.Array,
    *,
    train: bool,
    gate_norm: GateNorm,
) -> tuple[jax.Array, dict | None]:
    """The four DS-LSTM gates of one step: sigmoid, then BN_t unless `gate_norm="sigmoid"`.

    Args:
      bn_params: BN_t `weight`, `bias` [4H] (shared over time), or None for "sigmoid".
      bn_stats: this step's BN_t `running_mean`, `running_var` [4H], or None.
      z: [B, 4H] gate pre-activations.
      row_mask: [B] bool, the rows that count in the statistics.

    Returns:
      gates [B, 4H] in the order [f | i_T | o | i_F] (in [0, 1] only for "sigmoid"; with BN_t
      they are about 0.1 z-scores at initialisation), and the step's new BN_t statistics.
    """
    gates = jax.nn.sigmoid(z)
    if gate_norm == "sigmoid":
        return gates, None
    return nn.batch_norm(bn_params, bn_stats, gates, row_mask, train=train)


def ds_lstm_layer(
    params: dict,
    stats: dict,
    x: jax.Array,
    y: jax.Array,
    row_mask: jax.Array,
    *,
    train: bool,
    gate_norm: GateNorm,
    unroll: int = 1,
) -> tuple[jax.Array, dict]:
    """One DS-LSTM layer over the aligned sequences, zero initial state.

    Args:
      params: `W` (Linear dx+dy+H -> 4H), `W_T` (dx+H -> H), `W_F` (dy+H -> H), `bn_out`
        [H] and, with BN_t, `bn_t` [4H].
      stats: `bn_out` [H] and, with BN_t, `bn_t` with per-step `running_mean`,
        `running_var` [T, 4H].
      x: [B, T, dx] "time" sequence (spectrogram A, or the previous layer's output).
      y: [B, T, dy] "frequency" sequence (spectrogram B; every layer gets the raw one).
      row_mask: [B] bool, the rows that count in the BatchNorm statistics.
      train: batch statistics per step (over the batch only) or the running ones.
      gate_norm: "batchnorm" (the reference code) or "sigmoid" (the paper's equations).
      unroll: `lax.scan` unroll factor (speed only).

    Returns:
      out [B, T, H] = BN_out(h_t) per step, and the new statistics (same tree as `stats`).
    """
    dx, dy = x.shape[-1], y.shape[-1]
    hidden = params["W_T"]["bias"].shape[0]
    w_g, w_t, w_f = params["W"]["weight"], params["W_T"]["weight"], params["W_F"]["weight"]
    # The input parts of the three Linear layers for all steps: big matmuls outside the
    # recurrence. Only the h_{t-1} parts stay in the loop, fused into one [H, 6H] matmul.
    g_in = x @ w_g[:, :dx].T + y @ w_g[:, dx : dx + dy].T + params["W"]["bias"]  # [B, T, 4H]
    t_in = x @ w_t[:, :dx].T + params["W_T"]["bias"]  # [B, T, H]
    f_in = y @ w_f[:, :dy].T + params["W_F"]["bias"]  # [B, T, H]
    w_h = jnp.concatenate([w_g[:, dx + dy :], w_t[:, dx:], w_f[:, dy:]], axis=0).T  # [H, 6H]
    use_bn_t = gate_norm == "batchnorm"
    bn_t_params = params["bn_t"] if use_bn_t else None
    # BN_t's running statistics are per step: they travel as scan inputs and outputs.
    bn_t_stats = stats["bn_t"] if use_bn_t else None

    def step(carry, inputs):
        h, c, out_stats = carry
        g_t, t_t, f_t, step_stats = inputs
        rec = h @ w_h
        gates, step_stats = gate_activations(
            bn_t_params, step_stats, g_t + rec[:, : 4 * hidden], row_mask,
            train=train, gate_norm=gate_norm,
        )  # fmt: skip
        f, i_t, o, i_f = jnp.split(gates, 4, axis=-1)
        cand_t = jnp.tanh(t_t + rec[:, 4 * hidden : 5 * hidden])
        cand_f = jnp.tanh(f_t + rec[:, 5 * hidden :])
        c = f * c + i_t * cand_t + i_f * cand_f
        h = o * jnp.tanh(c)
        # BN_out is called once per step in the reference: batch statistics of this step, and
        # one running-statistics update per step (carried along the scan).
        out, out_stats = nn.batch_norm(params["bn_out"], out_stats, h, row_mask, train=train)
        return (h, c, out_stats), (out, step_stats)

    zeros = jnp.zeros((x.shape[0], hidden), x.dtype)
    time_major = (jnp.swapaxes(g_in, 0, 1), jnp.swapaxes(t_in, 0, 1), jnp.swapaxes(f_in, 0, 1))
    (_, _, out_stats), (out, step_stats) = jax.lax.scan(
        step, (zeros, zeros, stats["bn_out"]), (*time_major, bn_t_stats), unroll=unroll
    )
    new_stats = {"bn_out": out_stats}
    if use_bn_t:
        new_stats["bn_t"] = step_stats
    return jnp.swapaxes(out, 0, 1), new_stats


# ----------------------------------------------------------------------------- model


def _conv_pool_size(size: int, kernel: int) -> int:
    """One CNN stage along one axis: conv with torch padding floor((k-1)/2), then pool 2 floor."""
    return (size + 2 * ((kernel - 1) // 2) - kernel + 1) // 2


@dataclasses.dataclass(frozen=True)
class DSLSTM(ModelBase):
    """Static configuration of DS-LSTM (hashable: safe as a jit static argument).

    Attributes:
      name: registry name.
      num_classes: C.
      hidden_size: H of the DS-LSTM layers and of the MFCC LSTM (the reference: 200 for both;
        it hard-codes the MFCC LSTM's 200).
      cnn_channels: output channels of the CNN stages (both spectrograms).
      kernel_a: (freq, time) kernel of spectrogram A's convolutions.
      kernel_b: (freq, time) kernel of spectrogram B's convolutions.
      n_mels_a, frames_a: spectrogram A's input shape (128 mels, 230 frames).
      n_mels_b, frames_b: spectrogram B's input shape (256 mels, 120 frames).
      mfcc_size: features per MFCC frame (39 = 12 MFCC + energy, deltas, delta-deltas).
      branches: "full" (M_LSTM + M_DS-LSTM) or "ds" (M_DS-LSTM alone, the reference's
        `model10.py`; needs no "mfcc" input).
      gate_norm: "batchnorm" (the code's BN_t after the sigmoid) or "sigmoid" (the paper).
      head_weight: p, the weight of head_ds in the fused logits and in the loss.
      ds_layers: DS-LSTM layers (2 in the reference; layers after the first take H as x).
      lstm_layers: MFCC LSTM layers (2 in the reference).
      dropout: dropout rate on the pooled features before both heads; 0 is the reference,
        whose forward pass has no dropout (the field keeps the trainers' common contract).
      unroll: `lax.scan` unroll factor of the recurrences (speed only).
    """

    name: str = "ds_lstm"
    num_classes: int = 4
    hidden_size: int = 200
    cnn_channels: tuple[int, ...] = (64, 16)
    kernel_a: tuple[int, int] = (4, 2)
    kernel_b: tuple[int, int] = (2, 4)
    n_mels_a: int = 128
    frames_a: int = 230
    n_mels_b: int = 256
    frames_b: int = 120
    mfcc_size: int = 39
    branches: Branches = "full"
    gate_norm: GateNorm = "batchnorm"
    head_weight: float = 0.5
    ds_layers: int = 2
    lstm_layers: int = 2
    dropout: float = 0.0
    unroll: int = 1

    def __post_init__(self):
        # Sweeps and JSON configs give lists; tuples keep the configuration hashable.
        for field in ("cnn_channels", "kernel_a", "kernel_b"):
            if isinstance(getattr(self, field), list):
                object.__setattr__(self, field, tuple(getattr(self, field)))
        positive = (
            "num_classes", "hidden_size", "n_mels_a", "frames_a", "n_mels_b", "frames_b",
            "mfcc_size", "ds_layers", "lstm_layers", "unroll",
        )  # fmt: skip
        for field in positive:
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{self.name}: {field} must be a positive integer, got {value!r}")
        for field, what in (
            ("cnn_channels", "a non-empty tuple"),
            ("kernel_a", "a (freq, time) pair"),
            ("kernel_b", "a (freq, time) pair"),
        ):
            value = getattr(self, field)
            ok = isinstance(value, tuple) and len(value) >= 1
            ok = ok and (field == "cnn_channels" or len(value) == 2)
            ok = ok and all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value
            )
            if not ok:
                raise ValueError(
                    f"{self.name}: {field} must be {what} of positive integers, got {value!r}"
                )
        if self.branches not in ("full", "ds"):
            raise ValueError(f"{self.name}: branches must be 'full' or 'ds', got {self.branches!r}")
        if self.gate_norm not in ("batchnorm", "sigmoid"):
            raise ValueError(
                f"{self.name}: gate_norm must be 'batchnorm' or 'sigmoid', got {self.gate_norm!r}"
            )
        weight = self.head_weight
        if isinstance(weight, bool) or not isinstance(weight, float | int) or not 0 <= weight <= 1:
            raise ValueError(
                f"{self.name}: head_weight must be in [0, 1], got {self.head_weight!r}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"{self.name}: dropout must be in [0, 1), got {self.dropout!r}")
        for branch in ("a", "b"):
            f, t = self._cnn_out(branch)
            if f < 1 or t < 1:
                raise ValueError(
                    f"{self.name}: spectrogram {branch.upper()} is too small for its CNN "
                    f"(n_mels_{branch}={getattr(self, f'n_mels_{branch}')}, "
                    f"frames_{branch}={getattr(self, f'frames_{branch}')})"
                )
        steps, t_b = self.steps, self._cnn_out("b")[1]
        if steps < 1:
            raise ValueError(f"{self.name}: frames_a={self.frames_a} leaves no aligned step")
        if t_b < steps:
            # The reference truncates B to the aligned length; it cannot pad it.
            raise ValueError(
                f"{self.name}: spectrogram B has {t_b} steps after its CNN, fewer than the "
                f"{steps} aligned steps of A (raise frames_b)"
            )

    # ------------------------------------------------------------------ shapes

    def _cnn_out(self, branch: str) -> tuple[int, int]:
        """(F', T') after spectrogram `branch`'s CNN ("a" or "b"); < 1 if it vanishes."""
        kernel = self.kernel_a if branch == "a" else self.kernel_b
        f, t = (self.n_mels_a, self.frames_a) if branch == "a" else (self.n_mels_b, self.frames_b)
        for _ in self.cnn_channels:
            if f < 1 or t < 1:
                return 0, 0
            f, t = _conv_pool_size(f, kernel[0]), _conv_pool_size(t, kernel[1])
        return f, t

    @property
    def steps(self) -> int:
        """Aligned DS-LSTM steps: T_A' // 2 - 1 (27 by default), as the reference's alignment."""
        return self._cnn_out("a")[1] // 2 - 1

    @property
    def x_size(self) -> int:
        """dx, features of the aligned sequence x: channels * F_A' (496 by default)."""
        return self.cnn_channels[-1] * self._cnn_out("a")[0]

    @property
    def y_size(self) -> int:
        """dy, features of the aligned sequence y: channels * F_B' (1008 by default)."""
        return self.cnn_channels[-1] * self._cnn_out("b")[0]

    @property
    def input_keys(self) -> tuple[str, ...]:
        """Keys `apply` reads from its input dict."""
        return ("a", "b", "mfcc") if self.branches == "full" else ("a", "b")

    def example_input(
        self, key: jax.Array, batch: int = 1, mfcc_frames: int = 300
    ) -> tuple[dict, jax.Array]:
        """Standard-normal inputs of the right shapes, e.g. for a latency measurement.

        Returns `(x, lengths)`: x as `apply` reads it (`mfcc_frames` MFCC frames at 100 per
        second: 300 is 3 s; the spectrograms have a fixed size whatever the duration) and
        lengths [B] = `mfcc_frames`.
        """
        key_a, key_b, key_m = jax.random.split(key, 3)
        x = {
            "a": jax.random.normal(key_a, (batch, self.frames_a, self.n_mels_a)),
            "b": jax.random.normal(key_b, (batch, self.frames_b, self.n_mels_b)),
        }
        if self.branches == "full":
            x["mfcc"] = jax.random.normal(key_m, (batch, mfcc_frames, self.mfcc_size))
        return x, jnp.full((batch,), mfcc_frames, jnp.int32)

    # ------------------------------------------------------------------ init

    def init(self, key: jax.Array) -> dict:
        """Fresh variables `{"params": ..., "batch_stats": ...}` with PyTorch's default init."""
        h, c = self.hidden_size, self.num_classes
        params: dict = {}
        stats: dict = {}
        channels = (1, *self.cnn_channels)
        for branch, kernel in (("a", self.kernel_a), ("b", self.kernel_b)):
            cnn_params, cnn_stats = {}, {}
            for i in range(len(self.cnn_channels)):
                bn_params, bn_stats = nn.init_batch_norm(channels[i + 1])
                cnn_params[f"lflb{i}"] = {
                    "conv": conv_spec(channels[i], channels[i + 1], kernel),
                    "bn": bn_params,
                }
                cnn_stats[f"lflb{i}"] = {"bn": bn_stats}
            params[f"cnn_{branch}"], stats[f"cnn_{branch}"] = cnn_params, cnn_stats
        params["ds"], stats["ds"] = {}, {}
        dy = self.y_size
        for i in range(self.ds_layers):
            dx = self.x_size if i == 0 else h
            layer = {
                "W": linear_spec(dx + dy + h, 4 * h),
                "W_T": linear_spec(dx + h, h),
                "W_F": linear_spec(dy + h, h),
            }
            layer["bn_out"], bn_out_stats = nn.init_batch_norm(h)
            layer_stats = {"bn_out": bn_out_stats}
            if self.gate_norm == "batchnorm":
                bn_params, bn_stats = nn.init_batch_norm(4 * h)
                layer["bn_t"] = {**bn_params, "weight": jnp.full((4 * h,), BN_T_GAMMA)}
                layer_stats["bn_t"] = jax.tree_util.tree_map(
                    lambda s: jnp.tile(s, (self.steps, 1)), bn_stats
                )  # [T, 4H]: one set of running statistics per step
            params["ds"][f"layer{i}"], stats["ds"][f"layer{i}"] = layer, layer_stats
        params["head_ds"] = linear_spec(h, c)
        if self.branches == "full":
            params["lstm"] = {
                f"layer{i}": torch_lstm_spec(self.mfcc_size if i == 0 else h, h)
                for i in range(self.lstm_layers)
            }
            params["head_lstm"] = linear_spec(h, c)
        return {"params": fill(key, params), "batch_stats": stats}

    # ------------------------------------------------------------------ apply

    def _check_inputs(self, x: dict, keys: tuple[str, ...]) -> None:
        """Shapes are static: a wrong input fails at trace time with a clear message."""
        if not isinstance(x, dict):
            raise ValueError(f"{self.name}: x must be a dict with keys {keys}")
        expected = {"a": (self.frames_a, self.n_mels_a), "b": (self.frames_b, self.n_mels_b)}
        for key in keys:
            if key not in x:
                raise ValueError(f"{self.name}: input dict lacks {key!r} (needs {keys})")
            shape = tuple(x[key].shape)
            if key == "mfcc":
                if len(shape) != 3 or shape[2] != self.mfcc_size:
                    raise ValueError(
                        f"{self.name}: x['mfcc'] must be [B, T_m, {self.mfcc_size}], got {shape}"
                    )
            elif shape[1:] != expected[key]:
                raise ValueError(
                    f"{self.name}: x[{key!r}] must be [B, {expected[key][0]}, {expected[key][1]}] "
                    f"(time first), got {shape}"
                )

    def _front_end(self, params, stats, x, row_mask, train):
        seqs, new_stats = [], {}
        for branch in ("a", "b"):
            # Zero the padding rows: they must change nothing (not even NaN * 0 in a masked sum).
            spec = jnp.where(row_mask[:, None, None], x[branch], 0.0)
            h = jnp.swapaxes(spec, 1, 2)[..., None]  # [B, F, T, 1]: the reference's (C, F, T)
            cnn = f"cnn_{branch}"
            new_stats[cnn] = {}
            for i in range(len(self.cnn_channels)):
                layer = f"lflb{i}"
                h, new_stats[cnn][layer] = conv_block(
                    params[cnn][layer], stats[cnn][layer], h, row_mask, train=train
                )
            batch, freq, time, chan = h.shape
            # torch.flatten(start_dim=1, end_dim=2) of (B, C, F, T): feature index c * F + f.
            seqs.append(jnp.transpose(h, (0, 2, 3, 1)).reshape(batch, time, chan * freq))
        seq_a, seq_b = seqs
        steps = self.steps
        # Alignment: x_t = mean(A[2t : 2t + 3]) for t < T_A' // 2 - 1; B truncated to that.
        seq_x = sum(seq_a[:, j : j + 2 * steps : 2] for j in range(3)) / 3.0
        return (seq_x, seq_b[:, :steps]), new_stats

    def front_end(self, variables: dict, x: dict, lengths: jax.Array, *, train: bool = False):
        """The two CNNs and the length alignment: the DS-LSTM's input sequences.

        Args:
          variables: from `init`.
          x: `{"a": [B, frames_a, n_mels_a], "b": [B, frames_b, n_mels_b]}` float32.
          lengths: [B] int; 0 marks a padding row (excluded from the BatchNorm statistics).
          train: BatchNorm batch statistics.

        Returns:
          `((x_seq [B, steps, x_size], y_seq [B, steps, y_size]), cnn_stats)`, e.g.
          (B, 27, 496) and (B, 27, 1008) by default; `cnn_stats` holds `cnn_a` and `cnn_b`.
        """
        self._check_inputs(x, ("a", "b"))
        row_mask = jnp.asarray(lengths, jnp.int32) > 0
        return self._front_end(
            variables["params"], variables["batch_stats"], x, row_mask, train=train
        )

    def apply(
        self,
        variables: dict,
        x: dict,
        lengths: jax.Array,
        *,
        train: bool = False,
        key: jax.Array | None = None,
        dropout_rate: float | jax.Array | None = None,
    ):
        """Run the model.

        Args:
          variables: `{"params": ..., "batch_stats": ...}` from `init`.
          x: dict of float32 arrays, time first: `"a"` [B, frames_a, n_mels_a], `"b"`
            [B, frames_b, n_mels_b] and, for branches="full", `"mfcc"` [B, T_m, mfcc_size]
            (padded; values past each length are ignored).
          lengths: [B] int, valid MFCC frames per row (0 marks a padding row of a static
            batch). With branches="ds" only `lengths > 0` matters.
          train: BatchNorm batch statistics (over the real rows) and dropout.
          key: dropout key; required when training with a non-zero dropout rate.
          dropout_rate: overrides the configured rate; may be a traced scalar.

        Returns:
          eval: `(logits [B, C], aux)`.
          train: `((logits [B, C], aux), batch_stats)` with the updated running statistics
          (the same tree as `variables["batch_stats"]`).
          `aux = {"ds": head_ds [B, C], "lstm": head_lstm [B, C]}` (only "ds" for
          branches="ds"); `logits = p * aux["ds"] + (1 - p) * aux["lstm"]`, or `aux["ds"]`.
        """
        self._check_inputs(x, self.input_keys)
        params, stats = variables["params"], variables["batch_stats"]
        rate = nn.dropout_rate(self.name, self.dropout, dropout_rate, train=train, key=key)
        lengths = jnp.asarray(lengths, jnp.int32)
        row_mask = lengths > 0
        (h, seq_y), new_stats = self._front_end(params, stats, x, row_mask, train)
        new_stats["ds"] = {}
        for i in range(self.ds_layers):
            layer = f"layer{i}"
            h, new_stats["ds"][layer] = ds_lstm_layer(
                params["ds"][layer], stats["ds"][layer], h, seq_y, row_mask,
                train=train, gate_norm=self.gate_norm, unroll=self.unroll,
            )  # fmt: skip
        pooled_ds = h.mean(axis=1)  # every row has all the aligned steps
        key_ds, key_lstm = jax.random.split(key) if (train and key is not None) else (None, None)
        if key_ds is not None:
            pooled_ds = nn.dropout(key_ds, pooled_ds, rate)
        head_ds = nn.dense(params["head_ds"], pooled_ds)
        aux = {"ds": head_ds}
        logits = head_ds
        if self.branches == "full":
            mfcc = x["mfcc"]
            valid = nn.length_mask(lengths, mfcc.shape[1])
            # The reference runs the LSTM unpacked on zero-padded frames; being unidirectional,
            # its outputs on the valid frames equal the masked LSTM's, which freezes on padding.
            h = jnp.where(valid[..., None], mfcc, 0.0)
            for i in range(self.lstm_layers):
                h = nn.lstm(params["lstm"][f"layer{i}"], h, lengths, unroll=self.unroll)
            # nn.lstm outputs exactly 0 on padded frames: the sum is over the valid ones.
            pooled = h.sum(axis=1) / jnp.maximum(lengths, 1)[:, None].astype(h.dtype)
            if key_lstm is not None:
                pooled = nn.dropout(key_lstm, pooled, rate)
            aux["lstm"] = nn.dense(params["head_lstm"], pooled)
            p = self.head_weight
            logits = p * head_ds + (1.0 - p) * aux["lstm"]
        if train:
            return (logits, aux), new_stats
        return logits, aux

    def loss_heads(self, logits: jax.Array, aux: dict) -> list[tuple[float, jax.Array]]:
        """The (weight, logits) pairs of the training loss: loss = sum of weight * CE(logits).

        The reference trains each branch with its own cross-entropy, p * CE(head_ds) +
        (1 - p) * CE(head_lstm), not the CE of the fused logits (which are only the
        prediction). For branches="ds" it is the plain CE of the logits.

        Args:
          logits: [B, C] fused logits from `apply`.
          aux: the `aux` dict from `apply`.

        Returns:
          `[(p, aux["ds"]), (1 - p, aux["lstm"])]` (full) or `[(1.0, logits)]` (ds).
        """
        if self.branches == "ds":
            return [(1.0, logits)]
        p = self.head_weight
        return [(p, aux["ds"]), (1.0 - p, aux["lstm"])]
