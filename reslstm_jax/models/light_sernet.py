"""Light-SERNet (Aftab et al., ICASSP 2022): a small fully convolutional SER network on MFCCs.

Source: A. Aftab, A. Morsali, S. Ghaemmaghami, B. Champagne, "Light-SERNet: A lightweight fully
convolutional neural network for speech emotion recognition", ICASSP 2022, arXiv 2110.03435;
official TF2/Keras code `models.py::Light_SERNet_V1` (github.com/AryaAftab/LIGHT-SERNET, HEAD
95022a0). The layers and their parameter counts are in docs/models.md.

```
x [B, T, 40] MFCC -> [B, T, 40, 1]         NHWC: time on H, MFCC index on W
  |- path1: Conv 32 (11 x 1) + bias -> BN -> ReLU -> AvgPool 2x2 -.
  |- path2: Conv 32 (1 x 9)  + bias -> BN -> ReLU -> AvgPool 2x2 --+- concat [B, T/2, 20, 96]
  '- path3: Conv 32 (3 x 3)  + bias -> BN -> ReLU -> AvgPool 2x2 -'
  -> lflb1: Conv 64  3x3 (no bias) -> BN -> ReLU -> AvgPool 2x2    [B, T/4,  10, 64]
  -> lflb2: Conv 96  3x3           -> BN -> ReLU -> AvgPool 2x2    [B, T/8,   5, 96]
  -> lflb3: Conv 128 3x3           -> BN -> ReLU -> AvgPool 2x1    [B, T/16,  5, 128]
  -> lflb4: Conv 160 3x3           -> BN -> ReLU -> AvgPool 2x1    [B, T/32,  5, 160]
  -> lflb5: Conv 320 1x1           -> BN -> ReLU -> global average pool  [B, 320]
  -> dropout 0.3 (training) -> Dense C -> logits
```
(T/2 etc. round up: 3 s = 184 frames gives 92, 46, 23, 12, 6; 7 s = 434 gives 217, 109, 55, 28,
14.) Trainable parameters: 460,740 for C = 4 and 461,703 for C = 7, whatever T is.

Semantics, as Keras has them in the official code:
- Convs: stride 1, Keras `same` padding (the odd pad of an even kernel goes at the end).
- AvgPool: stride = pool size, Keras `same` padding, padded cells *excluded* from the average
  (`count_include_pad=False`), so an odd size n pools to ceil(n / 2).
- BatchNorm: momentum 0.99 (Keras: running = 0.99 * running + 0.01 * batch), eps 1e-3. Keras 2 /
  TF2 runs BatchNormalization on these 4-D inputs with the *fused* kernel, which stores the
  Bessel-corrected (unbiased, n / (n - 1)) batch variance in the moving variance and normalises
  with the biased one. That is exactly `nn.batch_norm` with PyTorch momentum 1 - 0.99, so this
  module reuses it (n = B * H * W counted positions, so the correction is < 0.1 % at batch 32;
  Keras 3 would store the biased variance).
- The head returns logits: the Keras model's final softmax lives in the trainer's loss.
- L2 (1e-6 * sum w^2, `l2_penalty`) applies to the five LFLB conv kernels only; it is a loss term
  the trainer adds, not part of `apply`.

The network sees a fixed-size, centre-cropped or zero-padded input, so `lengths` only marks rows
with length 0 as padding rows of a static batch: they take no part in any BatchNorm statistic
(and their inputs are zeroed, so not even a NaN there can reach the other rows). Frames beyond a
row's length are NOT masked: the zero padding is part of the input, as in the reference.

Parameter layout: conv and dense kernels in Keras layout (`kernel` [kh, kw, in, out] HWIO and
[320, C]), so Keras weights copy over without transposes; BatchNorm uses the `nn` names
(`weight` = gamma, `bias` = beta; `running_mean` / `running_var` = moving mean / variance).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from reslstm_jax import conv, nn
from reslstm_jax.models.base import ModelBase

# (name, kernel (time, mfcc)): the three parallel input paths, 32 channels each, with bias.
PATHS: tuple[tuple[str, tuple[int, int]], ...] = (
    ("path1", (11, 1)),  # temporal
    ("path2", (1, 9)),  # spectral
    ("path3", (3, 3)),  # joint
)
PATH_CHANNELS = 32
PATH_POOL = (2, 2)

# (name, output channels, kernel, pool): the local feature learning blocks, without bias (BN
# follows). lflb5 has no pool: the global average pool follows it.
LFLBS: tuple[tuple[str, int, tuple[int, int], tuple[int, int] | None], ...] = (
    ("lflb1", 64, (3, 3), (2, 2)),
    ("lflb2", 96, (3, 3), (2, 2)),
    ("lflb3", 128, (3, 3), (2, 1)),
    ("lflb4", 160, (3, 3), (2, 1)),
    ("lflb5", 320, (1, 1), None),
)


# ----------------------------------------------------------------------------- Keras layers


def glorot_bound(shape: tuple[int, ...]) -> float:
    """Keras `glorot_uniform` bound sqrt(6 / (fan_in + fan_out)) of a kernel `shape`.

    For a conv kernel [kh, kw, in, out] the fans are in * kh * kw and out * kh * kw (Keras's
    receptive-field rule); for a dense kernel [in, out] they are in and out.
    """
    receptive = math.prod(shape[:-2])
    return math.sqrt(6.0 / ((shape[-2] + shape[-1]) * receptive))


def same_padding(size: int, window: int, stride: int) -> tuple[int, int]:
    """Keras / TF `same` padding of one axis: (before, after), the odd cell at the end.

    The output has ceil(size / stride) cells; the total pad is whatever the last window needs.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return total // 2, total - total // 2


def conv2d_same(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Keras `Conv2D(padding="same", strides=1)` without bias.

    Args:
      x: [B, H, W, Cin] float32.
      kernel: [kh, kw, Cin, Cout] (HWIO, Keras layout).

    Returns:
      [B, H, W, Cout]. Explicit padding rather than lax's "SAME" so the even-kernel convention
      (extra pad at the end) is written down here, not inherited.
    """
    kh, kw = kernel.shape[:2]
    padding = (same_padding(x.shape[1], kh, 1), same_padding(x.shape[2], kw, 1))
    return conv.conv2d(x, kernel, padding)


def _window_counts(size: int, window: int, stride: int) -> np.ndarray:
    """Valid (unpadded) cells in each `same` window of one axis, as a static NumPy vector."""
    before, _ = same_padding(size, window, stride)
    starts = np.arange(-(-size // stride)) * stride - before
    return np.minimum(starts + window, size) - np.maximum(starts, 0)


def avg_pool_same(x: jax.Array, pool: tuple[int, int]) -> jax.Array:
    """Keras `AveragePooling2D(pool, padding="same")`: stride = pool, padded cells excluded.

    Args:
      x: [B, H, W, C].
      pool: (ph, pw) window and stride.

    Returns:
      [B, ceil(H / ph), ceil(W / pw), C]: each cell is the mean of the *real* cells of its
      window (TF's SAME average pool divides by the valid count, like Flax
      `count_include_pad=False`), so a window half in the padding is not pulled towards 0.
    """
    (ph, pw), (h, w) = pool, x.shape[1:3]
    padding = ((0, 0), same_padding(h, ph, ph), same_padding(w, pw, pw), (0, 0))
    sums = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, ph, pw, 1), (1, ph, pw, 1), padding)
    # The counts depend on shapes only, so they are constants of the compiled program.
    counts = np.outer(_window_counts(h, ph, ph), _window_counts(w, pw, pw))
    return sums / jnp.asarray(counts[None, :, :, None], x.dtype)


# ----------------------------------------------------------------------------- the model


@dataclasses.dataclass(frozen=True)
class LightSERNet(ModelBase):
    """Static configuration of Light-SERNet (hashable: safe as a jit static argument).

    Attributes:
      name: registry name, "light_sernet".
      input_size: F, MFCC coefficients per frame (the W axis; 40 in the paper).
      num_classes: C (4 for IEMOCAP, 7 for EMO-DB).
      dropout: default dropout rate before the dense layer (a dynamic rate may override it).
      bn_momentum: Keras convention: running = momentum * running + (1 - momentum) * batch.
      bn_eps: BatchNorm epsilon (Keras default 1e-3, not PyTorch's 1e-5).
      l2: coefficient of the L2 term l2 * sum(w ** 2) over the five LFLB conv kernels
        (`l2_penalty`, the `penalty` the trainer adds to the loss). `apply` never uses it.
    """

    name: str = "light_sernet"
    input_size: int = 40
    num_classes: int = 7
    dropout: float = 0.3
    bn_momentum: float = 0.99
    bn_eps: float = 1e-3
    l2: float = 1e-6

    def __post_init__(self):
        for field in ("input_size", "num_classes"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{self.name}: {field} must be a positive integer, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"{self.name}: dropout must be in [0, 1), got {self.dropout!r}")
        if not 0.0 <= self.bn_momentum <= 1.0:
            raise ValueError(
                f"{self.name}: bn_momentum must be in [0, 1], got {self.bn_momentum!r}"
            )
        if not self.bn_eps > 0.0:
            raise ValueError(f"{self.name}: bn_eps must be > 0, got {self.bn_eps!r}")
        if not (self.l2 >= 0.0 and math.isfinite(self.l2)):
            raise ValueError(f"{self.name}: l2 must be finite and >= 0, got {self.l2!r}")

    # ------------------------------------------------------------------ names

    @property
    def block_names(self) -> tuple[str, ...]:
        """Keys of `features`, in network order."""
        return (
            "input",
            *(name for name, _ in PATHS),
            "concat",
            *(name for name, *_ in LFLBS),
            "pooled",
            "logits",
        )

    # ------------------------------------------------------------------ init

    def init(self, key: jax.Array) -> dict:
        """Fresh variables `{"params": ..., "batch_stats": ...}`, initialised as Keras does.

        glorot_uniform kernels, zero biases, BatchNorm gamma 1 / beta 0, moving mean 0 / var 1.
        Tree: params[path or lflb] = {"conv": {"kernel"[, "bias"]}, "bn": {"weight", "bias"}},
        params["dense"] = {"kernel" [320, C], "bias" [C]}; batch_stats[block] = {"bn":
        {"running_mean", "running_var"}}.
        """
        shapes = {name: (*kernel, 1, PATH_CHANNELS) for name, kernel in PATHS}
        cin = PATH_CHANNELS * len(PATHS)
        for name, cout, kernel, _ in LFLBS:
            shapes[name] = (*kernel, cin, cout)
            cin = cout
        shapes["dense"] = (cin, self.num_classes)
        # One U(-1, 1) draw for all kernels, cut and scaled per kernel: the same distribution
        # as one draw per kernel, but XLA compiles one threefry instead of nine (measured on a
        # 2-core CPU: 3.1 s -> 0.2 s to compile `init`).
        drawn = nn.scaled_uniforms(key, list(shapes.values()),
                                   [glorot_bound(shape) for shape in shapes.values()])  # fmt: skip
        kernels = dict(zip(shapes, drawn, strict=True))
        params: dict = {}
        stats: dict = {}
        for name in [*(n for n, _ in PATHS), *(n for n, *_ in LFLBS)]:
            conv = {"kernel": kernels[name]}
            if name.startswith("path"):  # the path convs have a bias; the LFLB convs (BN next) not
                conv["bias"] = jnp.zeros((shapes[name][-1],), jnp.float32)
            bn_params, bn_stats = nn.init_batch_norm(shapes[name][-1])
            params[name] = {"conv": conv, "bn": bn_params}
            stats[name] = {"bn": bn_stats}
        params["dense"] = {
            "kernel": kernels["dense"],
            "bias": jnp.zeros((self.num_classes,), jnp.float32),
        }
        return {"params": params, "batch_stats": stats}

    # ------------------------------------------------------------------ regularisation

    def l2_kernels(self, params: dict) -> list[jax.Array]:
        """The five LFLB conv kernels, in order, on which the L2 penalty applies.

        Not the path convs, not the BatchNorms, not the dense layer (as in the reference). Sizes:
        55,296, 55,296, 110,592, 184,320, 51,200.
        """
        return [params[name]["conv"]["kernel"] for name, *_ in LFLBS]

    def l2_penalty(self, params: dict) -> jax.Array:
        """Keras `regularizers.l2(l2)` summed over `l2_kernels`: l2 * sum(w ** 2), a scalar.

        Add it to the training loss (its gradient is 2 * l2 * w, through the optimiser).
        """
        return self.l2 * sum(jnp.sum(jnp.square(k)) for k in self.l2_kernels(params))

    def penalty(self, params: dict) -> jax.Array:
        """The model protocol's loss term: `l2_penalty`."""
        return self.l2_penalty(params)

    # ------------------------------------------------------------------ apply

    def _body(self, params, stats, x, lengths, train):
        """Blocks "input" .. "pooled" ({name: array}) and the new running statistics."""
        if x.ndim != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"{self.name}: x must be [B, T, {self.input_size}], got shape {tuple(x.shape)}"
            )
        real_rows = jnp.asarray(lengths, jnp.int32) > 0  # [B]
        # Zero padding rows: then even non-finite values there cannot reach a statistic.
        h = jnp.where(real_rows[:, None, None], x.astype(jnp.float32), 0.0)[..., None]
        blocks = {"input": h}
        new_stats = {}

        def conv_bn_relu(name, h):
            p = params[name]
            y = conv2d_same(h, p["conv"]["kernel"])
            if "bias" in p["conv"]:
                y = y + p["conv"]["bias"]
            # Every position of a real row is a sample of the statistics; padding rows are not.
            mask = jnp.broadcast_to(real_rows[:, None, None], y.shape[:-1])
            y, new_stats[name] = self._batch_norm(p["bn"], stats[name], y, mask, train)
            return jax.nn.relu(y)

        for name, _ in PATHS:
            blocks[name] = avg_pool_same(conv_bn_relu(name, h), PATH_POOL)
        h = blocks["concat"] = jnp.concatenate([blocks[name] for name, _ in PATHS], axis=-1)
        for name, _, _, pool in LFLBS:
            h = conv_bn_relu(name, h)
            h = blocks[name] = h if pool is None else avg_pool_same(h, pool)
        blocks["pooled"] = h.mean(axis=(1, 2))  # global average pool over time and MFCCs
        return blocks, new_stats

    def _batch_norm(self, params, stats, y, mask, train):
        """Keras-2 fused BatchNorm as `nn.batch_norm` (see the module docstring)."""
        y, bn_stats = nn.batch_norm(
            params, stats["bn"], y, mask, train=train,
            momentum=1.0 - self.bn_momentum, eps=self.bn_eps,
        )  # fmt: skip
        return y, {"bn": bn_stats}

    def apply(
        self,
        variables: dict,
        x: jax.Array,
        lengths: jax.Array,
        *,
        train: bool = False,
        key: jax.Array | None = None,
        dropout_rate: float | jax.Array | None = None,
    ):
        """Run the model.

        Args:
          variables: `{"params": ..., "batch_stats": ...}` from `init`.
          x: [B, T, F] float32 MFCCs (F = input_size), a fixed-size centre crop / zero pad.
          lengths: [B] int; only `lengths == 0` matters: such a row is a padding row of a static
            batch (excluded from every BatchNorm statistic). Frames are never masked.
          train: BatchNorm batch statistics and dropout.
          key: dropout key; required when training with a non-zero dropout rate.
          dropout_rate: overrides the configured rate; may be a traced scalar.

        Returns:
          eval: `(logits [B, C], {})`.
          train: `((logits [B, C], {}), batch_stats)` with the updated running statistics
          (the same tree as `variables["batch_stats"]`). The extras are empty: this network
          has no attention and one head (`reslstm_jax.models.base`).
        """
        params, stats = variables["params"], variables["batch_stats"]
        rate = nn.dropout_rate(self.name, self.dropout, dropout_rate, train=train, key=key)
        blocks, new_stats = self._body(params, stats, x, lengths, train)
        h = blocks["pooled"]
        if train and key is not None:
            h = nn.dropout(key, h, rate)
        logits = h @ params["dense"]["kernel"] + params["dense"]["bias"]
        if train:
            return (logits, {}), new_stats
        return logits, {}

    # ------------------------------------------------------------------ inspection

    def features(
        self, variables: dict, x: jax.Array, lengths: jax.Array, *, train: bool = False
    ) -> dict[str, jax.Array]:
        """Every block's output, for inspection and tests (no dropout; statistics discarded).

        Args:
          variables, x, lengths, train: as in `apply`.

        Returns:
          {name: array} for `block_names`: "input" [B, T, F, 1], "path1".."path3" and
          "concat" after their pools, "lflb1".."lflb4" after their pools, "lflb5" before the
          global average pool, "pooled" [B, 320], "logits" [B, C].
        """
        params = variables["params"]
        blocks, _ = self._body(params, variables["batch_stats"], x, lengths, train)
        blocks["logits"] = blocks["pooled"] @ params["dense"]["kernel"] + params["dense"]["bias"]
        return blocks

    def block_shapes(self, frames: int, batch: int = 1) -> list[tuple[str, tuple[int, ...]]]:
        """(name, shape) of every block for a [batch, frames, F] input, from shapes alone.

        Uses `jax.eval_shape`: nothing is allocated or compiled.
        """
        variables = jax.eval_shape(self.init, jax.random.key(0))
        x = jax.ShapeDtypeStruct((batch, frames, self.input_size), jnp.float32)
        lengths = jax.ShapeDtypeStruct((batch,), jnp.int32)
        shapes = jax.eval_shape(self.features, variables, x, lengths)
        return [(name, tuple(shapes[name].shape)) for name in self.block_names]
