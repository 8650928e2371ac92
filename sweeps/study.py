"""What a study holds, read for people: trial counts, one row per finished trial, the front,
and the launcher's W&B study run (`StudyRecord`). Reads the study; never trains or tells.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import optuna

from reslstm_jax.edge import LATENCY_KEYS, ONNX_KEYS

if TYPE_CHECKING:
    from sweeps.engine import SweepConfig

# The summary key of each objective: the name under which W&B and the results show it.
OBJECTIVE_KEYS = {"val": "val_uar", "test": "test_uar"}


def counts(study: optuna.Study) -> dict[str, int]:
    states = [t.state for t in study.get_trials(deepcopy=False)]
    State = optuna.trial.TrialState
    return {
        "complete": states.count(State.COMPLETE),
        "pruned": states.count(State.PRUNED),
        "running": states.count(State.RUNNING),
        "waiting": states.count(State.WAITING),
        "failed": states.count(State.FAIL),
    }


DEFERRED = "latency_{number}"  # a study attribute: latencies measured after the trial ended


def trial_rows(study: optuna.Study, space) -> list[dict]:
    """One row per completed trial for the Pareto table and W&B. Latencies come from the
    trial's attributes, or from the study's (`DEFERRED`) where the launcher measured them
    once the workers had finished (`sweeps.run.measure_deferred`)."""
    rows = []
    deferred = study.user_attrs
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        full = t.user_attrs.get("params_full", {})
        later = deferred.get(DEFERRED.format(number=t.number)) or {}
        rows.append({
            "trial": t.number, "model": full.get("model"), "hidden_size": full.get("hidden_size"),
            "res_blocks": full.get("res_blocks"), "num_att": full.get("num_att"),
            "n_params": t.user_attrs.get("n_params"),
            "log10_params": math.log10(max(1, t.user_attrs.get("n_params") or 1)),
            "val_uar": t.user_attrs.get("val_uar"), "test_uar": t.user_attrs.get("test_uar"),
            "test_wa": t.user_attrs.get("test_wa"),
            "test_macro_f1": t.user_attrs.get("test_macro_f1"), "uar": t.values[0],
            "fp16_kib": t.user_attrs.get("fp16_kib"),
            "collapsed_models": t.user_attrs.get("collapsed_models"),
            **{key: t.user_attrs.get(key, later.get(key)) for key in (*LATENCY_KEYS, *ONNX_KEYS)},
        })  # fmt: skip
    return rows


class StudyRecord:
    """The study's one W&B study run (trials table and UAR-vs-parameters scatter), owned by
    the launcher (`sweeps.run`): `update(study)` logs the table again whenever the set of
    finished trials changed, so an online run follows the sweep; workers never log it."""

    def __init__(self, config: SweepConfig, space):
        from reslstm_jax import tracking

        self.config = config
        self.space = space
        self.tracker = tracking.Tracker(config.wandb, config.study_dir,
                                        project=config.wandb_project, study=config.study,
                                        entity=config.wandb_entity, tags=config.tags)  # fmt: skip
        self._logged: tuple | None = None

    def update(self, study: optuna.Study) -> None:
        rows = trial_rows(study, self.space)
        finished = tuple(r["trial"] for r in rows)
        if not rows or finished == self._logged:
            return
        self._logged = finished
        # "uar" (the objective's value) is named by its key in W&B: val_uar or test_uar
        table = [{k: v for k, v in r.items() if k != "uar"} for r in rows]
        self.tracker.log_study(
            table, front_numbers(study, self.space), metric_x="log10_params",
            metric_y=OBJECTIVE_KEYS[self.config.objective],
            config={"space": self.space.name, "objective": OBJECTIVE_KEYS[self.config.objective],
                    "leaky": self.config.objective == "test", "budget": self.config.budget,
                    "epochs": self.config.epochs, "seeds": self.config.seeds,
                    "corpus": self.config.corpus or "synthetic"},
        )  # fmt: skip

    def close(self) -> None:
        self.tracker.close()


def front_numbers(study: optuna.Study, space) -> list[int]:
    """Trial numbers on the front (multi-objective) or the best trial, deduplicated by params."""
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials()):
        return []
    best = study.best_trials if space.multi_objective else [study.best_trial]
    seen, numbers = set(), []
    for t in sorted(best, key=lambda t: t.number):
        key = json.dumps(t.params, sort_keys=True)
        if key not in seen:
            seen.add(key)
            numbers.append(t.number)
    return numbers


if __name__ == "__main__":
    import sys

    from reslstm_jax import flags

    sys.exit(flags.not_a_command(__spec__.name))
