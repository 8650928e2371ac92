"""Named feature extractors and their on-disk cache.

```python
extractor = features.get("mfcc_chroma")                 # the paper's 34 MFCC + 12 chroma
result = features.extract_all(paths, extractor, cache_dir="~/.cache/reslstm_jax/features")
result.features[i]        # [T, 46] float32 for paths[i], or None if it failed
result.report.failed      # [(path, reason)] for every bad file
```

Extractors (parameters are the dataclass fields; all of them go into the cache key):
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
import io
import json
import math
import os
import pathlib
import tempfile
import time
import warnings
from collections.abc import Sequence

import numpy as np

from reslstm_jax import artifacts
from reslstm_jax.corpora.base import check_wav, file_sha256
from reslstm_jax.perturb import Perturbed
from reslstm_jax.smile import Compare, Egemaps
from reslstm_jax.workers import run as run_workers

# Bump when the code of an extractor changes its output: it is part of every cache key.
FEATURES_VERSION = 1


class AudioError(ValueError):
    """A file cannot be turned into features (the message is the reason, one line)."""


def default_cache_dir() -> pathlib.Path:
    """`$RESLSTM_JAX_CACHE` or `~/.cache/reslstm_jax/features`."""
    env = os.environ.get("RESLSTM_JAX_CACHE")
    return pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "reslstm_jax" / "features"


# A frame is "voiced" when its RMS reaches this level (dB relative to full scale): speech at any
# usable recording level does; digital silence, hum and room tone do not.
VOICE_DBFS = -50.0
VOICE_FRAME_SECONDS = 0.025


def voiced_frames(path: str | os.PathLike) -> int:
    """How many 25 ms frames of the file's audio (mono, native rate) reach `VOICE_DBFS`: 0
    means the input has nothing a model could hear as speech, whatever label it gets."""
    import soundfile

    y, rate = soundfile.read(path, dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    frame = max(1, int(rate * VOICE_FRAME_SECONDS))
    usable = y[: y.size // frame * frame].reshape(-1, frame) if y.size >= frame else y[None, :]
    rms = np.sqrt(np.mean(np.square(usable, dtype=np.float64), axis=1))
    return int(np.sum(20 * np.log10(np.maximum(rms, 1e-12)) >= VOICE_DBFS))


def load_audio(path: str | os.PathLike, sr: int | None, min_samples: int) -> tuple[np.ndarray, int]:
    """Mono float32 audio, resampled to `sr` (None = native), or `AudioError` with the reason.

    The same samples as `librosa.load(path, sr=sr)` (soundfile decoding, channel mean,
    soxr_hq resampling), with each failure mode named instead of raised as it comes.
    """
    import librosa
    import soundfile

    path = pathlib.Path(path)
    if path.suffix.lower() == ".wav":
        problem = check_wav(path)
        if problem:
            raise AudioError(problem)
    try:
        y, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for undecodable files
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AudioError(f"unreadable audio ({message})") from None
    y = y.mean(axis=1) if y.shape[1] > 1 else y[:, 0]
    if y.size == 0:
        raise AudioError("no audio samples")
    if not np.all(np.isfinite(y)):
        raise AudioError("non-finite audio samples")
    if sr is not None and sr != rate:
        y = librosa.resample(y, orig_sr=rate, target_sr=sr, res_type="soxr_hq")
        rate = sr
    if y.size < min_samples:
        raise AudioError(
            f"too short: {y.size} samples at {rate} Hz, fewer than one analysis frame "
            f"({min_samples})"
        )
    return y, int(rate)


# ----------------------------------------------------------------------------- extractors


@dataclasses.dataclass(frozen=True)
class MfccChroma:
    """ResLSTM-SA's features: [T, n_mfcc + n_chroma] at the file's native rate."""

    name: str = "mfcc_chroma"
    n_mfcc: int = 34
    n_chroma: int = 12
    n_fft: int = 4096
    hop_length: int = 2048
    sample_rate: int | None = None  # None = native, as the reference

    @property
    def dim(self) -> int:
        return self.n_mfcc + self.n_chroma

    def __call__(self, path) -> np.ndarray:
        import librosa

        y, sr = load_audio(path, self.sample_rate, self.n_fft)
        kwargs = {"y": y, "sr": sr, "n_fft": self.n_fft, "hop_length": self.hop_length}
        mfcc = librosa.feature.mfcc(n_mfcc=self.n_mfcc, **kwargs).T
        chroma = librosa.feature.chroma_stft(n_chroma=self.n_chroma, **kwargs).T
        return np.concatenate([mfcc, chroma], axis=1).astype(np.float32)


def resize_nearest(x: np.ndarray, frames: int) -> np.ndarray:
    """Nearest-neighbour resize of axis 0 to `frames`, as torch `interpolate(mode='nearest')`:
    source index = floor(dst * T / frames)."""
    src = np.floor(np.arange(frames) * (x.shape[0] / frames)).astype(np.int64)
    return x[np.minimum(src, x.shape[0] - 1)]


@dataclasses.dataclass(frozen=True)
class LogmelDual:
    """DS-LSTM's two-resolution log-mel input: {"a": [frames_a, n_mels_a], "b": [...]}.

    `int16_scale` reproduces the reference reading raw int16 values (a +90.31 dB shift);
    `eps` is our floor inside the log (the reference has none: digital silence gives -inf).
    """

    name: str = "logmel_dual"
    sample_rate: int = 16000
    n_fft_a: int = 512
    hop_a: int = 256
    n_mels_a: int = 128
    frames_a: int = 230
    n_fft_b: int = 1024
    hop_b: int = 512
    n_mels_b: int = 256
    frames_b: int = 120
    pad_mode: str = "constant"  # librosa >= 0.9 centring; the authors' era used "reflect"
    int16_scale: bool = True
    eps: float = 1e-10

    def _logmel(self, y, n_fft, hop, n_mels, frames) -> np.ndarray:
        import librosa

        mel = librosa.feature.melspectrogram(
            y=y, sr=self.sample_rate, n_fft=n_fft, hop_length=hop, n_mels=n_mels,
            pad_mode=self.pad_mode, fmax=self.sample_rate / 2,
        )  # fmt: skip
        return resize_nearest((10 * np.log10(mel + self.eps)).T, frames).astype(np.float32)

    def __call__(self, path) -> dict[str, np.ndarray]:
        y, _ = load_audio(path, self.sample_rate, self.n_fft_b)
        if self.int16_scale:
            y = y * 32768.0
        return {
            "a": self._logmel(y, self.n_fft_a, self.hop_a, self.n_mels_a, self.frames_a),
            "b": self._logmel(y, self.n_fft_b, self.hop_b, self.n_mels_b, self.frames_b),
        }


@dataclasses.dataclass(frozen=True)
class Mfcc39:
    """DS-LSTM's MFCC-LSTM input, openSMILE `MFCC12_E_D_A` approximated with librosa:
    [T, 39] = 12 MFCC (c1..c12, 26 HTK mel bands, lifter 22) + log frame energy, with deltas
    and delta-deltas (width 5), 25 ms Hamming frames every 10 ms at 16 kHz, pre-emphasis 0.97,
    no centring; float audio in [-1, 1]. Not normalised (as the reference)."""

    name: str = "mfcc39"
    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 26
    lifter: int = 22
    preemphasis: float = 0.97

    def from_signal(self, y: np.ndarray) -> np.ndarray:
        import librosa

        y = np.append(y[:1], y[1:] - self.preemphasis * y[:-1]).astype(np.float32)
        mfcc = librosa.feature.mfcc(
            y=y, sr=self.sample_rate, n_mfcc=13, n_fft=self.n_fft, win_length=self.win_length,
            hop_length=self.hop_length, window="hamming", n_mels=self.n_mels, htk=True,
            lifter=self.lifter, center=False,
        )  # fmt: skip
        frames = librosa.util.frame(y, frame_length=self.win_length, hop_length=self.hop_length)
        energy = np.log(np.maximum(np.sum(np.square(frames), axis=0), 1e-10))
        base = np.concatenate([mfcc[1:13], energy[None, : mfcc.shape[1]]], axis=0)  # [13, T]
        width = 5 if base.shape[1] >= 5 else (base.shape[1] // 2) * 2 + 1
        if width < 3:
            raise AudioError(f"too short for MFCC deltas: {base.shape[1]} frames")
        d1 = librosa.feature.delta(base, width=width, order=1, mode="nearest")
        d2 = librosa.feature.delta(base, width=width, order=2, mode="nearest")
        return np.concatenate([base, d1, d2], axis=0).T.astype(np.float32)

    def __call__(self, path) -> np.ndarray:
        y, _ = load_audio(path, self.sample_rate, self.win_length)
        return self.from_signal(y)


@dataclasses.dataclass(frozen=True)
class DsLstmInputs(LogmelDual):
    """Everything DS-LSTM reads: `logmel_dual`'s {"a", "b"} plus "mfcc" [T, 39] (`mfcc39`)."""

    name: str = "ds_lstm_inputs"

    def __call__(self, path) -> dict[str, np.ndarray]:
        y, _ = load_audio(path, self.sample_rate, self.n_fft_b)
        scale = 32768.0 if self.int16_scale else 1.0
        return {
            "a": self._logmel(y * scale, self.n_fft_a, self.hop_a, self.n_mels_a, self.frames_a),
            "b": self._logmel(y * scale, self.n_fft_b, self.hop_b, self.n_mels_b, self.frames_b),
            "mfcc": Mfcc39(sample_rate=self.sample_rate).from_signal(y),
        }


def hz_to_mel_htk(f):
    """HTK mel scale as TensorFlow writes it: 1127 ln(1 + f / 700)."""
    return 1127.0 * np.log1p(np.asarray(f, np.float64) / 700.0)


def tf_mel_matrix(n_mels: int, n_bins: int, sr: int, fmin: float, fmax: float) -> np.ndarray:
    """`tf.signal.linear_to_mel_weight_matrix` in NumPy: [n_bins, n_mels].

    Triangles linear in mel between n_mels + 2 equally spaced mel edges, no area
    normalisation, weight 0 on the DC bin.
    """
    freqs = np.linspace(0.0, sr / 2, n_bins)[1:]
    mel = hz_to_mel_htk(freqs)[:, None]
    edges = np.linspace(hz_to_mel_htk(fmin), hz_to_mel_htk(fmax), n_mels + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    weights = np.maximum(0.0, np.minimum((mel - lower) / (center - lower),
                                         (upper - mel) / (upper - center)))  # fmt: skip
    return np.concatenate([np.zeros((1, n_mels)), weights], axis=0)


@dataclasses.dataclass(frozen=True)
class TfMfcc:
    """Light-SERNet's MFCC: [1 + (L - frame) // hop, n_mfcc] for L = seconds * sample_rate."""

    name: str = "tf_mfcc"
    sample_rate: int = 16000
    seconds: float = 3.0
    frame: int = 1024
    hop: int = 256
    n_mels: int = 128
    fmin: float = 80.0
    fmax: float = 7600.0
    n_mfcc: int = 40
    clip: float = 10.0
    peak_percentile: float = 99.9
    peak_eps: float = 1e-8  # unspecified in the reference; only matters for silent input

    def segment(self, y: np.ndarray) -> np.ndarray:
        """Centre crop, peak-normalise and clip, centre zero-pad, 16-bit PCM round trip."""
        import soundfile

        length = int(round(self.seconds * self.sample_rate))
        if y.size > length:
            start = (y.size - length) // 2
            y = y[start : start + length]
        y = y / (np.percentile(np.abs(y), self.peak_percentile) + self.peak_eps)
        y = np.clip(y, -1.0, 1.0)
        if y.size < length:
            pad = length - y.size
            y = np.pad(y, (pad // 2, pad - pad // 2))
        # The reference writes the segment as a 16-bit wav and reads it back.
        buffer = io.BytesIO()
        soundfile.write(buffer, y, self.sample_rate, subtype="PCM_16", format="WAV")
        buffer.seek(0)
        return soundfile.read(buffer, dtype="float32")[0]

    def __call__(self, path) -> np.ndarray:
        from scipy.fft import dct

        y, _ = load_audio(path, self.sample_rate, 1)
        y = self.segment(y).astype(np.float64)
        n_frames = 1 + (y.size - self.frame) // self.hop
        index = np.arange(self.frame)[None, :] + self.hop * np.arange(n_frames)[:, None]
        window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(self.frame) / self.frame)  # periodic
        magnitude = np.abs(np.fft.rfft(y[index] * window, n=self.frame, axis=1))
        mel = magnitude @ tf_mel_matrix(
            self.n_mels, self.frame // 2 + 1, self.sample_rate, self.fmin, self.fmax
        )
        coefficients = dct(np.log(mel + 1e-6), type=2, norm=None, axis=1)
        coefficients = coefficients / math.sqrt(2 * self.n_mels)
        return np.clip(coefficients[:, : self.n_mfcc], -self.clip, self.clip).astype(np.float32)


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
    import math

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


def _warm_up(job: dict) -> dict:
    """Worker handler: run the extractor once on a second of noise.

    librosa compiles its numba functions with `cache=True` on first use. Two processes
    compiling the same function at once corrupt the cache file, and every later process that
    loads it dies with a segmentation fault (it crashed the test suite on a fresh clone;
    reproduced with two concurrent processes on one NUMBA_CACHE_DIR). One process compiles
    first, alone; the parallel workers then only read the cache.
    """
    import soundfile

    extractor = get(job["extractor"], **job["params"])
    rate = getattr(extractor, "sample_rate", None) or 48000
    noise = 0.1 * np.random.default_rng(0).standard_normal(rate)
    with tempfile.TemporaryDirectory() as scratch:
        path = pathlib.Path(scratch) / "warm_up.wav"
        soundfile.write(path, noise, rate, subtype="PCM_16")
        extractor(path)
    return {}


def _cache_entry(path: str, cache_dir: str | os.PathLike) -> pathlib.Path:
    """Where the features of the file at `path` live: keyed by the content hash, not the path."""
    digest = file_sha256(path)
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
    # librosa warns per file about, e.g., tuning estimation on silent frames; on a corpus of
    # thousands of files that drowns the report, which says what matters per file.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="librosa")
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
            run_workers("reslstm_jax.features:_warm_up",
                        [{"extractor": extractor.name, "params": params}], workers=1,
                        progress=False)  # fmt: skip
            replies = run_workers("reslstm_jax.features:_handle_job", jobs, workers=workers,
                                  progress=progress, desc=f"features {extractor.name}")  # fmt: skip
            for i, reply in zip(pending, replies, strict=True):
                value = _load(pathlib.Path(reply["entry"])) if reply["entry"] else None
                record(i, (reply["status"], value, reply["reason"], None))
    bar.close()
    report.failed.sort()
    report.seconds = time.perf_counter() - start
    return Extraction(results, report)
