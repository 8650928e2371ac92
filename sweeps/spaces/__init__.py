"""Search spaces: small Python files in this folder, loaded by name.

A space module defines:
* `DESCRIPTION`: one line.
* `OBJECTIVES`: ((metric, direction), ...): ("uar", "maximize") first; Pareto spaces add
  ("n_params", "minimize"), the trainable parameter count computed from the configuration
  before training.
* either `GRID`: a list of parameter dicts, enqueued once and never sampled; or
  `suggest(trial) -> dict` for sampled spaces (`SAMPLER`: "tpe" or "nsga2").
* optionally `FIXED`: parameter values shared by every trial (they override the engine's
  defaults and are overridden by the trial's own parameters).

Parameters a trial may set (everything else comes from the model family in
`reslstm_jax.families`: its recipe and its key model fields' defaults, then `FIXED`): model;
the run parameters batch_size, lr, weight_decay, dropout, t0, loss ("ce" or "focal") and any
other `RunSettings` field by its name (class_weights, patience, time_mask, feature_mask,
noise_std, mixup_alpha, ...: one program trains trials that differ in these); and any model
field the family declares (`families.get(model).fields`: hidden_size, num_att, res_blocks,
paper_compat, ... for the attention LSTMs; hidden_size, branches, ... for ds_lstm). A field
neither declares fails when the space is loaded (`check`: every grid point, or one sampled
point), with one line naming the field and the family.

To add a space, drop `sweeps/spaces/<name>.py` with these names; `--space <name>` finds it.
"""

from __future__ import annotations

import dataclasses
import importlib
import pathlib
from collections.abc import Callable

DEFAULT_MODEL = "reslstm_sa"
# A trial's name of a RunSettings field, where the spaces use a shorter one.
RUN_PARAMS = {"lr": "learning_rate"}


def family_defaults(model: str) -> dict:
    """A trial's defaults for `model` (reslstm_jax.families): the recipe's run parameters and
    the family's key model fields (hidden size, blocks, attention vectors, branches)."""
    from reslstm_jax import families

    family = families.get(model)
    recipe = family.recipe
    return {"batch_size": recipe.batch_size, "lr": recipe.learning_rate,
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
        return {"model": model, **family_defaults(model), **self.fixed, **params}


def settings_of(full: dict, **run):
    """The RunSettings of a trial's full parameter set (`families.settings_from`: every model
    field the family declares reaches the model, every RunSettings field the run; any other
    field is refused with one line naming it and the family). `run`: more run settings."""
    from reslstm_jax import families

    overrides = dict(run)
    for key, value in full.items():
        if key != "model" and key not in families.DATA_FIELDS:  # `families.data_choices`
            overrides[RUN_PARAMS.get(key, key)] = value
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
    here = pathlib.Path(__file__).parent
    return sorted(p.stem for p in here.glob("*.py") if not p.stem.startswith("_"))


def load(name: str) -> Space:
    if name not in names():
        raise SpaceError(f"unknown space {name!r}; spaces: {', '.join(names())}")
    module = importlib.import_module(f"sweeps.spaces.{name}")
    grid = getattr(module, "GRID", None)
    suggest = getattr(module, "suggest", None)
    if (grid is None) == (suggest is None):
        raise SpaceError(f"space {name} must define exactly one of GRID and suggest()")
    objectives = tuple(tuple(o) for o in module.OBJECTIVES)
    if objectives[0] != ("uar", "maximize"):
        raise SpaceError(f"space {name}: the first objective must be ('uar', 'maximize')")
    space = Space(
        name=name,
        description=module.DESCRIPTION,
        objectives=objectives,
        grid=tuple(dict(p) for p in grid) if grid is not None else None,
        suggest=suggest,
        sampler="grid" if grid is not None else getattr(module, "SAMPLER", "tpe"),
        fixed=dict(getattr(module, "FIXED", {})),
    )
    check(space)
    return space
