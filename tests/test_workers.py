"""The worker pool (`reslstm_jax.workers`): what its processes are started with."""

from __future__ import annotations

import os
import pathlib

import pytest

from reslstm_jax import workers


def thread_settings(job: dict) -> dict:
    """Worker handler: the numerical libraries' thread settings the worker was started with."""
    return {name: os.environ.get(name) for name in workers.THREAD_VARS}


@pytest.mark.parametrize(
    "caller, expected",
    [
        ({}, {name: "1" for name in workers.THREAD_VARS}),  # one thread per worker
        (
            {"OPENBLAS_NUM_THREADS": "3"},
            {**{n: "1" for n in workers.THREAD_VARS}, "OPENBLAS_NUM_THREADS": "3"},
        ),
    ],
)
def test_each_worker_keeps_one_thread_unless_the_caller_says_otherwise(
    caller, expected, monkeypatch
):
    for name in workers.THREAD_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in caller.items():
        monkeypatch.setenv(name, value)
    here = str(pathlib.Path(__file__).parent)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    )
    replies = workers.run("test_workers:thread_settings", [{}, {}], workers=2, progress=False)
    assert replies == [expected, expected]
    assert all(os.environ.get(n) == caller.get(n) for n in workers.THREAD_VARS)  # caller's own
