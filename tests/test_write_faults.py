"""Write errors (a full disk, a permission, a file-size limit) in one line: the atomic writers
and the checkpoint writers, with faults injected where the system raises them
(docs/reliability.md, "Write errors")."""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import signal
import sys

import numpy as np
import pytest

from reslstm_jax import artifacts, checkpoint

TENSORSTORE_FULL = (
    'RESOURCE_EXHAUSTED: Error writing "a/0.0" in OCDBT database at local file "/x/": Failed '
    "to write 300107 bytes to file 15: No space left on device [os_error_code='28']"
)


def chained(outer: BaseException, inner: BaseException) -> BaseException:
    outer.__context__ = inner
    return outer


@pytest.mark.parametrize(
    "error,reason",
    [
        (OSError(errno.ENOSPC, "x"), "No space left on device"),
        (PermissionError(errno.EACCES, "x"), "Permission denied"),
        (OSError(errno.EROFS, "x"), "Read-only file system"),
        (ValueError(TENSORSTORE_FULL), "No space left on device"),
        (
            ValueError("PERMISSION_DENIED: Error opening file [os_error_code='13']"),
            "Permission denied",
        ),  # fmt: skip
        (ValueError("UNKNOWN: write failed [os_error_code=27]"), "File too large"),
        (
            chained(RuntimeError("save finalize failed"), ValueError(TENSORSTORE_FULL)),
            "No space left on device",
        ),  # fmt: skip
        (ValueError("learning rate must be finite"), None),
        (ValueError("RESOURCE_EXHAUSTED: out of memory allocating 8 GiB"), None),  # not a disk
        (OSError(errno.ECONNREFUSED, "x"), None),
        (KeyError("state"), None),
    ],
)
def test_write_error_reason(error, reason):
    assert artifacts.write_error_reason(error) == reason


class _FailingFile:
    """A file whose writes fail with `code` (the disk filled up, or the place turned
    read-only, after the open)."""

    def __init__(self, real, code: int):
        self.real, self.code = real, code

    def write(self, data):
        raise OSError(self.code, os.strerror(self.code))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()


@pytest.mark.parametrize(
    "where,code",
    [
        ("write", errno.ENOSPC),
        ("write", errno.EDQUOT),
        ("open", errno.EACCES),
        ("rename", errno.EROFS),
    ],  # fmt: skip
)
def test_an_atomic_write_that_fails_is_one_line_and_leaves_the_old_file(
    tmp_path, monkeypatch, where, code
):
    target = tmp_path / "results.json"
    artifacts.write_json(target, {"old": 1})

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    if where == "write":
        real_open = open

        def failing_open(*args, **kwargs):
            return _FailingFile(real_open(*args, **kwargs), code)  # noqa: SIM115 (closed by it)

        monkeypatch.setattr(artifacts, "open", failing_open, raising=False)
    elif where == "open":
        monkeypatch.setattr(artifacts, "open", fail, raising=False)
    else:
        monkeypatch.setattr(artifacts.os, "replace", fail)
    with pytest.raises(artifacts.WriteFailed) as caught:
        artifacts.write_json(target, {"new": 2})
    assert str(caught.value) == f"cannot write {target}: {os.strerror(code)}"
    assert isinstance(caught.value, OSError) and isinstance(caught.value, ValueError)
    monkeypatch.undo()
    assert artifacts.read_json(target) == {"old": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # no .part left


@contextlib.contextmanager
def file_size_limit(n_bytes: int):
    """Writes of this process past `n_bytes` into any file fail with EFBIG, in the kernel, as
    a full disk fails them: a real fault for every writer, tensorstore's C++ included, which
    needs neither root nor a mount (SIGXFSZ ignored, so the write returns the error)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE and SIGXFSZ as on Linux")
def test_a_checkpoint_that_cannot_be_written_is_one_line_and_the_run_resumes(tmp_path, capfd):
    state = {"w": np.arange(200_000, dtype=np.float32), "b": np.zeros(3, np.float32)}
    history = {"loss": np.zeros(2, np.float32)}
    keeper = checkpoint.Checkpointer(tmp_path / "checkpoints", {"run": 1})
    keeper.save(2, state, history)
    capfd.readouterr()
    too_large = os.strerror(errno.EFBIG)
    with file_size_limit(64 * 1024), pytest.raises(artifacts.WriteFailed) as caught:
        keeper.save(4, {**state, "w": state["w"] + 1}, history)
    step = tmp_path / "checkpoints" / "4"
    then = "rerun the same command when it can be written: it resumes after epoch 2"
    assert str(caught.value) == f"cannot write {step.absolute()}: {too_large}; {then}"
    with file_size_limit(64 * 1024), pytest.raises(artifacts.WriteFailed) as caught:
        checkpoint.save_best(tmp_path / "best", state, {})
    assert str(caught.value).startswith(
        f"cannot write {(tmp_path / 'best').absolute()}: {too_large}"
    )
    # orbax's own copies of the error (absl, asyncio, tensorstore callbacks) are not printed
    printed = capfd.readouterr()
    assert "Traceback" not in printed.err + printed.out, printed.err[-3000:]
    # nothing partial is left, and a new process resumes from epoch 2
    leftovers = [p.name for p in (tmp_path / "checkpoints").iterdir() if "tmp" in p.name]
    assert not leftovers and not (tmp_path / "best").exists()
    resumed = checkpoint.Checkpointer(tmp_path / "checkpoints", {"run": 1})
    epoch, restored, _ = resumed.restore(state, history)
    assert epoch == 2 and np.array_equal(restored["w"], state["w"])


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE and SIGXFSZ as on Linux")
def test_an_export_that_cannot_be_written_is_one_line_and_leaves_nothing(
    trained_run, tmp_path, run_main
):
    from reslstm_jax.export.__main__ import main as export_main

    out = tmp_path / "onnx"
    with file_size_limit(4 * 1024):  # the h8 graph is tens of KiB
        done = run_main(export_main, ["--run", trained_run[0], "--out", out])
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]  # after the usage line, as its misuse errors
    assert last.endswith(f"error: cannot write {out}: {os.strerror(errno.EFBIG)}")
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its .part
