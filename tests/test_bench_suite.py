"""experiments.bench_suite: which test of the suite compiles what (the pure parts; the command
itself runs pytest, documented in docs/performance.md)."""

from __future__ import annotations

import pytest

from experiments import bench_suite

WINDOWS = [
    {"worker": "gw0", "test": "a", "start": 10.0, "end": 20.0},
    {"worker": "gw0", "test": "b", "start": 20.5, "end": 30.0},
    {"worker": "gw1", "test": "c", "start": 10.0, "end": 40.0},
]


@pytest.mark.parametrize(
    "use, test",
    [
        (("gw0", 15.0, "k"), "a"),
        (("gw0", 20.3, "k"), "a"),  # a subprocess's last lookup just after its test's end
        (("gw0", 25.0, "k"), "b"),
        (("gw1", 25.0, "k"), "c"),  # the same moment on the other process: its own test
        (("gw0", 5.0, "k"), "<session>"),  # before any test: a session fixture
        (("gw2", 15.0, "k"), "<session>"),
    ],
)
def test_each_lookup_belongs_to_the_test_running_in_its_process(use, test):
    assert bench_suite.attribute(WINDOWS, [use]) == {test: {"k"}}


def test_exclusive_compiling_counts_the_programs_no_other_test_used():
    keys = {"a": {"jit_run-1", "jit_init-2", "jit_add-3"}, "b": {"jit_run-1"}, "c": {"jit_init-4"}}
    seconds = {"jit_run-1": 12.0, "jit_init-2": 5.0, "jit_add-3": 0.0, "jit_init-4": 2.0}
    rows = bench_suite.table(keys, seconds, {"a": 30.0, "b": 3.0})
    assert rows == [
        ("a", 30.0, 5.0, 17.0, ["jit_init*", "jit_run/2"]),  # jit_add: under a second
        ("c", 0.0, 2.0, 2.0, ["jit_init*"]),
        ("b", 3.0, 0.0, 12.0, ["jit_run/2"]),
    ]


def test_log_lines_and_cache_entries_are_read_as_jax_writes_them(tmp_path):
    from jax._src import compilation_cache as cc

    text = ("1796597659.333784 Cache hit for key: 'jit_run-5c09'\n"
            "some other record\n"
            "1796597660.5 Cache miss for key: 'jit__lambda-58ed'\n")  # fmt: skip
    assert bench_suite.lookups(text) == [(1796597659.333784, "jit_run-5c09"),
                                         (1796597660.5, "jit__lambda-58ed")]  # fmt: skip
    entry = cc.compress_executable(cc.combine_executable_and_time(b"executable", 7))
    (tmp_path / "jit_run-5c09-cache").write_bytes(entry)
    assert bench_suite.compile_seconds(tmp_path) == {"jit_run-5c09": 7.0}


def test_jax_step_timers_are_read_as_jax_logs_them_and_split_at_a_second():
    # the three messages of jax._src.dispatch.log_elapsed_time, as the handler formats them
    text = ("100.5 Finished tracing run for jit in 0.250000000 sec\n"
            "101.0 Finished jaxpr to MLIR module conversion jit(run) in 0.500000000 sec\n"
            "108.0 Finished XLA compilation of jit(run) in 6.332249403 sec\n"
            "108.1 Finished XLA compilation of jit(squeeze) in 0.012425900 sec\n"
            "109.0 Cache hit for key: 'jit_run-5c09'\n")  # fmt: skip
    timed = bench_suite.steps(text)
    assert timed == [(100.5, "trace", 0.25), (101.0, "lower", 0.5),
                     (108.0, "compile", 6.332249403), (108.1, "compile", 0.0124259)]  # fmt: skip
    per_test = bench_suite.step_seconds(WINDOWS, [("gw0", *t) for t in timed])
    assert set(per_test) == {"<session>"}  # before gw0's first test
    late = bench_suite.step_seconds(WINDOWS, [("gw1", t[0] - 90, *t[1:]) for t in timed])
    assert dict(late["c"]) == {"trace": 0.25, "n trace": 1, "lower": 0.5, "n lower": 1,
                               "compile": 6.332249403, "n compile": 1,
                               "compile<1s": 0.0124259, "n compile<1s": 1}  # fmt: skip
    report = bench_suite.steps_report(late)
    assert "6 s in 1 programs of a second or more, 0 s in 1 under a second" in report
