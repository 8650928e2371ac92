"""`python -m reslstm_jax.train` end to end: results, card, checkpoints, kill and resume, misuse."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile

from reslstm_jax import checkpoint


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> pathlib.Path:
    """A RAVDESS-named tree of tones: 24 actors x 2 emotions (the pitch gives the emotion)."""
    root = tmp_path_factory.mktemp("ravdess")
    rng = np.random.default_rng(0)
    for actor in range(1, 25):
        for emotion in (1, 5):
            t = np.arange(int(48000 * (0.4 + 0.2 * rng.random()))) / 48000
            y = 0.3 * np.sin(2 * np.pi * (120 + 40 * emotion + 10 * rng.random()) * t)
            folder = root / f"Actor_{actor:02d}"
            folder.mkdir(exist_ok=True)
            name = f"03-01-{emotion:02d}-01-01-01-{actor:02d}.wav"
            soundfile.write(folder / name, y + 0.01 * rng.standard_normal(t.size), 48000)
    return root


def command(corpus, out, cache, *extra) -> list[str]:
    return [
        sys.executable, "-m", "reslstm_jax.train", "--corpus", "ravdess",
        "--data-dir", str(corpus), "--hidden-size", "8", "--batch-size", "8", "--seeds", "2",
        "--epochs", "6", "--checkpoint-every", "2", "--workers", "1", "--cache-dir", str(cache),
        "--no-progress", "--out", str(out), *extra,
    ]  # fmt: skip


def run(args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)


def test_train_writes_results_card_and_best_checkpoints(corpus, tmp_path):
    proc = run(command(corpus, tmp_path / "run", tmp_path / "cache"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "pooled out-of-fold UAR" in proc.stdout and "protocol ravdess_paper" in proc.stdout
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    card = json.loads((tmp_path / "run" / "card.json").read_text())
    assert card["protocol"] == "ravdess_paper" and results["card"] == card
    assert len(results["runs"]) == 10  # 2 seeds x 5 folds
    for r in results["runs"]:
        assert len(r["train_loss"]) == len(r["val_uar"]) == 6
        assert 0 <= r["best_epoch"] < 6 and r["best_val_uar"] == max(r["val_uar"])
        test = r["test"]
        assert {"uar", "wa", "macro_f1", "confusion", "recall_per_class"} <= set(test)
        assert len(r["test_predictions"]["ids"]) == test["n"]
    agg = results["aggregate"]
    assert set(agg["per_fold"]) == {f"fold{k}" for k in range(5)}
    assert agg["pooled_oof_uar"]["n"] == 2 and len(agg["pooled_oof"]) == 2
    assert sum(p["n"] for p in agg["pooled_oof"]) == 2 * 48  # every utterance tested once a seed
    # two pitches per class pair: training learns well above chance on this toy corpus
    assert agg["pooled_oof_uar"]["mean"] > 0.3
    best = checkpoint.load_best(tmp_path / "run" / "best")
    assert best["params"]["fc"]["weight"].shape == (10, 8, 8)


def test_a_killed_run_resumes_to_identical_results(corpus, tmp_path):
    cache = tmp_path / "cache"
    reference = run(command(corpus, tmp_path / "whole", cache))
    assert reference.returncode == 0, reference.stderr[-2000:]

    out = tmp_path / "killed"
    process = subprocess.Popen(command(corpus, out, cache), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.time() + 300
    while not (out / "checkpoints" / "2").is_dir():
        assert process.poll() is None, "the run ended before its first checkpoint"
        assert time.time() < deadline
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / "results.json").exists()

    resumed = run(command(corpus, out, cache))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    whole = json.loads((tmp_path / "whole" / "results.json").read_text())
    again = json.loads((out / "results.json").read_text())
    assert again["epochs_resumed_from"] >= 2
    assert again["runs"] == whole["runs"]
    assert again["aggregate"] == whole["aggregate"]


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--hidden-size", "0"], "hidden_size must be a positive integer"),
        (["--epochs", "0"], "epochs must be >= 1"),
        (["--dropout", "1.5"], "dropout must be in [0, 1)"),
        (["--protocol", "emodb_loso"], "--protocol emodb_loso is for emodb, not ravdess"),
        (["--model", "resnet"], "invalid choice: 'resnet'"),
    ],
)
def test_misuse_is_one_line_and_exit_2(corpus, tmp_path, extra, message):
    proc = run(command(corpus, tmp_path / "x", tmp_path / "cache", *extra))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x" / "results.json").exists()


def test_missing_corpus_and_mismatched_out_dir(corpus, tmp_path):
    missing = run(command(tmp_path / "nowhere", tmp_path / "x", tmp_path / "cache"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
    # an output directory holding checkpoints of another configuration is refused
    first = run(command(corpus, tmp_path / "run", tmp_path / "cache", "--epochs", "2"))
    assert first.returncode == 0, first.stderr[-2000:]
    other = run(command(corpus, tmp_path / "run", tmp_path / "cache", "--lr", "0.1"))
    assert other.returncode == 2 and "another configuration" in other.stderr
