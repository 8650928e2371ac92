"""Ctrl-C and SIGTERM for the command-line entry points: one line, exit 130 / 143, seconds.

```python
if __name__ == "__main__":
    sys.exit(interrupts.run(main))              # installs, calls main(), leaves on a signal
```
(`main` called in-process, as tests do, installs nothing.) On SIGINT or SIGTERM the main
thread gets `Interrupted` (a BaseException, so `except Exception` blocks let it through while
`with` blocks and `finally` clauses still run), and `run` calls `leave`: the registered
cleanups run (a sweep launcher stops its workers, a worker gives back its trials), then the
`at_leave` functions (what the interpreter's exit would have done: W&B's temporary folders go,
`reslstm_jax.tracking`), one line is printed ("interrupted; rerun the same command to
resume"), and the process exits with 128 + the signal (130, 143) through `os._exit`: the
interpreter's shutdown with XLA's threads alive can crash (a segfault was seen after Ctrl-C
during compilation).

Python runs signal handlers between bytecodes only, so a main thread inside a long C++ call (an
XLA compilation takes 10-20 s) would delay them. The C-level handler also writes the signal
number to a wakeup socket (`signal.set_wakeup_fd`), read by a watcher thread at once: when the
main thread has not left within `GRACE_SECONDS`, the watcher calls `leave` itself.

Leaving at any point is safe for the files: every file the project writes is written to a
temporary name and renamed (`reslstm_jax.artifacts`), and orbax finalises checkpoints by
renaming, so an interrupted run holds complete files only, and rerunning the same command
resumes from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable

MESSAGE = "interrupted; rerun the same command to resume"
GRACE_SECONDS = 3.0
SIGNALS = (signal.SIGINT, signal.SIGTERM)

_cleanups: list[Callable[[], None]] = []
_at_leave: list[Callable[[], None]] = []  # `at_leave`: for the life of the process
_leaving = threading.Lock()
_wakeup: list[socket.socket] = []  # kept open for the life of the process


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived (`signum`)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_received: list[int] = []  # the signals received, in order
_deferring = [0]  # depth of `deferred` blocks the main thread is in
_pending: list[int] = []  # signals received inside them, raised when they end


def _raise(signum, frame) -> None:
    _received.append(signum)
    if _deferring[0]:
        _pending.append(signum)
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def deferred():
    """A block the main thread finishes before it takes a signal: `Interrupted` is raised when
    the block ends (a checkpoint save: orbax, interrupted inside its finalisation, logs the
    exception with a traceback). The watcher still leaves after GRACE_SECONDS if the block
    takes longer; the files stay whole either way (module docstring)."""
    _deferring[0] += 1
    try:
        yield
    finally:
        _deferring[0] -= 1
    if not _deferring[0] and _pending:
        raise Interrupted(_pending.pop(0))


def received() -> int | None:
    """The first signal received (SIGINT or SIGTERM), or None: an exception raised while one
    is pending may be the interrupt in another form, not a failure of the work."""
    return _received[0] if _received else None


@contextlib.contextmanager
def cleanup_on_interrupt(cleanup: Callable[[], None]):
    """Within the block, run `cleanup` (fast) before the process leaves on a signal: stop child
    processes, give back claimed work. Does nothing unless `install`ed."""
    _cleanups.append(cleanup)
    try:
        yield
    except BaseException:
        # leaving through the main thread (the interrupt, or what C code made of it): clean up
        # on the way out
        if _received:
            with contextlib.suppress(ValueError):
                _cleanups.remove(cleanup)
                with contextlib.suppress(Exception):
                    cleanup()
        raise
    finally:
        with contextlib.suppress(ValueError):
            _cleanups.remove(cleanup)


def at_leave(fn: Callable[[], None]) -> None:
    """Run `fn` (fast, local: no I/O that can hang) when the process leaves on a signal, after
    the cleanups: for what the interpreter's exit would have done and `os._exit` skips (its
    atexit handlers and finalisers), such as removing a library's temporary folders. Once per
    function, whether `install`ed or not (a process that never installs never leaves here)."""
    if fn not in _at_leave:
        _at_leave.append(fn)


def leave(signum: int, message: str = MESSAGE) -> None:
    """Run the cleanups, print `message` once, exit with 128 + `signum`. Never returns."""
    if not _leaving.acquire(blocking=False):  # the other thread is already leaving
        threading.Event().wait()
    for cleanup in [*reversed(_cleanups), *_at_leave]:
        with contextlib.suppress(Exception):  # leaving must not fail; the exit code says why
            cleanup()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    finally:
        os._exit(128 + signum)


def _watch(receiver: socket.socket) -> None:
    while True:
        data = receiver.recv(1)
        if not data:
            return
        if data[0] in SIGNALS:
            # give the main thread the chance to leave through its `finally` clauses
            threading.Event().wait(GRACE_SECONDS)
            leave(data[0])


def install() -> None:
    """Handle SIGINT and SIGTERM as described above (call from the main thread, once)."""
    if _wakeup or threading.current_thread() is not threading.main_thread():
        return
    receiver, sender = socket.socketpair()
    sender.setblocking(False)
    _wakeup.extend((receiver, sender))
    signal.set_wakeup_fd(sender.fileno(), warn_on_full_buffer=False)
    for signum in SIGNALS:
        signal.signal(signum, _raise)
    # The handler raises wherever the main thread is, a garbage-collection callback or a
    # `__del__` included, where Python prints "Exception ignored in ..." with a traceback and
    # drops the exception: leave from there at once instead.
    previous = sys.unraisablehook

    def unraisable(info) -> None:
        if isinstance(info.exc_value, Interrupted):
            leave(info.exc_value.signum)
        previous(info)

    sys.unraisablehook = unraisable
    # absl logging (orbax's) reports an exception passing through its threads' joins with a
    # traceback; the interrupt is not an error: drop those records.
    logging.getLogger("absl").addFilter(_not_an_interrupt)
    threading.Thread(target=_watch, args=(receiver,), name="interrupts", daemon=True).start()


def _not_an_interrupt(record) -> bool:
    """A logging filter: False for a record that carries `Interrupted` as its exception."""
    return not (record.exc_info and isinstance(record.exc_info[1], Interrupted))


def run(main: Callable[..., int], *args) -> int:
    """`install`, then `main(*args)`; on a signal, `leave`."""
    install()
    try:
        return main(*args)
    except Interrupted as stop:
        leave(stop.signum)
        raise  # unreachable: leave exits
    except BaseException:
        # The exception may be the interrupt transformed on its way up: C code that was
        # interrupted reports its own error ("ImportError: initialization failed" when the
        # signal arrived inside an extension module's import).
        if _received:
            leave(_received[0])
        raise
