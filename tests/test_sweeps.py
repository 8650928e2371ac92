"""The sweep engine: spaces, grouping, resume, local workers, reaper, W&B read-back, misuse."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import pathlib
import shlex
import signal
import subprocess
import sys
import time
import types

import numpy as np
import optuna
import pytest

from reslstm_jax import families as rj_families
from sweeps import engine, spaces, storage
from sweeps import study as study_view

ENV = {**os.environ, "WANDB_SILENT": "true", "WANDB_BASE_URL": "http://127.0.0.1:9"}


@pytest.fixture
def corpus(tone_corpus):
    return tone_corpus


def sweep_args(corpus, workdir, cache, *extra) -> list[str]:
    """The arguments of `python -m sweeps.run` for the hidden_sizes space on `corpus`."""
    return [
        "--space", "hidden_sizes", "--corpus", "ravdess", "--data-dir", str(corpus), "--epochs",
        "2", "--out", str(workdir), "--cache-dir", str(cache or workdir.parent / "cache"),
        "--no-progress", *extra,
    ]  # fmt: skip


def sweep(corpus, workdir, *extra, check=True, cache=None) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "sweeps.run", *sweep_args(corpus, workdir, cache, *extra)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, env=ENV)
    if check:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def load(workdir, study="hidden_sizes-ravdess-ravdess_paper-quick") -> optuna.Study:
    return optuna.load_study(
        study_name=study, storage=storage.open_storage(None, pathlib.Path(workdir), study)
    )


def trials_so_far(workdir, study, *states) -> list:
    """The study's trials in `states` while a sweep runs: none before its journal holds the
    study (the launcher creates the file before it writes the study's first record)."""
    if not storage.journal_path(workdir, study).exists():
        return []
    try:
        return load(workdir, study).get_trials(states=states)
    except KeyError:  # optuna's "Record does not exist.": the study is not written yet
        return []


# ----------------------------------------------------------------------------- spaces


def test_spaces_load_with_their_objectives():
    assert {"hidden_sizes", "paper", "reslstm"} <= set(spaces.names())
    grid = spaces.load("hidden_sizes")
    assert grid.directions == ["maximize", "minimize"] and grid.metrics == ["uar", "n_params"]
    assert len(grid.grid) == 8 and grid.sampler == "grid"
    assert {(p["model"], p["hidden_size"]) for p in grid.grid} == {
        (m, h) for m in ("lstm_sa", "reslstm_sa") for h in (16, 32, 64, 128)
    }
    paper = spaces.load("paper")
    assert paper.directions == ["maximize"] and paper.sampler == "tpe"
    assert spaces.load("reslstm").sampler == "nsga2"
    full = grid.complete({"model": "lstm_sa", "hidden_size": 16})
    assert full["res_blocks"] == 0 and full["batch_size"] == 32
    zoo = spaces.load("architectures")
    assert zoo.families == ["ds_lstm", "light_sernet", "lstm_sa", "reslstm_sa"]
    # each family gets its own recipe for what the point leaves out
    lsn = zoo.complete({"model": "light_sernet"})
    assert (lsn["learning_rate"], lsn["batch_size"], lsn.get("hidden_size")) == (1e-4, 32, None)
    ds = zoo.complete({"model": "ds_lstm", "branches": "ds"})
    assert (ds["learning_rate"], ds["batch_size"], ds["hidden_size"], ds["weight_decay"]) == (
        1e-3, 128, 200, 0.0)  # fmt: skip
    with pytest.raises(
        spaces.SpaceError, match="unknown space 'nope'; spaces: architectures, hidden_sizes"
    ):
        spaces.load("nope")


@pytest.mark.parametrize("name", ["paper", "reslstm"])
def test_sampled_spaces_suggest_complete_parameter_sets(name):
    space = spaces.load(name)
    study = optuna.create_study(directions=space.directions,
                                sampler=engine.make_sampler(space, 0))  # fmt: skip
    for _ in range(3):
        trial = study.ask()
        full = space.complete(engine.trial_params(space, trial))
        assert set(spaces.family_defaults(full["model"])) <= set(full)
        assert count(full) > 0


# shapes of the paper's features (8 classes, 46 per frame): all n_params reads
FAKE_46 = types.SimpleNamespace(x=np.zeros((1, 1, 46), np.float32), classes=tuple(range(8)))
FAKE_DATA = {
    "reslstm_sa": FAKE_46.x, "lstm_sa": FAKE_46.x, "light_sernet": np.zeros((1, 16, 40)),
    "ds_lstm": {"a": np.zeros((1, 24, 16)), "b": np.zeros((1, 14, 16)),
                "mfcc": np.zeros((1, 5, 39))},
}  # fmt: skip
BUDGET = engine.SweepConfig(space="x", study="s", trials=1, epochs=3, seeds=2)


def count(full: dict) -> int:
    """The parameter count objective of a trial's full parameter set."""
    return engine.n_params(engine.settings_for(full, BUDGET), FAKE_46)


def test_parameter_count_objective_is_the_models_count():
    full = spaces.load("hidden_sizes").complete({"model": "reslstm_sa", "hidden_size": 64})
    assert count(full) == 46_772
    full = spaces.load("hidden_sizes").complete({"model": "lstm_sa", "hidden_size": 128})
    assert count(full) == 91_528


@pytest.mark.parametrize(
    ("family", "fields"),
    [
        ("reslstm_sa", {"paper_compat": True, "att_combine": "linear", "num_att": 2}),
        ("lstm_sa", {"hidden_size": 8, "row_block": None, "unroll": 2}),
        ("ds_lstm", {"branches": "ds", "gate_norm": "sigmoid", "cnn_channels": [4, 2]}),
        ("light_sernet", {"l2": 0.0, "bn_eps": 1e-5}),
    ],
)
def test_every_field_a_space_sets_reaches_the_model(family, fields):
    """Any model field the family declares goes from the trial's parameters to the model
    (ds_lstm's JSON-style list included); run parameters go to the run settings."""
    full = spaces.load("architectures").complete({"model": family, **fields, "lr": 3e-4})
    settings = engine.settings_for(full, BUDGET)
    assert (settings.learning_rate, settings.epochs, settings.seeds) == (3e-4, 3, (0, 1))
    model = rj_families.build_model(family, rj_families.feature_shapes(FAKE_DATA[family]), 4,
                                    dict(settings.model_config))  # fmt: skip
    for field, value in fields.items():
        assert getattr(model, field) == (tuple(value) if isinstance(value, list) else value)


def test_a_field_the_family_does_not_declare_is_refused():
    full = spaces.load("architectures").complete({"model": "light_sernet", "hidden_size": 64})
    with pytest.raises(ValueError, match="hidden_size is not a field of light_sernet"):
        engine.settings_for(full, BUDGET)
    full = spaces.load("paper").complete({"res_block": 2})  # a typo
    with pytest.raises(ValueError, match="res_block is not a field of reslstm_sa"):
        engine.settings_for(full, BUDGET)


def test_training_options_are_sweepable_and_a_space_with_an_unknown_field_fails_at_load():
    full = spaces.load("hidden_sizes").complete({"mixup_alpha": 0.2, "patience": 5,
                                                 "class_weights": "balanced"})  # fmt: skip
    settings = engine.settings_for(full, BUDGET)
    assert (settings.mixup_alpha, settings.patience, settings.class_weights) == (
        0.2, 5, "balanced")  # fmt: skip
    base = spaces.load("hidden_sizes")
    grid = dataclasses.replace(base, name="typo", grid=({"hidden_size": 8, "mixup": 0.2},))
    with pytest.raises(spaces.SpaceError,
                       match="^space typo: mixup is not a field of reslstm_sa"):  # fmt: skip
        spaces.check(grid)
    sampled = dataclasses.replace(base, name="bad", grid=None,
                                  suggest=lambda trial: {"noise_std": -1.0})  # fmt: skip
    with pytest.raises(spaces.SpaceError, match="^space bad: noise std must be >= 0"):
        spaces.check(sampled)
    for name in spaces.names():  # every shipped space passes its own check
        spaces.load(name)


def test_data_choices_are_trial_parameters_each_its_own_dataset(tmp_path):
    """Label set, normalisation and audio variants are trial parameters: not run settings,
    they choose the trial's dataset (one per combination); a bad one fails at load."""
    full = spaces.load("hidden_sizes").complete({
        "label_set": "shared4", "normalisation": "global", "speed_perturb": "0.9,1.1",
        "noise_snr": 20})  # fmt: skip
    settings = engine.settings_for(full, BUDGET)
    assert settings == engine.settings_for(spaces.load("hidden_sizes").complete({}), BUDGET)
    asked = []

    class Cache:
        def get(self, **kwargs):
            asked.append(kwargs)
            return "a dataset"

    config = engine.SweepConfig(space="hidden_sizes", study="s", trials=1, epochs=1, seeds=1,
                                workdir=str(tmp_path))  # fmt: skip
    datasets = engine.Datasets(config)
    datasets.cache = Cache()
    assert datasets.for_trial(full) == "a dataset"
    assert {k: asked[0][k] for k in ("label_set", "normalisation", "audio_variants")} == {
        "label_set": "shared4", "normalisation": "global",
        "audio_variants": [{"speed": 0.9}, {"speed": 1.1}, {"snr_db": 20.0}]}  # fmt: skip
    datasets.for_trial(spaces.load("hidden_sizes").complete({}))
    assert (asked[1]["label_set"], asked[1]["audio_variants"]) == ("native", ())
    base = spaces.load("hidden_sizes")
    for point, message in [
        ({"label_set": "shared5"}, "label_set must be one of native, shared4"),
        ({"speed_perturb": [1.0]}, "speed_perturb must be in"),
        ({"noise_snr": "20,x"}, "noise_snr: numbers separated by commas"),
    ]:
        bad = dataclasses.replace(base, name="bad", grid=({"hidden_size": 8, **point},))
        with pytest.raises(spaces.SpaceError, match=f"^space bad: {message}"):
            spaces.check(bad)


# ----------------------------------------------------------------------------- reaper


def stamp(store, study, trial, when: float) -> None:
    """Set a trial's heartbeat as a worker does (a system attribute, through the storage)."""
    study_id = store.get_study_id_from_name(study.study_name)
    trial_id = store.get_trial_id_from_study_id_trial_number(study_id, trial.number)
    store.set_trial_system_attr(trial_id, engine.HEARTBEAT_ATTR, when)


def test_reaper_fails_stale_trials_and_retries_them_once(tmp_path):
    space = spaces.load("hidden_sizes")
    store = storage.open_storage(None, tmp_path, "s")
    study = storage.create_or_load(store, "s", space, 0)
    study.enqueue_trial({"model": "lstm_sa", "hidden_size": 16})
    trial = study.ask()
    engine.trial_params(space, trial)
    stamp(store, study, trial, time.time() - 1000)  # its worker died
    assert engine.reap(study, grace=60, max_retries=1) == [trial.number]
    assert engine.reap(study, grace=60, max_retries=1) == []  # only once
    states = [t.state for t in study.get_trials()]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING]
    retry = study.ask()
    assert engine.trial_params(space, retry) == {"model": "lstm_sa", "hidden_size": 16}
    assert retry.user_attrs["retries"] == 1 and retry.user_attrs["retry_of"] == trial.number
    stamp(store, study, retry, time.time() - 1000)
    engine.reap(study, grace=60, max_retries=1)  # retry limit reached: not enqueued again
    assert not study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    fresh = study.ask()
    engine.trial_params(space, fresh)
    stamp(store, study, fresh, time.time())
    assert engine.reap(study, grace=60, max_retries=1) == []  # a live trial is left alone


def test_an_idle_worker_leaves_once_the_last_running_trial_is_told(
    tmp_path, monkeypatch, tiny_dataset
):
    """Nothing left to ask while another worker's trial runs: the worker looks at the study
    again every IDLE_POLL_SECONDS, not once a heartbeat (10 s by default, which kept a sweep
    waiting up to that long after its last trial), and leaves, having trained nothing, as soon
    as that trial is told."""
    space = spaces.load("hidden_sizes")
    store = storage.open_storage(None, tmp_path, "s")
    study = storage.create_or_load(store, "s", space, 0)
    study.enqueue_trial({"model": "lstm_sa", "hidden_size": 16})
    running = study.ask()  # another worker's, alive
    engine.trial_params(space, running)
    stamp(store, study, running, time.time())
    waits = []

    def sleep(seconds):  # the other worker tells its trial during this worker's first wait
        waits.append(seconds)
        if len(waits) == 1:
            study.tell(running.number, [0.5] * len(space.objectives))

    monkeypatch.setattr(engine, "time", types.SimpleNamespace(sleep=sleep))
    config = engine.SweepConfig(space="hidden_sizes", study="s", trials=1, epochs=1, seeds=1,
                                workdir=str(tmp_path), wandb="disabled", progress=False,
                                latency=False)  # fmt: skip
    assert config.heartbeat_seconds > engine.IDLE_POLL_SECONDS
    assert engine.run_worker(config, 0, engine.Datasets(config, only=tiny_dataset)) == 0
    assert waits == [engine.IDLE_POLL_SECONDS]
    assert [t.state for t in study.get_trials()] == [optuna.trial.TrialState.COMPLETE]


def journal_with_two_points(workdir, study: str = "s") -> pathlib.Path:
    store = storage.open_storage(None, workdir, study)
    created = storage.create_or_load(store, study, spaces.load("hidden_sizes"), 0)
    for point in spaces.load("hidden_sizes").grid[:2]:
        created.enqueue_trial(point)
    return storage.journal_path(workdir, study)


def test_a_torn_last_line_is_moved_aside_and_the_study_goes_on(tmp_path):
    path = journal_with_two_points(tmp_path)
    good = path.read_bytes()
    torn = b'{"op_code": 5, "worker_id": "w", "trial_id": 0, "user_att'  # killed mid-write
    path.write_bytes(good + torn)
    # a reader warns and changes nothing
    assert "last line is incomplete" in storage.check_journal(path, repair=False)
    assert path.read_bytes() == good + torn
    # the launcher, before any worker opens it: the torn line goes to <journal>.torn
    warning = storage.check_journal(path, repair=True)
    assert warning.startswith(f"warning: {path}: its last line was cut off by a crash")
    assert path.read_bytes() == good
    assert (tmp_path / "s" / "optuna.journal.torn").read_bytes() == torn + b"\n"
    assert storage.check_journal(path, repair=True) is None  # repaired once
    # the study loads, takes new records, and loads again (today's failure: the second load)
    study = load(tmp_path, "s")
    study.enqueue_trial(spaces.load("hidden_sizes").grid[2])
    assert len(load(tmp_path, "s").trials) == 3
    # a complete record that lost only its newline is kept, with the newline added
    last = path.read_bytes().rstrip(b"\n")
    path.write_bytes(last)
    assert "lacked its newline" in storage.check_journal(path, repair=True)
    assert path.read_bytes() == last + b"\n" and len(load(tmp_path, "s").trials) == 3


# A worker killed in the middle of Optuna's append (the kill injected there, not timed): it
# holds the journal's lock, has written half its record, and dies.
KILLED_MID_APPEND = """
import json, os, pathlib, signal, sys
from optuna.storages.journal import _file
from sweeps import storage

def append_half_then_die(self, logs):
    if not any(log.get("values") for log in logs):  # the trial's result: cut there
        return original(self, logs)
    with _file.get_lock_file(self._lock):
        text = "\\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\\n"
        with open(self._file_path, "ab") as f:
            f.write(text.encode()[: len(text) // 2])
        os.kill(os.getpid(), signal.SIGKILL)

original = _file.JournalFileBackend.append_logs
_file.JournalFileBackend.append_logs = append_half_then_die
import optuna
study = optuna.load_study(study_name="s",
                          storage=storage.open_storage(None, pathlib.Path(sys.argv[1]), "s"))
study.optimize(lambda trial: (0.5, 1000.0), n_trials=1)  # (UAR, parameters)
"""


def test_a_writer_killed_mid_append_leaves_a_study_the_next_launch_repairs(tmp_path, monkeypatch):
    """The torn record is moved aside under the writers' lock, the dead writer's lock broken
    after its grace (shortened here from Optuna's 30 s), and the study goes on: the killed
    trial stays RUNNING (the reaper fails and requeues it), new records land on lines of
    their own."""
    path = journal_with_two_points(tmp_path)
    proc = subprocess.run([sys.executable, "-c", KILLED_MID_APPEND, str(tmp_path)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not path.read_bytes().endswith(b"\n")  # torn, with its lock left behind
    assert os.path.islink(str(path) + ".lock")
    monkeypatch.setattr(storage, "JOURNAL_LOCK_GRACE_SECONDS", 3)
    started = time.monotonic()
    warning = storage.check_journal(path, repair=True)
    assert warning.startswith(f"warning: {path}: its last line was cut off by a crash")
    assert 3 <= time.monotonic() - started < 30 and not os.path.islink(str(path) + ".lock")
    study = load(tmp_path, "s")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.RUNNING,
                                               optuna.trial.TrialState.WAITING]  # fmt: skip
    study.tell(0, state=optuna.trial.TrialState.FAIL)  # as the reaper does
    study.enqueue_trial(spaces.load("hidden_sizes").grid[0])
    assert (
        len(load(tmp_path, "s").trials) == 3 and storage.check_journal(path, repair=False) is None
    )


def test_a_journal_damaged_mid_file_is_refused_and_never_written(corpus, tmp_path, feature_cache):
    workdir = tmp_path / "runs"
    path = journal_with_two_points(workdir, "hidden_sizes-ravdess-ravdess_paper-quick")
    lines = path.read_bytes().splitlines(keepends=True)
    damaged = b"".join([lines[0], b"{not json\n", *lines[1:]])
    path.write_bytes(damaged)
    with pytest.raises(storage.StorageError, match=f"{path}: line 2 is not a journal record"):
        storage.check_journal(path, repair=True)
    proc = sweep(corpus, workdir, "--study", "hidden_sizes-ravdess-ravdess_paper-quick",
                 check=False, cache=feature_cache)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert f"{path}: line 2 is not a journal record" in line
    assert path.read_bytes() == damaged


def test_reloading_a_study_checks_directions_and_space(tmp_path):
    store = storage.open_storage(None, tmp_path, "s")
    storage.create_or_load(store, "s", spaces.load("hidden_sizes"), 0)
    with pytest.raises(storage.StorageError, match="directions"):
        storage.create_or_load(store, "s", spaces.load("paper"), 0)
    with pytest.raises(storage.StorageError, match="made for space hidden_sizes"):
        storage.create_or_load(store, "s", spaces.load("reslstm"), 0)


# ----------------------------------------------------------------------------- end to end


def two_sizes(folder, name="two_points", lrs=None):
    """A space of the user's as a file of `folder`: LSTM-SA at two sizes (with `lrs`, each size
    at each learning rate). The end-to-end sweep tests share its programs (the same shapes,
    budget and epochs), so one cold run compiles them once."""
    grid = "model: [lstm_sa], hidden_size: [16, 32]" + ("" if lrs is None else f", lr: {list(lrs)}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text("description: LSTM-SA at two sizes\n"
                                         "objectives: [[uar, maximize], [n_params, minimize]]\n"
                                         f"grid: {{{grid}}}\n")  # fmt: skip
    return folder / f"{name}.yaml"


def test_sweep_end_to_end_resume_and_wandb(corpus, tmp_path, feature_cache, monkeypatch, capsys):
    from wandb_reader import read_run, read_table

    from reslstm_jax import tracking

    workdir = tmp_path / "runs"
    # a space of the user's, from a folder of theirs: a two-point grid
    space = two_sizes(tmp_path / "my spaces")
    name = "two_points-ravdess-ravdess_paper-quick"
    cross = ("--cross-test", f"ravdess={corpus}")  # the corpus itself as a cross-corpus target
    first = sweep(corpus, workdir, "--space", str(space), "--trials", "1", "--workers", "1",
                  "--tags", "suite", *cross, cache=feature_cache)  # fmt: skip
    assert "Pareto front" in first.stdout and "lstm_sa" in first.stdout
    study = load(workdir, name)
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert [t.user_attrs["params_full"]["hidden_size"] for t in done] == [16]
    # resume: the same command with more trials trains only the new ones (and plots the
    # front against the ONNX file size)
    second = sweep(corpus, workdir, "--space", str(space), "--trials", "2", "--workers", "1",
                   "--tags", "suite", "--pareto-x", "onnx_kib", *cross,
                   cache=feature_cache)  # fmt: skip
    assert "note: no trial has" not in second.stdout
    study = load(workdir, name)
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(done) == 2 and len(study.trials) == 2  # only the points asked for are queued
    assert [t.number for t in done] == [0, 1]
    assert [t.user_attrs["params_full"]["hidden_size"] for t in done] == [16, 32]
    study_dir = workdir / name
    # the study's resolved config: the space file by its absolute path, the budget's values,
    # the command line, and the data's identity
    import yaml

    config_text = (study_dir / "config.yaml").read_text()
    resolved = yaml.safe_load(config_text)
    assert resolved["space"] == str(space) and resolved["trials"] == 2
    assert (resolved["epochs"], resolved["seeds"], resolved["study"]) == (2, 1, name)
    assert "out" not in resolved and "# command: python -m sweeps.run --space" in config_text
    assert (study_dir / "pareto.png").stat().st_size > 0
    assert (study_dir / "skipped.csv").read_text() == "path,reason\n"  # every file was used
    csv = (study_dir / "pareto.csv").read_text().splitlines()
    assert csv[0].startswith("trial,model,hidden_size") and len(csv) == 3
    for t in done:
        result = json.loads((study_dir / "trials" / f"{t.number}.json").read_text())
        assert result["trial"]["values"] == t.values
        assert t.values[1] == result["model"]["trainable_params"]
        # the same float64 mean of the same numbers (`results.headline`), and below copies of
        # the same floats through Optuna, W&B and JSON: equal (approx's default rel 1e-6 only)
        assert t.user_attrs["val_uar"] == pytest.approx(
            np.mean([r["best_val_uar"] for r in result["runs"]])
        )
        # --objective val (default): Optuna sees validation UAR, never the test predictions
        assert t.values[0] == t.user_attrs["val_uar"] and t.user_attrs["leaky"] is False
        # W&B offline run of the trial, read back from disk
        run_id = t.user_attrs["wandb_run_id"]
        run_dirs = list(study_dir.rglob(f"*run-*-{run_id}"))
        assert run_dirs, f"no offline run for {run_id}"
        logged = read_run(run_dirs[0])
        summary = logged["summary"]
        # every number named by its split; "objective" names the one Optuna optimised
        assert summary["objective"] == "val_uar" and "uar" not in summary
        assert summary["val_uar"] == pytest.approx(t.values[0])
        assert summary["test_uar"] == result["aggregate"]["pooled_oof_uar"]["mean"]
        assert summary["test_wa"] == result["aggregate"]["pooled_oof_wa"]["mean"]
        assert summary["test_macro_f1"] == result["aggregate"]["pooled_oof_macro_f1"]["mean"]
        assert summary["n_params"] == t.values[1]
        # each trial's models tested on the whole target: in its results, Optuna and W&B
        (tested,) = result["cross_test"]
        assert len(tested["per_model"]) == len(result["runs"])
        assert (
            t.user_attrs["cross_ravdess_uar"] == tested["uar_mean"] == summary["cross_ravdess_uar"]
        )
        assert summary["cross_ravdess_ensemble_uar"] == tested["ensemble_uar_mean"]
        assert logged["config"]["hidden_size"] == t.user_attrs["params_full"]["hidden_size"]
        assert logged["run"]["tags"] == ["suite"]
        # the data is named in W&B and Optuna alike (and in config.yaml): corpus, protocol,
        # protocol hash
        card = result["card"]
        assert resolved["data"]["utterance_ids_sha256"] == card["utterance_ids_sha256"]
        for record in (logged["config"], t.user_attrs):
            assert (record["corpus"], record["protocol"], record["protocol_hash"]) == (
                "ravdess", "ravdess_paper", card["utterance_ids_sha256"])  # fmt: skip
        # the run record: features, normalisation, budget, versions, commit (also in results)
        config = logged["config"]
        assert (config["features"], config["normalisation"], config["budget"]) == (
            "mfcc_chroma", "fold", "quick")  # fmt: skip
        assert (config["epochs"], config["seeds"], config["objective"]) == (2, 1, "val")
        assert config["versions"]["optuna"] == optuna.__version__
        assert config["git_commit"] == result["environment"]["git"]["commit"]
        # the curves of each epoch, logged per chunk (the quick budget: every epoch)
        curves = [h for h in logged["history"] if "val_uar_mean" in h]
        assert [h["epoch"] for h in curves] == [1, 2]
        assert {"train_loss", "val_uar_min", "val_uar_max", "learning_rate"} <= set(curves[0])
        # Optuna: every headline number, per fold; no internal key among the user attributes
        assert t.user_attrs["test_uar_per_fold"] == summary["test_uar_per_fold"]
        assert len(t.user_attrs["test_uar_per_fold"]) == 5
        assert (t.user_attrs["test_wa"], t.user_attrs["test_macro_f1"]) == (
            summary["test_wa"], summary["test_macro_f1"])  # fmt: skip
        assert not [k for k in t.user_attrs if k.startswith("_")]
        assert t.user_attrs["results"] == f"trials/{t.number}.json"  # study-relative
        # edge metrics next to UAR: in the trial results, the Optuna attributes and W&B
        assert result["edge"]["fp16_kib"] == t.values[1] * 2 / 1024
        assert logged["summary"]["fp16_kib"] == result["edge"]["fp16_kib"]
        assert logged["summary"]["latency_ms_per_s"] == t.user_attrs["latency_ms_per_s"] > 0
        for key in ("onnx_kib", "onnx_int8_kib", "ort_ms_per_s"):  # the export extra's
            assert logged["summary"][key] == t.user_attrs[key] == result["edge"][key] > 0
        # the confusion matrix and learning curves, as PNGs and as W&B images, and the
        # confusion matrix as W&B's interactive chart
        assert logged["summary"]["confusion"]["_type"] == "image-file"
        assert logged["summary"]["confusion_matrix_table"]["_type"] == "table-file"
        for kind in ("confusion", "curves"):
            png = study_dir / "plots" / f"trial_{t.number}_{kind}.png"
            assert png.read_bytes()[:4] == b"\x89PNG"
    assert "fp16 KiB" in first.stdout and "ms/s" in first.stdout
    assert "ONNX KiB" in first.stdout and "ort ms/s" in first.stdout
    # the study run: the launcher's alone (one per launch, all with the study's W&B id); the
    # latest holds every trial, parameters also on a log scale
    study_runs = [read_run(r) | {"dir": r} for r in tracking.offline_runs(study_dir)]
    study_runs = [r for r in study_runs if r["run"]["job_type"] == "pareto"]
    assert [r["run"]["id"] for r in study_runs] == [tracking.study_run_id(study.study_name)] * 2
    columns, rows = read_table(study_runs[-1]["dir"], study_runs[-1]["summary"]["trials"])
    assert len(rows) == 2 and "uar" not in columns
    assert {"val_uar", "test_uar", "test_wa", "log10_params", "pareto"} <= set(columns)
    assert study_runs[-1]["config"]["metric_y"] == "val_uar"
    # the report of the study, from another directory than the sweep's
    from experiments import report as report_cli

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert report_cli.main(["--study", study.study_name, "--sweep-out", str(workdir)]) == 0
    assert "lstm_sa h16" in capsys.readouterr().out


def test_ctrl_c_on_a_one_worker_sweep_is_one_line_and_gives_the_trial_back(
    corpus, tmp_path, feature_cache, interrupt
):
    """SIGINT while the in-process worker prepares or trains its first trial (it used to
    print a traceback and then segfault): one line, exit 130, the trial queued again."""
    workdir = tmp_path / "runs"
    args = [sys.executable, "-m", "sweeps.run", "--space", "hidden_sizes", "--corpus", "ravdess",
            "--data-dir", str(corpus), "--epochs", "2", "--out", str(workdir),
            "--cache-dir", str(feature_cache), "--no-progress", "--trials", "1",
            "--workers", "1", "--no-latency", "--wandb", "disabled"]  # fmt: skip
    study_name = "hidden_sizes-ravdess-ravdess_paper-quick"

    def claimed() -> bool:  # a trial asked and held by the worker
        running = trials_so_far(workdir, study_name, optuna.trial.TrialState.RUNNING)
        return any("worker" in t.user_attrs for t in running)

    interrupt(args, claimed, signal.SIGINT, env=ENV).assert_left(130, within=10)
    study = load(workdir)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL,
                                               optuna.trial.TrialState.WAITING]  # fmt: skip
    assert study.trials[1].system_attrs["fixed_params"] == study.trials[0].params


def test_two_local_workers_stop_on_sigterm_and_the_rerun_trains_every_point_once(
    corpus, tmp_path, feature_cache, interrupt
):
    """SIGTERM to the launcher mid-sweep: it stops its workers (no orphan), they give back
    their running trials, it prints one line and exits 143 within seconds; the same command
    then finishes the grid: every point trained exactly once, by both workers."""
    import psutil

    from reslstm_jax import tracking

    workdir = tmp_path / "runs"
    space = two_sizes(tmp_path / "spaces", "four_points", lrs=(1e-3, 2e-3))
    study_name = "four_points-ravdess-ravdess_paper-quick"
    args = [sys.executable, "-m", "sweeps.run", "--space", str(space), "--corpus", "ravdess",
            "--data-dir", str(corpus), "--epochs", "2", "--out", str(workdir),
            "--cache-dir", str(feature_cache), "--no-progress", "--trials", "4",
            "--workers", "2", "--no-latency"]  # fmt: skip

    def one_done() -> bool:  # one trial done, the others under way
        return bool(trials_so_far(workdir, study_name, optuna.trial.TrialState.COMPLETE))

    def its_workers(launcher) -> list:
        workers = psutil.Process(launcher.pid).children()
        assert len(workers) == 2
        return workers

    # the processes' temporary folder: what they leave there is seen
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    ended = interrupt(args, one_done, signal.SIGTERM, env={**ENV, "TMPDIR": str(temporary)},
                      before=its_workers, poll=0.2)  # fmt: skip
    ended.assert_left(143, within=20)
    workers = ended.before
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    # wandb's temporary folders (each process made two), removed on the way out
    assert not list(temporary.glob("*wandb*"))
    # the interrupted trials were given back: failed, their points queued again
    study = load(workdir, study_name)
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert study.get_trials(states=(optuna.trial.TrialState.WAITING,))

    # the rerun measures latencies: not by the workers (one would time while the other
    # trains), by the launcher once both have finished, each architecture once (two
    # architectures, each at two learning rates)
    proc = sweep(corpus, workdir, "--space", str(space), "--trials", "4", "--workers", "2",
                 cache=feature_cache)  # fmt: skip
    assert "timing 2 model(s) of 4 trial(s), no worker running" in proc.stdout
    study = load(workdir, study_name)
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(done) == 4
    points = [json.dumps(t.params, sort_keys=True) for t in done]
    assert len(set(points)) == 4  # no point trained twice
    assert {t.user_attrs["worker"] for t in done} == {0, 1}  # both workers trained
    assert not any("model_ms_per_s" in t.user_attrs for t in done)  # workers timed nothing
    with open(workdir / study_name / "pareto.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and all(float(r["model_ms_per_s"]) > 0 for r in rows)
    assert {r["latency_features"] for r in rows} == {"mfcc_chroma at 48000 Hz"}
    # the export extra is installed here: each int8 size comes with its int8 test UAR
    assert all(float(r["onnx_int8_kib"]) > 0 and 0 <= float(r["int8_uar"]) <= 1 for r in rows)
    results = json.loads((workdir / study_name / done[0].user_attrs["results"]).read_text())
    assert results["edge"]["model_ms_per_s"] == float(
        next(r for r in rows if r["trial"] == str(done[0].number))["model_ms_per_s"])  # fmt: skip
    assert "features mfcc_chroma at 48000 Hz:" in proc.stdout
    # one study run per launch (the launcher's), not one per worker; the last holds every trial
    from wandb_reader import read_run, read_table

    runs = [read_run(r) | {"dir": r} for r in tracking.offline_runs(workdir)]
    study_runs = [r for r in runs if r["run"]["job_type"] == "pareto"]
    assert study_runs and study_runs[-1]["exit_code"] == 0
    assert len(read_table(study_runs[-1]["dir"], study_runs[-1]["summary"]["trials"])[1]) == 4


def test_two_launchers_started_at_once_on_one_study_share_it(corpus, tmp_path, feature_cache):
    """Several launchers on one study is a documented use (one per GPU, one per machine):
    started in the same moment on a fresh workdir, both create-or-load the study, repair
    nothing, and train disjoint grid points."""
    workdir = tmp_path / "runs"
    args = [sys.executable, "-m", "sweeps.run",
            *sweep_args(corpus, workdir, feature_cache, "--trials", "2", "--workers", "1",
                        "--no-latency")]  # fmt: skip
    launchers = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=ENV) for _ in range(2)]  # fmt: skip
    ended = [launcher.communicate(timeout=600) for launcher in launchers]
    for launcher, (_out, err) in zip(launchers, ended, strict=True):
        assert launcher.returncode == 0 and "Traceback" not in err, err[-3000:]
        assert "cut off by a crash" not in err  # no live record taken for a torn one
    done = load(workdir).get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    points = [json.dumps(t.params, sort_keys=True) for t in done]
    assert len(done) >= 2 and len(set(points)) == len(points)  # no point trained twice
    journal = storage.journal_path(workdir, "hidden_sizes-ravdess-ravdess_paper-quick")
    assert storage.check_journal(journal, repair=False) is None


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--space", "nope"], "unknown space 'nope'; spaces: architectures, hidden_sizes"),
        (["--storage", "sqlite:///x.db", "--workers", "2"], "allows one worker only"),
        (["--storage", "mysql://u:secret@h/db"], "mysql://u:***@h/db: unsupported"),
        (["--storage", "postgresql://u:secret@h/db"], "spell the driver"),
        (["--epochs", "0"], "--epochs: must be an integer in [1, 2147483647], got 0"),
        (["--data-dir", "/does/not/exist"], "--data-dir /does/not/exist does not exist"),
        (["--budget", "huge"], "invalid choice: 'huge'"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["--tags", "ok", "a/b"], "--tags 'a/b' must not contain /"),
        (["--workers", "two"], "--workers must be a number >= 1 or auto, got two"),
        (
            ["--max-models-per-wave", "0"],
            "--max-models-per-wave: must be an integer in [1, 2147483647], got 0",
        ),
        (["--out", "/dev/null/runs"], "--out /dev/null/runs is under /dev/null, which"),
        # no W&B login on the test machines (tests/test_tracking.py): refused before the study
        (["--wandb", "online"], "W&B online mode needs `wandb login` or WANDB_API_KEY"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_creates_nothing(
    corpus, tmp_path, extra, message, feature_cache, run_main
):
    from sweeps.run import main

    workdir = tmp_path / "runs"
    proc = run_main(main, sweep_args(corpus, workdir, feature_cache, *extra))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert "secret" not in proc.stderr + proc.stdout
    assert not workdir.exists()


@pytest.mark.parametrize("objective,expected,leaky", [("val", 0.5, False), ("test", 0.7, True)])
def test_objective_reads_test_only_when_asked(objective, expected, leaky):
    results = {
        "runs": [{"best_val_uar": 0.4}, {"best_val_uar": 0.6}],
        "aggregate": {
            "pooled_oof_uar": {"mean": 0.7, "max": 0.8},
            "pooled_oof_wa": {"mean": 0.71},
            "pooled_oof_macro_f1": {"mean": 0.69},
            "per_fold": {"fold0": {"uar": {"mean": 0.7}}},
            "pooled_oof": [{"uar": 0.7}],
        },
        "card": {"utterance_ids_sha256": "abc"},
    }
    config = engine.SweepConfig(space="hidden_sizes", study="s", trials=1, epochs=1, seeds=1,
                                objective=objective)  # fmt: skip
    values, summary = engine.objective_values(results, config, spaces.load("hidden_sizes"), 123)
    # float64: the mean of 0.4 and 0.6, or 0.7 passed through (approx's default rel 1e-6)
    assert values == [pytest.approx(expected), 123]
    assert summary["leaky"] is leaky and summary["val_uar"] == pytest.approx(0.5)
    assert summary["objective"] == f"{objective}_uar" and summary["test_uar"] == 0.7
    assert (summary["test_wa"], summary["test_macro_f1"]) == (0.71, 0.69)


def test_a_grid_worker_knows_a_queued_point_from_a_sampled_one(tmp_path):
    store = storage.open_storage(None, tmp_path, "s")
    study = storage.create_or_load(store, "s", spaces.load("hidden_sizes"), 0)
    study.enqueue_trial({"model": "lstm_sa", "hidden_size": 16})
    assert engine.queued(study, study.ask())
    assert not engine.queued(study, study.ask())  # the queue is empty: Optuna would sample


def test_a_pruned_trial_stops_its_program_early(tmp_path, tiny_dataset):
    """Single-objective spaces report the running objective; a pruned group stops training."""
    from reslstm_jax import tracking

    dataset = tiny_dataset
    # the paper's space at h4 instead of h64: tests/test_training_options.py's COMMON program
    space = dataclasses.replace(
        spaces.load("paper"), fixed={"model": "reslstm_sa", "hidden_size": 4}
    )
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.ThresholdPruner(lower=1.1))  # fmt: skip
    study.enqueue_trial({"lr": 1e-3, "batch_size": 8, "dropout_rate": 0.1, "wd": 1e-4,
                         "t_0_loop": 2})  # fmt: skip
    trial = study.ask()
    full = space.complete(engine.trial_params(space, trial))
    config = engine.SweepConfig(
        space="paper", study="s", trials=1, epochs=4, seeds=1, workdir=str(tmp_path),
        wandb="disabled", progress=False,
    )  # fmt: skip
    tracker = tracking.Tracker("disabled", tmp_path, project="p", study="s")
    done = engine.train_group(study, space, config, dataset, [(trial, full, 123)], tracker,
                              tmp_path)  # fmt: skip
    assert done == 0
    assert study.trials[0].state == optuna.trial.TrialState.PRUNED
    assert study.trials[0].last_step == 1  # reported after the first epoch, pruned there
    result = json.loads((tmp_path / f"{trial.number}.json").read_text())
    assert result["stopped_at_epoch"] == 1 < config.epochs


def test_trials_of_one_static_shape_share_one_program(tmp_path, monkeypatch, tiny_dataset):
    """A worker asks group_size trials; those with equal static shape train together, and a
    later group of a shape and size the worker trained before runs the program it built."""
    from reslstm_jax.train import stacking

    base = spaces.load("hidden_sizes")
    grid = ({"model": "lstm_sa", "hidden_size": 4, "batch_size": 16, "lr": 1e-3},
            {"model": "lstm_sa", "hidden_size": 4, "batch_size": 16, "lr": 3e-3},
            # Adam steps by about lr whatever the gradient: this one's loss is NaN at once. Its
            # shape is tests/test_train.py's SMALL (batch 8): that program, from the cache.
            {"model": "lstm_sa", "hidden_size": 4, "batch_size": 8, "lr": 1e38},
            # the second ask: the first group's shape and size again
            {"model": "lstm_sa", "hidden_size": 4, "batch_size": 16, "lr": 2e-3},
            {"model": "lstm_sa", "hidden_size": 4, "batch_size": 16, "lr": 5e-3})  # fmt: skip
    built = []
    monkeypatch.setattr(stacking, "_programs", type(stacking._programs)())
    build_program = stacking.build_program

    def counted(config):
        built.append(config.batch_size)
        return build_program(config)

    monkeypatch.setattr(stacking, "build_program", counted)
    space = spaces.Space(name="two_lrs", description="test", objectives=base.objectives,
                         grid=grid, suggest=None, sampler="grid", fixed={})  # fmt: skip
    monkeypatch.setattr(engine.spaces_mod, "load", lambda name: space)
    store = storage.open_storage(None, tmp_path, "g")
    study = storage.create_or_load(store, "g", space, 0)
    for point in grid:
        study.enqueue_trial(point)
    config = engine.SweepConfig(
        space="two_lrs", study="g", trials=5, epochs=2, seeds=1, workdir=str(tmp_path),
        wandb="disabled", group_size=3, progress=False,
    )  # fmt: skip
    assert engine.run_worker(config, 0, engine.Datasets(config, only=tiny_dataset)) == 4
    # strict JSON: a parser that refuses NaN and Infinity reads every trial's results
    refuse = {"parse_constant": lambda name: pytest.fail(f"{name} in strict JSON")}
    results = [json.loads((config.study_dir / "trials" / f"{n}.json").read_text(), **refuse)
               for n in range(5)]  # fmt: skip
    assert [r["trial"]["group"] for r in results] == ["0-1", "0-1", "2", "3-4", "3-4"]
    # trials x folds x seeds
    assert [r["models_in_program"] for r in results] == [10, 10, 5, 10, 10]
    assert sorted(built) == [8, 16]  # one program per shape: group 3-4 ran group 0-1's
    assert results[3]["runs"][0]["train_loss"] != results[0]["runs"][0]["train_loss"]
    assert results[0]["settings"]["learning_rate"] == 1e-3
    assert results[1]["settings"]["learning_rate"] == 3e-3
    # the diverged trial: failed with its reason, never a UAR; its NaN losses are null
    assert [r["trial"]["state"] for r in results] == ["complete", "complete", "diverged",
                                                      "complete", "complete"]  # fmt: skip
    assert results[2]["trial"]["values"] is None and len(results[2]["diverged"]) == 5
    assert {d["epoch"] for d in results[2]["diverged"]} == {1}
    assert results[2]["runs"][0]["train_loss"][0] is None
    failed = study.trials[2]
    assert failed.state == optuna.trial.TrialState.FAIL and failed.values is None
    assert failed.user_attrs["failed_reason"].startswith("DIVERGED: 5 of 5 models")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2 + [
        optuna.trial.TrialState.FAIL] + [optuna.trial.TrialState.COMPLETE] * 2  # fmt: skip


def family_datasets(base):
    """Tiny per-family datasets over the 24 RAVDESS actors of `base`, each in its family's
    feature shape (the models take their sizes from the data: a tiny DS-LSTM, a short
    Light-SERNet input)."""
    from reslstm_jax import data

    rng = np.random.default_rng(0)
    n = len(base.ids)

    def build(feats, name):
        return data.build(base.manifest, "ravdess_paper", feats, extractor_info={"name": name},
                          extraction=base.extraction, normalisation="none")  # fmt: skip

    dual = [{"a": rng.standard_normal((24, 16)), "b": rng.standard_normal((14, 16)),
             "mfcc": rng.standard_normal((int(rng.integers(5, 9)), 39))}
            for _ in range(n)]  # fmt: skip
    return {
        "light_sernet": build([rng.standard_normal((16, 40)) for _ in range(n)], "tf_mfcc"),
        "ds_lstm": build(dual, "ds_lstm_inputs"),
    }


def test_architectures_space_trains_each_family_on_its_own_features(
    tmp_path, monkeypatch, tiny_dataset
):
    """The first grid points are Light-SERNet and DS-LSTM: each trains on its family's data
    with its recipe, and both land on the study's front."""
    by_family = family_datasets(tiny_dataset)
    monkeypatch.setattr(engine.Datasets, "for_trial", lambda self, full: by_family[full["model"]])
    space = spaces.load("architectures")
    store = storage.open_storage(None, tmp_path, "zoo")
    study = storage.create_or_load(store, "zoo", space, 0)
    for point in space.grid[:2]:
        study.enqueue_trial(point)
    config = engine.SweepConfig(space="architectures", study="zoo", trials=2, epochs=1, seeds=1,
                                workdir=str(tmp_path), wandb="disabled", progress=False,
                                latency=False)  # fmt: skip
    assert engine.run_worker(config, 0) == 2
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert [t.user_attrs["params_full"]["model"] for t in done] == ["light_sernet", "ds_lstm"]
    for t, family in zip(done, ("light_sernet", "ds_lstm"), strict=True):
        result = json.loads((tmp_path / "zoo" / "trials" / f"{t.number}.json").read_text())
        assert result["model"]["name"] == family
        assert result["card"]["features"]["name"] == by_family[family].card["features"]["name"]
        assert t.values[1] == result["model"]["trainable_params"]
    lsn, ds = (json.loads((tmp_path / "zoo" / "trials" / f"{t.number}.json").read_text())
               for t in done)  # fmt: skip
    assert lsn["model"]["trainable_params"] == 462_024  # 8 classes, whatever the input length
    assert (lsn["settings"]["schedule"], lsn["settings"]["learning_rate"]) == ("exp_decay", 1e-4)
    assert ds["model"]["config"]["branches"] == "ds" and ds["settings"]["schedule"] == "multistep"
    assert study_view.front_numbers(study, space)  # UAR vs parameters across the families


# ----------------------------------------------------------------------------- SLURM launcher


@pytest.mark.parametrize(
    "text,minutes",
    [("90", 90), ("2:30", 3), ("4:00:00", 240), ("1-2", 1560), ("1-00:30", 1470),
     ("0-00:00:01", 1)],
)  # fmt: skip
def test_slurm_times_are_read_as_slurm_reads_them(text, minutes):
    from sweeps import cluster

    assert cluster.minutes_from(text) == minutes


@pytest.mark.parametrize(
    "extra,message",
    [(["--workers", "2"], "--launcher slurm needs --storage postgresql+psycopg://"),
     ([], "--launcher slurm needs --workers N"),
     (["--workers", "2", "--slurm-time", "4h"], "--slurm-time '4h' is not a SLURM time"),
     (["--workers", "2", "--slurm-gpus-per-worker", "-1", "--storage",
       "postgresql+psycopg://u:secret@h/db"],
      "--slurm-gpus-per-worker: must be an integer in [0, 2147483647]")],
)  # fmt: skip
def test_slurm_flags_are_checked_before_anything_is_submitted(tmp_path, capsys, extra, message):
    from sweeps import run

    workdir = tmp_path / "runs"
    with pytest.raises(SystemExit) as exited:
        run.main(["--space", "hidden_sizes", "--launcher", "slurm", "--out", str(workdir),
                  *extra])  # fmt: skip
    err = capsys.readouterr().err
    assert exited.value.code == 2 and message in err and "secret" not in err
    assert not workdir.exists()


def test_the_storage_password_never_reaches_submitits_job_files(tmp_path, monkeypatch):
    from sweeps import cluster

    monkeypatch.delenv(storage.ENV_STORAGE, raising=False)
    url = "postgresql+psycopg://u:secret@127.0.0.1:9/db"
    config = engine.SweepConfig(space="hidden_sizes", study="s", trials=1, epochs=1, seeds=1,
                                storage=url, workdir=str(tmp_path))  # fmt: skip
    seen = {}
    monkeypatch.setattr(cluster, "worker", lambda payload, rank: rank)  # never run here
    import submitit

    real_submit = submitit.AutoExecutor.submit

    def submit(self, fn, *args):
        seen["env"] = os.environ.get(storage.ENV_STORAGE)
        return real_submit(self, fn, *args)

    monkeypatch.setattr(submitit.AutoExecutor, "submit", submit)
    settings = cluster.SlurmSettings(cluster="local", minutes=1)
    ids = cluster.submit(config, 2, settings, tmp_path / "slurm")
    assert len(ids) == 2 and seen["env"] == url  # the jobs inherit it from the environment
    assert storage.ENV_STORAGE not in os.environ  # ... only while submitting
    files = [f for f in (tmp_path / "slurm").rglob("*") if f.is_file()]
    assert files and not [f for f in files if b"secret" in f.read_bytes()]
    assert (tmp_path / "slurm").stat().st_mode & 0o777 == 0o700


def test_slurm_launcher_submits_workers_that_train_the_study(
    corpus, tmp_path, feature_cache, capsys
):
    """`--launcher slurm` with submitit's local executor: the launcher returns the job ids at
    once, and the job (a sweep worker) trains the study's trials. The study is a manifest's
    with a label map: both reach the worker through the job's configuration, and the trial
    writes its out-of-fold predictions."""
    from corpus_trees import tone_rows, write

    manifest = write(tmp_path / "my_lab.csv", tone_rows(corpus, tmp_path),
                     ["file", "emotion", "speaker"])  # fmt: skip
    workdir = tmp_path / "runs"
    args = [sys.executable, "-m", "sweeps.run", *sweep_args(manifest, workdir, feature_cache),
            "--trials", "1", "--workers", "1", "--no-latency", "--launcher", "slurm",
            "--slurm-cluster", "local", "--slurm-time", "10", "--folds", "3",
            "--corpus-name", "lab", "--label-map", "angry=anger"]  # fmt: skip
    args[args.index("ravdess")] = "manifest"
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "submitted 1 worker job(s):" in proc.stdout
    # the report command it prints tables the study once the job is done (below)
    (hint,) = [line for line in proc.stdout.splitlines() if line.startswith("when they are")]
    report_argv = shlex.split(hint.split(": ", 1)[1])
    assert report_argv[:3] == ["python", "-m", "experiments.report"]
    deadline = time.time() + 500
    done = []
    study = "hidden_sizes-lab-speaker_kfold3-quick"
    while time.time() < deadline and not done:
        time.sleep(2)
        done = load(workdir, study).get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(done) == 1 and done[0].user_attrs["worker"] == 0
    trials = workdir / study / "trials"
    result = json.loads((trials / f"{done[0].number}.json").read_text())
    assert result["card"]["corpus"] == "lab" and result["card"]["classes"] == ["anger", "neutral"]
    assert result["card"]["label_map"] == {"angry": "anger"}
    assert len(result["card"]["folds"]) == 3
    with open(trials / f"{done[0].number}_predictions.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 48  # every utterance tested once, one seed
    from experiments import report

    assert report.main(report_argv[3:]) in (0, None)
    assert "lstm_sa h16" in capsys.readouterr().out


def test_the_pareto_table_marks_collapsed_trials_and_names_the_features_once(tmp_path):
    from sweeps import pareto

    def row(trial, hidden, collapsed=None):
        return {"trial": trial, "model": "lstm_sa", "hidden_size": hidden, "n_params": hidden,
                "fp16_kib": 1.0, "val_uar": 0.5, "test_uar": 0.5, "uar": 0.5,
                "model_ms_per_s": 0.1, "model_ms_q1": 0.09, "model_ms_q3": 0.11,
                "model_rel": 1.0, "features_ms_per_s": 4.0, "features_ms_q1": 3.9,
                "features_ms_q3": 4.1, "latency_features": "mfcc_chroma at 48000 Hz",
                "latency_cpu": "Some CPU", "latency_threads": 1,
                "collapsed_models": collapsed}  # fmt: skip

    rows = [row(0, 16), row(1, 32, collapsed=3)]
    text = pareto.table(rows, [0], "val")
    lines = text.splitlines()
    assert lines[1].endswith("  0") and lines[2].endswith("  1 [COLLAPSED 3]")
    assert "0.100   0.090-0.110  1.00" in lines[1]
    assert lines[-2].startswith(
        "features mfcc_chroma at 48000 Hz: 4.00 ms (IQR 3.90-4.10) per second of audio;"
    )
    assert lines[-1] == "latencies measured on Some CPU, 1 thread, apart from training"
    pareto.write_csv(tmp_path / "p.csv", rows, [0])
    with open(tmp_path / "p.csv") as f:
        written = list(csv.DictReader(f))
    assert [r["collapsed_models"] for r in written] == ["", "3"]
