"""The fit loop: configurations that share a static shape trained in one program, resumable.

```python
settings = families.settings_from("reslstm_sa", {"hidden_size": 64, "seeds": (0, 1)})
results = fit(dataset, settings, out_dir="runs/h64")          # one configuration
results = run(dataset, settings, "runs/h64")                  # ... + edge metrics, files
results = fit_group(dataset, [a, b, c], out_dir=...)          # several, one program
```
`RunSettings` (`reslstm_jax.settings`, the one schema of run settings) is everything that
defines a run of one configuration (stored with its results); `families.settings_from` builds
it from a family's recipe and overrides.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from reslstm_jax import artifacts, provenance
from reslstm_jax.settings import (  # noqa: F401  (re-exported: train.RunSettings, ...)
    ADDED_SETTINGS,
    CLASS_WEIGHTS,
    MATMUL_PRECISIONS,
    RunSettings,
    checkpoint_settings,
)
from reslstm_jax.train import augment, engine, stacking
from reslstm_jax.train import results as results_mod
from reslstm_jax.train.engine import Shared, TrainConfig
from reslstm_jax.train.layout import ModelLayout
from reslstm_jax.train.stacking import make_train


def static_signature(settings: RunSettings) -> tuple:
    """`settings.static_signature()`."""
    return settings.static_signature()


def chunk_lengths(start: int, total: int, every: int, save_every: int | None = None) -> list[int]:
    """Epoch chunks from `start` to `total`, ending on multiples of `every` and, when given,
    of `save_every` (so checkpoints land where they would without reporting)."""
    chunks, epoch = [], start
    while epoch < total:
        end = min(total, (epoch // every + 1) * every)
        if save_every:
            end = min(end, (epoch // save_every + 1) * save_every)
        chunks.append(end - epoch)
        epoch = end
    return chunks


def fit(dataset, settings: RunSettings, **kwargs) -> dict:
    """Train every fold x seed of one configuration; see `fit_group`."""
    return fit_group(dataset, [settings], **kwargs)[0]


def run(dataset, settings: RunSettings, out_dir, *, latency: bool = True, extra=None,
        tracker=None, config: dict | None = None, **kwargs) -> dict:  # fmt: skip
    """The one path from settings to a finished run directory: `fit`, the edge metrics, the
    `extra` results fields (e.g. an experiment's name), then card, extraction report and
    results.json written atomically (`artifacts.write_run`). Returns the results.

    `then(results) -> dict` (a keyword argument): work on the written run whose fields join
    the results (rewritten) before the W&B run closes: the cross-corpus tests
    (`crosscorpus.fit_and_test`), whose figures are then in its summary (`headline`).

    `tracker` (a `reslstm_jax.tracking.Tracker`): the run is also a W&B run (job_type
    "train", named after `out_dir`): the run record (`provenance.run_config`) as its config,
    the curves after every epoch chunk, then the headline numbers, edge metrics and an
    interactive confusion matrix. `config`: the run's settings as its config.yaml names them
    (`reslstm_jax.configfile`), also in the W&B config under the same keys (the run record's
    own keys, e.g. the corpus as found, win)."""
    if tracker is None:
        return _run(dataset, settings, out_dir, latency=latency, extra=extra, **kwargs)
    record = {**(config or {}),
              **provenance.run_config(dataset.card, settings.to_json(),
                                      kwargs.get("objective", "val"))}  # fmt: skip
    handle = tracker.start_run(pathlib.Path(out_dir).name or "run", record, job_type="train")
    models = range(len(dataset.folds.names) * len(settings.seeds))  # one configuration: all M
    on_chunk = kwargs.pop("on_chunk", None)

    def log_chunk(epochs_done: int, history: dict) -> bool:
        if handle.active:  # the epochs since the last chunk (`handle.step`: epochs logged)
            rows = results_mod.epoch_rows(history, models, settings, handle.step, epochs_done)
            tracker.log_epochs(handle, rows)
        return bool(on_chunk(epochs_done, history)) if on_chunk is not None else False

    results = _run(dataset, settings, out_dir, latency=latency, extra=extra, on_chunk=log_chunk,
                   **kwargs)  # fmt: skip
    objective = "test_uar" if kwargs.get("objective") == "test" else "val_uar"
    summary = {**results_mod.headline(results), "objective": objective,
               "n_params": results["model"]["trainable_params"], **results["edge"]}  # fmt: skip
    tracker.finish_trial(handle, summary, confusion=results_mod.pooled_predictions(results))
    return results


def _run(dataset, settings, out_dir, *, latency, extra, then=None, **kwargs) -> dict:
    results = fit(dataset, settings, out_dir=out_dir, **kwargs)
    results["edge"] = results_mod.edge_metrics(results, dataset, latency=latency)
    results.update(extra or {})
    artifacts.write_run(out_dir, dataset, results)
    from reslstm_jax.export import measure

    if int8 := measure.int8_uar_beside(results["edge"], out_dir, dataset, results):
        results["edge"].update(int8)
        artifacts.write_json(pathlib.Path(out_dir) / artifacts.RESULTS_FILE, results)
    if then is not None:  # work that reads the written run (cross-corpus tests): its fields
        results.update(then(results))
        artifacts.write_json(pathlib.Path(out_dir) / artifacts.RESULTS_FILE, results)
    return results


@dataclasses.dataclass
class _Setup:
    """A group's program and its stacked inputs."""

    model: object
    config: TrainConfig
    layout: ModelLayout
    program: object
    hparams: object
    model_data: object
    shared: Shared
    wave: int  # models per wave (`stacking.plan_waves`); M when they all fit at once


def _setup(dataset, group: list[RunSettings], devices: int | None, device_split: str,
           max_per_wave: int | None) -> _Setup:  # fmt: skip
    from reslstm_jax import families, hardware

    if len({s.static_signature() for s in group}) != 1:
        raise ValueError("a group must share model, model config, batch size, executor, "
                         "epochs and seeds")  # fmt: skip
    first = group[0]
    model = families.build_model(first.model, dataset.x, len(dataset.classes),
                                 dict(first.model_config))  # fmt: skip
    layout = ModelLayout(len(group), first.seeds, tuple(dataset.folds.names))
    config = TrainConfig(
        model=model, batch_size=first.batch_size, executor=first.executor,
        schedule=first.schedule, adam_eps=first.adam_eps, loss=first.loss,
        devices=hardware.model_devices(layout.size, devices), device_split=device_split,
    )  # fmt: skip
    shared = Shared(jax.tree_util.tree_map(jnp.asarray, dataset.x), jnp.asarray(dataset.lengths),
                    jnp.asarray(dataset.labels))  # fmt: skip
    hparams = layout.hparams(group, dataset.folds, np.asarray(dataset.labels),
                             len(dataset.classes))  # fmt: skip
    model_data = layout.model_data(dataset.folds)
    augmented = [f for f in augment.AUGMENTATION_FIELDS if getattr(hparams, f) is not None]
    if augmented and isinstance(dataset.x, dict):
        raise ValueError(
            f"{first.model} reads several feature arrays: the in-program "
            f"augmentation ({', '.join(augmented)}) works on [T, D] features only"
        )
    program = make_train(config)
    limit = stacking.device_memory()  # None on the CPU: no waves unless asked
    memory = None if limit is None else stacking.model_memory(
        config, layout.keys(), hparams, model_data, shared)  # fmt: skip
    frames = jax.tree_util.tree_leaves(dataset.x)[0].shape[1]
    what = f"{first.model}, batch size {first.batch_size}, T = {frames}"
    wave = stacking.plan_waves(layout.size, config.devices, memory, limit,
                               max_per_wave=max_per_wave, what=what)  # fmt: skip
    if wave < layout.size:
        program = stacking.in_waves(program, wave)
    return _Setup(model, config, layout, program, hparams, model_data, shared, wave)


def _all_frozen(g: _Setup, state, epochs_done: int) -> bool:
    """Whether early stopping has frozen every model (`engine.frozen_at`): the program stops
    (the frozen epochs would train nothing)."""
    if g.hparams.patience is None:
        return False
    best = np.asarray(g.program.models(state, g.layout.size).best_epoch)
    return bool(engine.frozen_at(np.asarray(g.hparams.patience), epochs_done, best).all())


def _fingerprint(dataset, group: list[RunSettings]) -> dict:
    """What a run's checkpoints belong to: its settings and its data."""
    card = dataset.card
    return {"settings": [checkpoint_settings(s) for s in group],
            "utterance_ids_sha256": card["utterance_ids_sha256"],
            "protocol": card["protocol"], "features": card["features"],
            "normalisation": card["normalisation"]}  # fmt: skip


def check_resumable(out_dir, dataset, group: list[RunSettings]) -> None:
    """CheckpointMismatch when `out_dir` holds the checkpoints of another run; nothing written
    (the train CLI checks before it writes config.yaml into `out_dir`)."""
    from reslstm_jax import checkpoint

    directory = pathlib.Path(out_dir) / artifacts.CHECKPOINTS_DIR
    checkpoint.check_stamp(directory, _fingerprint(dataset, group))


def _checkpointer(out_dir, dataset, group: list[RunSettings]):
    """The run's Checkpointer, refusing a directory of another run."""
    from reslstm_jax import checkpoint

    directory = pathlib.Path(out_dir) / artifacts.CHECKPOINTS_DIR
    return checkpoint.Checkpointer(directory, _fingerprint(dataset, group))


def fit_group(
    dataset,
    group: list[RunSettings],
    *,
    out_dir=None,
    checkpoint_every: int = 10,
    report_every: int | None = None,
    progress: bool | int = True,
    objective: str = "val",
    on_chunk=None,
    devices: int | None = None,
    device_split: str = "auto",
    max_models_per_wave: int | None = None,
) -> list[dict]:
    """Train several configurations that share a static shape in one program.

    M = configurations x seeds x folds (`ModelLayout`). With `out_dir`, the stacked state is
    checkpointed every `checkpoint_every` epochs and at the end under `out_dir/checkpoints`,
    and a rerun resumes from the latest checkpoint; the best parameters of every model go to
    `out_dir/best`, and `inference.json` / `normalisation.npz` beside them.

    Training runs in chunks of `report_every` epochs (default: `checkpoint_every`), each
    ending with a progress update and `on_chunk(epochs_done, history)` (`history`: the
    "train_loss" and "val_uar" arrays [M, epochs] so far); returning True stops training there
    (the sweep engine's pruning): the results then hold the best epoch so far and
    `stopped_at_epoch`. Checkpoints are still written every `checkpoint_every` epochs, at the
    end, and where training stops.

    `progress`: show a progress bar; an int > 0 is also its terminal line (tqdm `position`),
    so the bars of parallel sweep workers do not overwrite each other.

    `devices`: how many local devices share the models (default: all of them, at most M; see
    `reslstm_jax.hardware`), and `device_split` how they share them (`TrainConfig`). They
    change the speed, never the results (a "mesh" split: beyond float rounding).
    `max_models_per_wave`: train at most this many models at a time (`stacking.in_waves`);
    on a GPU the waves are also sized to fit its memory (`stacking.plan_waves`).

    Returns one results dict per configuration (see `docs/training.md`): settings, card,
    per-model histories, best epochs, test metrics and predictions, every aggregation.

    The programs run at the group's matmul precision (`RunSettings.precision`), recorded in
    the results as `matmul_precision`.
    """
    precision = group[0].precision()
    # read when the programs are traced (their first call), all of which happen in here
    with jax.default_matmul_precision(None if precision == "default" else precision):
        return _fit_group(dataset, group, out_dir, checkpoint_every, report_every, progress,
                          objective, on_chunk, (devices, device_split, max_models_per_wave),
                          precision)  # fmt: skip


def _fit_group(dataset, group, out_dir, checkpoint_every, report_every, progress, objective,
               on_chunk, devices, precision) -> list[dict]:  # fmt: skip
    from tqdm.auto import tqdm

    from reslstm_jax import checkpoint
    from reslstm_jax.params import count_params

    g = _setup(dataset, group, *devices)
    epochs = group[0].epochs
    state = g.program.init(g.layout.keys(share_across_seeds=group[0].share_init_across_seeds),
                           g.hparams)  # fmt: skip
    history = {k: np.zeros((g.layout.size, epochs), np.float32) for k in ("train_loss", "val_uar")}
    start, saver = 0, None
    if out_dir is not None:
        saver = _checkpointer(out_dir, dataset, group)
        restored = (saver.restore(g.program.models(state, g.layout.size), history)
                    if saver.latest_epoch() is not None else None)  # fmt: skip
        if restored is not None:  # (damaged checkpoints are skipped with a warning)
            start, state, history = restored
            state = g.program.place(state)
            history = {k: np.array(v) for k, v in history.items()}
    executor = g.config.resolved_executor()
    n = g.config.devices
    on_devices = f", {n} {jax.default_backend()} devices" if n > 1 else ""
    if g.wave < g.layout.size:
        on_devices += f", waves of {g.wave}"
    position = progress if type(progress) is int and progress > 0 else None
    worker = f"[{position}] " if position else ""
    bar = tqdm(total=epochs, initial=start, disable=not progress, unit="epoch",
               desc=f"{worker}{group[0].model} x{g.layout.size} ({executor}{on_devices})",
               position=position, leave=position is None)  # fmt: skip
    started = time.perf_counter()
    epoch = start
    for length in chunk_lengths(start, epochs, report_every or checkpoint_every,
                                checkpoint_every):  # fmt: skip
        state, chunk = g.program.run(state, g.hparams, g.model_data, g.shared, epochs=length)
        for key in history:
            history[key][:, epoch : epoch + length] = np.asarray(chunk[key])
        epoch += length
        bar.set_postfix(val_uar=f"{history['val_uar'][:, epoch - 1].mean():.3f}")
        bar.update(length)
        stop = on_chunk is not None and bool(on_chunk(epoch, history))
        stop = stop or _all_frozen(g, state, epoch)
        if saver is not None and (stop or epoch % checkpoint_every == 0 or epoch == epochs):
            saver.save(epoch, g.program.models(state, g.layout.size), history)
        if stop:
            break
    bar.close()
    predictions = jax.tree_util.tree_map(
        np.asarray, g.program.predict(state, g.model_data, g.shared)
    )
    state = g.program.models(state, g.layout.size)  # the M models, without a mesh's padding
    seconds = time.perf_counter() - started
    if out_dir is not None:
        saver.close()
        checkpoint.save_best(pathlib.Path(out_dir) / artifacts.BEST_DIR, state.best_params,
                             state.best_batch_stats)  # fmt: skip
        artifacts.write_inference_info(out_dir, dataset, g.model, g.layout,
                                       dropouts=[s.dropout for s in group])  # fmt: skip
    # one model's count from the shapes: slicing model 0 out of each [M, ...] leaf would
    # compile two small programs per leaf shape in every run (~0.5 s)
    n_params = count_params(
        jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), state.params)
    )
    info = results_mod.run_info(
        g.model, n_params, dataset, objective=objective, executor=executor,
        backend=jax.default_backend(), train_seconds=seconds, models_in_program=g.layout.size,
        devices=g.config.devices, models_per_wave=g.wave,
        epochs_resumed_from=start, stopped_at_epoch=epoch,
        matmul_precision=precision, environment=provenance.environment(),
    )  # fmt: skip
    return results_mod.assemble(g.layout, group, state, history, predictions, dataset, info)
