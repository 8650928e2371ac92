"""Predicting from an ONNX export without JAX: onnxruntime, NumPy and the feature code.

```python
from reslstm_jax.export import runtime
predictor = runtime.load("exports/h64")       # one member, or a folder of --all members
probs, attention = predictor.forward(x [1, T, D], lengths [1])   # [M, 1, C], [M, 1, T]
```
`reslstm_jax.predict` uses it when `--run` is an export folder; its output is the same
as for a run (the mean of the members' class probabilities).
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from reslstm_jax import artifacts

EXPORT_FILE = "export.json"
MODEL_FILE = "model.onnx"


def member_folders(path: pathlib.Path) -> list[pathlib.Path]:
    """The export folders at `path`: itself (one member) or its sub-folders (`--all`)."""
    if (path / EXPORT_FILE).is_file():
        return [path]
    return sorted(p.parent for p in path.glob(f"*/{EXPORT_FILE}"))


def is_export(path) -> bool:
    """Whether `path` is an export folder (`python -m reslstm_jax.export --out`), and not a
    training run (which an export may have been written into)."""
    path = pathlib.Path(path).expanduser()
    if not path.is_dir() or (path / artifacts.INFERENCE_FILE).is_file():
        return False
    return bool(member_folders(path))


@dataclasses.dataclass
class OnnxPredictor:
    """An export, loaded: the fields `reslstm_jax.predict` reads, and `forward`."""

    info: dict
    members: list[tuple[int, str]]
    extractor: object
    sessions: list

    @property
    def classes(self) -> list[str]:
        return self.info["classes"]

    def forward(self, x, lengths: np.ndarray):
        """x [B, T, D] raw features (or {key: array}, as DS-LSTM reads them), lengths [B] ->
        (probabilities [M, B, C], attention [M, B, T], or None for a model without attention)
        of the M members."""
        from reslstm_jax.export.measure import feed

        probs, attention = [], []
        for session in self.sessions:
            names = [out.name for out in session.get_outputs()]  # attention: where the model has it
            logits, *weights = session.run(names, feed(session, x, lengths))
            shifted = np.exp(logits - logits.max(-1, keepdims=True))
            probs.append(shifted / shifted.sum(-1, keepdims=True))
            attention += weights
        return np.stack(probs), np.stack(attention) if attention else None


class ExportDamaged(ValueError):
    """An export folder that cannot be trusted: a file cut short, edited or missing (one line
    naming the file)."""


def load(path) -> OnnxPredictor:
    """Load an export folder (one member, or the members of an `--all` export), each member
    checked first (`check_member`): ExportDamaged names the file that is wrong."""
    from reslstm_jax.export.measure import session

    folders = member_folders(pathlib.Path(path).expanduser())
    checked = [check_member(f) for f in folders]
    records = [record for record, _ in checked]
    info = records[0]
    # one utterance at a time, one thread: more threads only add overhead
    sessions = [session(f / MODEL_FILE) for f in folders]
    for folder, current in zip(folders, sessions, strict=True):
        width = current.get_outputs()[0].shape[-1]
        if isinstance(width, int) and width != len(info["classes"]):
            raise ExportDamaged(f"export {folder / EXPORT_FILE}: {len(info['classes'])} classes "
                                f"for a graph of {width} outputs (edited?)")  # fmt: skip
    members = [(r["member"]["seed"], r["member"]["fold"]) for r in records]
    return OnnxPredictor(info, members, checked[0][1], sessions)


def check_member(folder: pathlib.Path) -> tuple[dict, object]:
    """(export.json's record, the feature extractor it names) of one member folder, checked:
    export.json whole and of the expected form, model.onnx the graph whose SHA-256 it records,
    a known extractor with valid parameters. ExportDamaged otherwise."""
    import hashlib
    import json

    from reslstm_jax.predict import extractor_of  # (predict imports no JAX at import)

    where = folder / EXPORT_FILE
    try:
        record = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportDamaged(f"export {where} is damaged ({exc}); export the run again") from None
    problem = _record_problem(record)
    if problem:
        raise ExportDamaged(f"export {where}: {problem}; export the run again")
    model = folder / MODEL_FILE
    try:
        digest = hashlib.sha256(model.read_bytes()).hexdigest()
    except OSError as exc:
        raise ExportDamaged(f"export {model} cannot be read ({exc.strerror or exc})") from None
    if digest != record["sha256"]:
        raise ExportDamaged(f"export {model} is not the graph {EXPORT_FILE} records (SHA-256 "
                            "differs: cut short or edited); export the run again")  # fmt: skip
    try:
        extractor = extractor_of(record)
    except (ValueError, TypeError, KeyError) as exc:
        raise ExportDamaged(f"export {where}: its features cannot be computed ({exc})") from None
    return record, extractor


def _record_problem(record) -> str | None:
    """What is wrong with the form of an export.json record, or None."""
    if not isinstance(record, dict):
        return "not a JSON object"
    classes = record.get("classes")
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        return "no list of class names"
    member = record.get("member")
    if not (isinstance(member, dict) and isinstance(member.get("seed"), int)
            and isinstance(member.get("fold"), str)):  # fmt: skip
        return "no member (seed and fold)"
    features = record.get("features")
    if not (isinstance(features, dict) and isinstance(features.get("name"), str)
            and isinstance(features.get("params", {}), dict)):  # fmt: skip
        return "no feature extractor (name and params)"
    if not isinstance(record.get("sha256"), str):
        return "no SHA-256 of its graph"
    return None
