"""Padded arrays, fold index arrays, per-fold vs global normalisation, the dataset card."""

from __future__ import annotations

import numpy as np
import pytest

from reslstm_jax import data, features, protocols
from reslstm_jax.corpora.base import Manifest, Utterance


def ravdess_manifest(per_actor: int = 3) -> Manifest:
    utterances = [
        Utterance(
            id=f"03-01-{e:02d}-01-01-01-{a:02d}",
            path=f"/nowhere/{a}-{e}.wav",
            corpus="ravdess",
            speaker=f"{a:02d}",
            label=e - 1,
            emotion=f"class{e}",
        )
        for a in range(1, 25)
        for e in range(1, per_actor + 1)
    ]
    classes = tuple(f"class{e}" for e in range(1, 9))
    return Manifest("ravdess", "/nowhere", classes, sorted(utterances, key=lambda u: u.id))


def random_features(manifest: Manifest, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    # speaker-dependent offsets make fold statistics differ from the global ones
    return [
        (rng.standard_normal((rng.integers(3, 12), 5)) + int(u.speaker)).astype(np.float32)
        for u in manifest.utterances
    ]


@pytest.mark.parametrize(
    "lengths,multiple,cap,expected",
    [([69, 124, 100], 8, None, 128), ([7], 8, None, 8), ([8], 8, None, 8), ([130], 8, 128, 128)],
)
def test_choose_frames(lengths, multiple, cap, expected):
    assert data.choose_frames(lengths, multiple, cap) == expected


def test_pad_sequences_zero_pads_and_truncates():
    seqs = [np.ones((3, 2)), 2 * np.ones((5, 2))]
    x, lengths = data.pad_sequences(seqs, 4)
    assert x.shape == (2, 4, 2) and x.dtype == np.float32
    np.testing.assert_array_equal(lengths, [3, 4])
    assert np.all(x[0, 3:] == 0) and np.all(x[1] == 2)


def test_frame_statistics_are_frame_weighted_over_valid_frames():
    seqs = [np.arange(6.0).reshape(3, 2), np.arange(10.0, 20.0).reshape(5, 2)]
    x, lengths = data.pad_sequences(seqs, 8)
    x[0, 3:] = 1e6  # garbage on padding must not count
    mean, std = data.frame_statistics(x, lengths, np.array([0, 1]))
    frames = np.concatenate(seqs)
    # float64 on both sides: sums of small integers are exact, and the std comes by another
    # formula (E[x^2] - mean^2): a few roundings of 1e-16 against numpy's default rtol 1e-7
    np.testing.assert_allclose(mean, frames.mean(0))
    np.testing.assert_allclose(std, frames.std(0))
    normed = data.normalise(x, lengths, mean, std)
    assert np.all(normed[0, 3:] == 0)
    # the float32 result of the same float64 arithmetic: one rounding (<= 6e-8)
    np.testing.assert_allclose(normed[1, :5], (seqs[1] - mean) / std, rtol=1e-6)


def build(normalisation: str):
    manifest = ravdess_manifest()
    feats = random_features(manifest)
    extraction = features.ExtractionReport({"name": "test"}, total=len(feats))
    dataset = data.build(
        manifest, "ravdess_paper", feats, extractor_info={"name": "test"},
        extraction=extraction, normalisation=normalisation,
    )  # fmt: skip
    return manifest, feats, dataset


def test_fold_arrays_index_the_protocols_folds():
    manifest, feats, dataset = build("fold")
    folds = protocols.make_folds("ravdess_paper", manifest)
    arrays = dataset.folds
    assert arrays.names == [f.name for f in folds]
    assert arrays.train.shape == (5, 18 * 3) and arrays.train.dtype == np.int32
    for k, fold in enumerate(folds):
        for part in ("train", "val", "test"):
            idx, mask = getattr(arrays, part)[k], getattr(arrays, f"{part}_mask")[k]
            np.testing.assert_array_equal(idx[mask], getattr(fold, part))
            assert np.all(idx[~mask] == 0)
    assert dataset.x.shape == (72, 16, 5) and dataset.frames == 16
    np.testing.assert_array_equal(dataset.lengths, [len(f) for f in feats])
    np.testing.assert_array_equal(dataset.labels, manifest.labels)


def test_fold_normalisation_uses_training_speakers_only():
    manifest, feats, dataset = build("fold")
    folds = protocols.make_folds("ravdess_paper", manifest)
    for k, fold in enumerate(folds):
        frames = np.concatenate([feats[i] for i in fold.train]).astype(np.float64)
        # float32 statistics of float64 sums against numpy's float64: one float32 rounding
        # (6e-8; the std's E[x^2] - mean^2 loses < 1 digit of float64's 16): measured 4e-8
        np.testing.assert_allclose(dataset.folds.mean[k], frames.mean(0), rtol=1e-5)
        np.testing.assert_allclose(dataset.folds.std[k], frames.std(0), rtol=1e-5)
    # test speakers' features cannot move the statistics of their fold
    changed = [f * 100 if u.speaker in folds[0].test_speakers else f
               for f, u in zip(feats, manifest.utterances, strict=True)]  # fmt: skip
    again = data.build(
        manifest, "ravdess_paper", changed, extractor_info={}, extraction=dataset.extraction
    )
    # fold 0: the same arithmetic on the same training frames, exact; fold 1 trains on fold 0's
    # test speakers, whose features x 100 move its mean by far more than any tolerance
    np.testing.assert_array_equal(again.folds.mean[0], dataset.folds.mean[0])
    assert not np.allclose(again.folds.mean[1], dataset.folds.mean[1])
    assert dataset.card["normalisation"] == "fold" and not dataset.card["normalisation_leaky"]


def test_global_normalisation_reproduces_the_paper_and_is_marked_leaky():
    manifest, feats, dataset = build("global")
    frames = np.concatenate(feats).astype(np.float64)
    for k in range(5):  # float32 of a float64 mean: one rounding (6e-8)
        np.testing.assert_allclose(dataset.folds.mean[k], frames.mean(0), rtol=1e-5)
    assert dataset.card["normalisation_leaky"] is True


def test_card_records_everything_needed_to_cite_the_run():
    _, _, dataset = build("fold")
    card = dataset.card
    assert card["protocol"] == "ravdess_paper" and card["frames"] == 16
    assert card["truncated"] == 0 and card["features"] == {"name": "test"}
    assert len(card["utterance_ids_sha256"]) == 64


def test_unknown_normalisation():
    manifest = ravdess_manifest()
    folds = protocols.make_folds("ravdess_paper", manifest)
    x, lengths = data.pad_sequences(random_features(manifest), 16)
    with pytest.raises(ValueError, match="normalisation must be one of fold, global"):
        data.fold_arrays(folds, x, lengths, "speaker")


def test_drop_failed_moves_utterances_to_skipped():
    manifest = ravdess_manifest(1)
    bad = manifest.utterances[3].path
    kept = data.drop_failed(manifest, [(bad, "too short")])
    assert len(kept) == len(manifest) - 1 and bad not in [u.path for u in kept.utterances]
    assert kept.skipped_by_reason() == {"feature extraction failed: too short": 1}


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"corpus": "ravdess"}, "corpus ravdess needs data_dir"),
        ({"corpus": "voxceleb", "data_dir": "/x"}, "unknown corpus 'voxceleb'"),
        ({"data_dir": "/x"}, "data_dir needs corpus"),
        (
            {"corpus": "emodb", "data_dir": "/x", "protocol": "ravdess_paper"},
            "protocol ravdess_paper is for ravdess, not emodb",
        ),
        ({"corpus": "emodb", "data_dir": "/x", "extractor": "mel"}, "unknown feature extractor"),
    ],
)
def test_prepare_argument_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.prepare(**kwargs)


def test_a_subset_too_small_for_the_protocol_is_refused_before_extraction(
    tone_corpus, tmp_path, monkeypatch
):
    """Four actors cannot fill ravdess_paper's five test folds: refused on the manifest, before
    a single feature is extracted (it used to take the whole extraction first)."""
    import shutil

    from reslstm_jax import protocols

    for actor in range(1, 5):
        shutil.copytree(tone_corpus / f"Actor_{actor:02d}", tmp_path / f"Actor_{actor:02d}")

    def extract_all(*args, **kwargs):
        pytest.fail("features extracted before the check")

    monkeypatch.setattr(data.features, "extract_all", extract_all)
    with pytest.raises(protocols.LeakageError, match="ravdess_paper fold1: no val utterance"):
        data.prepare("ravdess", tmp_path, cache_dir=tmp_path / "cache", progress=False)


def test_prepare_end_to_end_on_a_ravdess_tree(tmp_path):
    """Loader -> features (cached, a bad file reported) -> audited protocol -> arrays."""
    import soundfile

    from reslstm_jax.corpora import CorpusCountWarning

    root = tmp_path / "ravdess"
    rng = np.random.default_rng(0)
    for actor in range(1, 25):
        for emotion in (1, 5):
            name = f"03-01-{emotion:02d}-01-01-01-{actor:02d}.wav"
            seconds = 0.01 if (actor, emotion) == (7, 5) else 0.5 + 0.05 * emotion
            t = np.arange(int(48000 * seconds)) / 48000
            y = 0.3 * np.sin(2 * np.pi * (100 + 20 * emotion) * t)
            y = y + 0.01 * rng.standard_normal(t.size)
            (root / f"Actor_{actor:02d}").mkdir(parents=True, exist_ok=True)
            soundfile.write(root / f"Actor_{actor:02d}" / name, y, 48000, subtype="PCM_16")
    kwargs = {"cache_dir": tmp_path / "cache", "workers": 2, "progress": False}
    with pytest.warns(CorpusCountWarning, match="is a subset of the published corpus"):
        dataset = data.prepare("ravdess", root, **kwargs)
    assert len(dataset.ids) == 47 and dataset.x.shape == (47, 24, 46)  # 0.75 s: 18 frames
    assert dataset.extraction.computed == 47 and len(dataset.extraction.failed) == 1
    assert "too short" in dataset.extraction.failed[0][1]
    assert dataset.card["skipped"] == {
        "feature extraction failed: too short: 480 samples at 48000 Hz, fewer than one "
        "analysis frame (4096)": 1
    }
    assert dataset.card["n_utterances"] == 47 and dataset.card["protocol"] == "ravdess_paper"
    assert np.all(np.isfinite(dataset.x))
    with pytest.warns(CorpusCountWarning):
        again = data.prepare("ravdess", root, **kwargs)
    assert again.extraction.cached == 47 and again.extraction.computed == 0
    np.testing.assert_array_equal(again.x, dataset.x)  # the cached features, read back: exact
    assert again.card["utterance_ids_sha256"] == dataset.card["utterance_ids_sha256"]


@pytest.mark.parametrize(
    ("kwargs", "flags"),
    [
        ({"corpus": "ravdess"}, "--corpus ravdess needs --data-dir (where the corpus is)"),
        ({"data_dir": "/x"}, "--data-dir needs --corpus (which corpus is in that directory?)"),
    ],
)
def test_library_errors_name_parameters_and_each_cli_words_them_as_flags(kwargs, flags):
    from reslstm_jax.errors import ParameterError, cli_message

    with pytest.raises(ParameterError) as caught:
        data.prepare(**kwargs)
    assert "--" not in str(caught.value)
    assert cli_message(caught.value) == flags
    assert caught.value.phrased(lambda name: f"`{name}`").startswith(("`corpus`", "`data_dir`"))


def test_classes_the_data_cannot_fill_are_named_for_the_corpus_and_each_test_fold():
    """Class 3 spoken by actors 1-8 only (the folds that test other actors lack it); classes
    4-8 never spoken."""
    import dataclasses

    manifest = ravdess_manifest(per_actor=3)
    kept = [u for u in manifest.utterances if u.label != 2 or int(u.speaker) <= 8]
    manifest = dataclasses.replace(manifest, utterances=kept)
    folds = protocols.make_folds("ravdess_paper", manifest)
    coverage = data.class_coverage(manifest, folds)
    assert coverage["absent_classes"] == [f"class{e}" for e in range(4, 9)]
    tested = {f.name: {int(manifest.utterances[i].speaker) for i in f.test} for f in folds}
    lacking = sorted(name for name, actors in tested.items() if not actors & set(range(1, 9)))
    assert lacking and sorted(coverage["test_absent_classes"]) == lacking
    assert all(v == ["class3"] for v in coverage["test_absent_classes"].values())
    lines = data.coverage_warnings(coverage, "ravdess", 8)
    assert lines[0].startswith("ravdess: no utterance of class class4, class5, class6, class7, "
                               "class8: the model keeps an output")  # fmt: skip
    assert lines[0].endswith("over the 3 classes present, not 8; drop them with --label-map "
                             "class4=-,class5=-,class6=-,class7=-,class8=-")  # fmt: skip
    assert lines[1] == (f"ravdess {lacking[0]}: its test part has no utterance of class class3: "
                        "that fold's UAR is over fewer classes")  # fmt: skip
    # a corpus that fills every class: nothing in its card, nothing said
    full = ravdess_manifest(per_actor=8)
    assert data.class_coverage(full, protocols.make_folds("ravdess_paper", full)) == {}
