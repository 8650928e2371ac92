"""One process per run folder: a lock taken before any work and held for the run.

```python
with runlock.hold(out):        # FolderBusy (one line) when another process holds it
    ...                        # train, export: everything that writes into `out`
```
The lock is an OS file lock (`filelock`, flock on Linux and macOS) on a file of the folder's
own in `$RESLSTM_JAX_LOCKS` (default `~/.cache/reslstm_jax/locks`), named after the folder and a
hash of its resolved path: nothing is written in or beside the folder, so a command that is
refused writes nothing and export's "--out exists" still holds. The kernel releases the lock
when its holder exits, however it exits (a kill, a crash): no stale lock to detect or remove.
The holder's pid, host and command are written beside the lock, and the refused process names
them. Not promised: another machine sharing the folder (NFS) has its own lock directory, so
two machines are not kept apart; sweeps' shared workdirs and studies are never locked (many
launchers share them by design).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import socket
import sys


class FolderBusy(Exception):
    """Another process holds the folder (the message is one line naming it and the holder)."""


def lock_dir() -> pathlib.Path:
    """`$RESLSTM_JAX_LOCKS` or `~/.cache/reslstm_jax/locks`."""
    env = os.environ.get("RESLSTM_JAX_LOCKS")
    return pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "reslstm_jax" / "locks"


def lock_path(folder) -> pathlib.Path:
    """The lock file of run folder `folder`: `<name>-<hash of its resolved path>.lock`."""
    folder = pathlib.Path(folder).expanduser().resolve()
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:16]
    return lock_dir() / f"{folder.name or 'root'}-{digest}.lock"


@contextlib.contextmanager
def hold(folder):
    """Hold `folder`'s lock for the `with` block; FolderBusy at once when another process
    holds it."""
    import filelock

    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    owner = path.with_name(path.name + ".owner")
    lock = filelock.FileLock(path, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        try:
            holder = owner.read_text(encoding="utf-8").strip()
        except OSError:
            holder = ""
        by = f" ({holder})" if holder else ""
        raise FolderBusy(f"{folder} is in use by another process{by}; wait for it to end or "
                         "choose another folder") from None  # fmt: skip
    try:
        owner.write_text(f"pid {os.getpid()} on {socket.gethostname()}: "
                         f"{' '.join(sys.argv)[:200]}\n", encoding="utf-8")  # fmt: skip
        yield path
    finally:
        owner.unlink(missing_ok=True)
        lock.release()
