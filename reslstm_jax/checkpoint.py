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
statistics of every model, stacked, for inference and export.
"""

from __future__ import annotations

import json
import os
import pathlib

import jax
import numpy as np
import orbax.checkpoint as ocp

from reslstm_jax import artifacts


class CheckpointMismatch(ValueError):
    """The checkpoint directory belongs to another configuration."""


def _manager(directory: pathlib.Path, keep: int) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
    return ocp.CheckpointManager(directory.absolute(), options=options)


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
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = self.directory / "run.json"
        text = json.dumps(fingerprint, sort_keys=True, indent=1)
        if stamp.exists():
            if json.loads(stamp.read_text()) != json.loads(text):
                raise CheckpointMismatch(
                    f"{self.directory} holds checkpoints of another configuration; "
                    "use another output directory or delete it"
                )
        else:
            artifacts.write_text_atomic(stamp, text)
        self._manager = _manager(self.directory, keep)

    def latest_epoch(self) -> int | None:
        return self._manager.latest_step()

    def save(self, epoch: int, state, history: dict) -> None:
        """Save after `epoch` epochs (blocks until written, so a kill right after is safe)."""
        item = {"state": state, "history": {k: np.asarray(v) for k, v in history.items()}}
        self._manager.save(epoch, args=ocp.args.StandardSave(item))
        self._manager.wait_until_finished()

    def restore(self, state_like, history_like: dict) -> tuple[int, object, dict]:
        """(epoch, state, history) of the latest checkpoint, shaped like the templates."""
        epoch = self._manager.latest_step()
        if epoch is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        template = {
            "state": jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state_like),
            "history": {k: np.zeros(v.shape, v.dtype) for k, v in history_like.items()},
        }
        item = self._manager.restore(epoch, args=ocp.args.StandardRestore(template))
        return epoch, item["state"], item["history"]

    def close(self) -> None:
        self._manager.close()


def save_best(directory: str | os.PathLike, params, batch_stats) -> pathlib.Path:
    """Write the best parameters and statistics of every model (stacked) to `directory`."""
    path = pathlib.Path(directory).absolute()
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(path, {"params": params, "batch_stats": batch_stats}, force=True)
    checkpointer.wait_until_finished()
    return path


def load_best(directory: str | os.PathLike) -> dict:
    """{"params", "batch_stats"} as saved by `save_best` (NumPy/JAX arrays, stacked)."""
    return ocp.StandardCheckpointer().restore(pathlib.Path(directory).absolute())
