"""Search spaces: YAML files loaded by name (the shipped ones, in this folder) or by path.

`--space NAME` is one of the shipped spaces (`names()`); `--space PATH` (a value with a path
separator, or ending in `.yaml`, `.yml` or `.py`) is a file of the user's, anywhere. A space
file holds:

```yaml
description: one line
objectives: [[uar, maximize], [n_params, minimize]]   # uar first; n_params for a Pareto front
fixed: {model: reslstm_sa}                             # optional: values every trial shares
grid:                                                  # a list of points, or ...
  - {model: lstm_sa, hidden_size: 16}
# grid: {model: [lstm_sa, reslstm_sa], hidden_size: [16, 32]}   # ... their product
# or, sampled by Optuna:
# search:
#   learning_rate: {type: float, low: 1e-5, high: 3e-2, log: true}
#   batch_size: {type: categorical, choices: [8, 16, 32]}
#   dropout: {type: float, low: 0.02, high: 0.5, name: dropout_rate}  # Optuna's name for it
#   res_blocks: {type: int, low: 1, high: 3}
# sampler: tpe            # tpe (default) or nsga2
```

A `.py` file of the older form is read too: `DESCRIPTION`, `OBJECTIVES`, `GRID` or
`suggest(trial) -> dict` with `SAMPLER`, and optionally `FIXED`.

Parameters a trial may set (everything else comes from the model family in
`reslstm_jax.families`: its recipe and its key model fields' defaults, then `fixed`): model;
the run settings batch_size, learning_rate (`lr` is read as it), weight_decay, dropout, t0,
loss ("ce" or "focal") and any other `RunSettings` field by its name (class_weights,
patience, time_mask, feature_mask, noise_std, mixup_alpha, ...: one program trains trials
that differ in these); and any model field the family declares
(`families.get(model).fields`: hidden_size, num_att, res_blocks, paper_compat, ... for the
attention LSTMs; hidden_size, branches, ... for ds_lstm). A field neither declares, an
unknown key of the file or of a distribution, or a bad value fails when the space is loaded
(`check`: every grid point, or one sampled point), with one line.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import itertools
import os
import pathlib
from collections.abc import Callable

from reslstm_jax import configfile
from reslstm_jax.settings import canonical

HERE = pathlib.Path(__file__).parent
SUFFIXES = (".yaml", ".yml", ".py")
SPACE_KEYS = ("description", "objectives", "fixed", "grid", "search", "sampler")
DISTRIBUTION_KEYS = {"float": ("low", "high", "log", "step"), "int": ("low", "high", "log", "step"),
                     "categorical": ("choices",)}  # fmt: skip
SAMPLERS = ("tpe", "nsga2")

DEFAULT_MODEL = "reslstm_sa"


def family_defaults(model: str) -> dict:
    """A trial's defaults for `model` (reslstm_jax.families): the recipe's run parameters and
    the family's key model fields (hidden size, blocks, attention vectors, branches)."""
    from reslstm_jax import families

    family = families.get(model)
    recipe = family.recipe
    return {"batch_size": recipe.batch_size, "learning_rate": recipe.learning_rate,
            "weight_decay": recipe.weight_decay, "dropout": recipe.dropout, "t0": recipe.t0,
            "loss": recipe.loss, **family.key_defaults()}  # fmt: skip


class SpaceError(ValueError):
    """Unknown space, or a space file that does not define what it must."""


@dataclasses.dataclass(frozen=True)
class Space:
    name: str
    description: str
    objectives: tuple[tuple[str, str], ...]
    grid: tuple[dict, ...] | None
    suggest: Callable | None
    sampler: str
    fixed: dict
    # what a worker loads: the shipped space's name, or the file's absolute path
    source: str = ""

    @property
    def directions(self) -> list[str]:
        return [direction for _, direction in self.objectives]

    @property
    def metrics(self) -> list[str]:
        return [metric for metric, _ in self.objectives]

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def families(self) -> list[str]:
        """The model families this space can train (each needs its own features)."""
        points = self.grid if self.grid is not None else ({},)
        return sorted({self.complete(dict(p))["model"] for p in points})

    def complete(self, params: dict) -> dict:
        """A trial's full parameter set: the family's defaults, then the space's fixed values,
        then its own."""
        model = params.get("model", self.fixed.get("model", DEFAULT_MODEL))
        named = {canonical(k): v for k, v in {**self.fixed, **params}.items()}  # `lr` too
        return {"model": model, **family_defaults(model), **named}


def settings_of(full: dict, **run):
    """The RunSettings of a trial's full parameter set (`families.settings_from`: every model
    field the family declares reaches the model, every RunSettings field the run; any other
    field is refused with one line naming it and the family). `run`: more run settings."""
    from reslstm_jax import families

    overrides = dict(run)
    for key, value in full.items():
        if key != "model" and key not in families.DATA_FIELDS:  # `families.data_choices`
            overrides[canonical(key)] = value
    return families.settings_from(full["model"], overrides)


def check(space: Space) -> None:
    """Every point of the space's grid (or one sampled point of `suggest`) gives valid
    settings: a field no family or run setting declares, or a bad value, fails here, when the
    space is loaded, instead of in its first trial. Raises SpaceError (one line)."""
    from reslstm_jax import families

    points = space.grid if space.grid is not None else (_sampled(space),)
    for point in points:
        try:
            full = space.complete(dict(point))
            settings_of(full)
            families.data_choices(full)
        except ValueError as exc:
            raise SpaceError(f"space {space.name}: {exc}") from None


def _sampled(space: Space) -> dict:
    """One point of a sampled space, from a throwaway in-memory Optuna study."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created in memory"
    try:
        return space.suggest(optuna.create_study().ask())
    finally:
        optuna.logging.set_verbosity(verbosity)


def names() -> list[str]:
    """The shipped spaces (`--space NAME`)."""
    return sorted(p.stem for p in HERE.glob("*.yaml"))


def is_path(value: str) -> bool:
    """Whether `--space VALUE` names a file (a path separator or a space file's suffix) rather
    than a shipped space: a bare name is never looked up anywhere else."""
    return "/" in value or os.sep in value or value.endswith(SUFFIXES)


def load(name: str) -> Space:
    """A shipped space by name, or a space file by path; checked (`check`). SpaceError (one
    line) for an unknown name, a missing or malformed file, or a point that cannot train."""
    if is_path(name):
        path = pathlib.Path(name).expanduser().resolve()
        if not path.is_file():
            raise SpaceError(f"--space {name}: no such file")
        if path.suffix not in SUFFIXES:
            raise SpaceError(f"--space {name}: a space file ends in .yaml, .yml or .py")
        source = str(path)
    elif name in names():
        path, source = HERE / f"{name}.yaml", name
    else:
        raise SpaceError(f"unknown space {name!r}; spaces: {', '.join(names())} (or a file: "
                         "--space PATH.yaml)")  # fmt: skip
    space = _from_module(path) if path.suffix == ".py" else _from_yaml(path)
    space = dataclasses.replace(space, source=source)
    check(space)
    return space


def _from_yaml(path: pathlib.Path) -> Space:
    try:
        tree = configfile.read_mapping(path, "a space file is a mapping (description, "
                                       "objectives, ...)")  # fmt: skip
    except configfile.ConfigError as exc:
        raise SpaceError(str(exc)) from None
    for key in tree:
        if key not in SPACE_KEYS:
            raise SpaceError(f"{path}: {key} is not a field of a space{_nearest(key, SPACE_KEYS)}")
    if ("grid" in tree) == ("search" in tree):
        raise SpaceError(f"{path}: give exactly one of grid (points) and search (distributions)")
    if "sampler" in tree and "grid" in tree:
        raise SpaceError(f"{path}: sampler is for a search; a grid is run point by point")
    objectives = tree.get("objectives", [["uar", "maximize"]])
    if not isinstance(objectives, list) or not all(
        isinstance(o, list) and len(o) == 2 for o in objectives
    ):
        raise SpaceError(f"{path}: objectives is a list of [metric, direction] pairs")
    fixed = tree.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise SpaceError(f"{path}: fixed is a mapping of parameter values")
    grid = _grid(path, tree["grid"]) if "grid" in tree else None
    sampler = tree.get("sampler", "tpe")
    if grid is None and sampler not in SAMPLERS:
        raise SpaceError(f"{path}: sampler {sampler!r} is not one of {', '.join(SAMPLERS)}")
    return _space(path, tree.get("description", ""), objectives, grid,
                  None if grid is not None else _suggest(path, tree["search"]),
                  "grid" if grid is not None else sampler, fixed)  # fmt: skip


def _grid(path: pathlib.Path, grid) -> tuple[dict, ...]:
    """A list of points, or {parameter: [values]} read as their product (last key fastest)."""
    if isinstance(grid, dict):
        if not all(isinstance(v, list) and v for v in grid.values()):
            raise SpaceError(f"{path}: a grid mapping gives each parameter a list of values")
        return tuple(dict(zip(grid, values, strict=True))
                     for values in itertools.product(*grid.values()))  # fmt: skip
    if not isinstance(grid, list) or not grid or not all(isinstance(p, dict) for p in grid):
        raise SpaceError(f"{path}: grid is a list of points ({{parameter: value}}) or a mapping "
                         "of value lists")  # fmt: skip
    return tuple(dict(p) for p in grid)


def _suggest(path: pathlib.Path, search) -> Callable:
    """suggest(trial) -> dict of a `search:` mapping, each distribution checked now."""
    if not isinstance(search, dict) or not search:
        raise SpaceError(f"{path}: search maps each parameter to a distribution")
    for parameter, spec in search.items():
        where = f"{path}: search.{parameter}"
        if not isinstance(spec, dict) or spec.get("type") not in DISTRIBUTION_KEYS:
            raise SpaceError(f"{where} needs type: float, int or categorical")
        allowed = ("type", "name", *DISTRIBUTION_KEYS[spec["type"]])
        for key in spec:
            if key not in allowed:
                raise SpaceError(f"{where}: {key} is not a field of a {spec['type']} "
                                 f"distribution{_nearest(key, allowed)}")  # fmt: skip
        if spec["type"] == "categorical":
            if not isinstance(spec.get("choices"), list) or not spec["choices"]:
                raise SpaceError(f"{where}: choices must be a non-empty list")
            continue
        number = float if spec["type"] == "float" else int
        if not all(isinstance(spec.get(k), (int, float)) and not isinstance(spec.get(k), bool)
                   for k in ("low", "high")):  # fmt: skip
            raise SpaceError(f"{where} needs numbers low and high")
        if number is int and not all(float(spec[k]).is_integer() for k in ("low", "high")):
            raise SpaceError(f"{where}: an int distribution needs whole low and high")
        if not spec["low"] < spec["high"] or (spec.get("log") and spec["low"] <= 0):
            raise SpaceError(f"{where}: needs low < high (and low > 0 with log)")

    def suggest(trial) -> dict:
        point = {}
        for parameter, spec in search.items():
            name = spec.get("name", parameter)
            if spec["type"] == "categorical":
                point[parameter] = trial.suggest_categorical(name, spec["choices"])
            elif spec["type"] == "float":
                point[parameter] = trial.suggest_float(name, spec["low"], spec["high"],
                                                       log=spec.get("log", False),
                                                       step=spec.get("step"))  # fmt: skip
            else:
                point[parameter] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]),
                                                     log=spec.get("log", False),
                                                     step=int(spec.get("step", 1)))  # fmt: skip
        return point

    return suggest


def _from_module(path: pathlib.Path) -> Space:
    """A space of the older Python form (DESCRIPTION, OBJECTIVES, GRID or suggest, ...)."""
    spec = importlib.util.spec_from_file_location(f"_reslstm_space_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code: its error, in one line
        raise SpaceError(f"{path}: {type(exc).__name__}: {exc}") from None
    grid = getattr(module, "GRID", None)
    suggest = getattr(module, "suggest", None)
    if (grid is None) == (suggest is None):
        raise SpaceError(f"{path}: must define exactly one of GRID and suggest()")
    if not hasattr(module, "OBJECTIVES"):
        raise SpaceError(f"{path}: must define OBJECTIVES")
    return _space(path, getattr(module, "DESCRIPTION", ""), module.OBJECTIVES,
                  tuple(dict(p) for p in grid) if grid is not None else None, suggest,
                  "grid" if grid is not None else getattr(module, "SAMPLER", "tpe"),
                  dict(getattr(module, "FIXED", {})))  # fmt: skip


def _space(path, description, objectives, grid, suggest, sampler, fixed) -> Space:
    objectives = tuple(tuple(o) for o in objectives)
    if not objectives or objectives[0] != ("uar", "maximize"):
        raise SpaceError(f"{path}: the first objective must be [uar, maximize]")
    return Space(name=path.stem, description=str(description), objectives=objectives,
                 grid=grid, suggest=suggest, sampler=sampler, fixed=fixed)  # fmt: skip


def _nearest(key, known) -> str:
    near = difflib.get_close_matches(str(key), list(known), n=1)
    return f" (did you mean {near[0]}?)" if near else ""
