"""The interrupt handling's pure parts (the signals themselves: tests/test_train_cli.py,
tests/test_sweeps.py, tests/test_features.py, in real processes)."""

from __future__ import annotations

import logging
import signal

import pytest

from reslstm_jax import interrupts


@pytest.fixture
def fresh(monkeypatch):
    """The module's signal bookkeeping, empty, restored after the test."""
    for name in ("_received", "_pending"):
        monkeypatch.setattr(interrupts, name, [])
    monkeypatch.setattr(interrupts, "_deferring", [0])


def test_a_signal_inside_a_deferred_block_is_raised_when_it_ends(fresh):
    done = []
    with pytest.raises(interrupts.Interrupted) as caught, interrupts.deferred():
        with interrupts.deferred():  # nested: only the outermost end raises
            interrupts._raise(signal.SIGINT, None)  # what the handler does
            done.append("inner")
        done.append("outer")  # the block still finishes its work
    assert done == ["inner", "outer"] and caught.value.signum == signal.SIGINT
    assert interrupts.received() == signal.SIGINT
    with pytest.raises(interrupts.Interrupted):  # outside a block: at once
        interrupts._raise(signal.SIGTERM, None)


def test_logged_interrupts_are_dropped_and_other_errors_kept():
    def record(exc):
        info = (type(exc), exc, None)
        return logging.LogRecord("absl", logging.ERROR, __file__, 1, "failed", (), info)

    assert not interrupts._not_an_interrupt(record(interrupts.Interrupted(signal.SIGINT)))
    assert interrupts._not_an_interrupt(record(RuntimeError("disk full")))
    assert interrupts._not_an_interrupt(
        logging.LogRecord("absl", logging.INFO, __file__, 1, "saved", (), None)
    )
