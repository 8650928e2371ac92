"""openSMILE extractors and the functionals + SVM / logistic-regression baseline row."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import soundfile

from reslstm_jax import baseline, features, report, smile


@pytest.mark.parametrize(
    "name,level,dim",
    [("egemaps", "lld", 25), ("egemaps", "functionals", 88), ("compare", "lld", 65),
     ("compare", "functionals", 6373)],
)  # fmt: skip
def test_opensmile_feature_sets(tmp_path, name, level, dim):
    t = np.arange(48000) / 48000
    soundfile.write(tmp_path / "a.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 48000)
    extractor = features.get(name, level=level)
    x = extractor(tmp_path / "a.wav")
    frames = 1 if level == "functionals" else 96  # 10 ms steps of 1 s, minus the window
    assert x.shape == (frames, dim) and x.dtype == np.float32 and np.isfinite(x).all()
    assert len(extractor.names()) == dim
    # the opensmile version is part of the cache key
    assert features.describe(extractor)["opensmile"] == __import__("opensmile").__version__


def test_opensmile_misuse_is_one_line(monkeypatch):
    with pytest.raises(ValueError, match="egemaps: level must be one of lld, functionals"):
        features.get("egemaps", level="frames")
    monkeypatch.setattr(smile, "available", lambda: False)
    with pytest.raises(ValueError, match=r"compare: openSMILE features need the opensmile extra"):
        features.get("compare")


def test_the_baseline_needs_functionals(tiny_dataset):
    with pytest.raises(ValueError, match="one vector of functionals per utterance"):
        baseline.fit(tiny_dataset)


def test_baseline_on_the_folds_of_a_run_joins_its_table(
    tone_corpus, feature_cache, trained_run, tmp_path, capsys
):
    """The CLI on the tone corpus: every fold's test speakers labelled by the C picked on its
    validation speakers; the report puts the row into the neural run's table, last and off
    the Pareto front."""
    out = tmp_path / "svm"
    argv = ["--corpus", "ravdess", "--data-dir", str(tone_corpus), "--cache-dir",
            str(feature_cache), "--feature-workers", "1", "--no-progress"]  # fmt: skip
    assert baseline.main([*argv, "--out", str(out)]) == 0
    assert "egemaps functionals + linear SVM (baseline): pooled test UAR" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    run = json.loads((trained_run[0] / "results.json").read_text())
    assert [r["fold"] for r in results["runs"]] == [
        r["fold"] for r in run["runs"] if r["seed"] == 0
    ]
    for mine, theirs in zip(results["runs"], run["runs"], strict=False):  # seed 0's folds
        assert mine["test_predictions"]["ids"] == theirs["test_predictions"]["ids"]
        assert mine["best_c"] in baseline.C_GRID
        assert mine["best_val_uar"] == max(mine["val_uar"])
    # two pitches per class: the F0 functionals separate them
    assert results["aggregate"]["pooled_oof_uar"]["mean"] > 0.9
    assert results["model"]["trainable_params"] == 88 + 1  # two classes: one weight vector
    # deterministic
    again = baseline.fit(baseline.prepare("ravdess", tone_corpus, cache_dir=feature_cache,
                                          workers=1, progress=False))  # fmt: skip
    assert [r["test_predictions"] for r in again["runs"]] == [
        r["test_predictions"] for r in results["runs"]]  # fmt: skip
    tables = report.build_tables(report.load_paths([trained_run[0], out]), ci_resamples=200)
    assert len(tables) == 1
    labels = [r["label"] for r in tables[0].rows]
    assert labels[-1] == "egemaps functionals + linear SVM (baseline)" and len(labels) == 2
    assert labels[-1] not in tables[0].front
    assert "linear SVM (baseline)" in report.format_markdown(tables)
    # misuse: one line, exit 2, nothing written
    assert baseline.main([*argv, "--protocol", "emodb_loso", "--out", str(tmp_path / "x")]) == 2
    assert "emodb_loso" in capsys.readouterr().err
    assert not pathlib.Path(tmp_path / "x").exists()
    # a manifest of the same files, with the corpus flags of every command: its own folds
    from corpus_trees import tone_rows, write

    lab = write(tmp_path / "my_lab.csv", tone_rows(tone_corpus, tmp_path),
                ["file", "emotion", "speaker"])  # fmt: skip
    assert baseline.main(["--corpus", "manifest", "--data-dir", str(lab), "--folds", "3",
                          "--label-map", "angry=anger", *argv[4:],
                          "--out", str(tmp_path / "lab")]) == 0  # fmt: skip
    card = json.loads((tmp_path / "lab" / "card.json").read_text())
    assert (card["corpus"], card["classes"]) == ("my_lab", ["anger", "neutral"])
    assert card["protocol"] == "speaker_kfold3" and len(card["folds"]) == 3
