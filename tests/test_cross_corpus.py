"""Label sets and cross-corpus testing (train on one corpus, test on the whole of another)."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from reslstm_jax.corpora import labelsets
from reslstm_jax.corpora.base import CorpusError, Manifest, Utterance


def write_emodb_tones(root: pathlib.Path) -> pathlib.Path:
    """An EMO-DB-named tree of tones as `conftest.write_tone_corpus` makes them (the pitch of
    the RAVDESS emotion: neutral 160 Hz, happiness 240, sadness 280, anger 320; 48 kHz), plus
    boredom, which the shared label set leaves out: 10 speakers x 2 texts x 5 emotions."""
    import soundfile

    rng = np.random.default_rng(1)
    pitch = {"N": 160, "F": 240, "T": 280, "W": 320, "L": 200}  # as RAVDESS 01/03/04/05; boredom
    for speaker in ("03", "08", "09", "10", "11", "12", "13", "14", "15", "16"):
        for text in ("a01", "b02"):
            for letter, hz in pitch.items():
                t = np.arange(int(48000 * (0.4 + 0.2 * rng.random()))) / 48000
                y = 0.3 * np.sin(2 * np.pi * (hz + 10 * rng.random()) * t)
                path = root / "wav" / f"{speaker}{text}{letter}a.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                soundfile.write(path, y + 0.01 * rng.standard_normal(t.size), 48000)
    return root


@pytest.mark.parametrize(
    "corpus,classes",
    [("ravdess", ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")),
     ("emodb", ("anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral")),
     ("savee", ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")),
     ("cremad", ("anger", "disgust", "fear", "happy", "neutral", "sad")),
     ("tess", ("angry", "disgust", "fear", "happy", "neutral", "pleasant_surprise", "sad")),
     ("iemocap", ("neutral", "happy", "angry", "sad"))],
)  # fmt: skip
def test_shared4_keeps_the_four_emotions_of_every_corpus(corpus, classes):
    from reslstm_jax import corpora

    assert classes == corpora.module(corpus).CLASSES  # the table below is about these names
    utterances = [Utterance(id=f"u{i}", path=f"/x/{i}.wav", corpus=corpus, speaker="s",
                            label=i, emotion=c) for i, c in enumerate(classes)]  # fmt: skip
    manifest = Manifest(corpus, "/x", classes, utterances)
    shared = labelsets.relabel(manifest, "shared4")
    assert shared.classes == labelsets.SHARED4
    assert sorted(u.emotion for u in shared.utterances) == sorted(labelsets.SHARED4)
    assert all(shared.classes[u.label] == u.emotion for u in shared.utterances)
    left_out = {s.reason.split(": ")[1] for s in shared.skipped}
    assert left_out == set(classes) - set(labelsets.mapping(corpus, "shared4"))
    assert labelsets.relabel(manifest, "native") is manifest
    with pytest.raises(CorpusError, match="unknown label set 'shared5'"):
        labelsets.relabel(manifest, "shared5")


@pytest.fixture
def shared_tones(tmp_path) -> pathlib.Path:
    """A RAVDESS tone tree with the four emotions of the shared label set (24 actors x
    neutral, happy, sad, angry): a corpus `--label-set shared4` can train on."""
    from conftest import write_tone_corpus

    return write_tone_corpus(tmp_path / "shared-tones" / "ravdess", emotions=(1, 3, 4, 5))


def test_a_label_set_the_corpus_cannot_fill_is_refused_before_extraction(
    tone_corpus, tmp_path, run_main
):
    """shared4 on a tree without happy and sad: one line naming them, exit 2, nothing
    extracted (it used to train 4-output models and report UARs over 2 classes)."""
    from reslstm_jax.train.__main__ import main as train_main

    done = run_main(train_main, ["--corpus", "ravdess", "--data-dir", tone_corpus,
                                 "--label-set", "shared4", "--cache-dir", tmp_path / "cache",
                                 "--out", tmp_path / "run"])  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "error: --label-set shared4: ravdess has no utterance of class happy, sad; its models "
        "would keep outputs nothing teaches and report UARs over fewer classes: train on a "
        "corpus that has them, or on this one's own classes (--label-set native)")  # fmt: skip
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()


def test_train_on_ravdess_tones_and_test_on_emodb_and_ravdess_tones(
    shared_tones, feature_cache, tmp_path, train_command, run_command
):
    """The cross-corpus options of the train CLI in one run: the shared label set, two
    cross-corpus tests. (A speed-perturbed copy of the training utterances:
    tests/test_manifest.py's train CLI run.) Batch 32 and two seeds are the ravdess row of the
    cross-corpus experiment below: the same programs, compiled once."""
    from reslstm_jax import crosscorpus

    tone_corpus = shared_tones
    emodb = write_emodb_tones(tmp_path / "emodb")
    out = tmp_path / "run"
    proc = run_command(train_command(tone_corpus, out, feature_cache, "--label-set", "shared4",
                                     "--cross-test", f"emodb={emodb}", "--batch-size", "32",
                                     "--cross-test", f"ravdess={tone_corpus}",
                                     wandb="offline"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    card = json.loads((out / "card.json").read_text())
    assert card["classes"] == list(labelsets.SHARED4) and "absent_classes" not in card
    shared4 = labelsets.mapping("ravdess", "shared4")
    assert card["label_set"] == {"name": "shared4", "mapping": shared4}
    # the card names both target corpora with their utterance hashes, before training
    assert [(t["corpus"], t["n_utterances"], t["normalisation"]) for t in card["cross_test"]] == [
        ("emodb", 80, "train"), ("ravdess", 96, "train")]  # fmt: skip
    emodb_result, ravdess_result = results["cross_test"]
    assert emodb_result["target"]["utterance_ids_sha256"] == card["cross_test"][0][
        "utterance_ids_sha256"]  # fmt: skip
    for cross in results["cross_test"]:
        assert [(r["seed"], r["fold"]) for r in cross["per_model"]] == [
            (r["seed"], r["fold"]) for r in results["runs"]]  # fmt: skip
        uars = [r["uar"] for r in cross["per_model"]]
        # the same float64 mean of the same numbers (`crosscorpus.evaluate`): equal (approx's
        # default rel 1e-6 only)
        assert cross["uar_mean"] == pytest.approx(np.mean(uars))
        assert len(cross["ensemble"]) == 2 and not cross["uses_target_audio"]
    # every model's prediction of every target utterance, in a CSV per target: its UAR per
    # model recomputed from the file is the one reported (the same float64 metric)
    import csv

    from reslstm_jax import metrics

    for cross in results["cross_test"]:
        name = cross["target"]["corpus"]
        with open(out / f"cross_{name}_predictions.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        n = cross["target"]["n_utterances"]
        assert len(rows) == n * len(cross["per_model"]) and rows[0]["file"]
        for k, model in enumerate(cross["per_model"]):
            mine = rows[k * n : (k + 1) * n]
            assert {(r["seed"], r["fold"]) for r in mine} == {(str(model["seed"]), model["fold"])}
            y, p = ([card["classes"].index(r[c]) for r in mine] for c in ("label", "prediction"))
            uar = metrics.classification(np.array(y), np.array(p), len(card["classes"]))["uar"]
            assert uar == model["uar"]
    # the training corpus as a "cross" test: its own utterances, seen in training but for the
    # test fold, so the models label most of them right
    assert ravdess_result["uar_mean"] > 0.75
    assert "cross-corpus test on emodb (80 utterances, 10 speakers, label set shared4" in (
        proc.stdout)  # fmt: skip
    assert "label set shared4: neutral -> neutral" in proc.stdout
    # the W&B run's summary holds each target's figures (tested before the run closed)
    from wandb_reader import read_run

    from reslstm_jax import tracking

    (run_dir,) = tracking.offline_runs(out)
    summary = read_run(run_dir)["summary"]
    for cross in results["cross_test"]:  # copies of the same floats: equal (approx's default)
        corpus = cross["target"]["corpus"]
        assert summary[f"cross_{corpus}_uar"] == pytest.approx(cross["uar_mean"])
        assert summary[f"cross_{corpus}_ensemble_uar"] == pytest.approx(cross["ensemble_uar_mean"])
    # the target's own statistics instead (unlabelled target audio), in-process on the run
    target = crosscorpus.load_target("emodb", emodb, card, cache_dir=feature_cache,
                                     progress=False)  # fmt: skip
    own = crosscorpus.evaluate(out, target, "target")
    assert own["uses_target_audio"] and own["normalisation"] == "target"
    assert len(own["per_model"]) == len(results["runs"])
    # the training corpus's native classes are not EMO-DB's: one line, how to fix it
    with pytest.raises(crosscorpus.CrossCorpusError, match="train with --label-set shared4"):
        crosscorpus.load_target("emodb", emodb, {**card, "label_set": None,
                                                 "classes": ["neutral", "calm"]})  # fmt: skip


@pytest.mark.parametrize(
    "flags,message",
    [(["--cross-test", "emodb"], "--cross-test emodb: give the corpus's directory, emodb=DIR"),
     (["--cross-test", "nope=/x"], "--cross-test nope=/x: unknown corpus 'nope'"),
     (["--speed-perturb", "1"], r"--speed-perturb must be in \[0.5, 2.0\] and not 1, got 1"),
     (["--noise-snr", "20", "20"], "--noise-snr 20 is given twice")],
)  # fmt: skip
def test_data_flags_are_checked_first(flags, message):
    from reslstm_jax.train.__main__ import build_parser, checked_flags

    with pytest.raises(ValueError, match=message):
        checked_flags(build_parser().parse_args(["--out", "x", *flags]))


def test_the_cross_corpus_experiment_writes_the_matrix_and_the_report_prints_it(
    shared_tones, feature_cache, synthetic_actor, tmp_path, capsys
):
    """Two tone trees, each trained on and tested on the other, on the synthetic corpus (one
    actor: test only) and on a manifest of the tone files (test only): the matrix (md,
    LaTeX, CSV, heatmap) with the in-corpus diagonal, and experiments.report showing it
    again."""
    import csv
    import io

    from corpus_trees import tone_rows, write

    from experiments import cross_corpus
    from experiments import report as report_cli

    tone_corpus = shared_tones
    emodb = write_emodb_tones(tmp_path / "emodb")
    lab = write(tmp_path / "my_lab.csv", tone_rows(tone_corpus, tmp_path),
                ["file", "emotion", "speaker"])  # fmt: skip
    out = tmp_path / "x"
    argv = ["--corpora", "ravdess", "emodb", "--data-dir", f"ravdess={tone_corpus}",
            "--data-dir", f"emodb={emodb}", "--test-only", "synthetic",
            "--data-dir", f"synthetic={synthetic_actor}", "--test-only-manifest", str(lab),
            "--budget", "quick", "--epochs", "2", "--seeds", "2",
            "--hidden-size", "8", "--no-latency", "--no-progress", "--feature-workers", "1",
            "--cache-dir", str(feature_cache), "--out", str(out)]  # fmt: skip
    assert cross_corpus.main(argv) == 0
    rows = list(csv.DictReader(io.StringIO((out / "matrix.csv").read_text())))
    assert [(r["train"], r["test"], r["in_corpus"]) for r in rows] == [
        ("ravdess / reslstm_sa", "ravdess", "True"),
        ("ravdess / reslstm_sa", "emodb", "False"),
        ("ravdess / reslstm_sa", "synthetic", "False"),
        ("ravdess / reslstm_sa", "my_lab", "False"),
        ("emodb / reslstm_sa", "ravdess", "False"),
        ("emodb / reslstm_sa", "emodb", "True"),
        ("emodb / reslstm_sa", "synthetic", "False"),
        ("emodb / reslstm_sa", "my_lab", "False"),
    ]
    # the manifest lists the ravdess tone files with the same labels: emodb's models score it
    # as they score ravdess (the same files, features and labels; UAR ignores their order)
    assert rows[7]["uar_mean"] == rows[4]["uar_mean"]
    ravdess = json.loads((out / "ravdess" / "results.json").read_text())
    # the CSV writes repr(float), which reads back exactly
    assert float(rows[0]["uar_mean"]) == ravdess["aggregate"]["pooled_oof_uar"]["mean"]
    assert float(rows[1]["uar_mean"]) == ravdess["cross_test"][0]["uar_mean"]
    assert "| train \\ test | ravdess | emodb | synthetic | my_lab |" in (
        out / "matrix.md").read_text()  # fmt: skip
    assert r"\begin{tabular}{lrrrr}" in (out / "matrix.tex").read_text()
    assert (out / "cross_corpus.png").read_bytes()[:4] == b"\x89PNG"
    assert cross_corpus.main(argv) == 0  # a rerun keeps the finished rows
    assert capsys.readouterr().out.count("done earlier, kept") == 2
    assert report_cli.main([str(out), "--ci-resamples", "200", "--plots",
                            str(tmp_path / "plots")]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "Cross-corpus UAR, label set shared4: rows train, columns test" in text
    assert (tmp_path / "plots" / "cross_corpus.png").is_file()


def test_the_cross_corpus_experiment_needs_every_corpus_directory(tmp_path, capsys):
    from experiments import cross_corpus

    with pytest.raises(SystemExit) as exited:
        cross_corpus.main(["--corpora", "ravdess", "emodb", "--out", str(tmp_path / "x")])
    assert exited.value.code == 2
    assert "ravdess: give --data-root or --data-dir ravdess=DIR" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
