"""The model zoo: a registry from names to model configurations.

```python
model = reslstm_jax.models.get("reslstm_sa", hidden_size=64, input_size=46, num_classes=8)
variables = model.init(jax.random.key(0))
logits, extras = model.apply(variables, x, lengths, train=False)   # extras["attention"]: [B, T]
```
A model is a frozen (hashable) configuration object with pure `init` and `apply` methods; the
protocol every family follows (`extras`, loss heads, penalty) is in `reslstm_jax.models.base`.
Each family's recipe and the fields a run may set are in `reslstm_jax.families`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reslstm_jax.models.attention_lstm import AttentionLSTM
from reslstm_jax.models.base import Model, ModelBase
from reslstm_jax.models.ds_lstm import DSLSTM
from reslstm_jax.models.light_sernet import LightSERNet

_REGISTRY: dict[str, Callable[..., Any]] = {}


def register(name: str, factory: Callable[..., Any]) -> None:
    """Add a model family under `name` (factory(**config) -> model)."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    _REGISTRY[name] = factory


def names() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def get(name: str, **config: Any):
    """Build the model `name` with `config` (keyword arguments of its configuration class).

    Raises:
      ValueError: unknown name (the message lists the known ones) or invalid configuration.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(names())}")
    return _REGISTRY[name](**config)


def _lstm_sa(**config: Any) -> AttentionLSTM:
    if config.get("res_blocks", 0) != 0:
        raise ValueError("lstm_sa has no residual blocks; use reslstm_sa with res_blocks >= 1")
    return AttentionLSTM(name="lstm_sa", **{**config, "res_blocks": 0})


def _reslstm_sa(**config: Any) -> AttentionLSTM:
    if config.get("res_blocks", 1) < 1:
        raise ValueError("reslstm_sa needs res_blocks >= 1 (res_blocks=0 is lstm_sa)")
    return AttentionLSTM(name="reslstm_sa", **config)


register("lstm_sa", _lstm_sa)
register("reslstm_sa", _reslstm_sa)
register("ds_lstm", DSLSTM)
register("light_sernet", LightSERNet)

__all__ = [
    "AttentionLSTM", "DSLSTM", "LightSERNet", "Model", "ModelBase", "get", "names", "register",
]  # fmt: skip
