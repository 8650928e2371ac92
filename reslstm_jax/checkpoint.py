"""Checkpoints: the only module that imports orbax.

Layout of a run directory's `checkpoints/`:
```
checkpoints/
  run.json            what the checkpoints belong to (config fingerprint); resuming a
                      different configuration into the same directory is refused
  <epoch>/            orbax step directories: the stacked TrainState [M, ...] and the
                      history so far, after <epoch> epochs (the last `keep` are kept)
```
and `best/` (written once at the end): the best-validation parameters and BatchNorm
statistics of every model, stacked, for inference and export, with `best.files.json` beside
it (size and SHA-256 of every file of `best/`), so a damaged file is named, not guessed.

Damage (a disk filling up, a copy cut short) is survived: a step checkpoint that cannot be
restored is moved aside to `<epoch>.damaged` with a `CheckpointWarning`, and training resumes
from the one before (two are kept), or starts over when none is readable; `load_best` raises
`CheckpointDamaged` naming the damaged file. Each step checkpoint has an inventory too
(`checkpoints/<epoch>.files.json`): damage it shows is found before orbax reads anything,
because orbax's read tasks of a damaged checkpoint outlive the failed restore and print
tracebacks ("Event loop is closed") from tensorstore's callbacks.

A checkpoint that cannot be written (a full disk, a permission) is one line
(`artifacts.WriteFailed`) naming it, the reason and the epoch a rerun resumes from; its
partial temporary folder is removed, and orbax's side-logged copies of the error are dropped.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import shutil
import sys
import time
import warnings

import jax
import numpy as np
import orbax.checkpoint as ocp

from reslstm_jax import artifacts
from reslstm_jax.errors import chain


class CheckpointMismatch(ValueError):
    """The checkpoint directory belongs to another configuration."""


class CheckpointDamaged(ValueError):
    """A checkpoint cannot be read (one line naming the damaged file or directory)."""


class CheckpointWarning(UserWarning):
    """A damaged step checkpoint was skipped when resuming."""


# orbax's message for an array it cannot read (serialization._read_array_index_and_device_put)
ORBAX_READ_ERROR = "Encountered error while reading array index"


def orbax_leftover(record: logging.LogRecord) -> bool:
    """Whether `record` carries an error orbax also raises, logged with its traceback on the
    side: the read error of a damaged checkpoint's array, or a write error (a full disk, a
    permission: `artifacts.write_error_reason`), logged by orbax's signalling and commit
    threads (absl) or by asyncio for tasks nobody awaited once the first array failed (possibly
    long after; seen once in a cold suite run). Each is reported once, in one line: damage by
    `restore` and `load_best`, write errors by `Checkpointer.save` and `save_best`."""
    logged = record.exc_info[1] if record.exc_info else None
    if logged is None:
        return False
    if artifacts.write_error_reason(logged):
        return True
    return any(str(exc).startswith(ORBAX_READ_ERROR) for exc in chain(logged))


def _drop_orbax_leftovers() -> None:
    """Filter `orbax_leftover` records out of the loggers that print them, and tensorstore's
    "Event loop is closed" out of the unraisable exceptions (once)."""
    for name in ("asyncio", "absl"):
        log = logging.getLogger(name)
        if _not_a_leftover not in log.filters:
            log.addFilter(_not_a_leftover)
    if not getattr(sys.unraisablehook, "_drops_closed_loops", False):
        sys.unraisablehook = _closed_loop_dropper(sys.unraisablehook)


def _not_a_leftover(record: logging.LogRecord) -> bool:
    return not orbax_leftover(record)


def _closed_loop_dropper(previous):
    """An unraisable hook that drops RuntimeError("Event loop is closed") and passes the rest
    to `previous`. When one array of a checkpoint fails, orbax closes its event loop while
    tensorstore still completes the other arrays' writes or reads; each completion's callback
    meets the closed loop and is printed as unraisable (60 tracebacks for one full disk),
    though the failure itself is raised, and reported in one line."""

    def hook(unraisable) -> None:
        error = unraisable.exc_value
        if isinstance(error, RuntimeError) and str(error) == "Event loop is closed":
            return
        previous(unraisable)

    hook._drops_closed_loops = True
    return hook


def _write_failed(what: pathlib.Path, exc: BaseException, then: str):
    """After a failed save of the checkpoint directory `what`: its partial temporary folders
    removed (orbax writes `<name>.orbax-checkpoint-tmp*` beside it), and the one line of a
    write error (`then`: what to do), or None to let `exc` through."""
    _remove_partials(what)
    reason = artifacts.write_error_reason(exc)
    if reason is None:
        return None
    # The other arrays' writes that orbax abandoned when this one failed are coroutines nobody
    # awaits: collected (at the latest when the process ends) each printed "RuntimeWarning:
    # coroutine ... was never awaited" after the one line (2 full-disk runs in 6 here).
    warnings.filterwarnings("ignore", message=r"coroutine '.*write_fragment' was never awaited",
                            category=RuntimeWarning)  # fmt: skip
    return artifacts.WriteFailed(f"cannot write {what}: {reason}; {then}")


def _remove_partials(what: pathlib.Path, *, settle: float = 0.2, limit: float = 5.0) -> None:
    """Remove orbax's temporary folders of the failed save of `what`, until they stay gone.

    When one array's write fails, the writes of the others that tensorstore has in flight
    still land, and may put files into a folder being removed (rmtree then leaves it) or
    create it again: one full-disk run in 14 left `6.orbax-checkpoint-tmp` behind. So the
    removal is repeated until a check `settle` seconds after it finds none (at most `limit`
    seconds)."""
    deadline = time.monotonic() + limit
    while partials := list(what.parent.glob(f"{what.name}.orbax-checkpoint-tmp*")):
        for partial in partials:
            shutil.rmtree(partial, ignore_errors=True)
        if time.monotonic() > deadline:
            return
        time.sleep(settle)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _manager(directory: pathlib.Path, keep: int) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
    return ocp.CheckpointManager(directory.absolute(), options=options)


STAMP = "run.json"  # the fingerprint of the run whose checkpoints a directory holds


def check_stamp(directory: str | os.PathLike, fingerprint: dict) -> None:
    """CheckpointMismatch when `directory` holds the checkpoints of a run of another
    fingerprint; nothing is created or changed (a command checks this before it writes)."""
    stamp = pathlib.Path(directory) / STAMP
    if stamp.exists() and json.loads(stamp.read_text()) != json.loads(
        json.dumps(fingerprint, sort_keys=True)
    ):
        raise CheckpointMismatch(
            f"{directory} holds checkpoints of another configuration; "
            "use another output directory or delete it"
        )


class Checkpointer:
    """Saves and restores the stacked training state of one run.

    Args:
      directory: the run's checkpoint directory.
      fingerprint: JSON-able description of the run; a directory holding another one is
        refused (`CheckpointMismatch`) instead of silently mixing runs.
      keep: how many step checkpoints to keep.
    """

    def __init__(self, directory: str | os.PathLike, fingerprint: dict, keep: int = 2):
        self.directory = pathlib.Path(directory)
        self.keep = keep
        check_stamp(self.directory, fingerprint)
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = self.directory / STAMP
        if not stamp.exists():
            artifacts.write_text_atomic(stamp, json.dumps(fingerprint, sort_keys=True, indent=1))
        self._manager = _manager(self.directory, keep)

    def latest_epoch(self) -> int | None:
        return self._manager.latest_step()

    def save(self, epoch: int, state, history: dict) -> None:
        """Save after `epoch` epochs (blocks until written, so a kill right after is safe; a
        Ctrl-C during the save takes effect when it is written: `interrupts.deferred`)."""
        from reslstm_jax import interrupts

        item = {"state": state, "history": {k: np.asarray(v) for k, v in history.items()}}
        step = self.directory / str(epoch)
        _drop_orbax_leftovers()  # a write error is raised below, in one line
        with interrupts.deferred():
            try:
                self._manager.save(epoch, args=ocp.args.StandardSave(item))
                self._manager.wait_until_finished()
                # its inventory: a damaged step is found before orbax reads it (orbax's read
                # tasks of a damaged checkpoint outlive the failed restore and print tracebacks)
                artifacts.write_json(files_path(step), _inventory(step))
            except Exception as exc:
                done = [int(p.name) for p in self.directory.iterdir()
                        if p.name.isdigit() and int(p.name) < epoch]  # fmt: skip
                then = (f"rerun the same command when it can be written: it resumes after "
                        f"epoch {max(done)}" if done else "rerun the same command when it "
                        "can be written")  # fmt: skip
                if failed := _write_failed(step, exc, then):
                    raise failed from None
                raise
            kept = {str(s) for s in self._manager.all_steps()}
            for listing in self.directory.glob("*.files.json"):
                if listing.name.split(".")[0] not in kept:
                    listing.unlink(missing_ok=True)

    def restore(self, state_like, history_like: dict) -> tuple[int, object, dict] | None:
        """(epoch, state, history) of the latest readable checkpoint, shaped like the templates;
        None when there is none (start over).

        A checkpoint that cannot be restored is moved aside (`<epoch>.damaged`) with a
        `CheckpointWarning` naming it, and the one before is tried."""
        import warnings

        template = {
            "state": jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state_like),
            "history": {k: np.zeros(v.shape, v.dtype) for k, v in history_like.items()},
        }
        found, skipped = None, []
        _drop_orbax_leftovers()  # a damaged checkpoint is reported below, in one line
        for epoch in sorted(self._manager.all_steps(), reverse=True):
            try:
                check_inventory(self.directory / str(epoch))  # (older runs have none)
                item = self._manager.restore(epoch, args=ocp.args.StandardRestore(template))
            except Exception as exc:  # orbax and tensorstore raise many kinds for bad files
                skipped.append((epoch, _reason(exc)))
                continue
            found = epoch, item["state"], item["history"]
            break
        for epoch, reason in skipped:
            aside = self.directory / f"{epoch}.damaged"
            if aside.exists():
                shutil.rmtree(aside)
            os.replace(self.directory / str(epoch), aside)
            files_path(self.directory / str(epoch)).unlink(missing_ok=True)
            then = (
                f"resuming from epoch {found[0]}"
                if found
                else "no readable checkpoint left: training starts over"
            )
            message = (f"checkpoint {self.directory / str(epoch)} is damaged ({reason}); moved "
                       f"to {aside.name}; {then}")  # fmt: skip
            warnings.warn(message, CheckpointWarning, stacklevel=2)
        if skipped:  # the manager must forget the steps moved aside
            self._manager.close()
            self._manager = _manager(self.directory, self.keep)
        return found

    def close(self) -> None:
        self._manager.close()


def files_path(directory: pathlib.Path) -> pathlib.Path:
    """The inventory beside a checkpoint directory: `<run>/best.files.json` for `<run>/best/`,
    `checkpoints/<epoch>.files.json` for a step checkpoint."""
    return directory.parent / (directory.name + ".files.json")


def _inventory(directory: pathlib.Path) -> dict[str, list]:
    """relative path -> [size, sha256] of every file under `directory`."""
    from reslstm_jax.corpora.base import file_sha256

    return {str(p.relative_to(directory)): [p.stat().st_size, file_sha256(p)]
            for p in sorted(directory.rglob("*")) if p.is_file()}  # fmt: skip


def save_best(directory: str | os.PathLike, params, batch_stats) -> pathlib.Path:
    """Write the best parameters and statistics of every model (stacked) to `directory`, and
    its inventory (`files_path`)."""
    path = pathlib.Path(directory).absolute()
    _drop_orbax_leftovers()
    checkpointer = ocp.StandardCheckpointer()
    try:
        checkpointer.save(path, {"params": params, "batch_stats": batch_stats}, force=True)
        checkpointer.wait_until_finished()
        artifacts.write_json(files_path(path), _inventory(path))
    except Exception as exc:
        then = "rerun the same command when it can be written (it resumes from the last checkpoint)"
        if failed := _write_failed(path, exc, then):
            raise failed from None
        raise
    return path


def check_inventory(directory: str | os.PathLike) -> None:
    """Compare `directory` (best/ or a step checkpoint) with its inventory (when it has one).

    Raises:
      CheckpointDamaged: naming the first file that is missing, of another size or content.
    """
    path = pathlib.Path(directory).absolute()
    listing = files_path(path)
    if not listing.exists():  # runs written before the inventory existed
        return
    try:
        expected = json.loads(listing.read_text())
    except ValueError:
        raise CheckpointDamaged(f"{listing} is damaged (not JSON)") from None
    found = _inventory(path)
    for name, (size, digest) in expected.items():
        if name not in found:
            raise CheckpointDamaged(f"{path / name} is missing")
        if found[name][0] != size:
            raise CheckpointDamaged(f"{path / name} is damaged ({found[name][0]} of {size} bytes)")
        if found[name][1] != digest:
            raise CheckpointDamaged(f"{path / name} is damaged (its content changed)")


def load_best(directory: str | os.PathLike) -> dict:
    """{"params", "batch_stats"} as saved by `save_best` (NumPy/JAX arrays, stacked).

    Raises:
      CheckpointDamaged: a file of `directory` is missing or damaged, or orbax cannot read it.
    """
    path = pathlib.Path(directory).absolute()
    check_inventory(path)
    _drop_orbax_leftovers()
    try:
        return ocp.StandardCheckpointer().restore(path)
    except Exception as exc:
        raise CheckpointDamaged(f"{path} cannot be read ({_reason(exc)})") from None
