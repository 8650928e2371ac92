"""The one schema of run settings (reslstm_jax.settings): low in the library, defaults and
checks written once, one name per setting."""

from __future__ import annotations

import ast
import dataclasses
import pathlib

import pytest

from reslstm_jax import families, settings

PACKAGE = pathlib.Path(settings.__file__).parent


def imported_modules(path: pathlib.Path) -> set[str]:
    """Every module a file imports, at its top or inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_settings_import_neither_the_trainer_nor_the_families():
    imported = imported_modules(PACKAGE / "settings.py")
    assert not {m for m in imported if m.startswith(("reslstm_jax.train", "reslstm_jax.families"))}
    assert not {m for m in imported if m.startswith(("jax", "flax", "optax"))}


def test_the_families_never_import_the_trainer():
    """The trainer reads the families (recipes, models); the families read the settings: no
    cycle between `families` and `train/`."""
    assert not {m for m in imported_modules(PACKAGE / "families.py")
                if m.startswith("reslstm_jax.train")}  # fmt: skip
    trainer = set().union(*(imported_modules(p) for p in (PACKAGE / "train").glob("*.py")))
    assert "reslstm_jax.settings" in trainer


def test_defaults_are_written_once():
    """The attention LSTMs' recipe is the settings' defaults; the trainer's RunSettings is the
    schema's."""
    from reslstm_jax import train

    recipe = families.get("reslstm_sa").recipe
    assert recipe.run_fields() == {name: settings.DEFAULTS[name]
                                   for name in families.RECIPE_FIELDS}  # fmt: skip
    assert train.RunSettings is settings.RunSettings
    assert {f.name: f.default for f in dataclasses.fields(train.RunSettings)} == settings.DEFAULTS


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("schedule", "linear", "schedule must be one of cosine, multistep, exp_decay, got"),
        ("loss", "mse", "loss must be one of ce, focal, got 'mse'"),
        ("executor", "pmap", "executor must be one of vmap, map, auto, got 'pmap'"),
        ("learning_rate", float("nan"), "learning rate must be a finite number"),
        ("class_weights", "inverse", "class weights must be one of none, balanced"),
    ],
)  # fmt: skip
def test_one_check_and_one_wording_for_the_settings_and_the_engine(field, value, message):
    from reslstm_jax import models
    from reslstm_jax.train.engine import TrainConfig

    with pytest.raises(ValueError, match=message):
        settings.RunSettings(**{field: value})
    if field in ("schedule", "loss", "executor"):  # the engine's static configuration too
        with pytest.raises(ValueError, match=message):
            TrainConfig(model=models.get("lstm_sa", hidden_size=4), **{field: value})


def test_one_name_per_setting():
    assert settings.canonical("lr") == "learning_rate"
    assert settings.canonical("weight_decay") == "weight_decay"
    a = families.settings_from("lstm_sa", {"lr": 3e-4})
    assert a == families.settings_from("lstm_sa", {"learning_rate": 3e-4})
    assert a.to_json()["learning_rate"] == 3e-4
