"""The sweep engine on PostgreSQL: two local workers, one SIGKILLed mid-trial, the other finishes.

Needs a PostgreSQL server (Debian package `postgresql`) and psycopg (the `postgres` extra): the
test skips without them, and fails under CI_REQUIRE_POSTGRES=1 (see tests/pg_server.py).
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import optuna
import pg_server
import psutil
import pytest

from sweeps import spaces

ENV = {**os.environ, "WANDB_SILENT": "true", "WANDB_BASE_URL": "http://127.0.0.1:9"}
STUDY = "pg-kill"
TRIALS = 2  # one per worker: the killed worker's trial is retried by the other
State = optuna.trial.TrialState


@pytest.fixture
def corpus(tone_corpus) -> pathlib.Path:
    return tone_corpus


@pytest.fixture
def postgres_url():
    """A throwaway server's storage URL (skips, or fails in CI, when there is none)."""
    with pg_server.running() as url:
        yield url


def worker_process(launcher: subprocess.Popen, rank: int) -> psutil.Process | None:
    """The launcher's child running `python -m sweeps.run ... --worker RANK`, if any."""
    for child in psutil.Process(launcher.pid).children():
        try:
            args = child.cmdline()
        except psutil.Error:  # it exited between listing and reading
            continue
        if "--worker" in args and args[args.index("--worker") + 1] == str(rank):
            return child
    return None


def wait_for_running_trial(url: str, launcher: subprocess.Popen, timeout: float = 120):
    """The first RUNNING trial that a worker has claimed (its rank recorded), once there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert launcher.poll() is None, "the sweep ended before any trial ran"
        try:
            study = optuna.load_study(study_name=STUDY, storage=url)
        except KeyError:  # the launcher has not created it yet
            time.sleep(0.2)
            continue
        for trial in study.get_trials(deepcopy=False, states=(State.RUNNING,)):
            if "worker" in trial.user_attrs:
                return trial
        time.sleep(0.2)
    raise AssertionError(f"no trial RUNNING within {timeout} s")


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_worker_killed_mid_trial_is_reaped_and_its_trial_retried(
    corpus, feature_cache, tmp_path, postgres_url
):
    url = postgres_url
    workdir = tmp_path / "runs"
    args = [
        sys.executable, "-m", "sweeps.run", "--space", "hidden_sizes", "--corpus", "ravdess",
        "--data-dir", str(corpus), "--epochs", "2", "--storage", url, "--study", STUDY,
        "--workers", "2", "--trials", str(TRIALS), "--wandb", "disabled", "--no-latency",
        "--out", str(workdir), "--cache-dir", str(feature_cache), "--no-progress",
        # A dead worker's trial is reaped `grace` seconds after its last beat (default 60 s):
        # well over the beat period (no false reaps). The survivor, its own trial done, waits
        # for the dead one to go stale (finished + running trials reach --trials), reaps it
        # and trains the retry.
        "--heartbeat-seconds", "1", "--grace-seconds", "6",
    ]  # fmt: skip
    # Create Optuna's schema before the launcher starts: opening a storage creates missing tables,
    # and the poll below opening it while the launcher did the same raced in CI (a duplicate key
    # in pg_type, surfacing as IntegrityError or StorageInternalError depending on the call).
    optuna.storages.RDBStorage(url).remove_session()
    # Its own session, so that a failing test can stop the launcher and its workers together.
    launcher = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=ENV, start_new_session=True)  # fmt: skip
    try:
        victim = wait_for_running_trial(url, launcher)
        rank = victim.user_attrs["worker"]
        process = worker_process(launcher, rank)
        assert process is not None, f"no process for worker {rank}"
        # the storage URL (and its password) reaches the workers on stdin, never their argv,
        # which every local user can read
        workers = [worker_process(launcher, r) for r in (0, 1)]
        for worker in workers:
            assert worker is not None
            command = " ".join(worker.cmdline())
            assert "postgresql" not in command and "optuna:optuna@" not in command, command
        process.send_signal(signal.SIGKILL)  # mid-trial: compiling or training
        out, err = launcher.communicate(timeout=240)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.communicate()
    assert launcher.returncode == 0, out[-2000:] + err[-3000:]
    assert "worker exit codes" in err and "-9" in err  # the launcher noticed the kill
    assert "Pareto front" in out

    study = optuna.load_study(study_name=STUDY, storage=url)
    trials = study.get_trials(deepcopy=False)
    assert not [t.number for t in trials if t.state in (State.RUNNING, State.WAITING)]
    # The killed trial failed, and its retry (same point) completed on the surviving worker.
    killed = study.trials[victim.number]
    assert killed.state == State.FAIL
    retries = [t for t in trials if t.user_attrs.get("retry_of") == victim.number]
    assert len(retries) == 1, [(t.number, t.state, t.user_attrs) for t in trials]
    retry = retries[0]
    assert retry.state == State.COMPLETE and retry.params == killed.params
    assert retry.user_attrs["retries"] == 1 and retry.user_attrs["worker"] != rank
    # Every requested grid point completed exactly once: nothing lost, nothing trained twice.
    done = collections.Counter(
        json.dumps(t.params, sort_keys=True) for t in trials if t.state == State.COMPLETE
    )
    assert done == collections.Counter(
        json.dumps(p, sort_keys=True) for p in spaces.load("hidden_sizes").grid[:TRIALS]
    )
    assert [t.number for t in trials if t.state == State.FAIL] == [victim.number]
    # Results were written for the completed trials, the retry included.
    results = pathlib.Path(workdir, STUDY, "trials")
    assert (results / f"{retry.number}.json").exists()
