"""Each model family's published recipe: features, normalisation, optimiser, schedule, loss.

```python
recipe = recipes.get("light_sernet")        # features tf_mfcc, Adam 1e-4, 300 epochs, ...
model = recipes.build_model("light_sernet", dataset.x, num_classes=7)  # sizes from the data
```

* lstm_sa, reslstm_sa: mfcc_chroma [T, 46], per-fold normalisation, Adam (eps 1e-8) with
  coupled L2 1.6e-3, cosine warm restarts (T_0 10), 100 epochs, batch 32, CE.
* ds_lstm: ds_lstm_inputs (log-mels A [230, 128] and B [120, 256], mfcc39 [T, 39]), raw,
  Adam 1e-3 (eps 1e-8) without decay, x0.5 at epochs 10, 20, 30, 50 epochs, batch 128,
  0.5 CE(DS head) + 0.5 CE(MFCC head).
* light_sernet: tf_mfcc [184, 40] (3 s), raw, Adam 1e-4 (Keras eps 1e-7), L2 1e-6 on the five
  body kernels added to the loss, constant to epoch 59 then x exp(-0.15) every 20 epochs,
  300 epochs, batch 32, CE (or focal, gamma 2).

Sources: `../shared/specs/reslstm_sa.md` and `../shared/specs/seed_models.md` (1.6, 2.4).
Everything here is a default: the trainer's flags and the sweep spaces override any of it.
"""

from __future__ import annotations

import dataclasses

SCHEDULES = ("cosine", "multistep", "exp_decay")
LOSSES = ("ce", "focal")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A family's training defaults (see the module table)."""

    features: str
    normalisation: str
    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    dropout: float
    t0: int
    schedule: str
    adam_eps: float
    loss: str
    source: str


_PAPER = Recipe(features="mfcc_chroma", normalisation="fold", epochs=100, batch_size=32,
                learning_rate=1e-3, weight_decay=1.6e-3, dropout=0.2, t0=10, schedule="cosine",
                adam_eps=1e-8, loss="ce",
                source="ResLSTM-SA notebook (reslstm_sa.md)")  # fmt: skip

RECIPES = {
    "lstm_sa": _PAPER,
    "reslstm_sa": _PAPER,
    "ds_lstm": Recipe(
        features="ds_lstm_inputs",
        normalisation="none",
        epochs=50,
        batch_size=128,
        learning_rate=1e-3,
        weight_decay=0.0,
        dropout=0.0,
        t0=10,
        schedule="multistep",
        adam_eps=1e-8,
        loss="ce",
        source="DS-LSTM train.py (seed_models.md 1.6)",
    ),  # fmt: skip
    "light_sernet": Recipe(
        features="tf_mfcc",
        normalisation="none",
        epochs=300,
        batch_size=32,
        learning_rate=1e-4,
        weight_decay=0.0,
        dropout=0.3,
        t0=10,
        schedule="exp_decay",
        adam_eps=1e-7,
        loss="ce",
        source="Light-SERNet hyperparameters.py (seed_models.md 2.4)",
    ),  # fmt: skip
}


def get(family: str) -> Recipe:
    """The recipe of a registered model family."""
    if family not in RECIPES:
        raise ValueError(f"no recipe for model {family!r}; known: {', '.join(sorted(RECIPES))}")
    return RECIPES[family]


def feature_shapes(x) -> dict[str, tuple[int, ...]]:
    """Per-utterance shapes of a dataset's features: {"x": (T, D)} or {key: (T_k, F_k)}."""
    if isinstance(x, dict):
        return {k: tuple(v.shape[1:]) for k, v in x.items()}
    return {"x": tuple(x.shape[1:])}


def data_config(family: str, shapes: dict) -> dict:
    """The model configuration fields that the data decides (input sizes)."""
    if family == "ds_lstm":
        missing = {"a", "b"} - set(shapes)
        if missing:
            raise ValueError(
                f"ds_lstm needs the ds_lstm_inputs features (arrays a, b, mfcc); got "
                f"{', '.join(shapes)}"
            )
        config = {"frames_a": shapes["a"][0], "n_mels_a": shapes["a"][1],
                  "frames_b": shapes["b"][0], "n_mels_b": shapes["b"][1]}  # fmt: skip
        if "mfcc" in shapes:
            config["mfcc_size"] = shapes["mfcc"][1]
        return config
    if "x" not in shapes:
        raise ValueError(f"{family} reads one feature sequence; got arrays {', '.join(shapes)}")
    return {"input_size": shapes["x"][1]}


def build_model(family: str, x_or_shapes, num_classes: int, config: dict | None = None):
    """The model `family` with `config`, its input sizes taken from the data."""
    from reslstm_jax import models

    shapes = x_or_shapes if _is_shapes(x_or_shapes) else feature_shapes(x_or_shapes)
    return models.get(family, num_classes=num_classes, **data_config(family, shapes),
                      **dict(config or {}))  # fmt: skip


def _is_shapes(value) -> bool:
    return isinstance(value, dict) and all(isinstance(v, tuple) for v in value.values())
