"""The model protocol: what every model family provides, so the trainer needs no probing.

```python
model = reslstm_jax.models.get("reslstm_sa", hidden_size=64, input_size=46, num_classes=8)
variables = model.init(key)                                   # {"params", "batch_stats"}
logits, extras = model.apply(variables, x, lengths)           # eval
(logits, extras), batch_stats = model.apply(variables, x, lengths, train=True, key=key)
loss = sum(w * ce(head) for w, head in model.loss_heads(logits, extras)) + model.penalty(params)
```

A model is a frozen, hashable dataclass (a jit static argument) with pure methods:

* `init(key) -> {"params": ..., "batch_stats": ...}`.
* `apply(variables, x, lengths, *, train=False, key=None, dropout_rate=None)`: x is
  [B, T, D] float32 or a dict of arrays (`input_keys`), lengths [B] int (0 marks a padding row
  of a static batch). Eval returns `(logits [B, C], extras)`; train returns
  `((logits, extras), batch_stats)`. `extras` is always a dict of arrays with a leading B axis,
  holding only what the model has:
    - `"attention"` [B, T]: soft-attention weights over frames (LSTM-SA, ResLSTM-SA; rows sum
      to 1 over valid frames);
    - `"ds"`, `"lstm"` [B, C]: the logits of DS-LSTM's two heads (only `"ds"` for one branch).
  Light-SERNet's is `{}`.
* `loss_heads(logits, extras) -> [(weight, head logits [B, C]), ...]`: the training loss is
  the weighted sum of the per-head losses. Default: `[(1.0, logits)]`.
* `penalty(params) -> scalar`: a term added to the training loss (Light-SERNet's L2 on its
  conv kernels). Default: 0.

`ModelBase` supplies the defaults; a model family subclasses it.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax


@runtime_checkable
class Model(Protocol):
    """What the trainer, predict, export and the parameter counters rely on."""

    name: str
    num_classes: int

    def init(self, key: jax.Array) -> dict: ...

    def apply(
        self,
        variables: dict,
        x: Any,
        lengths: jax.Array,
        *,
        train: bool = False,
        key: jax.Array | None = None,
        dropout_rate: float | jax.Array | None = None,
    ) -> tuple: ...

    def loss_heads(self, logits: jax.Array, extras: dict) -> list[tuple[float, jax.Array]]: ...

    def penalty(self, params: dict) -> jax.Array | float: ...


class ModelBase:
    """Defaults of the protocol's optional parts (a mixin for the model dataclasses)."""

    def loss_heads(self, logits: jax.Array, extras: dict) -> list[tuple[float, jax.Array]]:
        """One head: the model's logits with weight 1."""
        del extras
        return [(1.0, logits)]

    def penalty(self, params: dict) -> jax.Array | float:
        """No loss term beyond the heads'."""
        del params
        return 0.0
