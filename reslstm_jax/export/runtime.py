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


def load(path) -> OnnxPredictor:
    """Load an export folder (one member, or the members of an `--all` export)."""
    from reslstm_jax.export.measure import session
    from reslstm_jax.predict import extractor_of  # (predict imports no JAX at import)

    folders = member_folders(pathlib.Path(path).expanduser())
    records = [artifacts.read_json(f / EXPORT_FILE) for f in folders]
    info = records[0]
    # one utterance at a time, one thread: more threads only add overhead
    sessions = [session(f / MODEL_FILE) for f in folders]
    members = [(r["member"]["seed"], r["member"]["fold"]) for r in records]
    return OnnxPredictor(info, members, extractor_of(info), sessions)
