"""Heartbeats of a sweep worker's running trials, and the reaper of dead workers' trials.

A worker stamps its running trials every `heartbeat_seconds` (`Heartbeat`, a thread); any
worker fails the RUNNING trials whose stamp is older than `grace_seconds` and queues their
parameters again, up to `max_retries` times (`reap`). docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import threading
import time

import optuna

HEARTBEAT_ATTR = "reslstm:heartbeat"  # a system attribute (`Heartbeat`)


class Heartbeat:
    """Stamps `HEARTBEAT_ATTR` (epoch seconds) on this worker's running trials every `period`
    seconds.

    The stamp is a *system* attribute (set through the storage's public API): it is the
    engine's bookkeeping, not a result, so it stays out of the user attributes a researcher
    reads in the dashboard.
    """

    def __init__(self, study: optuna.Study, storage, period: float):
        self.period = period
        self.storage = storage
        self.study_id = storage.get_study_id_from_name(study.study_name)
        self.trials: dict[int, int] = {}  # trial number -> storage trial id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def add(self, trial: optuna.Trial) -> None:
        """Start stamping `trial` (stamped at once)."""
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id,
                                                                        trial.number)  # fmt: skip
        self.trials[trial.number] = trial_id
        self._stamp(trial_id, time.time())

    def remove(self, trial: optuna.Trial) -> None:
        self.trials.pop(trial.number, None)

    def _stamp(self, trial_id: int, now: float) -> None:
        # A finished trial refuses attributes; the next beat no longer lists it.
        with contextlib.suppress(Exception):
            self.storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, now)

    def beat(self) -> None:
        now = time.time()
        for trial_id in list(self.trials.values()):
            self._stamp(trial_id, now)

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
        beat = trial.system_attrs.get(HEARTBEAT_ATTR)
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


if __name__ == "__main__":
    import sys

    from reslstm_jax import flags

    sys.exit(flags.not_a_command(__spec__.name))
