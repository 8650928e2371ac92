"""One home per model family: its recipe, the features it reads, and the fields a run may set.

```python
family = families.get("light_sernet")        # recipe: tf_mfcc, Adam 1e-4, 300 epochs, ...
family.fields                                 # model fields a run or trial may set
model = families.build_model("light_sernet", dataset.x, num_classes=7)  # sizes from the data
settings = families.settings_from("reslstm_sa", {"hidden_size": 32, "learning_rate": 3e-4})
```

* lstm_sa, reslstm_sa: mfcc_chroma [T, 46], per-fold normalisation, Adam (eps 1e-8) with
  coupled L2 1.6e-3, cosine warm restarts (T_0 10), 100 epochs, batch 32, CE.
* ds_lstm: ds_lstm_inputs (log-mels A [230, 128] and B [120, 256], mfcc39 [T, 39]), raw,
  Adam 1e-3 (eps 1e-8) without decay, x0.5 at epochs 10, 20, 30, 50 epochs, batch 128,
  0.5 CE(DS head) + 0.5 CE(MFCC head).
* light_sernet: tf_mfcc [184, 40] (3 s), raw, Adam 1e-4 (Keras eps 1e-7), L2 1e-6 on the five
  body kernels added to the loss, constant to epoch 59 then x exp(-0.15) every 20 epochs,
  300 epochs, batch 32, CE (or focal, gamma 2).

Sources: the ResLSTM-SA paper and reference notebook (docs/models.md), the DS-LSTM and
Light-SERNet papers and their official code (docs/models.md).
Everything here is a default: the trainer's flags, the experiments and the sweep spaces
override any of it, all through `settings_from`, which refuses a field the family does not
declare (one line naming the field and the family) instead of dropping it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from reslstm_jax.settings import DEFAULTS, LOSSES, SCHEDULES, RunSettings, canonical  # noqa: F401


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

    def run_fields(self) -> dict:
        """The RunSettings fields this recipe sets (`RECIPE_FIELDS`)."""
        return {
            "epochs": self.epochs, "batch_size": self.batch_size,
            "learning_rate": self.learning_rate, "weight_decay": self.weight_decay,
            "dropout": self.dropout, "t0": self.t0, "schedule": self.schedule,
            "adam_eps": self.adam_eps, "loss": self.loss,
        }  # fmt: skip


# The run settings a recipe gives (the rest keep the settings' defaults for every family).
RECIPE_FIELDS = ("epochs", "batch_size", "learning_rate", "weight_decay", "dropout", "t0",
                 "schedule", "adam_eps", "loss")  # fmt: skip


def sequence_input(family: str, shapes: Mapping[str, tuple]) -> dict:
    """Input sizes of a model reading one feature sequence x [T, D]."""
    if "x" not in shapes:
        raise ValueError(f"{family} reads one feature sequence; got arrays {', '.join(shapes)}")
    return {"input_size": shapes["x"][1]}


def ds_lstm_input(family: str, shapes: Mapping[str, tuple]) -> dict:
    """Input sizes of DS-LSTM: spectrograms a [frames, mels], b [frames, mels], mfcc [T, F]."""
    missing = {"a", "b"} - set(shapes)
    if missing:
        raise ValueError(
            f"{family} needs the ds_lstm_inputs features (arrays a, b, mfcc); got "
            f"{', '.join(shapes)}"
        )
    config = {"frames_a": shapes["a"][0], "n_mels_a": shapes["a"][1],
              "frames_b": shapes["b"][0], "n_mels_b": shapes["b"][1]}  # fmt: skip
    if "mfcc" in shapes:
        config["mfcc_size"] = shapes["mfcc"][1]
    return config


# Model fields no run sets: the registry name, and `dropout`, which every run sets as a
# dynamic hyperparameter (RunSettings.dropout overrides the model's default rate).
NOT_SETTABLE = ("name", "dropout")


@dataclasses.dataclass(frozen=True)
class Family:
    """A model family: its registry name, recipe, what the data decides, what a run may set.

    Attributes:
      name: the registry name (`reslstm_jax.models.get`).
      recipe: the published training defaults.
      input_config: (family, feature shapes) -> the model fields the data decides.
      data_fields: those fields (plus num_classes), never set by a run.
      key_fields: the model fields that label a configuration in tables and sweep rows
        (hidden size, blocks, attention vectors, branches), with the model's defaults.
    """

    name: str
    recipe: Recipe
    input_config: Callable[[str, Mapping[str, tuple]], dict]
    data_fields: tuple[str, ...]
    key_fields: tuple[str, ...]

    def default_model(self):
        """The model with every default (its fields are the family's defaults)."""
        from reslstm_jax import models

        return models.get(self.name)

    @property
    def fields(self) -> dict:
        """{field: default} of every model field a run may set."""
        model = self.default_model()
        skip = set(NOT_SETTABLE) | set(self.data_fields) | {"num_classes"}
        return {f.name: getattr(model, f.name) for f in dataclasses.fields(model)
                if f.name not in skip}  # fmt: skip

    def key_defaults(self) -> dict:
        """{field: default} of the key fields."""
        model = self.default_model()
        return {f: getattr(model, f) for f in self.key_fields}

    def check_fields(self, config: Mapping) -> None:
        """Refuse a model field the family does not declare (one line naming both)."""
        declared = self.fields
        for field in config:
            if field not in declared:
                raise ValueError(
                    f"{field} is not a field of {self.name}; {self.name} declares: "
                    f"{', '.join(declared) or 'none'}"
                )


# The run defaults of `reslstm_jax.settings` are the ResLSTM-SA notebook's: written there once
_ATTENTION = Recipe(features="mfcc_chroma", normalisation="fold",
                    source="ResLSTM-SA notebook (reslstm_sa.md)",
                    **{name: DEFAULTS[name] for name in RECIPE_FIELDS})  # fmt: skip
_ATTENTION_DATA = ("input_size",)
_DS_LSTM_DATA = ("frames_a", "n_mels_a", "frames_b", "n_mels_b", "mfcc_size")

FAMILIES = {
    "lstm_sa": Family("lstm_sa", _ATTENTION, sequence_input, _ATTENTION_DATA,
                      ("hidden_size", "num_att", "res_blocks")),
    "reslstm_sa": Family("reslstm_sa", _ATTENTION, sequence_input, _ATTENTION_DATA,
                         ("hidden_size", "num_att", "res_blocks")),
    "ds_lstm": Family(
        "ds_lstm",
        Recipe(features="ds_lstm_inputs", normalisation="none", epochs=50, batch_size=128,
               learning_rate=1e-3, weight_decay=0.0, dropout=0.0, t0=10, schedule="multistep",
               adam_eps=1e-8, loss="ce", source="DS-LSTM train.py (seed_models.md 1.6)"),
        ds_lstm_input, _DS_LSTM_DATA, ("hidden_size", "branches"),
    ),
    "light_sernet": Family(
        "light_sernet",
        Recipe(features="tf_mfcc", normalisation="none", epochs=300, batch_size=32,
               learning_rate=1e-4, weight_decay=0.0, dropout=0.3, t0=10, schedule="exp_decay",
               adam_eps=1e-7, loss="ce",
               source="Light-SERNet hyperparameters.py (seed_models.md 2.4)"),
        sequence_input, ("input_size",), (),
    ),
}  # fmt: skip
RECIPES = {name: family.recipe for name, family in FAMILIES.items()}


def names() -> list[str]:
    """The families, sorted."""
    return sorted(FAMILIES)


def get(family: str) -> Family:
    """A registered model family."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known: {', '.join(names())}")
    return FAMILIES[family]


def recipe(family: str) -> Recipe:
    """The recipe of a registered model family."""
    return get(family).recipe


def feature_shapes(x) -> dict[str, tuple[int, ...]]:
    """Per-utterance shapes of a dataset's features: {"x": (T, D)} or {key: (T_k, F_k)}."""
    if isinstance(x, dict):
        return {k: tuple(v.shape[1:]) for k, v in x.items()}
    return {"x": tuple(x.shape[1:])}


def data_config(family: str, shapes: dict) -> dict:
    """The model configuration fields that the data decides (input sizes)."""
    return get(family).input_config(family, shapes)


def build_model(family: str, x_or_shapes, num_classes: int, config: Mapping | None = None):
    """The model `family` with `config` (fields the family declares), its input sizes taken
    from the data (`x_or_shapes`: the features, or `feature_shapes` of them)."""
    from reslstm_jax import models

    config = dict(config or {})
    get(family).check_fields(config)
    shapes = x_or_shapes if _is_shapes(x_or_shapes) else feature_shapes(x_or_shapes)
    return models.get(family, num_classes=num_classes, **data_config(family, shapes), **config)


def _is_shapes(value) -> bool:
    return isinstance(value, dict) and all(isinstance(v, tuple) for v in value.values())


def _hashable(value):
    """JSON lists become tuples: model configurations are hashable (jit static arguments)."""
    return tuple(value) if isinstance(value, list) else value


def settings_from(family: str, overrides: Mapping | None = None, *,
                  model_config: Mapping | None = None):  # fmt: skip
    """The RunSettings of `family`: its recipe, then `overrides`.

    Args:
      family: a registered family.
      overrides: RunSettings fields (seeds, epochs, batch_size, learning_rate, weight_decay,
        dropout, t0, executor, schedule, adam_eps, loss, share_init_across_seeds) and model
        fields the family declares (`Family.fields`), mixed; a run setting of None means
        "not given" (the recipe's), a model field's None is its value.
      model_config: more model fields (as `--model-config` gives them).

    Raises:
      ValueError: an unknown family, a field that is neither a run setting nor a field the
        family declares (the message names both), or an invalid value.
    """
    from reslstm_jax import models

    fam = get(family)
    run_names = {f.name for f in dataclasses.fields(RunSettings)} - {"model", "model_config"}
    run = fam.recipe.run_fields()
    config = {k: _hashable(v) for k, v in (model_config or {}).items()}
    for key, value in (overrides or {}).items():
        key = canonical(key)  # `lr`, the CLI's and the spaces' name, is `learning_rate`
        if key in run_names:
            if value is not None:  # a flag not given
                run[key] = value
        else:  # a model field: None is a value (row_block=None runs unpacked)
            config[key] = _hashable(value)
    fam.check_fields(config)
    models.get(family, **config)  # invalid values fail here, before any data is read
    return RunSettings(model=family, model_config=tuple(sorted(config.items())), **run)


# The data choices a sweep's trial may set besides the run settings and model fields: each
# distinct combination is a dataset of its own (`data.DatasetCache` prepares each once).
DATA_FIELDS = ("label_set", "normalisation", "speed_perturb", "noise_snr")


def _numbers(key: str, value) -> list[float]:
    """A data field's list of numbers: one number, a list, or "0.9,1.1" (Optuna-friendly)."""
    if value is None or value == "" or value == "none":
        return []
    if isinstance(value, str):
        try:
            return [float(v) for v in value.split(",")]
        except ValueError:
            raise ValueError(f"{key}: numbers separated by commas, got {value!r}") from None
    return list(value) if isinstance(value, list | tuple) else [value]


def data_choices(params: Mapping) -> dict:
    """The `dataset_for` arguments set by the data fields (`DATA_FIELDS`) of a trial's
    parameters: label set, normalisation, audio variants (`speed_perturb`, `noise_snr`: a
    number, a list or "0.9,1.1"). ValueError (one line, naming the field) for a bad value."""
    from reslstm_jax import perturb
    from reslstm_jax.corpora.labelsets import LABEL_SETS
    from reslstm_jax.data import NORMALISATIONS

    choices = {}
    for key, allowed in (("label_set", LABEL_SETS), ("normalisation", NORMALISATIONS)):
        if params.get(key) is not None:
            if params[key] not in allowed:
                raise ValueError(f"{key} must be one of {', '.join(allowed)}, "
                                 f"got {params[key]!r}")  # fmt: skip
            choices[key] = params[key]
    speeds = _numbers("speed_perturb", params.get("speed_perturb"))
    snrs = _numbers("noise_snr", params.get("noise_snr"))
    if speeds or snrs:
        try:
            choices["audio_variants"] = perturb.variants(speeds, snrs)
        except perturb.VariantError as exc:
            name = {"speed": "speed_perturb", "snr_db": "noise_snr"}[exc.key]
            raise ValueError(f"{name} {exc.problem}") from None
    return choices


def dataset_for(
    cache,
    family: str,
    *,
    protocol: str | None = None,
    normalisation: str | None = None,
    feature_params: Mapping | None = None,
    label_set: str = "native",
    audio_variants=(),
):
    """The dataset `family` trains on, from a `data.DatasetCache`: its recipe's features and
    normalisation unless given, with the label set and audio variants asked for."""
    fam_recipe = get(family).recipe
    return cache.get(protocol=protocol, extractor=fam_recipe.features,
                     extractor_params=dict(feature_params or {}),
                     normalisation=normalisation or fam_recipe.normalisation,
                     label_set=label_set, audio_variants=audio_variants)  # fmt: skip
