"""Audio-level augmentation: speed and noise variants, cached, training rows of a fold only."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import soundfile

from reslstm_jax import audio, data, features, perturb


def tone(seconds=1.0, rate=16000, hz=200.0):
    t = np.arange(int(rate * seconds)) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def peak_hz(y, rate):
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    return np.fft.rfftfreq(y.size, 1 / rate)[np.argmax(spectrum)]


@pytest.mark.parametrize("speed", [0.9, 1.1])
def test_speed_perturbation_changes_duration_and_pitch_together(speed):
    y = tone()
    out = perturb.speed_perturb(y, 16000, speed)
    assert abs(out.size - y.size / speed) <= 2
    # the spectrum's bins are 16000 / out.size = speed Hz apart: its peak lies within half a bin
    # of 200 * speed (measured 0.008 Hz); 2 Hz allows 2 bins, a pitch left at 200 Hz is 20 off
    assert peak_hz(out, 16000) == pytest.approx(200 * speed, abs=2)


@pytest.mark.parametrize("snr_db", [20.0, 5.0, -3.0])
def test_noise_has_the_asked_snr_and_the_same_noise_every_time(snr_db):
    y = tone(4.0)
    noisy = perturb.add_noise(y, snr_db, seed=7)
    measured = 10 * np.log10(np.mean(y.astype(np.float64) ** 2) / np.mean((noisy - y) ** 2.0))
    # the noise is a sample: its power over 64000 samples has a relative sd of sqrt(2 / 64000),
    # 0.024 dB; 0.1 dB is 4 sd (this seed, on every machine: 0.016 dB)
    assert measured == pytest.approx(snr_db, abs=0.1)
    np.testing.assert_array_equal(noisy, perturb.add_noise(y, snr_db, seed=7))  # seeded: exact
    assert not np.array_equal(noisy, perturb.add_noise(y, snr_db, seed=8))
    # silence gets no noise: exactly 0
    np.testing.assert_array_equal(perturb.add_noise(np.zeros(100, np.float32), snr_db, 7), 0)


@pytest.mark.parametrize(
    "params,message",
    [({"speed": 3.0}, r"speed must be in \[0.5, 2.0\] and not 1, got 3"),
     ({"snr_db": float("nan")}, "snr_db must be a finite number of dB"),
     ({}, "give a speed other than 1 or an snr_db"),
     ({"base": "nope", "speed": 0.9}, "unknown base extractor 'nope'"),
     ({"base_params": '{"n_fft": 0}', "speed": 0.9}, "n_fft must be a positive integer")],
)  # fmt: skip
def test_bad_variants_are_refused_with_one_line(params, message):
    with pytest.raises(ValueError, match=message):
        features.get("perturbed", **params)


@pytest.mark.parametrize(
    "speeds,snrs,key,message",
    [([1.0], [], "speed", "must be in"), ([0.9, 0.9], [], "speed", "0.9 is given twice"),
     ([], [float("inf")], "snr_db", "finite"),
     ([], [1e308], "snr_db", r"must be in \[-140, 140\] dB \(float32 audio's range\)")],
)  # fmt: skip
def test_variant_lists_name_the_bad_value(speeds, snrs, key, message):
    with pytest.raises(perturb.VariantError, match=message) as caught:
        perturb.variants(speeds, snrs)
    assert caught.value.key == key
    assert perturb.variants([0.9, 1.1], [20]) == [{"speed": 0.9}, {"speed": 1.1},
                                                  {"snr_db": 20.0}]  # fmt: skip


def test_a_variant_is_its_base_extractor_on_the_perturbed_file(tmp_path):
    """Rebuilt by name and parameters (as feature workers do), it equals the base extractor
    run on a file holding the perturbed signal; different variants get different caches."""
    path = tmp_path / "a.wav"
    soundfile.write(path, tone(rate=48000), 48000)
    base = features.get("mfcc_chroma")
    variant = perturb.Perturbed.of(base, speed=1.1, snr_db=10)
    params = json.loads(json.dumps(features.describe(variant)["params"]))
    rebuilt = features.get("perturbed", **params)
    assert rebuilt == variant and rebuilt.variant == "speed1.1+snr10"
    from reslstm_jax.corpora.base import file_sha256

    y, rate = audio.load_audio(path, None, 1)
    seed = perturb.noise_seed(file_sha256(path), 1.1, 10.0)
    expected_signal = perturb.add_noise(perturb.speed_perturb(y, rate, 1.1), 10.0, seed)
    soundfile.write(tmp_path / "b.wav", expected_signal, rate, subtype="FLOAT")
    # the variant is the base extractor on this signal, written and read as a float WAV: exact
    np.testing.assert_array_equal(rebuilt(path), base(tmp_path / "b.wav"))
    keys = {features.cache_key(e) for e in (base, variant, perturb.Perturbed.of(base, speed=0.9))}
    assert len(keys) == 3


def test_variants_are_training_rows_of_the_folds_that_train_on_their_utterance(
    tone_corpus, feature_cache
):
    options = {"cache_dir": feature_cache, "workers": 1, "progress": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tone tree is a subset of RAVDESS
        plain = data.prepare("ravdess", tone_corpus, **options)
        augmented = data.prepare("ravdess", tone_corpus, **options,
                                 audio_variants=[{"speed": 0.9}, {"snr_db": 20.0}])  # fmt: skip
        again = data.prepare("ravdess", tone_corpus, **options,
                             audio_variants=[{"speed": 0.9}, {"snr_db": 20.0}])  # fmt: skip
    n = len(plain.labels)
    folds, base = augmented.folds, plain.folds
    # every actor trains in some ravdess_paper fold: one copy of every utterance per variant
    assert len(augmented.labels) == 3 * n
    np.testing.assert_array_equal(augmented.origin, np.tile(np.arange(n), 3))
    np.testing.assert_array_equal(augmented.labels, np.tile(plain.labels, 3))
    assert augmented.ids[n] == plain.ids[0] + "~speed0.9"
    assert augmented.ids[2 * n] == plain.ids[0] + "~snr20"
    assert [v["name"] for v in augmented.card["audio_variants"]] == ["speed0.9", "snr20"]
    # the slower copies are longer: the padded frame count may grow, the utterances' rows not
    assert augmented.frames >= plain.frames
    np.testing.assert_array_equal(augmented.x[:n, : plain.frames], plain.x)  # cached: exact
    for k in range(len(folds.names)):
        train = folds.train[k][folds.train_mask[k]]
        base_train = base.train[k][base.train_mask[k]]
        variant_rows = train[train >= n]
        # the fold's utterances as before, then exactly the variants of its training ones
        np.testing.assert_array_equal(train[train < n], base_train)
        assert sorted(augmented.origin[variant_rows]) == sorted(np.tile(base_train, 2))
        for split in ("val", "test"):
            rows = getattr(folds, split)[k][getattr(folds, split + "_mask")[k]]
            assert (rows < n).all()  # never a variant, of any utterance
            assert not np.isin(augmented.origin[variant_rows], rows).any()
    # normalisation from the utterances alone: the same statistics as without variants (the same
    # float64 sums over the same frames in the same order: exact)
    np.testing.assert_array_equal(folds.mean, base.mean)
    np.testing.assert_array_equal(folds.std, base.std)
    # cached: the second preparation extracts nothing
    assert [v["rows"] for v in again.card["audio_variants"]] == [n, n]
    np.testing.assert_array_equal(again.x, augmented.x)  # read from the cache: exact
