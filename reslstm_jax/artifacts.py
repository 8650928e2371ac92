"""Every file a run writes: atomic writes, the file names, and their readers.

```python
artifacts.write_json(out / artifacts.RESULTS_FILE, results)   # never half-written
info = artifacts.read_inference_info(run_dir)                 # what predict needs
```

A training directory (`python -m reslstm_jax.train --out DIR`, an experiment's
`<out>/<setup>/<config>/`, a sweep's `groups/<trials>/`) holds:

* `results.json` (`RESULTS_FILE`): settings, card, per-model histories and test metrics, every
  aggregation, edge metrics (`docs/training.md`);
* `card.json` (`CARD_FILE`): the protocol card; `extraction_report.json` (`EXTRACTION_FILE`):
  files the feature extractor skipped; `skipped.csv` (`SKIPPED_FILE`): every file under the
  corpus root that was not used (not audio, another corpus part, a bad header, failed features,
  ...), one row each: path, reason; `predictions.csv` (`PREDICTIONS_FILE`): every model's
  out-of-fold predictions, one row per test utterance and seed: id, file, speaker, fold, seed,
  true and predicted label, and the class probabilities of the selected checkpoint (the same
  data as results.json, for any tool);
* `inference.json` (`INFERENCE_FILE`) and `normalisation.npz` (`NORMALISATION_FILE`): what
  `reslstm_jax.predict` needs next to `best/` (`BEST_DIR`, the best-validation parameters of
  every model, orbax); `checkpoints/` (`CHECKPOINTS_DIR`): the resumable training state.

Writes go to a temporary file in the target directory (`.<name>.<random>.part`) that is
renamed into place, so a file exists under its final name only when complete (a kill leaves
the old file or none, and perhaps a `.part` file).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import pathlib
import re
import secrets
import tempfile

import numpy as np

from reslstm_jax.errors import chain

RESULTS_FILE = "results.json"
CARD_FILE = "card.json"
EXTRACTION_FILE = "extraction_report.json"
SKIPPED_FILE = "skipped.csv"
PREDICTIONS_FILE = "predictions.csv"
INFERENCE_FILE = "inference.json"
NORMALISATION_FILE = "normalisation.npz"
BEST_DIR = "best"
CHECKPOINTS_DIR = "checkpoints"
INFERENCE_FORMAT = 1
TEMPORARY_SUFFIX = ".part"


# ----------------------------------------------------------------------------- atomic writes


def write_bytes_atomic(path, data: bytes) -> pathlib.Path:
    """Write `data` to `path` atomically (a temporary file renamed into place)."""
    path = pathlib.Path(path)
    # The temporary name is chosen before the file exists, so that an interrupt arriving at
    # any bytecode (a signal between `mkstemp` returning and its result being stored left a
    # `.part` behind) still finds it to remove.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{TEMPORARY_SUFFIX}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and (reason := write_error_reason(exc)):
            raise WriteFailed(f"cannot write {path}: {reason}") from None
        raise
    return path


class OutputError(ValueError):
    """An output location that cannot be written, or would overwrite another run (one line)."""


class WriteFailed(OutputError, OSError):
    """A file or checkpoint could not be written (a full disk, a permission, a read-only
    mount): one line naming it and the system's reason. An OSError too, for callers that
    treat any failed write as one."""


# errno values that mean "this place cannot take the write" (not a bug of the caller)
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS,
                          errno.EFBIG, errno.EIO, errno.ENOENT, errno.ENOTDIR})  # fmt: skip
# tensorstore (orbax's array writer) reports an OS error as a status text raised as ValueError:
# "RESOURCE_EXHAUSTED: Error writing ...: No space left on device [os_error_code='28']"
# (its status alone says too little: RESOURCE_EXHAUSTED is memory too)
_TENSORSTORE_ERRNO = re.compile(r"\[os_error_code='?(\d+)'?\]")


def write_error_reason(exc: BaseException) -> str | None:
    """The system's reason for a failed write ("No space left on device") found in `exc`, its
    causes or its contexts: an OSError of a `WRITE_ERRNOS` value, or tensorstore's status text
    naming one (what orbax raises, as ValueError, when a checkpoint cannot be written); None when
    `exc` is no such error."""
    for error in chain(exc):
        code = error.errno if isinstance(error, OSError) else None
        if code is None and isinstance(error, ValueError):
            found = _TENSORSTORE_ERRNO.search(str(error))
            code = int(found[1]) if found else None
        if code in WRITE_ERRNOS:
            return os.strerror(code)
    return None


def write_text_atomic(path, text: str) -> pathlib.Path:
    """Write UTF-8 text to `path` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def json_safe(obj):
    """`obj` with every non-finite float (NaN, +-inf; Python or NumPy) replaced by None, so it
    serialises as strict JSON (`null`). Containers are copied; NumPy scalars become Python
    numbers. Where a number can be undefined (the sample std of one seed, the loss of a model
    that diverged), the documented value is null."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def dumps(obj, *, indent: int | None = 1) -> str:
    """Strict JSON text of `obj` (`json_safe`: no NaN or Infinity, which most JSON parsers
    refuse); every JSON file and document the project writes goes through here."""
    return json.dumps(json_safe(obj), indent=indent, allow_nan=False)


def write_json(path, obj, *, indent: int = 1) -> pathlib.Path:
    """Write `obj` as strict JSON (`dumps`) to `path` atomically."""
    return write_text_atomic(path, dumps(obj, indent=indent))


def write_npz(path, **arrays) -> pathlib.Path:
    """Write NumPy arrays as an .npz archive to `path` atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return write_bytes_atomic(path, buffer.getvalue())


def read_json(path) -> dict:
    """A JSON file's content."""
    return json.loads(pathlib.Path(path).read_text())


# ----------------------------------------------------------------------------- a run's files


def write_skipped(path, skipped) -> pathlib.Path:
    """`skipped` (objects with `.path` and `.reason`, e.g. `Manifest.skipped`) as a CSV with the
    header `path,reason`, one row per file, sorted by path (the header alone when none)."""
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "reason"])
    for item in sorted(skipped, key=lambda s: (s.path, s.reason)):
        writer.writerow([item.path, item.reason])
    return write_text_atomic(path, buffer.getvalue())


def read_skipped(path) -> list[tuple[str, str]]:
    """(path, reason) rows of a `skipped.csv`."""
    import csv

    with open(path, newline="") as f:
        return [(row["path"], row["reason"]) for row in csv.DictReader(f)]


def write_run(out_dir, dataset, results: dict) -> pathlib.Path:
    """Write a finished run's card, extraction report, skipped files and results; returns
    results.json."""
    out_dir = pathlib.Path(out_dir)
    write_json(out_dir / CARD_FILE, dataset.card)
    extraction = getattr(dataset, "extraction", None)
    if extraction is not None:
        write_json(out_dir / EXTRACTION_FILE, extraction.to_json())
    manifest = getattr(dataset, "manifest", None)
    if manifest is not None:
        write_skipped(out_dir / SKIPPED_FILE, manifest.skipped)
        write_predictions(out_dir / PREDICTIONS_FILE, manifest, results)
    return write_json(out_dir / RESULTS_FILE, results)


def write_predictions(path, manifest, results: dict) -> pathlib.Path:
    """`predictions.csv` of a run: one row per test utterance and seed (`results["runs"]`'s
    test predictions, with the file, its segment's start and end in seconds (empty for a whole
    file) and the speaker from `manifest`); the probabilities columns (`p_<class>`) are empty
    for a model that gave none (the classical baseline)."""
    rows = []
    for run in results["runs"]:
        test = run["test_predictions"]
        probabilities = test.get("probabilities") or [[] for _ in test["ids"]]
        rows += [(uid, run["fold"], run["seed"], label, pred, probs)
                 for uid, label, pred, probs in zip(test["ids"], test["labels"],
                                                    test["predictions"], probabilities,
                                                    strict=True)]  # fmt: skip
    return write_prediction_rows(path, manifest, results["card"]["classes"], rows)


def write_prediction_rows(path, manifest, classes, rows) -> pathlib.Path:
    """A predictions CSV (`predictions.csv`, a cross-corpus target's): a row per (utterance
    id, fold, seed, label index, predicted index, class probabilities or empty) of `rows`,
    with the utterance's file, segment and speaker from `manifest`."""
    classes = list(classes)
    where = {u.id: u for u in manifest.utterances}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "file", "start", "end", "speaker", "fold", "seed", "label",
                     "prediction", *(f"p_{c}" for c in classes)])  # fmt: skip
    for uid, fold, seed, label, pred, probs in rows:
        u = where.get(uid)
        segment = u.segment if u and u.segment else ("", "")
        writer.writerow([uid, u.path if u else "", *segment, u.speaker if u else "", fold, seed,
                         classes[label], classes[pred],
                         *(probs if len(probs) else [""] * len(classes))])  # fmt: skip
    return write_text_atomic(path, out.getvalue())


def write_inference_info(out_dir, dataset, model, layout, dropouts=None) -> None:
    """What `reslstm_jax.predict` needs next to `best/`: the model configuration, the stacked
    model layout (`reslstm_jax.train.layout.ModelLayout`), the feature extractor, the classes,
    the training audio's sample rates, and each fold's normalisation statistics
    (`normalisation.npz`: mean, std [K, D]).

    `dropouts`: the rate each configuration trained with. Training passes dropout as a dynamic
    hyperparameter, so the model's own `dropout` field is only its default: the record holds
    the rates used (`dropout`, one per configuration, and in `model_config` when they agree).
    """
    import dataclasses

    out_dir = pathlib.Path(out_dir)
    card = dataset.card
    model_config = {k: v for k, v in dataclasses.asdict(model).items() if k != "name"}
    used = [float(d) for d in dropouts] if dropouts is not None else None
    if used and "dropout" in model_config and len(set(used)) == 1:
        model_config["dropout"] = used[0]
    info = {
        "format": INFERENCE_FORMAT,
        "layout": layout.DESCRIPTION,
        "model": model.name,
        "model_config": model_config,
        **({"dropout": used} if used is not None else {}),
        "configurations": layout.configs,
        "seeds": list(layout.seeds),
        "folds": list(layout.folds),
        "classes": list(dataset.classes),
        "features": card["features"],
        "normalisation": card["normalisation"],
        "frames": int(dataset.frames),
        "sample_rates": card.get("sample_rates", {}),
        "corpus": card["corpus"],
        "protocol": card["protocol"],
        "utterance_ids_sha256": card["utterance_ids_sha256"],
    }
    write_npz(out_dir / NORMALISATION_FILE, mean=dataset.folds.mean, std=dataset.folds.std)
    write_json(out_dir / INFERENCE_FILE, info)


def check_output_dir(path) -> pathlib.Path:
    """`path` as an output directory, checked before any work: it is a directory (or can be
    created) and writable. Creates nothing that stays: the check creates and removes a folder
    in the nearest existing one, since permission bits do not say what a read-only mount,
    /proc or a root-owned place refuses (root passes every `os.access` check).

    Raises:
      OutputError: a file is in the way, or the directory (or its nearest existing parent)
        cannot be written.
    """
    path = pathlib.Path(path).expanduser()
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == path else f"is under {existing}, which is a file"
        raise OutputError(f"{path} {where}, not a directory")
    where = "" if existing == path else f" (in {existing})"
    try:
        probe = tempfile.mkdtemp(prefix=".write-check-", dir=existing)
    except OSError as exc:
        # /proc and other pseudo file systems answer "no such file" to a new folder
        reason = ("no folder can be created there" if exc.errno == errno.ENOENT
                  else exc.strerror or str(exc))  # fmt: skip
        message = f"{path} cannot be written{where}: {reason[:1].lower()}{reason[1:]}"
        raise OutputError(message) from None
    os.rmdir(probe)
    return path


def check_output_file(path) -> pathlib.Path:
    """`path` as an output file, checked before any work (`check_output_dir` of its folder,
    and not a directory itself)."""
    path = pathlib.Path(path).expanduser()
    if path.is_dir():
        raise OutputError(f"{path} is a directory, not a file")
    try:
        check_output_dir(path.parent)
    except OutputError as exc:
        raise OutputError(f"{path} cannot be written: {exc}") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{path} cannot be written: permission denied")
    return path


def check_not_another_run(out_dir, *, resumable: bool) -> None:
    """Refuse an output directory that holds something this run would overwrite: a sweep
    study, or a finished run that cannot be resumed (its `checkpoints/` gone, so nothing
    proves it is this configuration's). `resumable`: the directory's checkpoints exist (the
    checkpointer then refuses another configuration itself).

    Raises:
      OutputError: naming what is there; the caller's `--overwrite` skips this check.
    """
    out_dir = pathlib.Path(out_dir)
    if (out_dir / "optuna.journal").exists() or (out_dir / "trials").is_dir():
        raise OutputError(f"{out_dir} holds a sweep study; choose another output directory")
    if (out_dir / RESULTS_FILE).exists() and not resumable:
        raise OutputError(f"{out_dir} holds a finished run ({RESULTS_FILE}) without its "
                          "checkpoints, so it may be another configuration's; choose another "
                          "output directory or overwrite it")  # fmt: skip


def remove_run_state(out_dir) -> None:
    """Delete what a run in `out_dir` resumes from or is read back by (checkpoints, best
    parameters, results), so that a new run starts afresh there (`--overwrite`)."""
    import shutil

    out_dir = pathlib.Path(out_dir)
    for name in (CHECKPOINTS_DIR, BEST_DIR):
        shutil.rmtree(out_dir / name, ignore_errors=True)
    for name in (RESULTS_FILE, INFERENCE_FILE, NORMALISATION_FILE):
        (out_dir / name).unlink(missing_ok=True)


def missing_run_files(run_dir) -> list[str]:
    """The files of a finished training run that `run_dir` lacks (empty: all there)."""
    run_dir = pathlib.Path(run_dir)
    return [n for n in (INFERENCE_FILE, NORMALISATION_FILE, BEST_DIR) if not (run_dir / n).exists()]


def read_inference_info(run_dir) -> dict:
    """The run's `inference.json`."""
    return read_json(pathlib.Path(run_dir) / INFERENCE_FILE)


def read_normalisation(run_dir) -> tuple[np.ndarray, np.ndarray]:
    """Each fold's normalisation statistics: mean, std [K, D] float32."""
    with np.load(pathlib.Path(run_dir) / NORMALISATION_FILE) as stats:
        return stats["mean"], stats["std"]
