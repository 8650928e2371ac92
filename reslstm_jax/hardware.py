"""How JAX uses this machine's cores: one single-threaded CPU device per core.

XLA runs one program on one CPU device, and its own intra-op threads gain little on the small
matrices of these models (docs/performance.md). Splitting the *models* of a program over one
single-threaded device per core (`TrainConfig.devices`) keeps every core busy with its own
models instead. XLA's threads stay off even with one device: on some CPUs (the AMD EPYC
development VM) its threaded Eigen contractions sum in another order, so every gradient of a
model differed in the last bits between one threaded device and one device per core; single-
threaded, a run gives the same bits whatever the device count (tests/test_hardware.py).

```python
from reslstm_jax import hardware
hardware.use_cpu_cores()          # before JAX's first computation; entry points call it
```
"""

from __future__ import annotations

import os

from reslstm_jax.errors import ParameterError

SINGLE_THREAD_FLAG = "--xla_cpu_multi_thread_eigen=false"


def visible_gpus() -> list[str]:
    """The NVIDIA GPUs this process may use, without starting JAX: `CUDA_VISIBLE_DEVICES` when
    set (its entries; empty or "-1": none), else the indices `nvidia-smi -L` lists; none when
    JAX's CUDA plugin is not installed (the CPU build would not use them)."""
    import importlib.util
    import shutil
    import subprocess

    cuda = any(importlib.util.find_spec(name) is not None
               for name in ("jax_cuda12_plugin", "jax_cuda13_plugin"))  # fmt: skip
    if not cuda:
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        ids = [d.strip() for d in listed.split(",") if d.strip()]
        return [] if ids[:1] == ["-1"] else ids
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


def worker_environments(count: int | None, gpus: list[str], base: dict) -> list[dict]:
    """The environment of each local sweep worker.

    With GPUs: one worker per GPU (`count` None, "auto"), each seeing only its own
    (`CUDA_VISIBLE_DEVICES`), or `count` workers spread round-robin over them. On a CPU:
    `count` workers (auto: one per usable core), each with one XLA thread, so that N workers
    do not oversubscribe the cores.
    """
    if gpus:
        count = count or len(gpus)
        return [{**base, "CUDA_VISIBLE_DEVICES": gpus[rank % len(gpus)]} for rank in range(count)]
    count = count or usable_cores()
    flags = base.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        flags = f"{flags} {SINGLE_THREAD_FLAG}".strip()
    return [{**base, "XLA_FLAGS": flags} for _ in range(count)]


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def use_cpu_cores(count: int | None = None) -> int:
    """Give JAX `count` CPU devices (default: one per usable core) and return how many it has.

    XLA's intra-op threads are turned off (`XLA_FLAGS`, `single_threaded_xla`), so that the
    devices do not compete for the cores and the results do not depend on `count`. Must run
    before JAX's first computation: once a backend exists this changes nothing and returns the
    CPU devices JAX already has.
    """
    import jax

    if count is not None and count < 1:
        raise ValueError(f"the number of CPU devices must be >= 1, got {count}")
    count = count or usable_cores()
    try:
        # JAX has no public "is the backend up?"; this public option refuses to change once
        # it is, which answers the same question without touching jax._src.
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:
        return len(jax.devices("cpu"))
    single_threaded_xla()
    return count


def single_threaded_xla() -> None:
    """Turn XLA's CPU intra-op threads off for this process and the processes it starts
    (before JAX's backend starts), unless XLA_FLAGS already says how many to use. Every entry
    point that computes with JAX calls it (through `use_cpu_cores` or directly), and so does
    the test session: results then never depend on the machine's thread count."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {SINGLE_THREAD_FLAG}".strip()


def model_devices(models: int, requested: int | None = None) -> int:
    """How many devices a program of `models` models is split over: `requested` (default: all
    local devices of the default backend), never more than there are models."""
    import jax

    available = len(jax.local_devices())
    wanted = available if requested is None else requested
    if not 1 <= wanted <= available:
        raise ParameterError(
            "{devices} must be in [1, {available}] (the local {backend} devices), got {wanted}",
            available=available, backend=jax.default_backend(), wanted=wanted,
        )  # fmt: skip
    return max(1, min(wanted, models))
