"""The librosa-based feature extractors (registered by name in `reslstm_jax.features`, whose
`FEATURES_VERSION` is part of every cache key: bump it when code here changes an output).
Each is a frozen dataclass: its fields are its parameters, `extractor(path)` its features.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import math

import numpy as np

from reslstm_jax.audio import AudioError, import_librosa, load_audio


@functools.cache
def _blas():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def one_blas_thread(call):
    """An extractor's `__call__` with NumPy's BLAS on one thread while it runs.

    OpenBLAS splits a matrix product (librosa's mel and chroma filter banks, TfMfcc's mel
    matrix) by its number of threads, and the float rounding follows the split: features
    computed in the caller's process (one thread per core) differed from those of the feature
    workers by up to 1.5e-5 relative. On one thread they are the same in a worker, in the
    caller and on any machine, whatever its number of cores; a file's features take a few
    milliseconds, too little for BLAS threads to gain anything.
    """

    @functools.wraps(call)
    def on_one_thread(*args, **kwargs):
        with _blas().limit(limits=1, user_api="blas"):
            return call(*args, **kwargs)

    return on_one_thread


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

    @one_blas_thread
    def __call__(self, path) -> np.ndarray:
        librosa = import_librosa()

        y, sr = load_audio(path, self.sample_rate, self.n_fft)
        # The reference's two calls, librosa.feature.mfcc(y=...) and chroma_stft(y=...), as
        # librosa (0.11) computes them, with the repeated work done once: both computed the same
        # power spectrogram, and both built their filter bank for every file (the chroma one
        # depends on the estimated tuning too, one of 101 values). The same products in the
        # same order give the reference's features bit for bit (tests/test_features.py checks
        # them against librosa's own two calls, whatever release is installed) in about 40%
        # less time.
        power = power_spectrogram(y, self.n_fft, self.hop_length)
        mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel_spectrogram(power, sr, self.n_fft)),
                                    n_mfcc=self.n_mfcc).T  # fmt: skip
        tuning = float(librosa.estimate_tuning(S=power, sr=sr, bins_per_octave=self.n_chroma))
        filters = _chroma_filters(sr, self.n_fft, tuning, self.n_chroma)
        chroma = np.einsum("cf,...ft->...ct", filters, power, optimize=True)
        chroma = librosa.util.normalize(chroma, norm=np.inf, axis=-2).T
        return np.concatenate([mfcc, chroma], axis=1).astype(np.float32)


def power_spectrogram(y: np.ndarray, n_fft: int, hop_length: int, **stft) -> np.ndarray:
    """|STFT|^2 of `y` [N] as librosa's feature functions compute it from a signal (Hann
    window and centred, zero-padded frames unless `stft` says otherwise): [1 + n_fft // 2, T]."""
    librosa = import_librosa()

    return np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length, **stft)) ** 2


def mel_spectrogram(power: np.ndarray, sr: int, n_fft: int, **mel) -> np.ndarray:
    """librosa.feature.melspectrogram(S=power, sr=sr, n_fft=n_fft, **mel), equal bit for bit,
    with the filter bank built once per process instead of once per call (it took about a
    third of a file's features): [n_mels, T]."""
    return np.einsum("...ft,mf->...mt", power, _mel_filters(sr, n_fft, **mel), optimize=True)


@functools.lru_cache(maxsize=32)
def _mel_filters(sr: int, n_fft: int, n_mels: int = 128, fmax: float | None = None,
                 htk: bool = False) -> np.ndarray:  # fmt: skip
    """librosa.filters.mel as librosa's melspectrogram and mfcc build it (Slaney area
    normalisation): [n_mels, 1 + n_fft // 2] float32, read-only (shared by every call)."""
    librosa = import_librosa()

    filters = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmax=fmax, htk=htk,
                                  norm="slaney")  # fmt: skip
    return _read_only(filters)


@functools.lru_cache(maxsize=256)
def _chroma_filters(sr: int, n_fft: int, tuning: float, n_chroma: int) -> np.ndarray:
    """librosa's chroma filter bank as librosa.feature.chroma_stft builds it for `tuning`
    (fractions of a chroma bin): [n_chroma, 1 + n_fft // 2], read-only."""
    librosa = import_librosa()

    return _read_only(librosa.filters.chroma(sr=sr, n_fft=n_fft, tuning=tuning,
                                             n_chroma=n_chroma))  # fmt: skip


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


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
        # librosa.feature.melspectrogram(y=y, sr, n_fft, hop_length=hop, n_mels, pad_mode,
        # fmax=sr / 2), bit for bit, with its filter bank kept (`mel_spectrogram`)
        power = power_spectrogram(y, n_fft, hop, pad_mode=self.pad_mode)
        mel = mel_spectrogram(power, self.sample_rate, n_fft, n_mels=n_mels,
                              fmax=self.sample_rate / 2)  # fmt: skip
        return resize_nearest((10 * np.log10(mel + self.eps)).T, frames).astype(np.float32)

    @one_blas_thread
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
        librosa = import_librosa()

        y = np.append(y[:1], y[1:] - self.preemphasis * y[:-1]).astype(np.float32)
        # librosa.feature.mfcc(y=y, sr, n_mfcc=13, n_fft, win_length, hop_length,
        # window="hamming", n_mels, htk=True, lifter, center=False), bit for bit, with its mel
        # filter bank kept (`mel_spectrogram`)
        power = power_spectrogram(y, self.n_fft, self.hop_length, win_length=self.win_length,
                                  window="hamming", center=False)  # fmt: skip
        mel = mel_spectrogram(power, self.sample_rate, self.n_fft, n_mels=self.n_mels, htk=True)
        mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=13, lifter=self.lifter)
        frames = librosa.util.frame(y, frame_length=self.win_length, hop_length=self.hop_length)
        energy = np.log(np.maximum(np.sum(np.square(frames), axis=0), 1e-10))
        base = np.concatenate([mfcc[1:13], energy[None, : mfcc.shape[1]]], axis=0)  # [13, T]
        width = 5 if base.shape[1] >= 5 else (base.shape[1] // 2) * 2 + 1
        if width < 3:
            raise AudioError(f"too short for MFCC deltas: {base.shape[1]} frames")
        d1 = librosa.feature.delta(base, width=width, order=1, mode="nearest")
        d2 = librosa.feature.delta(base, width=width, order=2, mode="nearest")
        return np.concatenate([base, d1, d2], axis=0).T.astype(np.float32)

    @one_blas_thread
    def __call__(self, path) -> np.ndarray:
        y, _ = load_audio(path, self.sample_rate, self.win_length)
        return self.from_signal(y)


@dataclasses.dataclass(frozen=True)
class DsLstmInputs(LogmelDual):
    """Everything DS-LSTM reads: `logmel_dual`'s {"a", "b"} plus "mfcc" [T, 39] (`mfcc39`)."""

    name: str = "ds_lstm_inputs"

    @one_blas_thread
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

    @one_blas_thread
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
