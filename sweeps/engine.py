"""The sweep worker: Optuna ask/tell, trials of one static shape trained in one program.

A worker loops: reap trials whose worker died (stale heartbeat: FAIL, re-enqueue with a retry
limit), ask up to `group_size` trials (grid spaces: only queued points), group them by static
shape (`RunSettings.static_signature`: model and model fields, batch size, loss, ...), train
each group with `reslstm_jax.train.fit_group` (M = trials x seeds x folds), tell Optuna, then
finish the
trials' W&B runs (the storage is the record of truth: tell first). A heartbeat thread stamps
`_hb` on the worker's running trials.

Objective (first value): by default the mean over folds x seeds of the best-epoch validation
UAR (selection reads validation only); `objective="test"` uses the pooled out-of-fold test UAR
(mean over seeds), which is how the reference tuned, and is leaky: every output says so.
Pareto spaces add the trainable parameter count, computed from the configuration before
training.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pathlib
import threading
import time

import optuna

from reslstm_jax import artifacts, data, families, train
from reslstm_jax.params import param_count
from sweeps import spaces as spaces_mod
from sweeps import storage as storage_mod

HEARTBEAT_ATTR = "_hb"
# Single-objective trials report their running objective about this many times (pruning).
REPORTS_PER_TRIAL = 10


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """Everything a worker needs (JSON-able; passed to worker processes)."""

    space: str
    study: str
    trials: int
    epochs: int
    seeds: int
    objective: str = "val"
    corpus: str | None = None
    data_dir: str | None = None
    protocol: str | None = None
    storage: str | None = None
    workdir: str = "runs"
    wandb: str = "offline"
    sampler_seed: int = 0
    group_size: int = 1
    heartbeat_seconds: float = 10.0
    grace_seconds: float = 60.0
    max_retries: int = 2
    cache_dir: str | None = None
    progress: bool = True
    latency: bool = True  # measure CPU latency per second of audio (edge metrics)

    @property
    def study_dir(self) -> pathlib.Path:
        return pathlib.Path(self.workdir) / self.study


def make_sampler(space, seed: int) -> optuna.samplers.BaseSampler:
    """The space's sampler; each worker gets seed = base + rank (identical seeds would make
    workers propose identical points)."""
    if space.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if space.sampler == "tpe" or space.sampler == "grid":
        # multivariate must be explicit: 5.0 turns it off for multi-objective studies.
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    raise ValueError(f"space {space.name}: unknown sampler {space.sampler!r}")


def trial_params(space, trial: optuna.Trial) -> dict:
    """The trial's parameters: grid points through categorical suggestions (an enqueued trial
    returns its queued values), sampled spaces through the space's `suggest`."""
    if space.grid is not None:
        # Only the keys of this trial's queued point: grid points of different families have
        # different keys (light_sernet has no hidden size), and suggesting a key the point
        # lacks would sample it.
        queued_point = queued_params(trial.study, trial) or {}
        keys = [k for k in dict.fromkeys(k for p in space.grid for k in p) if k in queued_point]
        return {
            k: trial.suggest_categorical(k, sorted({p[k] for p in space.grid if k in p}))
            for k in keys
        }
    return space.suggest(trial)


def settings_for(full: dict, config: SweepConfig) -> train.RunSettings:
    """The RunSettings of a trial's full parameter set (`families.settings_from`: every model
    field the family declares reaches the model; any other field is refused)."""
    overrides = {"seeds": tuple(range(config.seeds)), "epochs": config.epochs}
    for key, value in full.items():
        if key != "model":
            overrides[spaces_mod.RUN_PARAMS.get(key, key)] = value
    return families.settings_from(full["model"], overrides)


def n_params(settings: train.RunSettings, dataset) -> int:
    """Trainable parameters of the trial's model, from shapes alone (before training)."""
    model = families.build_model(settings.model, dataset.x, len(dataset.classes),
                                 dict(settings.model_config))  # fmt: skip
    return param_count(model)


class Datasets:
    """The prepared data of each feature set a sweep needs (families differ in features),
    prepared once per process on first use (`data.DatasetCache`)."""

    def __init__(self, config: SweepConfig, only=None):
        """`only`: one prepared dataset used for every family (tests, custom data)."""
        self.config = config
        self.only = only
        self.cache = data.DatasetCache(
            config.corpus, config.data_dir, cache_dir=config.cache_dir, progress=config.progress
        )

    def for_model(self, family: str):
        if self.only is not None:
            return self.only
        return families.dataset_for(self.cache, family, protocol=self.config.protocol)


def objective_values(results: dict, config: SweepConfig, space, params: int) -> tuple:
    """(values for Optuna, summary): UAR by the configured objective, plus n_params."""
    val_uar = sum(r["best_val_uar"] for r in results["runs"]) / len(results["runs"])
    test_uar = results["aggregate"]["pooled_oof_uar"]["mean"]
    uar = test_uar if config.objective == "test" else val_uar
    summary = {
        "uar": uar,
        "objective": config.objective,
        "leaky": config.objective == "test",
        "val_uar": val_uar,
        "test_uar_pooled": test_uar,
        "test_uar_pooled_max": results["aggregate"]["pooled_oof_uar"]["max"],
        "test_uar_per_fold": {
            k: v["uar"]["mean"] for k, v in results["aggregate"]["per_fold"].items()
        },  # fmt: skip
        "test_uar_per_seed": [p["uar"] for p in results["aggregate"]["pooled_oof"]],
        "n_params": params,
        "protocol_hash": results["card"]["utterance_ids_sha256"],
    }
    edge = results.get("edge") or {}
    for key in ("fp32_kib", "fp16_kib", "latency_ms_per_s"):
        if key in edge:
            summary[key] = edge[key]
    values = [uar] + ([params] if space.multi_objective else [])
    return values, summary


# ----------------------------------------------------------------------------- heartbeats


class Heartbeat:
    """Stamps `_hb` (epoch seconds) on this worker's running trials every `period` seconds."""

    def __init__(self, period: float):
        self.period = period
        self.trials: list[optuna.Trial] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def beat(self) -> None:
        now = time.time()
        for trial in list(self.trials):
            # A finished trial refuses attributes; the next beat no longer lists it.
            with contextlib.suppress(Exception):
                trial.set_user_attr(HEARTBEAT_ATTR, now)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.beat()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def reap(study: optuna.Study, grace: float, max_retries: int) -> list[int]:
    """Fail RUNNING trials whose heartbeat is older than `grace` seconds and re-enqueue their
    parameters (retry chain in user attributes) unless they used up `max_retries`.

    Only the worker whose `tell` succeeds re-enqueues, so a trial is retried at most once even
    when several workers reap at the same time. Returns the reaped trial numbers.
    """
    reaped = []
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        beat = trial.user_attrs.get(HEARTBEAT_ATTR)
        if beat is None:
            beat = trial.datetime_start.timestamp() if trial.datetime_start else now
        if now - beat <= grace:
            continue
        try:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        except Exception:  # another worker reaped it first, or it just finished
            continue
        reaped.append(trial.number)
        retries = trial.user_attrs.get("retries", 0)
        if retries < max_retries:
            study.enqueue_trial(
                trial.params, user_attrs={"retries": retries + 1, "retry_of": trial.number}
            )
    return reaped


# ----------------------------------------------------------------------------- the loop


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


def trial_rows(study: optuna.Study, space) -> list[dict]:
    """One row per completed trial for the Pareto table and W&B."""
    rows = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        full = t.user_attrs.get("params_full", {})
        rows.append({
            "trial": t.number, "model": full.get("model"), "hidden_size": full.get("hidden_size"),
            "res_blocks": full.get("res_blocks"), "num_att": full.get("num_att"),
            "n_params": t.user_attrs.get("n_params"), "val_uar": t.user_attrs.get("val_uar"),
            "test_uar": t.user_attrs.get("test_uar_pooled"), "uar": t.values[0],
            "fp16_kib": t.user_attrs.get("fp16_kib"),
            "latency_ms_per_s": t.user_attrs.get("latency_ms_per_s"),
        })  # fmt: skip
    return rows


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


def queued_params(study: optuna.Study, trial: optuna.Trial) -> dict | None:
    """The parameters of the enqueued point `ask` popped, or None for a sampled trial."""
    # `enqueue_trial` records the point as the system attribute "fixed_params"; a live Trial
    # has no public reader of system attributes, the study's FrozenTrial does (trial numbers
    # index a study's trials).
    frozen = study.get_trials(deepcopy=False)[trial.number]
    return frozen.system_attrs.get("fixed_params")


def queued(study: optuna.Study, trial: optuna.Trial) -> bool:
    """Whether `ask` popped an enqueued trial (rather than sampling a new point)."""
    return queued_params(study, trial) is not None


def run_worker(config: SweepConfig, rank: int, datasets: Datasets | None = None) -> int:
    """One worker's loop until the study has `config.trials` finished trials. Returns the
    number of trials this worker completed."""
    from reslstm_jax import tracking

    space = spaces_mod.load(config.space)
    storage = storage_mod.open_storage(config.storage, pathlib.Path(config.workdir), config.study)
    pruner = (optuna.pruners.NopPruner() if space.multi_objective
              else optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1))  # fmt: skip
    study = optuna.load_study(study_name=config.study, storage=storage,
                              sampler=make_sampler(space, config.sampler_seed + rank),
                              pruner=pruner)  # fmt: skip
    if datasets is None:
        datasets = Datasets(dataclasses.replace(config, progress=False))
    tracker = tracking.Tracker(config.wandb, config.study_dir, project="reslstm-jax",
                               study=config.study)  # fmt: skip
    trials_dir = config.study_dir / "trials"
    trials_dir.mkdir(parents=True, exist_ok=True)
    heartbeat = Heartbeat(config.heartbeat_seconds)
    done = 0
    try:
        while True:
            reap(study, config.grace_seconds, config.max_retries)
            c = counts(study)
            finished = c["complete"] + c["pruned"]
            budget = config.trials - finished - c["running"]
            if space.grid is not None:
                budget = min(budget, c["waiting"])
            if budget <= 0:
                if c["running"] and finished < config.trials:
                    # A running trial may belong to a dead worker: wait until it is either
                    # told or stale enough to reap and retry.
                    time.sleep(config.heartbeat_seconds)
                    continue
                break
            asked = []
            for _ in range(min(config.group_size, budget)):
                trial = study.ask()
                if space.grid is not None and not queued(study, trial):
                    # Another worker popped the last queued point between our count and ask:
                    # a grid space never samples.
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    break
                full = space.complete(trial_params(space, trial))
                try:
                    settings = settings_for(full, config)
                except ValueError as exc:  # a space that sets what the family lacks
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    raise ValueError(f"space {space.name}, trial {trial.number}: {exc}") from None
                count = n_params(settings, datasets.for_model(full["model"]))
                trial.set_user_attr("params_full", full)
                trial.set_user_attr("n_params", count)
                trial.set_user_attr("worker", rank)
                trial.set_user_attr(HEARTBEAT_ATTR, time.time())
                asked.append((trial, full, count))
                heartbeat.trials.append(trial)
            groups: dict[tuple, list] = {}
            for item in asked:
                key = settings_for(item[1], config).static_signature()
                groups.setdefault(key, []).append(item)
            for group in groups.values():
                dataset = datasets.for_model(group[0][1]["model"])
                done += train_group(study, space, config, dataset, group, tracker, trials_dir)
                for trial, _, _ in group:
                    heartbeat.trials.remove(trial)
                tracker.log_study(trial_rows(study, space), front_numbers(study, space),
                                  metric_x="n_params", metric_y="uar")  # fmt: skip
    finally:
        heartbeat.stop()
        tracker.close()
    return done


def trial_plots(results: dict, directory: pathlib.Path, number: int) -> dict:
    """The trial's pooled confusion matrix and learning curves as PNGs (also sent to W&B)."""
    from reslstm_jax import plots

    directory.mkdir(parents=True, exist_ok=True)
    label = f"trial {number}: {results['model']['name']}"
    matrix = plots.pooled_confusion(results)
    return {
        "confusion": plots.confusion(directory / f"trial_{number}_confusion.png", matrix,
                                     results["card"]["classes"], title=label),
        "learning_curves": plots.learning_curves(directory / f"trial_{number}_curves.png",
                                                 results, title=label),
    }  # fmt: skip


def data_fields(card: dict) -> dict:
    """What names the data of a trial, for W&B and Optuna: corpus (`synthetic` for the embedded
    corpus), protocol and utterance hash, and the generator's record of a synthetic corpus."""
    fields = {"corpus": card["corpus"], "protocol": card["protocol"],
              "utterance_ids_sha256": card["utterance_ids_sha256"]}  # fmt: skip
    if card.get("source"):
        fields["corpus_source"] = card["source"]
    return fields


def train_group(study, space, config, dataset, group, tracker, trials_dir) -> int:
    """Train trials of one static shape together, tell Optuna, then write and log results."""
    data_record = data_fields(dataset.card)
    runs = [tracker.start_trial(t.number, {**full, "n_params": n, "epochs": config.epochs,
                                           "seeds": config.seeds, "objective": config.objective,
                                           "space": space.name, **data_record})
            for t, full, n in group]  # fmt: skip
    numbers = "-".join(str(t.number) for t, _, _ in group)
    per_trial = len(dataset.folds.names) * config.seeds
    pruned: dict[int, int] = {}  # trial index in the group -> epochs done when pruned
    # Multi-objective studies cannot prune, and a test objective is read only at the end.
    prunable = not space.multi_objective and config.objective != "test"

    def report(epochs_done: int, history: dict) -> bool:
        """Single-objective spaces: report each trial's running objective and ask the pruner;
        stop the program once every trial of the group is pruned."""
        if not prunable:
            return False
        best = history["val_uar"][:, :epochs_done].max(axis=1)
        for index, (trial, _, _) in enumerate(group):
            if index in pruned:
                continue
            trial.report(float(best[index * per_trial : (index + 1) * per_trial].mean()),
                         epochs_done)  # fmt: skip
            if trial.should_prune():
                pruned[index] = epochs_done
        return len(pruned) == len(group)

    try:
        results = train.fit_group(
            dataset, [settings_for(full, config) for _, full, _ in group],
            out_dir=config.study_dir / "groups" / numbers, progress=config.progress,
            objective=config.objective, on_chunk=report,
            checkpoint_every=max(1, config.epochs // REPORTS_PER_TRIAL) if prunable else 10,
        )  # fmt: skip
    except Exception as exc:
        for (trial, _, _), run in zip(group, runs, strict=True):
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            tracker.fail_trial(run, f"{type(exc).__name__}: {exc}")
        raise
    # one static shape: the edge metrics are measured once for every trial of the group
    edge = train.edge_metrics(results[0], dataset, latency=config.latency)
    done = 0
    for index, ((trial, full, count), result, run) in enumerate(
        zip(group, results, runs, strict=True)
    ):
        result["edge"] = edge
        values, summary = objective_values(result, config, space, count)
        state = "pruned" if index in pruned else "complete"
        if index in pruned:
            summary["pruned_at_epoch"] = pruned[index]
        result["trial"] = {"number": trial.number, "params": full, "state": state,
                           "values": None if index in pruned else values, "group": numbers,
                           "summary": summary}  # fmt: skip
        artifacts.write_json(trials_dir / f"{trial.number}.json", result)
        trial.set_user_attr("results", str(trials_dir / f"{trial.number}.json"))
        for key, value in data_record.items():
            trial.set_user_attr(key, value)
        if run.id:
            trial.set_user_attr("wandb_run_id", run.id)
        if index in pruned:  # the record of truth first, then W&B
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            tracker.finish_trial(run, summary)
            continue
        for key in ("val_uar", "test_uar_pooled", "objective", "leaky", "fp16_kib",
                    "latency_ms_per_s"):  # fmt: skip
            if key in summary:
                trial.set_user_attr(key, summary[key])
        study.tell(trial, values)  # the record of truth first ...
        history = {"val_uar_mean": [sum(r["val_uar"][e] for r in result["runs"]) /
                                    len(result["runs"]) for e in range(config.epochs)]}  # fmt: skip
        images = trial_plots(result, config.study_dir / "plots", trial.number)
        tracker.finish_trial(run, summary, history, images=images)  # ... then W&B
        done += 1
    return done
