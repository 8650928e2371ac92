"""A small process pool of plain `python -c` workers fed JSON jobs through pipes.

Why not `multiprocessing`: fork is unsafe once JAX's threads exist in the caller, and spawn
(or forkserver) re-imports the caller's main script, which crashes a script without an
`if __name__ == "__main__"` guard. These workers start clean whatever the caller holds.

```python
replies = workers.run("reslstm_jax.features:_handle_job", jobs, workers=2, desc="features")
```
A handler takes one JSON-able job dict and returns a JSON-able reply dict; an exception in a
handler stops the run with `WorkerError` naming the job.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import importlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

# The thread pools of the numerical libraries a worker loads (NumPy's OpenBLAS, OpenMP, MKL):
# one thread per worker unless the caller's environment sets them.
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class WorkerError(RuntimeError):
    """A handler raised, or a worker process died."""


def serve(handler: Callable[[dict], dict]) -> None:
    """Worker main loop: one JSON job per stdin line, one JSON reply per stdout line."""
    # The replies get their own copy of stdout; anything else that prints (Python or C code)
    # goes to stderr, so it can never corrupt the protocol.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    # Ctrl-C reaches the whole process group: the parent handles it by closing our stdin; we
    # finish the job in progress and exit instead of dying with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for line in sys.stdin:
        job = json.loads(line)
        try:
            reply = {"ok": handler(job)}
        except Exception as error:  # reported to the parent, which stops the run
            reply = {"error": f"{type(error).__name__}: {error}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def _worker_code(target: str) -> str:
    module, function = target.split(":")
    return (
        f"from reslstm_jax.workers import serve; from {module} import {function} as handler; "
        "serve(handler)"
    )


def run(
    target: str,
    jobs: Sequence[dict],
    *,
    workers: int,
    progress: bool = True,
    desc: str = "",
    unit: str = "file",
) -> list[dict]:
    """Run `target` ("module:function") on every job in `workers` processes.

    Returns the replies in job order. With one worker and few jobs it still uses a process, so
    the caller's state never leaks into the handler.
    """
    from tqdm.auto import tqdm

    if not jobs:
        return []
    env = dict(os.environ)
    # Import this very package in the workers, even when it runs from a source tree.
    package_root = str(pathlib.Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    # The workers are meant to keep one core each busy. Left to their defaults, OpenBLAS and
    # OpenMP start a thread per core in every worker, whose idle threads spin: on 2 cores two
    # feature workers took 54 s for the 1,440 files of the synthetic corpus (95 s of CPU),
    # with one thread each 27 s (41 s of CPU). (The feature extractors also limit their own
    # BLAS to one thread, `extractors.one_blas_thread`, which keeps their values the same.)
    for name in THREAD_VARS:
        env.setdefault(name, "1")
    importlib.import_module(target.split(":")[0])  # fail here, not in every worker
    pending = collections.deque(enumerate(jobs))
    replies: list[dict | None] = [None] * len(jobs)
    lock = threading.Lock()
    errors: list[str] = []
    processes: list[subprocess.Popen] = []
    drive = functools.partial(_drive, pending=pending, replies=replies, errors=errors, lock=lock)
    count = max(1, min(workers, len(jobs)))
    try:
        with tqdm(total=len(jobs), unit=unit, desc=desc, disable=not progress) as bar:
            for _ in range(count):
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-c", _worker_code(target)],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        env=env,
                        text=True,
                        encoding="utf-8",
                    )
                )
            threads = [
                threading.Thread(target=drive, args=(process, bar), daemon=True)
                for process in processes
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        _stop(processes)
    if errors:
        raise WorkerError(errors[0])
    return replies  # type: ignore[return-value]


def _drive(process: subprocess.Popen, bar: Any, *, pending: collections.deque, replies: list,
           errors: list[str], lock: threading.Lock) -> None:  # fmt: skip
    """One thread per worker: hand `process` the next job whenever it has finished the
    previous one, until the jobs run out or some job failed (its error in `errors`)."""
    while True:
        with lock:
            if errors or not pending:
                return
            index, job = pending.popleft()
        try:
            process.stdin.write(json.dumps(job) + "\n")
            process.stdin.flush()
            line = process.stdout.readline()
        except (OSError, ValueError):  # the worker died, or its pipe was closed on Ctrl-C
            line = ""
        reply = json.loads(line) if line else {"error": "a worker process died"}
        with lock:
            if "error" in reply:
                errors.append(f"{job}: {reply['error']}")
                return
            replies[index] = reply["ok"]
            bar.update(1)


def _stop(processes: list[subprocess.Popen]) -> None:
    """End of jobs: close each worker's stdin (its loop ends), then wait for it (30 s at most,
    then kill)."""
    for process in processes:
        with contextlib.suppress(OSError):
            process.stdin.close()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
