"""Attention LSTMs: LSTM-SA (Mirsamadi et al. 2017) and ResLSTM-SA (Krasnoproshin & Vashkevich).

ResLSTM-SA is from DSPA 2026, arXiv 2606.03359.

```
LSTM-SA     x -> LSTM (D->H) -> soft attention -> BN(H) -> dropout -> Linear(H->C)
ResLSTM-SA  x -> [LSTM (D->D) -> + x -> BN(D)] x res_blocks -> LSTM (D->H) -> soft attention
              -> BN(H) -> dropout -> Linear(H->C)
```

Both are one configuration class: LSTM-SA is the case with no residual block. Parameter and
statistic names follow the reference's `state_dict` (see `reslstm_jax.interop`).

Masked mode (default): padded frames take no part anywhere (attention weight exactly 0, no
BatchNorm statistics), so a prediction depends only on its own utterance. `paper_compat=True`
reproduces the reference: padded frames up to the batch's longest sequence count in the
attention softmax (with energy 0) and in the BatchNorm(D) training statistics. Static padding
beyond the batch's longest sequence is masked in both modes, because the reference pads each
batch only to its own maximum.

Rows with length 0 are padding rows of a static batch: they are excluded from every batch
statistic in both modes and get zero attention weights.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp

from reslstm_jax import nn
from reslstm_jax.models.base import ModelBase

AttentionCombine = Literal["mean", "linear"]


@dataclasses.dataclass(frozen=True)
class AttentionLSTM(ModelBase):
    """Static configuration of an attention LSTM (hashable: safe as a jit static argument).

    Attributes:
      name: registry name, "lstm_sa" or "reslstm_sa".
      input_size: D, features per frame (46 = 34 MFCC + 12 chroma in the paper).
      hidden_size: H, size of the last LSTM.
      num_classes: C.
      res_blocks: residual LSTM(D->D) + BatchNorm(D) blocks before the last LSTM (0 = LSTM-SA,
        1 = the paper's ResLSTM-SA).
      num_att: K attention vectors; count = base + (K - 1) * H with the default combiner.
      att_combine: "mean" (no parameters; the project rule) or "linear" (the reference's
        `head_combine` Linear(K->1, no bias), "Variant A", which adds K trainable weights).
      dropout: default dropout rate before the classifier (a dynamic rate may override it).
      paper_compat: reproduce the reference's unmasked attention and BatchNorm statistics.
      unroll: `lax.scan` unroll factor of the LSTMs (speed only; must be 1 with a row_block).
      row_block: pack the batch like torch's packed sequences (speed only): rows are sorted by
        length, longest first, and the LSTMs drop finished rows in blocks of this many, so
        that most padded steps are never computed (`nn.lstm_time_major`). None runs every
        row for all T steps.
    """

    name: str = "reslstm_sa"
    input_size: int = 46
    hidden_size: int = 64
    num_classes: int = 8
    res_blocks: int = 1
    num_att: int = 1
    att_combine: AttentionCombine = "mean"
    dropout: float = 0.1
    paper_compat: bool = False
    unroll: int = 1
    row_block: int | None = 8

    def __post_init__(self):
        for field in ("input_size", "hidden_size", "num_classes", "num_att", "unroll"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{self.name}: {field} must be a positive integer, got {value!r}")
        if not isinstance(self.res_blocks, int) or self.res_blocks < 0:
            raise ValueError(f"{self.name}: res_blocks must be >= 0, got {self.res_blocks!r}")
        if self.att_combine not in ("mean", "linear"):
            raise ValueError(
                f"{self.name}: att_combine must be 'mean' or 'linear', got {self.att_combine!r}"
            )
        if error := nn.lstm_settings_error(self.unroll, self.row_block):
            raise ValueError(f"{self.name}: {error}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"{self.name}: dropout must be in [0, 1), got {self.dropout!r}")

    # ------------------------------------------------------------------ names

    @property
    def block_names(self) -> list[tuple[str, str]]:
        """(LSTM name, BatchNorm name) of each residual block, in order.

        Block 1 keeps the reference's names (`lstm1`, `bn_residual`); extra blocks are
        `lstm1_2`, `bn_residual_2`, ...
        """
        return [
            ("lstm1", "bn_residual") if i == 1 else (f"lstm1_{i}", f"bn_residual_{i}")
            for i in range(1, self.res_blocks + 1)
        ]

    @property
    def top_lstm_name(self) -> str:
        """`lstm` in LSTM-SA, `lstm2` in ResLSTM-SA, as in the reference."""
        return "lstm" if self.res_blocks == 0 else "lstm2"

    # ------------------------------------------------------------------ init

    def init(self, key: jax.Array) -> dict:
        """Fresh variables `{"params": ..., "batch_stats": ...}`, initialised as the reference."""
        d, h = self.input_size, self.hidden_size
        keys = iter(jax.random.split(key, self.res_blocks + 4))
        params: dict = {}
        stats: dict = {}
        for lstm_name, bn_name in self.block_names:
            params[lstm_name] = nn.init_lstm(next(keys), d, d)
            params[bn_name], stats[bn_name] = nn.init_batch_norm(d)
        params[self.top_lstm_name] = nn.init_lstm(next(keys), d, h)
        # torch fans of the [H, K] parameter: fan_in = K, fan_out = H.
        params["attention_vector"] = nn.xavier_normal(next(keys), (h, self.num_att))
        combine_key = next(keys)
        if self.att_combine == "linear":
            params["head_combine"] = {"weight": nn.xavier_uniform(combine_key, (1, self.num_att))}
        params["bn"], stats["bn"] = nn.init_batch_norm(h)
        params["fc"] = nn.init_dense(next(keys), h, self.num_classes)
        return {"params": params, "batch_stats": stats}

    # ------------------------------------------------------------------ apply

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
          variables: `{"params": ..., "batch_stats": ...}` from `init` or the interop import.
          x: [B, T, D] float32, padded; values on padded frames are ignored.
          lengths: [B] int, valid frames per row (0 marks a padding row of a static batch).
          train: BatchNorm batch statistics and dropout.
          key: dropout key; required when training with a non-zero dropout rate.
          dropout_rate: overrides the configured rate; may be a traced scalar.

        Returns:
          eval: `(logits [B, C], {"attention": [B, T]})`.
          train: `((logits [B, C], {"attention": [B, T]}), batch_stats)` with the updated
          running statistics (the same tree as `variables["batch_stats"]`).
        """
        params, stats = variables["params"], variables["batch_stats"]
        rate = nn.dropout_rate(self.name, self.dropout, dropout_rate, train=train, key=key)
        steps = x.shape[1]
        lengths = jnp.asarray(lengths, jnp.int32)
        real_rows = lengths > 0  # [B], in the caller's row order
        packed = self.row_block is not None and x.shape[0] > self.row_block
        if packed:
            # Longest rows first, so the packed LSTMs drop finished rows block by block; the
            # order is restored before anything that mixes rows differently (BatchNorm(H),
            # dropout), so packing changes no result beyond float rounding.
            order = jnp.argsort(lengths, descending=True, stable=True)
            x, lengths = x[order], lengths[order]
        valid = nn.length_mask(lengths, steps)  # [B, T]
        if self.paper_compat:
            # The reference pads each batch to its own longest sequence; those zero frames take
            # part in the softmax and the BatchNorm(D) statistics.
            batch_frames = jnp.arange(steps)[None, :] < jnp.max(lengths)
            counted = batch_frames & (lengths > 0)[:, None]
        else:
            counted = valid
        # The reference pads with zeros; make that true whatever the caller put there.
        # The LSTM stack runs time-major ([T, B, .]): one transpose in, one out.
        h = jnp.swapaxes(jnp.where(valid[..., None], x, 0.0), 0, 1)
        valid_tm = valid.T
        new_stats = {}
        for lstm_name, bn_name in self.block_names:
            lstm = self._lstm(params[lstm_name], h, valid_tm)
            h, new_stats[bn_name] = nn.batch_norm(
                params[bn_name], stats[bn_name], lstm + h, counted.T, train=train
            )
        out = jnp.swapaxes(self._lstm(params[self.top_lstm_name], h, valid_tm), 0, 1)  # [B, T, H]
        combine = params["head_combine"]["weight"][0] if self.att_combine == "linear" else None
        context, attention = nn.soft_attention(params["attention_vector"], out, counted, combine)
        if packed:
            restore = jnp.argsort(order)
            context, attention = context[restore], attention[restore]
        context, new_stats["bn"] = nn.batch_norm(
            params["bn"], stats["bn"], context, real_rows, train=train
        )
        if train and key is not None:
            context = nn.dropout(key, context, rate)
        logits = nn.dense(params["fc"], context)
        extras = {"attention": attention}
        if train:
            return (logits, extras), new_stats
        return logits, extras

    def _lstm(self, params: dict, h: jax.Array, valid: jax.Array) -> jax.Array:
        """h: [T, B, D] time-major, valid: [T, B] -> [T, B, H]."""
        return nn.lstm_time_major(params, h, valid, unroll=self.unroll, row_block=self.row_block)
