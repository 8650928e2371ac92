"""Reading audio for features: mono float32 at a rate, every failure named (`AudioError`),
how much of a file is voiced, librosa's own warnings kept from the user (`librosa_quiet`), and
librosa imported safely beside other processes (`import_librosa`).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import pathlib
import warnings

import numpy as np

from reslstm_jax.corpora.base import check_wav, seconds, split_source


@contextlib.contextmanager
def librosa_quiet():
    """librosa's UserWarnings (e.g. no pitch to estimate the tuning from in silence) off while
    extracting: they come per file, and what matters per file is said by the extraction
    report or by predict's voiced-frame line."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="librosa")
        yield


# librosa's modules whose numba functions compile when the module is imported (`guvectorize` and
# `vectorize` with their signatures, `cache=True`) and that the project's features, resampling
# and speed perturbation import; tests/test_features.py checks that these paths load no other
# module with numba functions and compile none of librosa's lazily compiled ones.
LIBROSA_NUMBA_MODULES = ("librosa.util.utils", "librosa.core.audio", "librosa.core.pitch")
NUMBA_LOCK_NAME = "librosa-numba.lock"


@functools.cache
def import_librosa():
    """The `librosa` module, with the modules of `LIBROSA_NUMBA_MODULES` imported by one
    process of the machine at a time.

    Importing them compiles their numba functions (about 30 s of CPU) into numba's cache, or
    loads them from it. Two processes compiling into one cache at once can leave it
    inconsistent, and every later process that loads it then dies with a segmentation fault
    (it crashed the test suite on a fresh clone). Two commands started together on a fresh
    machine (two sweep launchers, a sweep beside a training run) would do exactly that, so the
    imports run under a file lock in `runlock.lock_dir()` (`NUMBA_LOCK_NAME`; the kernel
    releases it when its holder exits, however it exits): the first process compiles, the
    others wait and then load what it wrote. Once per process: later calls return at once.
    Where no lock can be made (a read-only home without RESLSTM_JAX_LOCKS), the modules are
    imported without one, as librosa itself does.
    """
    import filelock

    from reslstm_jax import runlock

    path = runlock.lock_dir() / NUMBA_LOCK_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(path)
        lock.acquire()
    except OSError:
        lock = None
    try:
        for name in LIBROSA_NUMBA_MODULES:
            importlib.import_module(name)
    finally:
        if lock is not None:
            lock.release()
    import librosa

    return librosa


class AudioError(ValueError):
    """A file cannot be turned into features (the message is the reason, one line)."""


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
    soxr_hq resampling), with each failure mode named instead of raised as it comes. `path`
    may name a segment, `FILE#t=START,END` (seconds; `corpora.base.audio_source`): only those
    samples are read, and a segment that ends after its file is an `AudioError`.
    """
    import soundfile

    file, segment = split_source(path)
    path = pathlib.Path(file)
    if path.suffix.lower() == ".wav":
        problem = check_wav(path)
        if problem:
            raise AudioError(problem)
    try:
        if segment is None:
            y, rate = soundfile.read(path, dtype="float32", always_2d=True)
        else:
            y, rate = _read_segment(path, *segment)
    except AudioError:
        raise
    except Exception as exc:  # soundfile raises several types for undecodable files
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AudioError(f"unreadable audio ({message})") from None
    y = y.mean(axis=1) if y.shape[1] > 1 else y[:, 0]
    if y.size == 0:
        raise AudioError("no audio samples")
    if not np.all(np.isfinite(y)):
        raise AudioError("non-finite audio samples")
    if sr is not None and sr != rate:
        y = import_librosa().resample(y, orig_sr=rate, target_sr=sr, res_type="soxr_hq")
        rate = sr
    if y.size < min_samples:
        raise AudioError(
            f"too short: {y.size} samples at {rate} Hz, fewer than one analysis frame "
            f"({min_samples})"
        )
    return y, int(rate)


def _read_segment(path: pathlib.Path, start: float, end: float) -> tuple[np.ndarray, int]:
    """The samples of [start, end) seconds of the file, [n, channels] float32, and its rate."""
    import soundfile

    info = soundfile.info(path)
    first, stop = round(start * info.samplerate), round(end * info.samplerate)
    if not 0 <= first < stop:
        raise AudioError(f"segment {seconds(start)}-{seconds(end)} s is empty or negative")
    # an end written to the millisecond may round past the last sample: that is the file's end
    if info.frames < stop <= info.frames + info.samplerate // 1000:
        stop = info.frames
    if stop > info.frames:
        raise AudioError(f"segment {seconds(start)}-{seconds(end)} s ends after the file "
                         f"({seconds(info.frames / info.samplerate)} s)")  # fmt: skip
    y, rate = soundfile.read(path, start=first, stop=stop, dtype="float32", always_2d=True)
    return y, rate
