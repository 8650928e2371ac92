"""A throwaway PostgreSQL server for tests: `with running() as url: ...`.

The server lives in a fresh temporary directory, listens on 127.0.0.1 on a free port (and on a
Unix socket inside that directory, never the system's /var/run/postgresql), trusts every local
connection, and has a user and database `optuna`. It is stopped and deleted on exit.

Debian installs the server binaries under /usr/lib/postgresql/<version>/bin, which is not on
PATH, so they are looked up there first. `initdb` refuses to run as root: under root the server
runs as the `postgres` OS user (created by the Debian package).

Without a server (or without psycopg), tests skip with the reason; with `CI_REQUIRE_POSTGRES=1`
(set by .ci/run, which installs the server) they fail instead, so CI cannot silently skip them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pathlib
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

REQUIRE_ENV = "CI_REQUIRE_POSTGRES"
USER = DATABASE = PASSWORD = "optuna"


def unavailable(reason: str):
    """Skip the calling test, or fail it when CI requires PostgreSQL."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: PostgreSQL tests must run here)", pytrace=False)
    pytest.skip(reason)


def find_bin_dir() -> pathlib.Path | None:
    """The newest /usr/lib/postgresql/<version>/bin holding the server, else PATH's, else None."""

    def version(path: str) -> tuple[int, ...]:
        match = re.search(r"/postgresql/([\d.]+)/bin/", path)
        return tuple(int(x) for x in match.group(1).split(".") if x) if match else ()

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    for initdb in reversed(found):
        bin_dir = pathlib.Path(initdb).parent
        if (bin_dir / "pg_ctl").exists() and (bin_dir / "postgres").exists():
            return bin_dir
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl", path=str(pathlib.Path(initdb).parent)):
        return pathlib.Path(initdb).parent
    return None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the server may lose a race for it: retried)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user() -> dict:
    """subprocess keyword arguments that run a command as the server's OS user.

    As root that is `postgres` (initdb refuses root); otherwise the current user.
    """
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        unavailable("running as root, and there is no `postgres` OS user to run initdb as")
    # extra_groups=[] drops root's supplementary groups as well.
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _run(args: list, what: str, **kwargs) -> None:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {proc.stderr or proc.stdout}")


@contextlib.contextmanager
def running(attempts: int = 3) -> Iterator[str]:
    """Start a server, yield `postgresql+psycopg://optuna:optuna@127.0.0.1:PORT/optuna`, then
    stop and delete it. Skips (or fails under CI_REQUIRE_POSTGRES=1) when it cannot run."""
    try:
        import psycopg  # noqa: F401  (the storage's driver: the `postgres` extra)
    except ImportError:
        unavailable("psycopg is not installed (pip install -e '.[postgres]')")
    bin_dir = find_bin_dir()
    if bin_dir is None:
        unavailable(
            "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin or PATH); "
            "apt-get install postgresql"
        )
    as_user = _as_server_user()
    # Directly under the system temp dir: pytest's tmp_path is root-only (0700), which the
    # postgres user could not enter; a short path also keeps the Unix socket under 107 bytes.
    root = pathlib.Path(tempfile.mkdtemp(prefix="pg-test-"))
    data = root / "data"
    ctl = [str(bin_dir / "pg_ctl"), "-D", str(data)]
    started = False
    try:
        if as_user:
            os.chown(root, as_user["user"], as_user["group"])
        # A working directory the server user can enter (the caller's may be root-only).
        as_user = {**as_user, "cwd": root}
        _run([bin_dir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
              "--no-sync"], "initdb", **as_user)  # fmt: skip
        for attempt in range(attempts):
            port = free_port()
            # Durability is pointless for a throwaway server and fsync dominates its cost.
            options = (f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off")  # fmt: skip
            try:
                _run([*ctl, "-l", root / "log", "-o", options, "-w", "-t", "60", "start"],
                     "pg_ctl start", **as_user)  # fmt: skip
                started = True
                break
            except RuntimeError:
                if attempt == attempts - 1:  # most likely not a port race: show the log
                    log = (root / "log").read_text() if (root / "log").exists() else ""
                    raise RuntimeError(f"PostgreSQL did not start:\n{log[-3000:]}") from None
        _run([bin_dir / "psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
              "-d", "postgres", "-v", "ON_ERROR_STOP=1",
              "-c", f"CREATE USER {USER} PASSWORD '{PASSWORD}'",
              "-c", f"CREATE DATABASE {DATABASE} OWNER {USER}"], "psql")  # fmt: skip
        yield f"postgresql+psycopg://{USER}:{PASSWORD}@127.0.0.1:{port}/{DATABASE}"
    finally:
        if started:
            # immediate: nothing on this server is worth a clean shutdown.
            subprocess.run([*ctl, "-m", "immediate", "-w", "stop"], capture_output=True,
                           timeout=60, **as_user)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
