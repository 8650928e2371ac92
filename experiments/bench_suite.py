"""`python -m experiments.bench --suite-compiles [PYTEST_ARGS]`: which test compiles what.

Most of a cold run of the test suite is XLA compiling (docs/performance.md, "The test suite"),
and a program is compiled once per run only if every test that trains it shares its static
shapes. This runs pytest (the suite, or the tests and flags given after the flag) and gives
each test the compiling that no other test shares:

* every process of the run (the pytest processes and every subprocess they start) logs each
  lookup of JAX's persistent compilation cache with its time, and how long each program took
  to trace, to lower to MLIR and to compile (or to read from the cache), as JAX's own timers
  measure them (a `sitecustomize` module on `PYTHONPATH` adds a handler to JAX's
  `jax._src.lru_cache` and `jax._src.dispatch` loggers in each interpreter);
* a pytest plugin records each test's start and end in its process;
* each lookup belongs to the test running in its process at that moment (subprocesses carry
  their test process's name); each program's compile time is the one JAX stored in its cache
  entry (whole seconds).

The suite's cache (`JAX_COMPILATION_CACHE_DIR`, which tests/conftest.py sets and each test
record names) must hold the programs afterwards: run it on a warm cache, or cold (an empty
cache: `--cold` as the first flag after `--suite-compiles`, which uses a fresh cache
directory). Prints one line per test, most exclusive compiling first: its seconds, its
exclusive and total compile seconds, and the names of its programs of a second or more (`*`
exclusive, `/k` shared by k tests); then the seconds every process spent in JAX's three steps,
measured, for the programs of a second or more and for the many smaller ones (eager
operations) that the cache's whole seconds record as 0, and the tests that spent most on them.
Run it from the checkout (pytest finds the suite there); a `sitecustomize` of your own on the
path is shadowed for the run.
"""

from __future__ import annotations

import bisect
import collections
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

# written to the run's folder: one log file per process, named after its test process and pid
SITECUSTOMIZE = """\
import logging, os

def keylog(worker):
    handler = logging.FileHandler(
        os.path.join(os.environ["SUITE_COMPILES_LOG"], f"keys-{worker}-{os.getpid()}.log"))
    handler.setFormatter(logging.Formatter("%(created)f %(message)s"))
    for name in ("jax._src.lru_cache", "jax._src.dispatch"):  # lookups; JAX's step timers
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False  # nothing reaches a process's stderr
        logger.addHandler(handler)

if os.environ.get("SUITE_COMPILES_LOG") and os.environ.get("SUITE_COMPILES_WORKER"):
    keylog(os.environ["SUITE_COMPILES_WORKER"])  # a test's subprocess
"""

PLUGIN = """\
import json, os, time
import pytest

def pytest_configure(config):
    if not hasattr(config, "workerinput") and getattr(config.option, "numprocesses", None):
        return  # xdist's controller: it runs no test (its processes would inherit the name)
    # xdist names its processes after interpreter start-up: the name goes to subprocesses
    worker = os.environ["SUITE_COMPILES_WORKER"] = os.environ.get("PYTEST_XDIST_WORKER", "main")
    import sitecustomize
    sitecustomize.keylog(worker)

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start = time.time()
    yield
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    log = os.environ["SUITE_COMPILES_LOG"]
    with open(os.path.join(log, f"tests-{worker}.jsonl"), "a") as f:
        f.write(json.dumps({"worker": worker, "test": item.nodeid, "start": start,
                            "end": time.time(),
                            "cache": os.environ.get("JAX_COMPILATION_CACHE_DIR")}) + "\\n")
"""

LOOKUP = re.compile(r"(\S+) Cache (?:hit|miss) for key: '(.+)'")
# jax._src.dispatch's timers (log_elapsed_time): tracing, lowering, compiling or reading the cache
STEP = re.compile(r"(\S+) Finished (tracing|jaxpr to MLIR module conversion|XLA compilation of) "
                  r"(\S+)(?: for jit)? in ([0-9.]+) sec")  # fmt: skip
STEPS = {"tracing": "trace", "jaxpr to MLIR module conversion": "lower",
         "XLA compilation of": "compile"}  # fmt: skip
SLACK = 0.5  # seconds after a test's end that still count as its own (its last subprocess)


def lookups(text: str) -> list[tuple[float, str]]:
    """(time, cache key) of each lookup in a process's log."""
    return [(float(m[1]), m[2]) for m in map(LOOKUP.match, text.splitlines()) if m]


def steps(text: str) -> list[tuple[float, str, float]]:
    """(time, step, seconds) of each of JAX's timed steps in a process's log: "trace", "lower"
    or "compile" (an XLA compilation, or the read of a cache entry on a hit)."""
    return [(float(m[1]), STEPS[m[2]], float(m[4])) for m in map(STEP.match, text.splitlines())
            if m]  # fmt: skip


def _running(windows: list[dict]):
    """A function (worker, time) -> the test running in that worker at that time, or
    "<session>" outside every test (fixtures built before the first test, imports)."""
    by_worker = collections.defaultdict(list)  # a process runs one test at a time
    for w in sorted(windows, key=lambda w: w["start"]):
        by_worker[w["worker"]].append(w)
    starts = {worker: [w["start"] for w in ws] for worker, ws in by_worker.items()}

    def test_at(worker: str, when: float) -> str:
        i = bisect.bisect_right(starts.get(worker, []), when) - 1  # the last test started
        running = by_worker[worker][i] if i >= 0 else None
        return running["test"] if running and when <= running["end"] + SLACK else "<session>"

    return test_at


def attribute(windows: list[dict], uses: list[tuple[str, float, str]]) -> dict[str, set]:
    """{test: cache keys it used}: each use (worker, time, key) goes to the test running in
    that worker at that time; uses outside every test go to "<session>" (fixtures built
    before the first test, imports)."""
    test_at = _running(windows)
    keys = collections.defaultdict(set)
    for worker, when, key in uses:
        keys[test_at(worker, when)].add(key)
    return keys


def step_seconds(windows: list[dict], timed: list[tuple[str, float, str, float]]) -> dict:
    """{test: {column: seconds}} of JAX's timed steps (worker, time, step, seconds), each given
    to its test as `attribute` does; columns "trace", "lower", "compile" (programs compiled
    or read in a second or more) and "compile<1s" (the others), with "n " + column counting
    them."""
    test_at = _running(windows)
    out = collections.defaultdict(collections.Counter)
    for worker, when, step, secs in timed:
        column = step if step != "compile" or secs >= 1 else "compile<1s"
        out[test_at(worker, when)][column] += secs
        out[test_at(worker, when)]["n " + column] += 1
    return out


def table(keys: dict[str, set], seconds: dict[str, float], durations: dict[str, float]) -> list:
    """Rows (test, duration, exclusive compile s, total compile s, [labels]) sorted by exclusive
    compiling: a key's seconds count in full for each test that used it (total) and for the
    only test that used it (exclusive)."""
    users = collections.Counter(k for ks in keys.values() for k in ks)
    rows = []
    for test, ks in keys.items():
        exclusive = sum(seconds.get(k, 0) for k in ks if users[k] == 1)
        total = sum(seconds.get(k, 0) for k in ks)
        labels = sorted(k.rsplit("-", 1)[0] + ("*" if users[k] == 1 else f"/{users[k]}")
                        for k in ks if seconds.get(k, 0) >= 1)  # fmt: skip
        rows.append((test, durations.get(test, 0.0), exclusive, total, labels))
    return sorted(rows, key=lambda r: (-r[2], -r[3], r[0]))


def compile_seconds(cache: pathlib.Path) -> dict[str, float]:
    """{key: compile seconds} of the entries of a JAX persistent cache (JAX's own reader)."""
    from jax._src import compilation_cache as cc

    out = {}
    for path in cache.glob("*-cache"):
        _, secs = cc.extract_executable_and_time(cc.decompress_executable(path.read_bytes()))
        out[path.name[: -len("-cache")]] = float(secs)
    return out


def main(argv: list[str]) -> int:
    cold = bool(argv[:1] == ["--cold"])
    pytest_args = argv[1:] if cold else argv
    with tempfile.TemporaryDirectory(prefix="suite-compiles-") as tmp:
        root = pathlib.Path(tmp)
        (root / "log").mkdir()
        (root / "sitecustomize.py").write_text(SITECUSTOMIZE)
        (root / "suite_compiles_plugin.py").write_text(PLUGIN)
        path = os.pathsep.join(filter(None, [tmp, os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "SUITE_COMPILES_LOG": str(root / "log"), "PYTHONPATH": path}
        if cold:
            env["JAX_COMPILATION_CACHE_DIR"] = str(root / "cache")
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "suite_compiles_plugin",
                               "-p", "no:cacheprovider", *pytest_args], env=env)  # fmt: skip
        windows = [json.loads(line) for f in sorted((root / "log").glob("tests-*.jsonl"))
                   for line in f.read_text().splitlines()]  # fmt: skip
        uses, timed = [], []
        for f in sorted((root / "log").glob("keys-*")):
            worker, text = f.name.split("-")[1], f.read_text()
            uses += [(worker, when, key) for when, key in lookups(text)]
            timed += [(worker, when, step, secs) for when, step, secs in steps(text)]
        # the cache the tests ran with (tests/conftest.py's, unless --cold or the environment
        # named one)
        caches = {w["cache"] for w in windows if w.get("cache")}
        cache = pathlib.Path(caches.pop()) if len(caches) == 1 else None
        seconds = compile_seconds(cache) if cache is not None else {}
    durations = {w["test"]: w["end"] - w["start"] for w in windows}
    rows = table(attribute(windows, uses), seconds, durations)
    used = {k for _, _, k in uses}
    print(f"\n{len(used)} programs used, {sum(seconds.get(k, 0) for k in used):.0f} s of "
          f"compiling recorded in {cache} (whole seconds)")  # fmt: skip
    print(f"{'test s':>7} {'excl s':>7} {'all s':>7}  test  [programs >= 1 s]")
    for test, duration, exclusive, total, labels in rows:
        print(f"{duration:7.1f} {exclusive:7.0f} {total:7.0f}  {test}  {' '.join(labels)}")
    print(steps_report(step_seconds(windows, timed)))
    return proc.returncode


def steps_report(per_test: dict, top: int = 15) -> str:
    """The run's totals of JAX's timed steps, then the tests that spent most on the programs
    under a second (which the cache's whole seconds do not show)."""
    total = sum(per_test.values(), collections.Counter())
    small = "compile<1s"
    lines = [f"\nJAX's steps, every process, measured: trace {total['trace']:.0f} s, lower "
             f"{total['lower']:.0f} s, compile or cache read {total['compile'] + total[small]:.0f}"
             f" s: {total['compile']:.0f} s in {total['n compile']} programs of a second or more,"
             f" {total[small]:.0f} s in {total['n ' + small]} under a second",
             f"{'trace':>7} {'lower':>7} {'<1s':>7} {'n <1s':>7} {'>=1s':>7}  test"]  # fmt: skip
    for test, c in sorted(per_test.items(), key=lambda kv: -kv[1][small])[:top]:
        lines.append(f"{c['trace']:7.1f} {c['lower']:7.1f} {c[small]:7.1f} {c['n ' + small]:7d}"
                     f" {c['compile']:7.1f}  {test}")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    from reslstm_jax import flags

    sys.exit(flags.not_a_command(__spec__.name))
