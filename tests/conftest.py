"""Test-session setup shared by every test file."""

from __future__ import annotations

import os
import pathlib
import tempfile

# The tests run in parallel (pytest-xdist, `make test`). Two processes compiling librosa's numba
# functions into one cache at the same time corrupt it, and every later process segfaults
# (docs/data.md); features.extract_all guards its own workers, but parallel test processes
# each need a cache of their own. Subprocesses of a test inherit it. Always set, never
# `setdefault`: xdist workers inherit the controller's environment, so a default would give
# every worker the controller's directory.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
os.environ["NUMBA_CACHE_DIR"] = str(
    pathlib.Path(tempfile.gettempdir()) / f"reslstm-test-numba-{os.getuid()}-{_worker}"
)

# Every test process keeps JAX's default single CPU device: start the backend now, so that an
# entry point called in-process (experiments' `main` calls `hardware.use_cpu_cores`) cannot
# turn the rest of the session into two single-threaded devices. Tests that need two devices
# run them in a subprocess.
import jax  # noqa: E402

jax.devices()
