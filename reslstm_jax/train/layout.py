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

    def hparams(self, group, folds=None, labels=None, n_classes: int | None = None) -> HParams:
        """HParams [M] from the configurations' RunSettings. The optional ones are present
        only when a configuration uses them (`engine.HParams`); balanced class weights come
        from each model's fold: its training rows (`folds`: `data.FoldArrays`) of `labels`
        [N] (`class_weights`)."""

        def per(name: str, dtype) -> jax.Array:
            return self.per_model([getattr(s, name) for s in group], dtype)

        def used(name: str, off) -> bool:
            return any(getattr(s, name) != off for s in group)

        optional = {}
        if used("class_weights", "none"):
            optional["class_weight"] = jnp.asarray(np.stack([
                class_weights(group[c].class_weights,
                              labels[folds.train[k][folds.train_mask[k]]], n_classes)
                for c, _, k in map(self.position, range(self.size))
            ]))  # fmt: skip
        if used("patience", 0):
            optional["patience"] = per("patience", jnp.int32)
        for width, count in (("time_mask", "time_masks"), ("feature_mask", "feature_masks")):
            if used(width, 0):
                optional[width], optional[count] = per(width, jnp.int32), per(count, jnp.int32)
        for name in ("noise_std", "mixup_alpha"):
            if used(name, 0.0):
                optional[name] = per(name, jnp.float32)
        return HParams(learning_rate=per("learning_rate", jnp.float32),
                       weight_decay=per("weight_decay", jnp.float32),
                       dropout=per("dropout", jnp.float32), t0=per("t0", jnp.int32),
                       **optional)  # fmt: skip

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


def class_weights(kind: str, train_labels: np.ndarray, n_classes: int) -> np.ndarray:
    """[C] float32 loss weight of each class: ones for "none"; for "balanced",
    n / (classes present x count of the class) over `train_labels` (scikit-learn's
    "balanced"), 1 for a class absent from them (it is never a target)."""
    if kind == "none":
        return np.ones(n_classes, np.float32)
    counts = np.bincount(train_labels, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.where(present, len(train_labels) / (present.sum() * np.maximum(counts, 1)), 1.0)
    return weights.astype(np.float32)


def stack_model_data(folds, n_seeds: int) -> ModelData:
    """ModelData [M = seeds x folds] from `data.FoldArrays` (model m = seed m // K, fold m % K)."""
    return ModelLayout(1, tuple(range(n_seeds)), tuple(folds.names)).model_data(folds)
