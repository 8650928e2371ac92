"""Named feature extractors and their on-disk cache.

```python
extractor = features.get("mfcc_chroma")                 # the paper's 34 MFCC + 12 chroma
result = features.extract_all(paths, extractor, cache_dir="~/.cache/reslstm_jax/features")
result.features[i]        # [T, 46] float32 for paths[i], or None if it failed
result.report.failed      # [(path, reason)] for every bad file
```

Extractors (`reslstm_jax.extractors` unless named; parameters are the dataclass fields, and
all of them go into the cache key):
* `mfcc_chroma`: ResLSTM-SA (reference notebook): native rate, `librosa.feature.mfcc`
  (34 coefficients) and `chroma_stft` (12), n_fft 4096, hop 2048, librosa defaults otherwise.
  [T, 46], T = 1 + N // 2048.
* `logmel_dual`: DS-LSTM: two log-mel spectrograms of the 16 kHz signal (raw int16 scale),
  A: n_fft 512, hop 256, 128 mels, resized to 230 frames; B: n_fft 1024, hop 512, 256 mels,
  resized to 120 frames (nearest). {"a": [230, 128], "b": [120, 256]}, time first.
* `tf_mfcc`: Light-SERNet: 16 kHz, centre crop/pad to 3 s (or 7 s), 99.9th-percentile peak
  normalisation, 16-bit round trip, |STFT| (1024/256, periodic Hann, no centring), 128 HTK mel
  bins 80-7600 Hz built as `tf.signal.linear_to_mel_weight_matrix`, ln(mel + 1e-6), DCT-II,
  first 40 coefficients clipped to +-10. [184, 40] for 3 s.
* `perturbed` (another extractor on speed-perturbed or noisy audio, `reslstm_jax.perturb`);
  `egemaps`, `compare` (openSMILE, the opensmile extra: `reslstm_jax.smile`).

The cache is keyed by (SHA-256 of the file content, extractor name, parameters, feature code
version, librosa version): renaming or moving a corpus keeps its cache, and changing any
parameter never returns stale features. Each entry is written atomically, so an interrupted
extraction resumes where it stopped. Bad audio never raises: every failure is returned with
the file and the reason, and nothing non-finite is ever returned.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pathlib
import tempfile
import time
from collections.abc import Sequence

import numpy as np

from reslstm_jax import artifacts
from reslstm_jax.audio import AudioError, librosa_quiet
from reslstm_jax.corpora.base import source_sha256
from reslstm_jax.extractors import DsLstmInputs, LogmelDual, Mfcc39, MfccChroma, TfMfcc
from reslstm_jax.perturb import Perturbed
from reslstm_jax.smile import Compare, Egemaps
from reslstm_jax.workers import run as run_workers

# Bump when the code of an extractor changes its output: it is part of every cache key.
FEATURES_VERSION = 2  # 2: NumPy's BLAS on one thread (extractors.one_blas_thread)


def default_cache_dir() -> pathlib.Path:
    """`$RESLSTM_JAX_CACHE` or `~/.cache/reslstm_jax/features`."""
    env = os.environ.get("RESLSTM_JAX_CACHE")
    return pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "reslstm_jax" / "features"


# ----------------------------------------------------------------------------- extractors
# The extractor classes are in reslstm_jax.extractors (librosa's) and the modules named
# above; FEATURES_VERSION here is part of every cache key.

EXTRACTORS = {
    "mfcc_chroma": MfccChroma,
    "logmel_dual": LogmelDual,
    "tf_mfcc": TfMfcc,
    "mfcc39": Mfcc39,
    "ds_lstm_inputs": DsLstmInputs,
    "perturbed": Perturbed,  # another extractor on speed-perturbed or noisy audio
    "egemaps": Egemaps,  # openSMILE (the opensmile extra: non-commercial licence)
    "compare": Compare,
}


def names() -> list[str]:
    return sorted(EXTRACTORS)


def get(name: str, **params):
    """Extractor `name` with parameters overriding its defaults."""
    if name not in EXTRACTORS:
        raise ValueError(f"unknown feature extractor {name!r}; known: {', '.join(names())}")
    fields = {f.name for f in dataclasses.fields(EXTRACTORS[name])} - {"name"}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise ValueError(f"{name}: unknown parameters {unknown}; known: {sorted(fields)}")
    defaults = {f.name: f.default for f in dataclasses.fields(EXTRACTORS[name])}
    self_checked = getattr(EXTRACTORS[name], "SELF_CHECKED", frozenset())
    for key, value in params.items():
        problem = None if key in self_checked else _parameter_problem(key, value, defaults[key])
        if problem:
            raise ValueError(f"{name}: {key} {problem}, got {value!r}")
    return EXTRACTORS[name](**params)


# Parameters for which 0 is meaningful (no liftering, no pre-emphasis, a 0 Hz band edge).
ZERO_ALLOWED = frozenset({"lifter", "preemphasis", "fmin"})


def _parameter_problem(key: str, value, default) -> str | None:
    """Why `value` cannot be extractor parameter `key` (whose default is `default`), or None:
    sizes are positive integers, other numbers finite and positive (checked before any file is
    read, so a bad value never reaches librosa or leaves a cache folder behind)."""

    is_int = isinstance(value, int) and not isinstance(value, bool)
    if default is None or (isinstance(default, int) and not isinstance(default, bool)):
        if value is None and default is None:
            return None
        if not is_int or value < (0 if key in ZERO_ALLOWED else 1):
            return "must be a positive integer" if key not in ZERO_ALLOWED else "must be >= 0"
    elif isinstance(default, float):
        if not (is_int or isinstance(value, float)) or not math.isfinite(value):
            return "must be a finite number"
        if value < 0 or (value == 0 and key not in ZERO_ALLOWED):
            return "must be > 0" if key not in ZERO_ALLOWED else "must be >= 0"
    return None


def describe(extractor) -> dict:
    """Name, parameters and versions: what determines the extractor's output."""
    import librosa

    return {
        "name": extractor.name,
        "params": {k: v for k, v in dataclasses.asdict(extractor).items() if k != "name"},
        "features_version": FEATURES_VERSION,
        "librosa": librosa.__version__,
        **getattr(extractor, "versions", dict)(),  # a third-party feature library's own
    }


def cache_key(extractor) -> str:
    """Directory name of this extractor's cache: name + hash of `describe(extractor)`."""
    blob = json.dumps(describe(extractor), sort_keys=True).encode()
    return f"{extractor.name}-{hashlib.sha256(blob).hexdigest()[:16]}"


# ----------------------------------------------------------------------------- cache


def _save_atomic(path: pathlib.Path, value) -> None:
    arrays = value if isinstance(value, dict) else {"x": value}
    artifacts.write_npz(path, **arrays)


def _load(path: pathlib.Path):
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    return arrays["x"] if list(arrays) == ["x"] else arrays


def _finite(value) -> bool:
    arrays = value.values() if isinstance(value, dict) else [value]
    return all(np.all(np.isfinite(a)) and a.size > 0 for a in arrays)


# The rate of a test signal for an extractor that reads any rate: RAVDESS's, the paper's corpus.
ANY_RATE_SIGNAL = 48000


def signal_rate(extractor) -> int:
    """The sample rate to give `extractor` a signal at when no corpus says: its own where it
    works at one (Light-SERNet's and DS-LSTM's 16 kHz), else `ANY_RATE_SIGNAL`."""
    return int(getattr(extractor, "sample_rate", None) or ANY_RATE_SIGNAL)


def _cache_entry(path: str, cache_dir: str | os.PathLike) -> pathlib.Path:
    """Where the features of the file at `path` (or of a segment of it, `FILE#t=START,END`)
    live: keyed by the content hash (and the segment), not the path."""
    digest = source_sha256(path)
    return pathlib.Path(cache_dir) / digest[:2] / f"{digest}.npz"


def _read_cached(path: str, cache_dir: str | os.PathLike):
    """The cached features of `path`, or None when there is no readable entry (or no file)."""
    try:
        entry = _cache_entry(path, cache_dir)
        return _load(entry) if entry.exists() else None
    except Exception:  # unreadable audio or a corrupt entry: `_extract_one` decides and reports
        return None


def _extract_one(path: str, extractor, cache_dir: str | None, *, load_cached: bool = True):
    """(status, features, reason, cache entry); status "cached", "computed" or "failed".

    With `load_cached=False` a cache hit is not read (the caller reads the entry itself).
    """
    # on a corpus of thousands of files librosa's warnings would drown the report
    with librosa_quiet():
        try:
            entry = None
            if cache_dir is not None:
                entry = _cache_entry(path, cache_dir)
                if entry.exists():
                    try:
                        return "cached", _load(entry) if load_cached else None, None, entry
                    except Exception:  # a corrupt entry (e.g. disk full earlier): recompute
                        entry.unlink(missing_ok=True)
            value = extractor(path)
            if not _finite(value):
                raise AudioError("non-finite or empty features")
            if entry is not None:
                _save_atomic(entry, value)
            return "computed", value, None, entry
        except AudioError as exc:
            return "failed", None, str(exc), None
        except OSError as exc:
            return "failed", None, f"cannot read file ({exc.strerror or exc})", None


def _handle_job(job: dict) -> dict:
    """Worker handler (`reslstm_jax.workers`): features of one file into the cache.

    The features travel back through the cache, not the pipe: the reply names the entry.
    """
    extractor = get(job["extractor"], **job["params"])
    status, _, reason, entry = _extract_one(
        job["path"], extractor, job["cache_dir"], load_cached=False
    )
    return {"status": status, "reason": reason, "entry": str(entry) if entry else None}


@dataclasses.dataclass
class ExtractionReport:
    """What an extraction did. `failed`: (path, reason) per bad file."""

    extractor: dict
    total: int = 0
    cached: int = 0
    computed: int = 0
    failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "failed": [list(f) for f in self.failed]}

    def summary(self) -> str:
        lines = [
            f"{self.extractor['name']}: {self.total} files, {self.cached} cached, "
            f"{self.computed} computed, {len(self.failed)} failed, {self.seconds:.1f} s"
        ]
        lines += [f"  {path}: {reason}" for path, reason in self.failed]
        return "\n".join(lines)


@dataclasses.dataclass
class Extraction:
    features: list  # per input path: array / dict of arrays, or None when it failed
    report: ExtractionReport


def extract_all(
    paths: Sequence[str | os.PathLike],
    extractor,
    *,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> Extraction:
    """Features of every file, through the cache, on `workers` processes (default: all cores).

    `cache_dir=None` disables the cache. Failures do not stop the run; they are listed in the
    report and their entry in `features` is None.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    paths = [str(p) for p in paths]
    directory = None
    if cache_dir is not None:
        directory = pathlib.Path(cache_dir).expanduser() / cache_key(extractor)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "extractor.json").write_text(json.dumps(describe(extractor), indent=2))
    report = ExtractionReport(describe(extractor), total=len(paths))
    results: list = [None] * len(paths)
    workers = max(1, min(workers or os.cpu_count() or 1, len(paths) or 1))
    serial = workers == 1  # the worker pool shows its own progress bar
    bar = tqdm(
        total=len(paths), desc=f"features {extractor.name}", disable=not (progress and serial)
    )

    def record(i: int, outcome) -> None:
        status, value, reason, _ = outcome
        if status == "failed":
            report.failed.append((paths[i], reason))
        else:
            results[i] = value
            setattr(report, status, getattr(report, status) + 1)
        bar.update()

    # Cache hits are read here: a warm cache then starts no worker process and never imports
    # or warms up librosa (about 4 s of every rerun of a command on a prepared corpus).
    pending = []
    for i, path in enumerate(paths):
        hit = _read_cached(path, directory) if directory else None
        if hit is None:
            pending.append(i)
        else:
            record(i, ("cached", hit, None, None))
    workers = max(1, min(workers, len(pending)))
    if pending and (serial or workers == 1):
        cache_arg = str(directory) if directory else None
        for i in pending:
            record(i, _extract_one(paths[i], extractor, cache_arg))
    elif pending:
        # Worker processes hand their features back through a cache (a temporary one when
        # caching is off), which also makes an interrupted run resumable.
        with tempfile.TemporaryDirectory() as scratch:
            cache_arg = str(directory) if directory else scratch
            params = describe(extractor)["params"]
            jobs = [{"path": paths[i], "extractor": extractor.name, "params": params,
                     "cache_dir": cache_arg} for i in pending]  # fmt: skip
            replies = run_workers("reslstm_jax.features:_handle_job", jobs, workers=workers,
                                  progress=progress, desc=f"features {extractor.name}")  # fmt: skip
            for i, reply in zip(pending, replies, strict=True):
                value = _load(pathlib.Path(reply["entry"])) if reply["entry"] else None
                record(i, (reply["status"], value, reply["reason"], None))
    bar.close()
    report.failed.sort()
    report.seconds = time.perf_counter() - start
    return Extraction(results, report)
