"""The sweep worker: Optuna ask/tell, trials of one static shape trained in one program.

A worker loops: reap trials whose worker died (stale heartbeat: FAIL, re-enqueue with a retry
limit), ask up to `group_size` trials (grid spaces: only queued points), group them by static
shape (`RunSettings.static_signature`: model and model fields, batch size, loss, ...), train
each group with `reslstm_jax.train.fit_group` (M = trials x seeds x folds), logging each
trial's curves to W&B after every epoch chunk, tell Optuna, then finish the trials' W&B runs
(the storage is the record of truth: tell first). A heartbeat thread stamps the worker's
running trials (a system attribute). The study-level W&B run (trials table and scatter) is
the launcher's (`sweeps.run`), one per study; workers log trial runs only.

Objective (first value): by default the mean over folds x seeds of the best-epoch validation
UAR (selection reads validation only); `objective="test"` uses the pooled out-of-fold test UAR
(mean over seeds), which is how the reference tuned, and is leaky: every output says so.
Pareto spaces add the trainable parameter count, computed from the configuration before
training.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import time

import optuna

from reslstm_jax import artifacts, data, families, interrupts, train
from reslstm_jax.edge import LATENCY_KEYS, ONNX_KEYS
from reslstm_jax.params import param_count
from sweeps import spaces as spaces_mod
from sweeps import storage as storage_mod
from sweeps.heartbeats import HEARTBEAT_ATTR, Heartbeat, reap  # noqa: F401  (engine.X users)
from sweeps.study import OBJECTIVE_KEYS, counts

# Single-objective trials report their running objective about this many times (pruning).
REPORTS_PER_TRIAL = 10
# A worker with nothing left to ask while other workers' trials run reads the study this often
# (a journal file's new lines, or a few queries), to leave as soon as the last of them is told.
IDLE_POLL_SECONDS = 1.0


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
    budget: str | None = None  # the launcher's --budget (recorded with every trial)
    wandb_project: str = "reslstm-jax"
    wandb_entity: str | None = None
    tags: tuple[str, ...] = ()
    max_models_per_wave: int | None = None  # `train.fit_group`'s cap (GPUs size waves anyway)
    # cross-corpus tests of every trial: [corpus, data dir or None] pairs (`crosscorpus`)
    cross_test: tuple = ()
    # the corpus's label map ({old: new, or None to drop}) and loader options (`corpora.load`)
    label_map: dict | None = None
    corpus_options: dict | None = None

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
    """The RunSettings of a trial's full parameter set (`spaces.settings_of`) at the sweep's
    seeds and epochs."""
    return spaces_mod.settings_of(full, seeds=tuple(range(config.seeds)), epochs=config.epochs)


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
        self._targets: dict[int, list] = {}
        self.cache = data.DatasetCache(
            config.corpus, config.data_dir, cache_dir=config.cache_dir, progress=config.progress,
            label_map=config.label_map, corpus_options=config.corpus_options,
        )  # fmt: skip

    def targets_for(self, dataset) -> list:
        """The cross-corpus targets (`config.cross_test`) read as `dataset` reads its corpus
        (features, label set: `crosscorpus.load_target`), once per dataset."""
        from reslstm_jax import crosscorpus

        key, options = id(dataset), {"cache_dir": self.config.cache_dir,
                                     "progress": self.config.progress}  # fmt: skip
        if key not in self._targets:
            self._targets[key] = [crosscorpus.load_target(corpus, where, dataset.card, **options)
                                  for corpus, where in self.config.cross_test]  # fmt: skip
        return self._targets[key]

    def for_trial(self, full: dict):
        """The dataset of a trial's full parameters: its family's features, and the data
        choices it sets (`families.data_choices`: label set, normalisation, audio variants)."""
        if self.only is not None:
            return self.only
        return families.dataset_for(self.cache, full["model"], protocol=self.config.protocol,
                                    **families.data_choices(full))  # fmt: skip


def objective_values(results: dict, config: SweepConfig, space, params: int) -> tuple:
    """(values for Optuna, summary): UAR by the configured objective, plus n_params.

    The summary holds `train.headline` (val_uar, test_uar, test_wa, test_macro_f1, per fold
    and per seed) and `objective`, the name of the key Optuna optimised ("val_uar", or
    "test_uar": leaky), so no number in it can be misread."""
    summary = {"objective": OBJECTIVE_KEYS[config.objective], "leaky": config.objective == "test",
               **train.headline(results), "n_params": params,
               "protocol_hash": results["card"]["utterance_ids_sha256"]}  # fmt: skip
    edge = results.get("edge") or {}
    for key in ("fp32_kib", "fp16_kib", *LATENCY_KEYS, *ONNX_KEYS):
        if key in edge:
            summary[key] = edge[key]
    values = [summary[summary["objective"]]] + ([params] if space.multi_objective else [])
    return values, summary


# ----------------------------------------------------------------------------- the loop


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


def run_worker(config: SweepConfig, rank: int, datasets: Datasets | None = None,
               on_group=None) -> int:  # fmt: skip
    """One worker's loop until the study has `config.trials` finished trials. Returns the
    number of trials this worker completed. `on_group(study)` is called after each trained
    group (the launcher's study run, when it runs the only worker in-process)."""
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
    tracker = tracking.Tracker(config.wandb, config.study_dir, project=config.wandb_project,
                               study=config.study, entity=config.wandb_entity,
                               tags=config.tags)  # fmt: skip
    trials_dir = config.study_dir / "trials"
    trials_dir.mkdir(parents=True, exist_ok=True)
    heartbeat = Heartbeat(study, storage, config.heartbeat_seconds)
    with interrupts.cleanup_on_interrupt(functools.partial(give_back, study, heartbeat, tracker)):
        return _worker_loop(config, space, study, datasets, tracker, trials_dir, heartbeat,
                            rank, on_group)  # fmt: skip


def give_back(study: optuna.Study, heartbeat: Heartbeat, tracker) -> None:
    """On an interrupt: fail this worker's running trials and queue their parameters again,
    so that rerunning the command trains them at once (not after the reaper's grace period);
    an interrupted trial is retried from its start and does not count against --max-retries.
    Their W&B runs are closed as failed."""
    heartbeat.stop()
    for number in list(heartbeat.trials):
        trial = study.get_trials(deepcopy=False)[number]
        try:
            study.tell(number, state=optuna.trial.TrialState.FAIL)
        except Exception:  # already told
            continue
        study.enqueue_trial(trial.params, user_attrs={
            "retries": trial.user_attrs.get("retries", 0), "retry_of": number,
            "interrupted": True})  # fmt: skip
    tracker.close()


def _worker_loop(config, space, study, datasets, tracker, trials_dir, heartbeat, rank,
                 on_group) -> int:  # fmt: skip
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
                    # told or stale enough to reap and retry, looking again every
                    # IDLE_POLL_SECONDS, so that this worker leaves when the last trial is told
                    # and not up to a heartbeat later.
                    time.sleep(min(config.heartbeat_seconds, IDLE_POLL_SECONDS))
                    continue
                break
            asked = []
            for _ in range(min(config.group_size, budget)):
                trial = study.ask()
                heartbeat.add(trial)  # at once: an interrupt gives back what it holds
                if space.grid is not None and not queued(study, trial):
                    # Another worker popped the last queued point between our count and ask:
                    # a grid space never samples.
                    heartbeat.remove(trial)
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    break
                full = space.complete(trial_params(space, trial))
                try:
                    settings = settings_for(full, config)
                except ValueError as exc:  # a space that sets what the family lacks
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    raise ValueError(f"space {space.name}, trial {trial.number}: {exc}") from None
                count = n_params(settings, datasets.for_trial(full))
                trial.set_user_attr("params_full", full)
                trial.set_user_attr("n_params", count)
                trial.set_user_attr("worker", rank)
                asked.append((trial, full, count))
            groups: dict[tuple, list] = {}
            for item in asked:  # one program per static shape and dataset
                key = (settings_for(item[1], config).static_signature(),
                       repr(families.data_choices(item[1])))  # fmt: skip
                groups.setdefault(key, []).append(item)
            for group in groups.values():
                dataset = datasets.for_trial(group[0][1])
                done += train_group(study, space, config, dataset, group, tracker, trials_dir,
                                    rank=rank, targets=datasets.targets_for(dataset))  # fmt: skip
                for trial, _, _ in group:
                    heartbeat.remove(trial)
                if on_group is not None:
                    on_group(study)
    finally:
        heartbeat.stop()
        tracker.close()
    return done


def trial_plots(results: dict, directory: pathlib.Path, number: int) -> dict:
    """The trial's pooled confusion matrix and learning curves as PNGs (also sent to W&B)."""
    from reslstm_jax import plots, report

    directory.mkdir(parents=True, exist_ok=True)
    label = f"trial {number}, {report.base_label(results)}"  # model and size
    matrix = plots.pooled_confusion(results)
    return {
        "confusion": plots.confusion(directory / f"trial_{number}_confusion.png", matrix,
                                     results["card"]["classes"],
                                     title=plots.confusion_title(label)),
        "learning_curves": plots.learning_curves(directory / f"trial_{number}_curves.png",
                                                 results, title=plots.curves_title(label)),
    }  # fmt: skip


def data_fields(card: dict) -> dict:
    """What names the data of a trial in Optuna: corpus (`synthetic` for the embedded corpus),
    protocol, and the generator's record of a synthetic corpus (the protocol hash comes with
    the summary)."""
    fields = {"corpus": card["corpus"], "protocol": card["protocol"]}
    if card.get("source"):
        fields["corpus_source"] = card["source"]
    return fields


# Optuna user attributes copied from the trial summary (what a researcher reads in the
# dashboard next to the parameters); the rest of the summary is in the trial's results file.
SUMMARY_ATTRS = ("val_uar", "test_uar", "test_wa", "test_macro_f1", "test_uar_per_fold",
                 "objective", "leaky", "protocol_hash", "fp16_kib", "collapsed_models",
                 *LATENCY_KEYS, *ONNX_KEYS)  # fmt: skip


def trial_record(config: SweepConfig, space, dataset, settings, full: dict, n: int) -> dict:
    """A trial's W&B run config: its parameters, parameter count and the run record
    (`provenance.run_config`: data, features, objective, budget, versions, git commit)."""
    from reslstm_jax import provenance

    return {**full, "n_params": n, "space": space.name,
            **provenance.run_config(dataset.card, settings.to_json(), config.objective,
                                    budget=config.budget)}  # fmt: skip


def recorded_path(path: pathlib.Path, study_dir: pathlib.Path) -> str:
    """A trial's results file as its `results` attribute: relative to the study directory
    (`trials/<n>.json`), so the study can be moved and reported from any directory
    (`sweeps.storage.results_path` reads it); absolute when it lies elsewhere."""
    try:
        return str(path.relative_to(study_dir))
    except ValueError:
        return str(path.resolve())


def train_group(study, space, config, dataset, group, tracker, trials_dir, rank: int = 0,
                targets=()) -> int:  # fmt: skip
    """Train trials of one static shape together, tell Optuna, then write and log results
    (with each trial's cross-corpus tests on `targets`: `crosscorpus.Target`s)."""
    from reslstm_jax.train.layout import ModelLayout

    settings = [settings_for(full, config) for _, full, _ in group]
    runs = [tracker.start_trial(t.number, trial_record(config, space, dataset, s, full, n))
            for (t, full, n), s in zip(group, settings, strict=True)]  # fmt: skip
    numbers = "-".join(str(t.number) for t, _, _ in group)
    layout = ModelLayout(len(group), settings[0].seeds, tuple(dataset.folds.names))
    pruned: dict[int, int] = {}  # trial index in the group -> epochs done when pruned
    # Multi-objective studies cannot prune, and a test objective is read only at the end.
    prunable = not space.multi_objective and config.objective != "test"

    def on_chunk(epochs_done: int, history: dict) -> bool:
        """Log each trial's new epochs to its W&B run; single-objective spaces also report
        each trial's running objective and ask the pruner, and stop the program once every
        trial of the group is pruned."""
        for index, run in enumerate(runs):
            if index not in pruned and run.active:  # `run.step`: the epochs logged so far
                rows = train.epoch_rows(history, layout.config_models(index), settings[index],
                                        run.step, epochs_done)  # fmt: skip
                tracker.log_epochs(run, rows)
        if not prunable:
            return False
        best = history["val_uar"][:, :epochs_done].max(axis=1)
        for index, (trial, _, _) in enumerate(group):
            if index in pruned:
                continue
            models = layout.config_models(index)
            trial.report(float(best[models.start : models.stop].mean()), epochs_done)
            if trial.should_prune():
                pruned[index] = epochs_done
        return len(pruned) == len(group)

    # Chunks of a tenth of the epochs at most: progress and W&B curves move ten times per trial.
    every = max(1, config.epochs // REPORTS_PER_TRIAL)
    try:
        results = train.fit_group(
            dataset, settings, out_dir=config.study_dir / "groups" / numbers,
            # worker r > 0 draws its bar on terminal line r: parallel bars never overwrite
            progress=(rank or True) if config.progress else False,
            objective=config.objective, on_chunk=on_chunk, report_every=every,
            checkpoint_every=every if prunable else 10,
            max_models_per_wave=config.max_models_per_wave,
        )  # fmt: skip
    except Exception as exc:
        if interrupts.received():  # the interrupt in another form: give_back queues them again
            raise
        for (trial, _, _), run in zip(group, runs, strict=True):
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            tracker.fail_trial(run, f"{type(exc).__name__}: {exc}")
        raise
    # one static shape: the edge metrics are measured once for every trial of the group
    edge = train.edge_metrics(results[0], dataset, latency=config.latency)
    done = 0
    from reslstm_jax.export import measure  # (onnx and onnxruntime only where it exports)

    for index, ((trial, full, count), result, run) in enumerate(
        zip(group, results, runs, strict=True)
    ):
        result["edge"] = {
            **edge,
            **measure.int8_uar_beside(
                edge, config.study_dir / "groups" / numbers, dataset, result, configuration=index
            ),
        }
        if targets:  # the group's run directory holds every trial's best models
            from reslstm_jax import crosscorpus

            group_dir = config.study_dir / "groups" / numbers
            result["cross_test"] = [crosscorpus.evaluate(
                group_dir, t, configuration=index,
                predictions=trials_dir / f"{trial.number}_{t.predictions_file}",
            ) for t in targets]  # fmt: skip
        done += tell_trial(study, space, config, trial, full, count, result, run, tracker,
                           trials_dir, group=numbers, pruned_at=pruned.get(index),
                           manifest=dataset.manifest)  # fmt: skip
    return done


def tell_trial(study, space, config, trial, full, count, result, run, tracker, trials_dir, *,
               group: str, pruned_at: int | None, manifest=None) -> bool:  # fmt: skip
    """Write one trained trial's results (`trials/<number>.json`, and with the data's
    `manifest` its out-of-fold predictions, `trials/<number>_predictions.csv`), record them in
    Optuna and tell it (complete, pruned at `pruned_at`, or failed when a model diverged),
    then finish its W&B run. Returns whether it completed."""
    values, summary = objective_values(result, config, space, count)
    diverged = train.diverged_line(result)
    state = "diverged" if diverged else "pruned" if pruned_at is not None else "complete"
    if pruned_at is not None:
        summary["pruned_at_epoch"] = pruned_at
    result["trial"] = {"number": trial.number, "params": full, "state": state,
                       "values": values if state == "complete" else None, "group": group,
                       "summary": summary, "study": config.study, "space": space.name,
                       "budget": config.budget}  # fmt: skip
    if manifest is not None:  # before the record that says the trial is done
        artifacts.write_predictions(trials_dir / f"{trial.number}_predictions.csv", manifest,
                                    result)  # fmt: skip
    path = artifacts.write_json(trials_dir / f"{trial.number}.json", result)
    trial.set_user_attr("results", recorded_path(path, config.study_dir))
    for key, value in data_fields(result["card"]).items():
        trial.set_user_attr(key, value)
    if run.id:
        trial.set_user_attr("wandb_run_id", run.id)
    for key in SUMMARY_ATTRS:
        if key in summary:
            trial.set_user_attr(key, summary[key])
    for key in summary:  # cross-corpus figures (`headline`), beside the in-corpus ones
        if key.startswith("cross_"):
            trial.set_user_attr(key, summary[key])
    if diverged:  # never a UAR: the trial failed, and says why
        trial.set_user_attr("failed_reason", diverged)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        tracker.fail_trial(run, diverged)
        return False
    if pruned_at is not None:  # the record of truth first, then W&B
        trial.set_user_attr("pruned_at_epoch", pruned_at)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        tracker.finish_trial(run, summary)
        return False
    study.tell(trial, values)  # the record of truth first ...
    images = trial_plots(result, config.study_dir / "plots", trial.number)
    tracker.finish_trial(run, summary, images=images, confusion=train.pooled_predictions(result))
    return True  # ... then W&B


if __name__ == "__main__":
    import sys

    from reslstm_jax import flags

    sys.exit(flags.not_a_command(__spec__.name))
