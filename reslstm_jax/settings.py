"""The one schema of run settings: their names, defaults and checks, written once.

```python
from reslstm_jax import settings
s = settings.RunSettings(model="lstm_sa", learning_rate=3e-4)   # checked on creation
settings.canonical("lr")            # "learning_rate": the train CLI's and a space's short name
settings.DEFAULTS["epochs"]         # 100: the defaults the attention LSTMs' recipe takes
```
The train CLI's flags, config files, sweep spaces, experiment files, results.json and W&B
configs all name a setting by its field here (`learning_rate`, `weight_decay`, `t0`, ...);
`ALIASES` are the short names still accepted (`lr`). The model families
(`reslstm_jax.families`) give each setting their recipe's value, and their model fields
(`hidden_size`, ...) live in `model_config`. This module imports neither the trainer nor the
families: both read it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

SCHEDULES = ("cosine", "multistep", "exp_decay")
LOSSES = ("ce", "focal")
MATMUL_PRECISIONS = ("default", "high", "highest")
CLASS_WEIGHTS = ("none", "balanced")
EXECUTORS = ("vmap", "map", "auto")
Executor = Literal["vmap", "map", "auto"]
# SpecAugment: the most masks of each kind per utterance (the in-program augmentation draws a
# fixed number of candidates and keeps the first N: a static shape)
MAX_MASKS = 4
# The short names of settings still accepted where a setting is named (a space, an experiment
# file, a config file, `--lr`): one setting, one name in results and W&B.
ALIASES = {"lr": "learning_rate"}


def canonical(name: str) -> str:
    """The schema's name of a setting (`lr` -> `learning_rate`); other names unchanged."""
    return ALIASES.get(name, name)


def choice_problem(name: str, value, choices) -> str | None:
    """The message for a value outside `choices`, or None. One wording for RunSettings and the
    engine's static configuration alike."""
    if value in choices:
        return None
    return f"{name.replace('_', ' ')} must be one of {', '.join(choices)}, got {value!r}"


# The largest values the compiled training program represents (its floats are float32, its
# counters int32): a hyperparameter beyond them cannot mean what it says.
FLOAT32_MAX = 3.4028234663852886e38
INT32_MAX = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Everything that defines a run of one configuration (JSON-able, stored with results)."""

    model: str = "reslstm_sa"
    model_config: tuple = ()  # (name, value) pairs passed to models.get
    seeds: tuple[int, ...] = (0,)
    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1.6e-3
    dropout: float = 0.2
    t0: int = 10
    executor: Executor = "auto"
    share_init_across_seeds: bool = False
    schedule: str = "cosine"
    adam_eps: float = 1e-8
    loss: str = "ce"
    # float32 matmul precision (JAX's `default_matmul_precision`): "default" is the backend's
    # (TF32 on recent NVIDIA GPUs, full float32 on the CPU); parity mode always runs "highest"
    matmul_precision: str = "default"
    # Dynamic per model (`engine.HParams`; one program can train different values): class
    # weights of the loss ("none" or "balanced": from each fold's training labels), early
    # stopping (0: off), and the in-program augmentation of the training batches, each off at
    # 0 (docs/training.md). Added after the first checkpoints: `checkpoint_settings` leaves
    # them out while they hold these defaults.
    class_weights: str = "none"
    patience: int = 0
    time_mask: int = 0
    time_masks: int = 2
    feature_mask: int = 0
    feature_masks: int = 2
    noise_std: float = 0.0
    mixup_alpha: float = 0.0

    def precision(self) -> str:
        """The precision this run trains at: "highest" in parity mode (`paper_compat`), which
        must match the float32 reference on every backend, else `matmul_precision`."""
        return "highest" if dict(self.model_config).get("paper_compat") else self.matmul_precision

    def __post_init__(self):
        for name in ("learning_rate", "weight_decay", "dropout", "adam_eps", "noise_std",
                     "mixup_alpha"):  # fmt: skip
            value = getattr(self, name)
            if not math.isfinite(value):  # inf trains to NaN, and NaN passes no check
                raise ValueError(f"{name.replace('_', ' ')} must be a finite number, got {value}")
            # the program computes in float32: a larger value is inf there, and trains to NaN
            if abs(value) > FLOAT32_MAX:
                raise ValueError(f"{name.replace('_', ' ')} must be a float32 number "
                                 f"(|x| <= {FLOAT32_MAX:.4g}), got {value:g}")  # fmt: skip
        for name in ("epochs", "batch_size", "t0", "patience", "time_mask", "feature_mask"):
            value = getattr(self, name)
            if value > INT32_MAX:  # the compiled program counts epochs, steps and rows in int32
                raise ValueError(f"{name.replace('_', ' ')} must be at most {INT32_MAX} "
                                 f"(int32), got {value}")  # fmt: skip
        checks = [
            (self.schedule in SCHEDULES, choice_problem("schedule", self.schedule, SCHEDULES)),
            (self.loss in LOSSES, choice_problem("loss", self.loss, LOSSES)),
            (self.executor in EXECUTORS, choice_problem("executor", self.executor, EXECUTORS)),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch size must be >= 1, got {self.batch_size}"),
            (self.learning_rate > 0, f"learning rate must be > 0, got {self.learning_rate}"),
            (self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}"),
            (0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}"),
            (self.t0 >= 1, f"T_0 must be >= 1 epoch, got {self.t0}"),
            (len(self.seeds) >= 1, "at least one seed is needed"),
            (len(set(self.seeds)) == len(self.seeds), f"seeds repeat: {list(self.seeds)}"),
            (self.matmul_precision in MATMUL_PRECISIONS,
             choice_problem("matmul_precision", self.matmul_precision, MATMUL_PRECISIONS)),
            (self.class_weights in CLASS_WEIGHTS,
             choice_problem("class_weights", self.class_weights, CLASS_WEIGHTS)),
            (self.patience >= 0, f"patience must be >= 0 epochs (0: off), got {self.patience}"),
            (self.time_mask >= 0 and self.feature_mask >= 0,
             f"mask widths must be >= 0 (0: off), got time {self.time_mask}, feature "
             f"{self.feature_mask}"),
            (1 <= self.time_masks <= MAX_MASKS and 1 <= self.feature_masks <= MAX_MASKS,
             f"masks per utterance must be in 1..{MAX_MASKS}, got time {self.time_masks}, "
             f"feature {self.feature_masks}"),
            (math.isfinite(self.noise_std) and self.noise_std >= 0,
             f"noise std must be >= 0 (0: off), got {self.noise_std}"),
            (math.isfinite(self.mixup_alpha) and self.mixup_alpha >= 0,
             f"mixup alpha must be >= 0 (0: off), got {self.mixup_alpha}"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["model_config"] = dict(self.model_config)
        out["seeds"] = list(self.seeds)
        return out

    def static_signature(self) -> tuple:
        """What must be equal for runs to share one compiled program (and one epoch count)."""
        return (self.model, self.model_config, self.batch_size, self.executor, self.epochs,
                self.seeds, self.share_init_across_seeds, self.schedule, self.adam_eps,
                self.loss, self.precision())  # fmt: skip


# The run defaults written once: the attention LSTMs' recipe (`reslstm_jax.families`) takes
# these, the other families set their own.
DEFAULTS = {f.name: f.default for f in dataclasses.fields(RunSettings)}


def checkpoint_settings(settings: RunSettings) -> dict:
    """The settings as a checkpoint directory's fingerprint records them: `to_json` without
    fields added since checkpoints were first written when they hold their default, so that
    a run checkpointed by an earlier version still resumes (`matmul_precision`)."""
    out = settings.to_json()
    for name, default in ADDED_SETTINGS.items():
        if out[name] == default:
            del out[name]
    return out


# RunSettings fields added after checkpoints were first written, with their defaults: a
# checkpoint of an earlier version has none of them and still resumes
ADDED_SETTINGS = {"matmul_precision": "default", "class_weights": "none", "patience": 0,
                  "time_mask": 0, "time_masks": 2, "feature_mask": 0, "feature_masks": 2,
                  "noise_std": 0.0, "mixup_alpha": 0.0}  # fmt: skip
