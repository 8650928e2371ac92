"""Optuna storages and studies: the only module of the sweep engine that opens a storage.

* default: an Optuna journal file under the workdir (`<workdir>/<study>/optuna.journal`),
  safe for many processes on one machine;
* `sqlite:///PATH`: one worker only (SQLite has no row locks: concurrent workers pop the same
  queued trial; measured: docs/sweeps.md);
* `postgresql+psycopg://user:password@host:port/db` (the `postgres` extra): many machines.

The URL may also come from `$RESLSTM_STORAGE`, so a password never has to appear in a command
line; it is only ever printed redacted.
"""

from __future__ import annotations

import json
import os
import pathlib
import warnings

import optuna

ENV_STORAGE = "RESLSTM_STORAGE"


class StorageError(ValueError):
    """A storage URL or study that cannot be used (one line, password redacted)."""


def redact(url: str) -> str:
    """The URL with its password hidden."""
    if "://" not in url:
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: hide everything between :// and @
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}" if "@" in rest else url


def describe(url: str | None, workdir: pathlib.Path, study: str) -> str:
    return redact(url) if url else f"journal file {journal_path(workdir, study)}"


def journal_path(workdir: pathlib.Path, study: str) -> pathlib.Path:
    return pathlib.Path(workdir) / study / "optuna.journal"


def check_url(url: str | None, workers: int) -> None:
    """Refuse what cannot work, before anything is created."""
    if url is None:
        return
    if url.startswith("sqlite:///"):
        if workers > 1:
            raise StorageError(
                "--storage sqlite:/// allows one worker only (SQLite cannot lock a queued "
                "trial: workers would train the same trial twice); use the default journal "
                "file or PostgreSQL, or --workers 1"
            )
        return
    if url.startswith("postgresql"):
        if not url.startswith("postgresql+psycopg://"):
            raise StorageError(
                f"--storage {redact(url)}: spell the driver, postgresql+psycopg://..."
            )
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise StorageError(
                "PostgreSQL storage needs the postgres extra: pip install -e '.[postgres]'"
            ) from None
        return
    raise StorageError(
        f"--storage {redact(url)}: unsupported; use sqlite:///PATH or "
        "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB (default: a journal file)"
    )


TORN_SUFFIX = ".torn"
# Optuna's journal lock is a symlink beside the journal; a writer killed while holding it (a
# crash mid-append) leaves it, and the next writer breaks it once the journal has not changed
# for this long (Optuna's default). Every journal this module opens or repairs uses it.
JOURNAL_LOCK_GRACE_SECONDS = 30


def journal_lock(path: pathlib.Path):
    """The lock every writer of the journal at `path` takes (Optuna's symlink lock)."""
    from optuna.storages.journal import JournalFileSymlinkLock

    return JournalFileSymlinkLock(str(path), grace_period=JOURNAL_LOCK_GRACE_SECONDS)


def check_journal(path: pathlib.Path, *, repair: bool) -> str | None:
    """Check a journal file before it is opened; returns a warning line, or None.

    A crash in the middle of a write leaves the last line without its newline. Optuna reads
    past it, but the next record appended lands on the same line, and from then on every
    read fails: the whole study is lost. With `repair` (the launcher, before any worker opens
    the journal), an incomplete last line is moved to `<journal>.torn` and the journal cut back
    to its last complete record (a complete record that only lacks its newline gets it).
    Readers pass `repair=False` and change nothing.

    The repair holds the writers' lock (`journal_lock`): another launcher's worker may be
    appending at this moment, and its record, half-written, would look torn. Under the lock, a
    torn line is a dead writer's; if it died holding the lock, the repair waits out the lock's
    grace (`JOURNAL_LOCK_GRACE_SECONDS` without a change to the journal) and breaks it, as any
    writer would.

    Raises:
      StorageError: a record before the last line is damaged (naming the file and line): the
        journal is never written to.
    """
    if not path.exists():
        return None
    if not repair:
        return _check_journal(path, repair=False)
    lock = journal_lock(path)
    lock.acquire()
    try:
        return _check_journal(path, repair=True)
    finally:
        lock.release()


def _check_journal(path: pathlib.Path, *, repair: bool) -> str | None:
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1  # the complete lines: data[:end]
    for number, line in enumerate(data[:end].splitlines(), start=1):
        try:
            json.loads(line)
        except ValueError:
            raise StorageError(
                f"{path}: line {number} is not a journal record (damaged mid-file); the study "
                "cannot be read and was not written to: restore the file from a backup or use "
                "another --study"
            ) from None
    tail = data[end:]
    if not tail:
        return None
    try:
        json.loads(tail)
        complete = True
    except ValueError:
        complete = False
    if not repair:
        return f"warning: {path}: its last line is incomplete (a crash while writing)"
    if complete:
        with open(path, "ab") as f:
            f.write(b"\n")
        return f"warning: {path}: its last record lacked its newline (a crash); added it"
    torn = path.with_name(path.name + TORN_SUFFIX)
    with open(torn, "ab") as f:
        f.write(tail + b"\n")
    with open(path, "r+b") as f:
        f.truncate(end)
    return (f"warning: {path}: its last line was cut off by a crash ({len(tail)} bytes); "
            f"moved it to {torn}; the study goes on from the records before it")  # fmt: skip


def open_storage(url: str | None, workdir: pathlib.Path, study: str, *, create: bool = True):
    """An Optuna storage object for `url` (None: the journal file of `study`).

    `create=False` (readers): a journal file that does not exist is a StorageError, never
    created."""
    if url is None:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = journal_path(workdir, study)
        if not create and not path.exists():
            raise StorageError(f"no study {study!r}: no journal file {path} (check --study, and "
                               "--sweep-out: the --out of its sweep)")  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path), lock_obj=journal_lock(path)))
    try:
        if url.startswith("sqlite:///"):
            if not create and not pathlib.Path(url[len("sqlite:///") :]).exists():
                raise StorageError(f"no study {study!r}: no database {redact(url)}")
            pathlib.Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
            return optuna.storages.RDBStorage(url)
        return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
    except StorageError:
        raise
    except Exception as exc:  # sqlalchemy/psycopg raise many kinds; one line, redacted
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StorageError(
            f"cannot open storage {redact(url)}: {message.replace(url, redact(url))}"
        ) from None


def create_or_load(storage, study: str, space, seed: int) -> optuna.Study:
    """Create the study (before any worker starts) or load it and check it fits the space.

    `create_study(load_if_exists=True)` silently keeps the stored directions, so they are
    compared with the space's, as are the space name and sampler seed recorded at creation.
    """
    try:
        created = optuna.create_study(
            storage=storage, study_name=study, directions=space.directions, load_if_exists=True
        )
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StorageError(f"cannot create or load study {study}: {message}") from None
    stored = [d.name.lower() for d in created.directions]
    if stored != space.directions:
        raise StorageError(
            f"study {study} exists with directions {stored}, space {space.name} needs "
            f"{space.directions}; use another --study"
        )
    attrs = created.user_attrs
    if not attrs:
        with warnings.catch_warnings():  # "experimental since 3.2": stable in practice
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            created.set_metric_names(space.metrics)
        created.set_user_attr("space", space.name)
        created.set_user_attr("sampler_seed", seed)
    elif attrs.get("space") != space.name:
        raise StorageError(
            f"study {study} was made for space {attrs.get('space')}, not {space.name}; "
            "use another --study"
        )
    return created


def storage_url_from(flag: str | None) -> str | None:
    """--storage, else $RESLSTM_STORAGE, else None (the journal file)."""
    return flag or os.environ.get(ENV_STORAGE) or None


def results_path(study_dir: pathlib.Path, recorded: str) -> pathlib.Path:
    """A trial's results file from its `results` attribute: relative to the study directory
    (`trials/N.json`), so a report runs from any directory. Studies written before that
    recorded a path relative to where the sweep was launched (or absolute): used when the
    study-relative path does not exist."""
    relative = pathlib.Path(study_dir) / recorded  # an absolute `recorded` stays itself
    return relative if relative.exists() else pathlib.Path(recorded)


def completed_results(url: str | None, study_name: str, workdir="runs") -> list[tuple[str, float]]:
    """(results file, objective value) of every completed trial of a study, for reports."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if url is None:
        check_journal(journal_path(pathlib.Path(workdir), study_name), repair=False)
    storage = open_storage(url, pathlib.Path(workdir), study_name, create=False)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise StorageError(
            f"no study {study_name!r} in {redact(url or 'the journal')}; "
            f"studies there: {', '.join(names) or 'none'}"
        ) from None
    items = []
    study_dir = pathlib.Path(workdir) / study_name
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        path = t.user_attrs.get("results")
        if not path:
            raise StorageError(f"trial {t.number} of {study_name} has no results file attribute")
        items.append((str(results_path(study_dir, path)), float(t.values[0])))
    if not items:
        raise StorageError(f"study {study_name!r} has no completed trial yet")
    return items


if __name__ == "__main__":
    import sys

    from reslstm_jax import flags

    sys.exit(flags.not_a_command(__spec__.name))
