"""Sweep workers as SLURM jobs, through submitit (the optional `cluster` extra).

```sh
python -m sweeps.run --space hidden_sizes --launcher slurm --slurm-partition gpu \
    --slurm-gpus-per-worker 1 --slurm-time 4:00:00 --workers 8 \
    --storage postgresql+psycopg://user:password@db-host/optuna
```

The launcher prepares the study and the data as for local workers, submits `--workers` jobs
(one job array) and returns their ids; each job is a sweep worker (`worker`) that trains
trials until the study has none left. A job that dies leaves its trial running without a
heartbeat: another worker's reaper fails and retries it (docs/sweeps.md).

The storage URL (which may hold a password) is never written into submitit's job files:
the jobs read it from `$RESLSTM_STORAGE`, which the launcher sets for the submission (SLURM
and submitit's local executor pass the submitting environment on to the jobs).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re

# how the jobs are run: "slurm" (sbatch), or submitit's "local" executor (tests, one machine)
CLUSTERS = ("slurm", "local")


@dataclasses.dataclass(frozen=True)
class SlurmSettings:
    """What each worker job asks SLURM for."""

    partition: str | None = None
    gpus_per_worker: int = 1
    cpus_per_worker: int = 4
    minutes: int = 240
    cluster: str = "slurm"


class ClusterError(ValueError):
    """A cluster flag that cannot work (the message names it)."""


def minutes_from(text: str) -> int:
    """SLURM's time formats -> whole minutes (seconds round up): "MM", "MM:SS", "HH:MM:SS",
    "D-HH", "D-HH:MM", "D-HH:MM:SS"."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+(?::\d+){0,2})", text.strip())
    if not match:
        raise ClusterError(f"--slurm-time {text!r} is not a SLURM time (e.g. 4:00:00 or 1-00:00)")
    parts = [int(v) for v in match.group(2).split(":")]
    if match.group(1) is not None:  # D-HH[:MM[:SS]]
        hours, minutes, seconds = (parts + [0, 0])[:3]
        hours += 24 * int(match.group(1))
    elif len(parts) == 3:
        hours, minutes, seconds = parts
    else:  # MM or MM:SS
        hours, minutes, seconds = 0, parts[0], (parts + [0])[1]
    total = hours * 60 + minutes + (1 if seconds else 0)
    if total < 1:
        raise ClusterError(f"--slurm-time {text!r} must be at least a minute")
    return total


def check(settings: SlurmSettings, storage_url: str | None, workers) -> None:
    """Refuse what cannot work before anything is submitted (`ClusterError`)."""
    import importlib.util

    if importlib.util.find_spec("submitit") is None:
        raise ClusterError("--launcher slurm needs submitit: pip install -e '.[cluster]'")
    if workers == "auto":
        raise ClusterError("--launcher slurm needs --workers N (the number of jobs)")
    if settings.cluster == "slurm" and not (storage_url or "").startswith("postgresql"):
        raise ClusterError(
            "--launcher slurm needs --storage postgresql+psycopg://... (or $RESLSTM_STORAGE): "
            "jobs on other machines cannot share a journal file"
        )
    if settings.gpus_per_worker < 0 or settings.cpus_per_worker < 1:
        raise ClusterError("--slurm-gpus-per-worker must be >= 0 and --slurm-cpus-per-worker >= 1")


def submit(config, workers: int, settings: SlurmSettings, folder: pathlib.Path) -> list[str]:
    """Submit `workers` sweep-worker jobs (one array); their job ids. `config`: the sweep's
    `engine.SweepConfig`; `folder`: submitit's job files and logs (private to this user)."""
    import submitit

    from sweeps import storage

    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)  # logs name the study and its hosts
    executor = submitit.AutoExecutor(folder=folder, cluster=settings.cluster)
    executor.update_parameters(
        name=f"sweep-{config.study}", timeout_min=settings.minutes,
        gpus_per_node=settings.gpus_per_worker, cpus_per_task=settings.cpus_per_worker,
        tasks_per_node=1, nodes=1, slurm_partition=settings.partition,
    )  # fmt: skip
    payload = json.dumps(dataclasses.asdict(dataclasses.replace(config, storage=None)))
    before = os.environ.get(storage.ENV_STORAGE)
    if config.storage:  # the jobs inherit it from the submitting environment, not a file
        os.environ[storage.ENV_STORAGE] = config.storage
    try:
        with executor.batch():
            jobs = [executor.submit(worker, payload, rank) for rank in range(workers)]
    finally:
        if before is None:
            os.environ.pop(storage.ENV_STORAGE, None)
        else:
            os.environ[storage.ENV_STORAGE] = before
    return [job.job_id for job in jobs]


def worker(payload: str, rank: int) -> int:
    """One job: a sweep worker of rank `rank` (the storage from `$RESLSTM_STORAGE`)."""
    from reslstm_jax import hardware
    from sweeps import engine, storage

    hardware.single_threaded_xla()
    config = engine.SweepConfig(**json.loads(payload))
    config = dataclasses.replace(config, storage=storage.storage_url_from(None),
                                 progress=False)  # fmt: skip
    engine.run_worker(config, rank)
    return rank


if __name__ == "__main__":
    import sys

    from reslstm_jax import flags

    sys.exit(flags.not_a_command(__spec__.name))
