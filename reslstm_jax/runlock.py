"""One process per run folder: a lock taken before any work and held for the run.

```python
with runlock.hold(out):        # FolderBusy (one line) when another process holds it
    ...                        # train, export: everything that writes into `out`
```
The lock is an OS file lock (`filelock`, flock on Linux and macOS) on `.<name>.lock` beside the
folder, so that a command which refuses an existing folder (export) still can, and a folder
never exists only because a command was refused. The kernel releases the lock when its holder
exits, however it exits (a kill, a crash): no stale lock to detect or remove. The holder's pid,
host and command are written to `.<name>.lock.owner`, which the refused process names. Not
promised: on NFS and other network file systems whether flock locks hold across machines
depends on the mount; sweeps' shared workdirs and studies are never locked (many launchers
share them by design).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket
import sys


class FolderBusy(Exception):
    """Another process holds the folder (the message is one line naming it and the holder)."""


def lock_path(folder) -> pathlib.Path:
    """The lock file of run folder `folder`: `.<name>.lock` beside it."""
    folder = pathlib.Path(folder).expanduser().absolute()
    return folder.parent / f".{folder.name}.lock"


@contextlib.contextmanager
def hold(folder):
    """Hold `folder`'s lock for the `with` block (its parent folder is created); FolderBusy
    at once when another process holds it."""
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
