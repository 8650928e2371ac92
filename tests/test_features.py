"""Feature extractors, the content-keyed cache, resumability and the bad-audio policy."""

from __future__ import annotations

import math
import pathlib
import re
import shutil

import numpy as np
import pytest
import soundfile
from numerics import assert_rounding_close

from reslstm_jax import extractors, features
from reslstm_jax.audio import import_librosa


def tone(path: pathlib.Path, seconds: float, sr: int = 48000, freq: float = 220.0, seed=0):
    """A harmonic tone with noise, written as 16-bit PCM."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * freq * t) + 0.1 * np.sin(2 * np.pi * 2 * freq * t)
    y = y + 0.01 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, y, sr, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    good = [
        tone(root / f"good{i}.wav", 0.5 + 0.25 * i, freq=200 + 50 * i, seed=i) for i in range(3)
    ]
    bad = {}
    (root / "empty.wav").write_bytes(b"")
    bad["empty.wav"] = "empty file"
    (root / "lfs.wav").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n"
    )
    bad["lfs.wav"] = "Git LFS pointer"
    data = (root / "good0.wav").read_bytes()
    (root / "truncated.wav").write_bytes(data[: len(data) // 2])
    bad["truncated.wav"] = "truncated: the header declares more audio"
    (root / "noise.wav").write_bytes(b"\x00\x01garbage" * 50)
    bad["noise.wav"] = "not a RIFF/WAVE file"
    tone(root / "short.wav", 0.01)
    bad["short.wav"] = "too short: 480 samples at 48000 Hz"
    soundfile.write(root / "nan.wav", np.full(48000, np.nan), 48000, subtype="FLOAT")
    bad["nan.wav"] = "non-finite audio samples"
    (root / "text.flac").write_text("not audio at all")
    bad["text.flac"] = "unreadable audio"
    return root, good, bad


# (file rate, seconds, tone Hz, the extractor's sample_rate or None for native): RAVDESS's,
# EMO-DB's and SAVEE's rates, tones off the 440 Hz grid by different fractions of a semitone
# (each its own estimated tuning, so its own cached chroma filter bank), and a resampled one.
REFERENCE_SIGNALS = [
    (48000, 1.0, 200.0, None),
    (48000, 0.75, 233.0, None),  # another tuning at the same rate and FFT size
    (16000, 1.25, 311.0, None),
    (44100, 0.6, 250.0, None),
    (48000, 0.8, 200.0, 16000),
]


@pytest.mark.parametrize("rate,seconds,freq,target", REFERENCE_SIGNALS)
def test_mfcc_chroma_is_the_reference_recipe(tmp_path, rate, seconds, freq, target):
    librosa = import_librosa()
    from threadpoolctl import threadpool_limits

    path = tone(tmp_path / "x.wav", seconds, rate, freq)
    extractor = features.get("mfcc_chroma", **({"sample_rate": target} if target else {}))
    with threadpool_limits(limits=2, user_api="blas"):  # the caller's BLAS threads don't count
        x = extractor(path)
        again = extractor(path)  # with the filter banks the first call cached
    y, sr = librosa.load(path, sr=target)
    assert sr == (target or rate) and x.shape == (1 + y.size // 2048, 46)
    assert x.dtype == np.float32
    with threadpool_limits(limits=1, user_api="blas"):
        mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=34, n_fft=4096, hop_length=2048).T
        chroma = librosa.feature.chroma_stft(y=y, sr=sr, n_fft=4096, hop_length=2048,
                                             n_chroma=12).T  # fmt: skip
    # The extractor is the reference's two librosa calls on the same float32 samples
    # (load_audio reads as librosa.load), with the spectrogram they share computed once and the
    # filter banks cached, and NumPy's BLAS on one thread (extractors.one_blas_thread): the same
    # products, so equal. (On 2 threads, 37% of the values differed by rounding, up to 1.5e-5
    # relative: OpenBLAS's split of the filter-bank products.)
    reference = np.concatenate([mfcc, chroma], 1)
    np.testing.assert_array_equal(x, reference)
    np.testing.assert_array_equal(again, reference)


@pytest.mark.parametrize("name", sorted(set(features.EXTRACTORS) - {"egemaps", "compare"}))
def test_every_numpy_extractor_runs_blas_on_one_thread(name):
    # openSMILE's two (its own C++ code) aside, each extractor computes with NumPy: its
    # `__call__` holds BLAS to one thread (`extractors.one_blas_thread`; why: the test above)
    call = features.EXTRACTORS[name].__call__
    assert call.__code__.co_name == "on_one_thread", f"{name}: __call__ is not one_blas_thread's"


def test_bad_audio_is_reported_per_file_and_the_run_goes_on(audio_dir, tmp_path):
    root, good, bad = audio_dir
    paths = [*good, *(root / name for name in bad)]
    result = features.extract_all(
        paths, features.get("mfcc_chroma"), cache_dir=tmp_path, workers=1, progress=False
    )
    assert all(f is not None for f in result.features[: len(good)])
    assert all(f is None for f in result.features[len(good) :])
    reasons = {pathlib.Path(p).name: r for p, r in result.report.failed}
    assert sorted(reasons) == sorted(bad)
    for name, expected in bad.items():
        assert expected in reasons[name], (name, reasons[name])
        assert "\n" not in reasons[name]
    assert result.report.computed == len(good) and result.report.cached == 0
    summary = result.report.summary()
    assert f"{len(paths)} files, 0 cached, 3 computed, {len(bad)} failed" in summary


def test_cache_is_keyed_by_content_and_parameters(audio_dir, tmp_path):
    _, good, _ = audio_dir
    extractor = features.get("mfcc_chroma")
    first = features.extract_all(good, extractor, cache_dir=tmp_path, workers=1, progress=False)
    again = features.extract_all(good, extractor, cache_dir=tmp_path, workers=1, progress=False)
    assert (again.report.cached, again.report.computed) == (3, 0)
    for a, b in zip(first.features, again.features, strict=True):
        np.testing.assert_array_equal(a, b)  # the saved arrays, read back: exact
    # the same content under another name and place is a cache hit
    moved = tmp_path / "elsewhere" / "renamed.wav"
    moved.parent.mkdir()
    shutil.copy(good[0], moved)
    hit = features.extract_all([moved], extractor, cache_dir=tmp_path, workers=1, progress=False)
    assert hit.report.cached == 1
    # other parameters: another cache directory, recomputed
    other = features.get("mfcc_chroma", n_mfcc=20)
    assert features.cache_key(other) != features.cache_key(extractor)
    miss = features.extract_all(good, other, cache_dir=tmp_path, workers=1, progress=False)
    assert miss.report.computed == 3 and miss.features[0].shape[1] == 32


def test_interrupted_extraction_resumes(audio_dir, tmp_path):
    _, good, _ = audio_dir
    extractor = features.get("mfcc_chroma")
    # "interrupted" after the first file, with a half-written temporary entry left behind
    features.extract_all(good[:1], extractor, cache_dir=tmp_path, workers=1, progress=False)
    directory = tmp_path / features.cache_key(extractor)
    (directory / "ab").mkdir(exist_ok=True)
    (directory / "ab" / "leftover.tmp").write_bytes(b"partial")
    resumed = features.extract_all(good, extractor, cache_dir=tmp_path, workers=1, progress=False)
    assert (resumed.report.cached, resumed.report.computed) == (1, 2)
    # a corrupt entry is recomputed, not trusted
    entry = next(p for p in directory.rglob("*.npz"))
    entry.write_bytes(b"corrupt")
    again = features.extract_all(good, extractor, cache_dir=tmp_path, workers=1, progress=False)
    assert (again.report.cached, again.report.computed) == (2, 1)


def test_parallel_equals_serial_and_a_warm_cache_starts_no_worker(audio_dir, tmp_path, monkeypatch):
    root, good, bad = audio_dir
    paths = [*good, root / "empty.wav"]
    extractor = features.get("mfcc_chroma")
    serial = features.extract_all(paths, extractor, cache_dir=None, workers=1, progress=False)
    parallel = features.extract_all(paths, extractor, cache_dir=tmp_path, workers=2, progress=False)
    assert parallel.report.failed == serial.report.failed
    for a, b in zip(serial.features[:3], parallel.features[:3], strict=True):
        np.testing.assert_array_equal(a, b)  # the same extractor, in workers: exact

    # a warm cache is read in this process: no worker starts, no librosa warm-up
    def no_workers(*args, **kwargs):
        raise AssertionError("a worker pool started for cached features")

    monkeypatch.setattr(features, "run_workers", no_workers)
    warm = features.extract_all(good, extractor, cache_dir=tmp_path, workers=2, progress=False)
    assert (warm.report.cached, warm.report.computed) == (3, 0)
    for a, b in zip(serial.features[:3], warm.features, strict=True):
        np.testing.assert_array_equal(a, b)  # computed, saved and read back: exact


def test_unknown_extractor_and_parameters():
    with pytest.raises(
        ValueError,
        match="unknown feature extractor .mfcc.; known: compare, ds_lstm_inputs, egemaps, logmel",
    ):
        features.get("mfcc")
    with pytest.raises(ValueError, match=r"mfcc_chroma: unknown parameters \['n_mel'\]"):
        features.get("mfcc_chroma", n_mel=3)


@pytest.mark.parametrize(
    "name,params,message",
    [("mfcc_chroma", {"n_fft": 0}, "mfcc_chroma: n_fft must be a positive integer, got 0"),
     ("mfcc_chroma", {"hop_length": 2.5}, "hop_length must be a positive integer, got 2.5"),
     ("mfcc_chroma", {"n_mfcc": True}, "n_mfcc must be a positive integer, got True"),
     ("mfcc_chroma", {"sample_rate": -16000}, "sample_rate must be a positive integer"),
     ("tf_mfcc", {"seconds": float("nan")}, "tf_mfcc: seconds must be a finite number, got nan"),
     ("tf_mfcc", {"seconds": 0}, "seconds must be > 0, got 0"),
     ("mfcc39", {"preemphasis": -0.1}, "preemphasis must be >= 0, got -0.1"),
     ("mfcc39", {"lifter": -1}, "lifter must be >= 0, got -1")],
)  # fmt: skip
def test_bad_parameter_values_are_refused_before_any_file_is_read(name, params, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        features.get(name, **params)


@pytest.mark.parametrize(
    "name,params",
    [("mfcc_chroma", {"sample_rate": None}), ("mfcc_chroma", {"sample_rate": 16000}),
     ("mfcc39", {"preemphasis": 0.0, "lifter": 0}), ("tf_mfcc", {"seconds": 7})],
)  # fmt: skip
def test_meaningful_parameter_values_are_kept(name, params):
    extractor = features.get(name, **params)
    assert {k: getattr(extractor, k) for k in params} == params


# ----------------------------------------------------------------------------- tf_mfcc


def mel_matrix_by_loops(n_mels, n_bins, sr, fmin, fmax):
    """tf.signal.linear_to_mel_weight_matrix written out element by element."""

    def mel(f):
        return 1127.0 * math.log(1.0 + f / 700.0)

    edges = [mel(fmin) + (mel(fmax) - mel(fmin)) * i / (n_mels + 1) for i in range(n_mels + 2)]
    w = np.zeros((n_bins, n_mels))
    for k in range(1, n_bins):
        m = mel(k * (sr / 2) / (n_bins - 1))
        for j in range(n_mels):
            lo, ce, up = edges[j], edges[j + 1], edges[j + 2]
            w[k, j] = max(0.0, min((m - lo) / (ce - lo), (up - m) / (up - ce)))
    return w


def test_tf_mel_matrix_matches_the_tensorflow_formula():
    ours = extractors.tf_mel_matrix(128, 513, 16000, 80.0, 7600.0)
    # float64 in two orders (log1p against log(1 + x), broadcasting against loops): mels of size
    # up to 2900 carry ~2900 * eps = 6e-13 of rounding, divided by the triangles' ~22-mel width:
    # ~3e-14 on weights <= 1 (measured 2.2e-14). 1e-12 is 45x that; fmax 1 Hz off moves a weight
    # by 7e-3.
    np.testing.assert_allclose(ours, mel_matrix_by_loops(128, 513, 16000, 80.0, 7600.0), atol=1e-12)
    assert np.all(ours[0] == 0)  # DC bin


@pytest.mark.parametrize("seconds,frames", [(3.0, 184), (7.0, 434)])
@pytest.mark.parametrize("audio_seconds", [1.0, 9.0])
def test_tf_mfcc_shapes_crop_and_pad(tmp_path, seconds, frames, audio_seconds):
    path = tone(tmp_path / "x.wav", audio_seconds, sr=16000)
    x = features.get("tf_mfcc", seconds=seconds)(path)
    assert x.shape == (frames, 40) and x.dtype == np.float32
    assert np.abs(x).max() <= 10.0


def test_tf_mfcc_values_computed_independently(tmp_path):
    """Segment -> |STFT| -> mel -> ln -> DCT, recomputed here with plain loops and numpy."""
    from scipy.fft import dct

    path = tone(tmp_path / "x.wav", 2.0, sr=16000, freq=330.0)
    extractor = features.get("tf_mfcc")
    y, _ = soundfile.read(path, dtype="float32")
    # centre pad 2 s -> 3 s after peak normalisation, then the 16-bit round trip
    y = np.clip(y / (np.percentile(np.abs(y), 99.9) + 1e-8), -1, 1)
    y = np.pad(y, (8000, 8000))
    # libsndfile's float -> int16: rint(x * (2^31 - 1)) in float32, arithmetic shift by 16,
    # clipped; int16 -> float divides by 2^15.
    scaled = np.rint(y.astype(np.float32) * np.float32(2147483647.0)).astype(np.int64)
    y = np.clip(scaled >> 16, -32768, 32767) / 32768
    window = np.array([0.5 - 0.5 * math.cos(2 * math.pi * n / 1024) for n in range(1024)])
    frames = np.stack([y[i * 256 : i * 256 + 1024] * window for i in range(184)])
    power = np.abs(np.fft.rfft(frames, axis=1))
    mel = power @ mel_matrix_by_loops(128, 513, 16000, 80.0, 7600.0)
    expected = dct(np.log(mel + 1e-6), type=2, axis=1)[:, :40] / math.sqrt(256)
    # The extractor computes this in float64 too, in another order (~1e-14 apart), and rounds it
    # to float32: equal to the float32 rounding of `expected` or one ulp of an element from it
    # (measured: equal). 4 ulps of the values' scale (10: 4.8e-6) leaves room for that; one
    # int16 sample off by one in the PCM round trip moves them by >= 70 ulps (8e-5).
    expected = np.clip(expected, -10, 10).astype(np.float32)
    assert_rounding_close(extractor(path), expected, ulps=4)


# ----------------------------------------------------------------------------- logmel_dual


def test_resize_nearest_is_torch_nearest():
    x = np.arange(7)[:, None]
    np.testing.assert_array_equal(extractors.resize_nearest(x, 3)[:, 0], [0, 2, 4])
    np.testing.assert_array_equal(
        extractors.resize_nearest(x, 10)[:, 0], [0, 0, 1, 2, 2, 3, 4, 4, 5, 6]
    )


# DS-LSTM's librosa features (logmel_dual, mfcc39, both in ds_lstm_inputs) on 48 kHz audio
# (resampled) and 16 kHz audio (read as is), a short file and a long one.
DS_LSTM_SIGNALS = [(48000, 2.5, 220.0), (16000, 0.6, 311.0), (16000, 4.0, 180.0)]


def _logmel_reference(y, n_fft, hop, n_mels, frames):
    """DS-LSTM's log-mel spectrogram as librosa's melspectrogram call writes it."""
    librosa = import_librosa()

    mel = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=n_fft, hop_length=hop,
                                         n_mels=n_mels, pad_mode="constant", fmax=8000)  # fmt: skip
    return extractors.resize_nearest((10 * np.log10(mel + 1e-10)).T, frames).astype(np.float32)


def _mfcc39_reference(y):
    """openSMILE's MFCC12_E_D_A as librosa's mfcc call approximates it (extractors.Mfcc39)."""
    librosa = import_librosa()

    y = np.append(y[:1], y[1:] - 0.97 * y[:-1]).astype(np.float32)
    mfcc = librosa.feature.mfcc(y=y, sr=16000, n_mfcc=13, n_fft=512, win_length=400,
                                hop_length=160, window="hamming", n_mels=26, htk=True,
                                lifter=22, center=False)  # fmt: skip
    frames = librosa.util.frame(y, frame_length=400, hop_length=160)
    energy = np.log(np.maximum(np.sum(np.square(frames), axis=0), 1e-10))
    base = np.concatenate([mfcc[1:13], energy[None, : mfcc.shape[1]]], axis=0)
    d1 = librosa.feature.delta(base, width=5, order=1, mode="nearest")
    d2 = librosa.feature.delta(base, width=5, order=2, mode="nearest")
    return np.concatenate([base, d1, d2], axis=0).T.astype(np.float32)


@pytest.mark.parametrize("rate,seconds,freq", DS_LSTM_SIGNALS)
def test_ds_lstm_features_are_their_librosa_recipes(tmp_path, rate, seconds, freq):
    """The extractors compute the spectrogram and mel filter banks their own way (a filter
    bank is built once per process): the values are librosa's calls', bit for bit."""
    librosa = import_librosa()
    from threadpoolctl import threadpool_limits

    path = tone(tmp_path / "x.wav", seconds, rate, freq)
    with threadpool_limits(limits=2, user_api="blas"):
        got = [features.get("ds_lstm_inputs")(path) for _ in range(2)]
        logmel, mfcc = features.get("logmel_dual")(path), features.get("mfcc39")(path)
    y, _ = librosa.load(path, sr=16000)
    with threadpool_limits(limits=1, user_api="blas"):
        expected = {"a": _logmel_reference(y * 32768.0, 512, 256, 128, 230),
                    "b": _logmel_reference(y * 32768.0, 1024, 512, 256, 120),
                    "mfcc": _mfcc39_reference(y)}  # fmt: skip
    for out in got:
        assert out.keys() == expected.keys()
        for key, value in expected.items():
            np.testing.assert_array_equal(out[key], value, err_msg=key)
    for key in ("a", "b"):
        np.testing.assert_array_equal(logmel[key], expected[key], err_msg=key)
    np.testing.assert_array_equal(mfcc, expected["mfcc"])


def test_logmel_dual_shapes(tmp_path):
    out = features.get("logmel_dual")(tone(tmp_path / "x.wav", 2.5, sr=16000))
    assert out["a"].shape == (230, 128) and out["b"].shape == (120, 256)
    assert all(np.all(np.isfinite(v)) for v in out.values())


def test_predicts_spectrogram_is_librosas_log_mel_on_the_features_frames(tmp_path):
    """`predict --plot`'s picture: the features' STFT and cached mel filters give librosa's
    64-band melspectrogram bit for bit, in dB, one row per feature frame; an extractor without
    an STFT grid draws its features z-scored instead."""
    from reslstm_jax import predict
    from reslstm_jax.audio import load_audio

    librosa = import_librosa()
    path = tone(tmp_path / "x.wav", 1.0)
    extractor = features.get("mfcc_chroma")
    feats = extractor(path)
    spec, axis, step = predict.display_spectrogram(extractor, path, feats)
    y, sr = load_audio(path, extractor.sample_rate, extractor.n_fft)
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=extractor.n_fft,
                                         hop_length=extractor.hop_length, n_mels=64)  # fmt: skip
    np.testing.assert_array_equal(spec, librosa.power_to_db(mel, ref=np.max).T[: len(feats)])
    assert spec.shape == (len(feats), 64) and axis == "mel band (log power)"
    assert step == extractor.hop_length / sr
    other = features.get("tf_mfcc", seconds=0.5)
    z, axis, _ = predict.display_spectrogram(other, path, other(path))
    assert axis.startswith("feature (z-scored") and np.allclose(z.mean(0), 0, atol=1e-5)


def test_librosa_paths_compile_numba_only_under_the_import_lock(tmp_path):
    """`audio.import_librosa` imports librosa's modules whose numba functions compile at import,
    one process of the machine at a time (a shared numba cache written by two processes at
    once crashes every later reader). Every librosa path of the project (each extractor with
    `load_audio`'s resampling, speed perturbation, predict's spectrogram) may therefore load
    no other module that compiles at import, and compile none of librosa's lazily compiled
    functions (they would compile outside the lock)."""
    import sys

    from reslstm_jax import audio, predict

    def lazily_compiled() -> dict[str, int]:  # each numba.jit function of librosa: signatures
        return {f"{name}.{attr}": len(value.signatures)
                for name, module in list(sys.modules.items()) if name.startswith("librosa")
                for attr, value in vars(module).items()
                if type(value).__module__ == "numba.core.registry"}  # fmt: skip

    audio.import_librosa()
    before = lazily_compiled()
    path = tone(tmp_path / "x.wav", 1.0, 22050)  # no extractor's rate: every one resamples
    for name in sorted(set(features.EXTRACTORS) - {"egemaps", "compare"}):  # openSMILE's: C++
        features.get(name, **({"speed": 1.1} if name == "perturbed" else {}))(path)
    extractor = features.get("mfcc_chroma")
    predict.display_spectrogram(extractor, path, extractor(path))
    compiled = {k: n for k, n in lazily_compiled().items() if n != before.get(k, 0)}
    assert not compiled, f"librosa functions compiled outside import_librosa's lock: {compiled}"
    at_import = sorted(name for name, module in list(sys.modules.items())
                       if name.startswith("librosa") and any(
                           type(v).__module__.startswith("numba.np.ufunc") for v in
                           vars(module).values()))  # fmt: skip
    assert set(at_import) <= set(audio.LIBROSA_NUMBA_MODULES), at_import


def test_librosa_is_imported_by_one_process_at_a_time(tmp_path, monkeypatch):
    """While another holds the machine's numba lock (here this test, through a file handle of its
    own: flock locks exclude each other even within one process), `import_librosa` waits."""
    import threading

    import filelock

    from reslstm_jax import audio, runlock

    audio.import_librosa()  # the modules loaded: alone, the import below returns at once
    monkeypatch.setenv("RESLSTM_JAX_LOCKS", str(tmp_path / "locks"))
    (tmp_path / "locks").mkdir()
    done = []
    importer = threading.Thread(target=lambda: done.append(audio.import_librosa.__wrapped__()))
    with filelock.FileLock(runlock.lock_dir() / audio.NUMBA_LOCK_NAME):
        importer.start()
        importer.join(timeout=0.5)
        assert importer.is_alive() and not done  # waiting for the lock
    importer.join(timeout=30)
    assert done and done[0].__name__ == "librosa"


def test_librosa_is_imported_where_no_lock_can_be_made(tmp_path, monkeypatch):
    """A lock directory that cannot be created (here under a file; a read-only home) leaves the
    import unguarded rather than failing the extraction."""
    from reslstm_jax import audio

    (tmp_path / "file").write_text("")
    monkeypatch.setenv("RESLSTM_JAX_LOCKS", str(tmp_path / "file" / "locks"))
    assert audio.import_librosa.__wrapped__().__name__ == "librosa"
