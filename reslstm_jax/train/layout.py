"""Which model is which on the model axis M: configuration x seed x fold, folds fastest.

```python
layout = ModelLayout(configs=2, seeds=(0, 1), folds=("fold1", ..., "fold5"))   # M = 20
layout.index(1, 0, 3)          # 13: configuration 1, seed index 0, fold index 3
layout.position(13)            # (1, 0, 3)
keys = layout.keys()           # [M, 2] uint32, one independent key per model
hp = layout.hparams(group)     # HParams [M] from each configuration's RunSettings
data = layout.model_data(dataset.folds)   # each model's fold rows and statistics [M, ...]
```

The fit loop, the results, the checkpoints of `best/` and `reslstm_jax.predict` all read the
model axis through this one object; `DESCRIPTION` is written into `inference.json`.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from reslstm_jax.train.engine import HParams, ModelData


def model_key(seed: int, fold: int, *, share_across_seeds: bool = False) -> jax.Array:
    """Raw key data [2] uint32 of the model (seed, fold index).

    Default: `fold_in(fold_in(key(0), seed), fold)`, so every seed is an independent run.
    `share_across_seeds=True` reproduces the reference, which reseeds with 42 + 100 fold
    inside every run: its "runs" share each fold's initialisation and shuffles.
    """
    base = jax.random.fold_in(jax.random.key(0), 0 if share_across_seeds else seed)
    return jax.random.key_data(jax.random.fold_in(base, fold))


@dataclasses.dataclass(frozen=True)
class ModelLayout:
    """The model axis of a program: `configs` configurations x `seeds` x `folds`.

    Model m is configuration m // (S K), seed index (m // K) % S, fold index m % K.
    """

    configs: int
    seeds: tuple[int, ...]
    folds: tuple[str, ...]

    DESCRIPTION: ClassVar[str] = "model m = configuration m // (S K), seed (m // K) % S, fold m % K"

    def __post_init__(self):
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "folds", tuple(self.folds))
        if self.configs < 1 or not self.seeds or not self.folds:
            raise ValueError(
                f"a model layout needs at least one configuration, seed and fold, got "
                f"{self.configs}, {len(self.seeds)}, {len(self.folds)}"
            )

    @property
    def per_config(self) -> int:
        """S K: the models of one configuration."""
        return len(self.seeds) * len(self.folds)

    @property
    def size(self) -> int:
        """M."""
        return self.configs * self.per_config

    def index(self, config: int, seed_index: int, fold_index: int) -> int:
        """m of (configuration, seed index, fold index)."""
        return (config * len(self.seeds) + seed_index) * len(self.folds) + fold_index

    def position(self, m: int) -> tuple[int, int, int]:
        """(configuration, seed index, fold index) of model m."""
        config, local = divmod(m, self.per_config)
        seed_index, fold_index = divmod(local, len(self.folds))
        return config, seed_index, fold_index

    def config_models(self, config: int) -> range:
        """The models m of one configuration."""
        return range(config * self.per_config, (config + 1) * self.per_config)

    def select(self, config: int = 0, *, seed: int | None = None,
               fold: str | None = None) -> list[tuple[int, int, str]]:  # fmt: skip
        """(m, seed, fold name) of configuration `config`'s models, optionally of one seed
        and/or one fold, in layout order."""
        return [
            (self.index(config, s, k), seed_value, name)
            for s, seed_value in enumerate(self.seeds)
            for k, name in enumerate(self.folds)
            if (seed is None or seed_value == seed) and (fold is None or name == fold)
        ]

    def keys(self, *, share_across_seeds: bool = False) -> jax.Array:
        """[M, 2] uint32: `model_key(seed, fold index)` of every model (configurations of a
        group share their seeds' keys, so each trains exactly as it would alone)."""
        return jnp.stack([
            model_key(self.seeds[s], k, share_across_seeds=share_across_seeds)
            for _, s, k in map(self.position, range(self.size))
        ])  # fmt: skip

    def per_model(self, values, dtype) -> jax.Array:
        """[M] from one value per configuration."""
        if len(values) != self.configs:
            raise ValueError(f"need {self.configs} values (one per configuration), got {values}")
        return jnp.asarray(np.repeat(list(values), self.per_config), dtype)

    def hparams(self, group) -> HParams:
        """HParams [M] from the configurations' RunSettings."""
        return HParams(
            learning_rate=self.per_model([s.learning_rate for s in group], jnp.float32),
            weight_decay=self.per_model([s.weight_decay for s in group], jnp.float32),
            dropout=self.per_model([s.dropout for s in group], jnp.float32),
            t0=self.per_model([s.t0 for s in group], jnp.int32),
        )

    def model_data(self, folds) -> ModelData:
        """ModelData [M] from `data.FoldArrays` [K, ...]: every model reads its fold's rows."""
        if len(folds.names) != len(self.folds):
            raise ValueError(f"the layout has {len(self.folds)} folds, the data {len(folds.names)}")
        repeats = self.configs * len(self.seeds)

        def tile(a):
            return jnp.asarray(np.tile(a, (repeats,) + (1,) * (a.ndim - 1)))

        return ModelData(
            train=tile(folds.train), train_mask=tile(folds.train_mask),
            val=tile(folds.val), val_mask=tile(folds.val_mask),
            test=tile(folds.test), test_mask=tile(folds.test_mask),
            mean=tile(folds.mean), std=tile(folds.std),
        )  # fmt: skip


def stack_model_data(folds, n_seeds: int) -> ModelData:
    """ModelData [M = seeds x folds] from `data.FoldArrays` (model m = seed m // K, fold m % K)."""
    return ModelLayout(1, tuple(range(n_seeds)), tuple(folds.names)).model_data(folds)
