"""`python -m reslstm_jax.train` end to end: results, card, checkpoints, kill and resume, misuse."""

from __future__ import annotations

import contextlib
import dataclasses
import io
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
import yaml

from reslstm_jax import checkpoint
from reslstm_jax import train as train_mod


@pytest.fixture
def corpus(tone_corpus):
    return tone_corpus


@pytest.fixture
def trained(trained_run):
    return trained_run


def test_train_writes_results_card_and_best_checkpoints(trained):
    out, proc = trained
    assert "pooled out-of-fold UAR" in proc.stdout and "protocol ravdess_paper" in proc.stdout
    results = json.loads((out / "results.json").read_text())
    card = json.loads((out / "card.json").read_text())
    assert card["protocol"] == "ravdess_paper" and results["card"] == card
    assert len(results["runs"]) == 10  # 2 seeds x 5 folds
    for r in results["runs"]:
        assert len(r["train_loss"]) == len(r["val_uar"]) == 6
        # the best epoch's own float32 value (kept with `where`), both through JSON: equal
        assert 0 <= r["best_epoch"] < 6 and r["best_val_uar"] == max(r["val_uar"])
        test = r["test"]
        assert {"uar", "wa", "macro_f1", "confusion", "recall_per_class"} <= set(test)
        assert len(r["test_predictions"]["ids"]) == test["n"]
    # collapsed models (one class for a whole test part, or chance) are named, and only they
    for r in results["runs"]:
        one_class = len(set(r["test_predictions"]["predictions"])) == 1 < len(
            set(r["test_predictions"]["labels"]))  # fmt: skip
        assert (r["collapsed"] == "one class") == one_class
    marked = [(c["seed"], c["fold"]) for c in results["collapsed"]]
    assert marked == [(r["seed"], r["fold"]) for r in results["runs"] if r["collapsed"]]
    assert ("COLLAPSED: " in proc.stdout) == bool(marked)
    # the tone corpus has 2 of RAVDESS's 8 classes: named once, and in the summary
    assert card["absent_classes"] == ["calm", "happy", "sad", "fearful", "disgust", "surprised"]
    assert "every UAR is over 2 of 8 classes (no utterance of calm, happy" in proc.stdout
    assert (
        "ravdess: no utterance of class calm, happy, sad, fearful, disgust, surprised: "
        "the model keeps an output for each" in proc.stderr
    )
    agg = results["aggregate"]
    assert set(agg["per_fold"]) == {f"fold{k}" for k in range(5)}
    assert agg["pooled_oof_uar"]["n"] == 2 and len(agg["pooled_oof"]) == 2
    assert sum(p["n"] for p in agg["pooled_oof"]) == 2 * 48  # every utterance tested once a seed
    # two pitches per class pair: training learns well above chance on this toy corpus
    assert agg["pooled_oof_uar"]["mean"] > 0.3
    best = checkpoint.load_best(out / "best")
    assert best["params"]["fc"]["weight"].shape == (10, 8, 8)
    assert card["sample_rates"] == {"48000": 48}
    # inference.json records the dropout training used (0.2), not the model's default (0.1)
    info = json.loads((out / "inference.json").read_text())
    assert results["settings"]["dropout"] == 0.2
    assert results["matmul_precision"] == "default"  # the precision that ran is recorded
    assert info["model_config"]["dropout"] == 0.2 and info["dropout"] == [0.2]
    # every JSON file of the run is strict JSON (no NaN or Infinity: most parsers refuse them)
    refuse = {"parse_constant": lambda name: pytest.fail(f"{name} in strict JSON")}
    written = [p for p in out.rglob("*.json") if "wandb" not in p.parts]
    assert {"results.json", "card.json", "inference.json", "best.files.json"} <= {
        p.name for p in written}  # fmt: skip
    for path in written:
        json.loads(path.read_text(), **refuse)


def test_predictions_csv_holds_the_out_of_fold_predictions_of_results(trained):
    """One row per test utterance and seed, with its file, speaker, fold and the selected
    checkpoint's class probabilities: the pooled UAR recomputed from the file is the one
    results.json reports."""
    import csv

    from reslstm_jax import metrics

    out, _ = trained
    results = json.loads((out / "results.json").read_text())
    classes = results["card"]["classes"]
    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:9] == ["id", "file", "start", "end", "speaker", "fold", "seed",
                                 "label", "prediction"]  # fmt: skip
    assert all(r["start"] == r["end"] == "" for r in rows)  # whole files
    assert len(rows) == sum(len(r["test_predictions"]["ids"]) for r in results["runs"])
    assert all(pathlib.Path(r["file"]).is_file() and r["speaker"] for r in rows)
    per_seed = []
    for seed in sorted({int(r["seed"]) for r in rows}):
        mine = [r for r in rows if int(r["seed"]) == seed]
        y = [classes.index(r["label"]) for r in mine]
        p = [classes.index(r["prediction"]) for r in mine]
        per_seed.append(metrics.classification(np.array(y), np.array(p), len(classes))["uar"])
        probs = np.array([[float(r[f"p_{c}"]) for c in classes] for r in mine])
        # softmax rows written with 6 decimals: they sum to 1 within 8 * 5e-7
        np.testing.assert_allclose(probs.sum(1), 1, atol=4e-6)
        assert (probs.argmax(1) == np.array(p)).all()  # the prediction is the likeliest class
    # the same predictions through the same float64 UAR: equal
    assert np.mean(per_seed) == pytest.approx(results["aggregate"]["pooled_oof_uar"]["mean"])


def test_the_run_is_recorded_with_its_provenance_in_results_and_wandb(trained):
    """results.json and the offline W&B run hold what the run was trained on and with; W&B
    has the curves of every epoch, names every number, and an interactive confusion matrix."""
    from wandb_reader import read_run

    from reslstm_jax import provenance

    out, proc = trained
    results = json.loads((out / "results.json").read_text())
    env = results["environment"]
    assert env["packages"]["jax"] and env["packages"]["reslstm-jax"] and env["python"]
    git = provenance.git_state()  # the suite runs from a checkout
    assert git is not None and env["git"]["commit"] == git["commit"]
    (run_dir,) = (out / "wandb").glob("offline-run-*")
    logged = read_run(run_dir)
    assert logged["run"]["job_type"] == "train" and logged["exit_code"] == 0
    assert logged["run"]["project"] == "reslstm-jax" and logged["run"]["tags"] == ["suite", "first"]
    config = logged["config"]
    card = results["card"]
    assert (config["corpus"], config["protocol"], config["protocol_hash"]) == (
        card["corpus"], card["protocol"], card["utterance_ids_sha256"])  # fmt: skip
    assert config["features"] == "mfcc_chroma" and config["normalisation"] == "fold"
    assert config["objective"] == "val" and config["epochs"] == 6 and config["seeds"] == 2
    assert config["versions"]["jax"] == env["packages"]["jax"]
    assert config["git_commit"] == env["git"]["commit"]
    # and every setting under its config.yaml key, the one name of results and the CLI
    written = yaml.safe_load((out / "config.yaml").read_text())
    same = {"hidden_size", "learning_rate", "weight_decay", "batch_size", "t0", "dropout"}
    assert {k: config[k] for k in same} == {k: written[k] for k in same}
    assert config["learning_rate"] == results["settings"]["learning_rate"] == 1e-3
    # the curves of every epoch (logged per chunk while training), learning rate included
    curves = [h for h in logged["history"] if "val_uar_mean" in h]
    assert [h["epoch"] for h in curves] == [1, 2, 3, 4, 5, 6]
    runs = results["runs"]
    for h in curves:
        val = [r["val_uar"][h["epoch"] - 1] for r in runs]
        # W&B's curves are float32 means over the 10 models (`results.epoch_rows`), the test's
        # float64: 9 float32 additions of values <= 1 and a division, <= 6e-7 (relative 6e-7
        # for the positive losses; rel 1e-5 is 17 times that). Min and max are elements: equal
        # (approx's default rel 1e-6 only)
        assert h["val_uar_mean"] == pytest.approx(np.mean(val), abs=1e-6)
        assert (h["val_uar_min"], h["val_uar_max"]) == pytest.approx((min(val), max(val)))
        assert h["train_loss"] == pytest.approx(
            np.mean([r["train_loss"][h["epoch"] - 1] for r in runs]), rel=1e-5)  # fmt: skip
    # epoch 0's cosine rate is lr, in float32: its rounding and <= 2 more (<= 2e-7 relative)
    assert curves[0]["learning_rate"] == pytest.approx(results["settings"]["learning_rate"])
    summary = logged["summary"]
    agg = results["aggregate"]
    assert summary["objective"] == "val_uar"
    # the same float64 mean of the same numbers (`results.headline`), and stored copies below
    assert summary["val_uar"] == pytest.approx(np.mean([r["best_val_uar"] for r in runs]))
    assert summary["test_uar"] == agg["pooled_oof_uar"]["mean"]
    assert summary["test_wa"] == agg["pooled_oof_wa"]["mean"]
    assert summary["test_macro_f1"] == agg["pooled_oof_macro_f1"]["mean"]
    assert "uar" not in summary  # no number without its split
    assert any("confusion_matrix" in key for key in summary)  # W&B's interactive chart
    assert "W&B offline run in" in proc.stdout


def test_results_hold_the_edge_metrics(trained):
    out, proc = trained
    results = json.loads((out / "results.json").read_text())
    edge = results["edge"]
    n = results["model"]["trainable_params"]
    assert edge["trainable_params"] == n
    assert edge["fp32_kib"] == n * 4 / 1024 and edge["fp16_kib"] == n * 2 / 1024
    # measured apart from training (reslstm_jax.latency): the model's own time with its
    # quartiles, relative to the reference model; the features once; the total derived
    assert edge["model_ms_q1"] <= edge["model_ms_per_s"] <= edge["model_ms_q3"]
    assert edge["model_rel"] == edge["model_ms_per_s"] / edge["reference_model_ms_per_s"]
    assert edge["latency_ms_per_s"] == edge["features_ms_per_s"] + edge["model_ms_per_s"]
    assert 0 < edge["latency_ms_per_s"] < 1000 and edge["latency_threads"] == 1
    assert edge["latency_features"] == "mfcc_chroma at 48000 Hz" and edge["latency_cpu"]
    assert edge["latency_reference"] == "reslstm_sa h64"
    assert f"model {edge['model_ms_per_s']:.3f} ms per second of audio" in proc.stdout
    # the ONNX export's figures (the test environment has the export extra)
    assert edge["onnx_kib"] > 0 and edge["onnx_int8_kib"] > 0
    assert edge["ort_ms_per_s"] == edge["features_ms_per_s"] + edge["ort_model_ms_per_s"]
    assert edge["ort_int8_model_ms_per_s"] > 0 and edge["ort_model_rel"] > 0
    # the int8 graphs' own test UAR beside their size (pooled per seed as test_uar is): int8
    # weights move a few decisions of these tiny models, not the whole result
    test_uar = results["aggregate"]["pooled_oof_uar"]["mean"]
    assert 0 < edge["int8_uar"] <= 1 and abs(edge["int8_uar"] - test_uar) < 0.15
    assert f"(int8 test UAR {edge['int8_uar']:.4f})" in proc.stdout
    assert f"ONNX {edge['onnx_kib']:.1f} KiB fp32" in proc.stdout


def test_predict_labels_files_and_folders_and_reports_bad_files(
    trained, corpus, tmp_path, run_main, recwarn
):
    from reslstm_jax.predict import main

    out, _ = trained
    rng = np.random.default_rng(1)
    t = np.arange(int(16000 * 2.5)) / 16000  # another rate and a longer clip than training
    soundfile.write(tmp_path / "low.wav", 0.3 * np.sin(2 * np.pi * 320 * t), 16000)
    (tmp_path / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("03-01-01-01-01-01-01.wav", "03-01-05-01-01-01-01.wav"):
        (clips / name).write_bytes((corpus / "Actor_01" / name).read_bytes())
    soundfile.write(clips / "noise.flac", 0.1 * rng.standard_normal(8000), 16000)
    soundfile.write(clips / "silence.wav", np.zeros(16000 * 3), 16000)  # 3 s of nothing
    base = ["--run", out]  # in this process: the CLI's own process is tested elsewhere
    proc = run_main(main, [*base, tmp_path / "low.wav", tmp_path / "broken.wav", clips,
                           "--plot-attention", tmp_path / "att"])  # fmt: skip
    assert proc.returncode == 1  # a file failed; the others were still labelled
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("10 model(s): reslstm_sa trained on ravdess / ravdess_paper")
    labelled = {pathlib.Path(line.split()[0]).name: line.split()[1] for line in lines[2:]}
    assert set(labelled) == {"low.wav", "03-01-01-01-01-01-01.wav", "03-01-05-01-01-01-01.wav",
                             "noise.flac", "silence.wav"}  # fmt: skip
    assert set(labelled.values()) <= {"neutral", "calm", "happy", "sad", "angry", "fearful",
                                      "disgust", "surprised"}  # fmt: skip
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {tmp_path / 'broken.wav'}: truncated: no data chunk"]
    # silence still gets a label, but the output says it has no voiced frame
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    label = labelled["silence.wav"]
    assert warnings == [f"warning: {clips / 'silence.wav'}: no voiced frame (every 25 ms frame "
                        f"below -50 dBFS): its label '{label}' says nothing"]  # fmt: skip
    assert (tmp_path / "att" / "low_attention.png").read_bytes()[:4] == b"\x89PNG"
    assert not [w for w in recwarn if "librosa" in w.filename]  # only the line above

    one = run_main(main, [*base, "--fold", "fold0", "--seed", "1", "--format", "json", clips])
    assert one.returncode == 0, one.stderr[-2000:]
    doc = json.loads(one.stdout)
    assert doc["members"] == [{"seed": 1, "fold": "fold0"}]
    for r in doc["results"]:
        # float32 probabilities (softmax, then the mean over the members): 8 of them, each a
        # few roundings of 6e-8, sum to 1 within ~1e-6
        assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert r["label"] == max(r["probabilities"], key=r["probabilities"].get)
        assert r["voiced"] is (pathlib.Path(r["file"]).name != "silence.wav")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--fold", "fold9"], "--fold fold9: the run's folds are fold0"),
        (["--seed", "7"], "--seed 7: the run's seeds are 0, 1"),
        (["--plot-attention", "/dev/null"], "--plot-attention /dev/null is a file, not a"),
    ],
)
def test_predict_misuse_is_one_line_exit_2(trained, tmp_path, extra, message, run_main):
    from reslstm_jax.predict import main

    out, _ = trained
    proc = run_main(main, ["--run", out, *extra, tmp_path])
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    proc = run_main(main, ["--run", tmp_path, tmp_path])
    assert proc.returncode == 2 and "not a finished training run" in proc.stderr


def test_report_reads_a_training_run(trained, capsys):
    from experiments import report

    out, _ = trained
    assert report.main([str(out), "--format", "latex", "--ci-resamples", "200"]) == 0
    tex = capsys.readouterr().out
    assert r"reslstm\_sa h8" in tex and "fold4" in tex and r"ravdess\_paper" in tex


def test_a_killed_run_resumes_to_identical_results(
    corpus, feature_cache, tmp_path, trained, train_command, run_command
):
    """Killed after its first checkpoint and rerun on one device, a run ends bit for bit as
    `trained`, the same configuration run uninterrupted on one CPU device per core (two
    here): resuming and the device split change nothing."""
    out = tmp_path / "killed"
    process = subprocess.Popen(train_command(corpus, out, feature_cache),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)  # fmt: skip
    deadline = time.time() + 300
    while not (out / "checkpoints" / "2").is_dir():
        assert process.poll() is None, "the run ended before its first checkpoint"
        assert time.time() < deadline
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / "results.json").exists()

    resumed = run_command(train_command(corpus, out, feature_cache))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    again = json.loads((out / "results.json").read_text())
    whole = json.loads((trained[0] / "results.json").read_text())
    assert again["epochs_resumed_from"] >= 2
    assert again["devices"] == 1 and whole["devices"] == min(2, len(os.sched_getaffinity(0)))
    # Exact: the map executor runs each model through one compiled loop body whatever the
    # number of models a device loops over (tests/test_train.py's group test), XLA compiles it
    # single-threaded whatever the device count (tests/test_hardware.py), and the resumed run
    # replays the same program from the saved state
    assert again["runs"] == whole["runs"]
    assert again["aggregate"] == whole["aggregate"]


def test_ctrl_c_stops_training_in_seconds_with_one_line_and_the_rerun_resumes(
    corpus, feature_cache, tmp_path, trained, train_command, run_command, interrupt
):
    """SIGINT mid-training: one line, exit 130 within seconds, complete files only; the same
    command resumes and ends as the uninterrupted run. SIGTERM while the program is being
    prepared: exit 143, the same line."""
    term, run = tmp_path / "term", tmp_path / "run"
    for signum, code, out, ready in [
        (signal.SIGTERM, 143, term, lambda: (term / "checkpoints").is_dir()),
        (signal.SIGINT, 130, run, lambda: (run / "checkpoints" / "2").is_dir()),
    ]:
        ended = interrupt(train_command(corpus, out, feature_cache), ready, signum, poll=0.02)
        ended.assert_left(code, within=10)
        assert not (out / "results.json").exists()
        assert not list(out.rglob("*.part"))  # no half-written file
    resumed = run_command(train_command(corpus, out, feature_cache))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    again = json.loads((out / "results.json").read_text())
    assert again["epochs_resumed_from"] >= 2
    # exact, as in the test above
    assert again["runs"] == json.loads((trained[0] / "results.json").read_text())["runs"]


def truncate_largest_file(directory: pathlib.Path) -> tuple[pathlib.Path, int, int]:
    """Cut the largest file under `directory` to half (a copy cut short): (file, new, old size)."""
    victim = max((p for p in directory.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    return victim, len(data) // 2, len(data)


def test_orbax_read_errors_logged_on_the_side_of_a_damaged_checkpoint_are_dropped():
    """Once one array of a damaged checkpoint fails, orbax's thread or asyncio may log read
    errors with a traceback (seen once in a cold suite run): the damage is reported in one
    line instead, so those records are dropped, and no other."""
    import logging

    from reslstm_jax import checkpoint

    def raised(message: str) -> BaseException:
        try:
            try:
                raise OSError("short read")
            except OSError as cause:
                raise Exception(message) from cause
        except Exception as exc:
            return exc

    def record(logger: str, exc: BaseException) -> logging.LogRecord:
        return logging.getLogger(logger).makeRecord(
            logger, logging.ERROR, "f.py", 1, "Task exception was never retrieved", None,
            (type(exc), exc, exc.__traceback__))  # fmt: skip

    read = raised(f"{checkpoint.ORBAX_READ_ERROR}: (slice(0, 10, 1),). See TensorStore")
    assert checkpoint.orbax_leftover(record("asyncio", read))
    wrapped = raised("restore failed")
    wrapped.__context__ = read
    assert checkpoint.orbax_leftover(record("absl", wrapped))
    assert not checkpoint.orbax_leftover(record("asyncio", raised("disk full")))
    checkpoint._drop_orbax_leftovers()
    checkpoint._drop_orbax_leftovers()  # once
    for name in ("asyncio", "absl"):
        log = logging.getLogger(name)
        assert log.filters.count(checkpoint._not_a_leftover) == 1
        assert not log.filter(record(name, read)) and log.filter(record(name, raised("x")))


def test_damaged_checkpoints_resume_from_the_one_before_and_predict_names_the_file(
    corpus, feature_cache, tmp_path, trained, train_command, run_command, run_main
):
    import shutil

    whole = json.loads((trained[0] / "results.json").read_text())
    run = tmp_path / "run"
    shutil.copytree(trained[0], run)
    # resume: the latest checkpoint (epoch 6) cut short -> moved aside, resumed from epoch 4
    (run / "results.json").unlink()
    truncate_largest_file(run / "checkpoints" / "6")
    proc = run_command(train_command(corpus, run, feature_cache))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"checkpoint {run / 'checkpoints' / '6'} is damaged" in proc.stderr
    assert "moved to 6.damaged; resuming from epoch 4" in proc.stderr
    again = json.loads((run / "results.json").read_text())
    # exact: the same program from the saved state (`test_a_killed_run_resumes_...`)
    assert again["epochs_resumed_from"] == 4 and again["runs"] == whole["runs"]
    # every checkpoint damaged: it starts over, and ends the same
    (run / "results.json").unlink()
    for step in ("4", "6"):
        truncate_largest_file(run / "checkpoints" / step)
    proc = run_command(train_command(corpus, run, feature_cache))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no readable checkpoint left: training starts over" in proc.stderr
    again = json.loads((run / "results.json").read_text())
    assert again["epochs_resumed_from"] == 0 and again["runs"] == whole["runs"]

    # predict: a file of best/ cut short is named, in one line
    clip = corpus / "Actor_01" / "03-01-01-01-01-01-01.wav"
    predict = [sys.executable, "-m", "reslstm_jax.predict", "--run", str(run), str(clip)]
    victim, size, was = truncate_largest_file(run / "best")
    proc = run_command(predict)
    expected = f"error: run {run}: best parameters damaged: {victim} is damaged ({size} of {was}"
    assert proc.returncode == 2 and proc.stderr.strip() == expected + " bytes)"
    # export from the damaged run: the same one line, nothing exported
    from reslstm_jax.export.__main__ import main as export_main

    done = run_main(export_main, ["--run", run, "--out", tmp_path / "exported"])
    assert done.returncode == 2 and done.stderr.strip().endswith(expected[7:] + " bytes)")
    assert not (tmp_path / "exported").exists()
    (run / "inference.json").write_text((run / "inference.json").read_text()[:50])
    proc = run_command(predict)
    (line,) = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and line.startswith(f"error: run {run}: inference.json is damaged")


@contextlib.contextmanager
def small_tmpfs(where: pathlib.Path, size_kib: int):
    """A tmpfs of `size_kib` mounted at `where` (a real full disk), unmounted afterwards; skips
    the test where this process may not mount one (not root, or a container without the
    capability). `docs/reliability.md`: the fault is also injected everywhere
    (tests/test_write_faults.py)."""
    where.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(where)]
    if os.geteuid() != 0 or subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_a_full_disk_is_one_line_and_the_run_resumes_when_there_is_room(
    corpus, feature_cache, tmp_path, trained, train_command, run_command
):
    import shutil

    whole = json.loads((trained[0] / "results.json").read_text())
    run = tmp_path / "disk" / "run"
    with small_tmpfs(tmp_path / "disk", 64 * 1024) as disk:  # made full below
        shutil.copytree(trained[0], run, ignore=shutil.ignore_patterns("6", "6.files.json"))
        for name in ("results.json", "best", "best.files.json"):
            shutil.rmtree(run / name) if (run / name).is_dir() else (run / name).unlink()
        used = shutil.disk_usage(disk).used
        subprocess.run(["mount", "-o", f"remount,size={used // 1024 + 64}k", str(disk)], check=True)
        proc = run_command(train_command(corpus, run, feature_cache))
        then = "rerun the same command when it can be written: it resumes after epoch 4"
        step = (run / "checkpoints" / "6").absolute()
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert proc.stderr.strip().splitlines()[-1] == (
            f"error: cannot write {step}: No space left on device; {then}"
        ), proc.stderr
        for leftover in ("Traceback", "ERROR:absl", "RuntimeWarning"):
            assert leftover not in proc.stderr, proc.stderr
        assert not list((run / "checkpoints").glob("*tmp*"))
        # with room again, the same command resumes from epoch 4 and ends as the whole run did
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        proc = run_command(train_command(corpus, run, feature_cache))
        assert proc.returncode == 0, proc.stderr[-2000:]
        again = json.loads((run / "results.json").read_text())
        assert again["epochs_resumed_from"] == 4 and again["runs"] == whole["runs"]


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--hidden-size", "0"], "--hidden-size: must be an integer in [1, 2147483647], got 0"),
        (["--epochs", "0"], "--epochs: must be an integer in [1, 2147483647], got 0"),
        (["--dropout", "1.5"], "--dropout: must be a number in [0, 1), got 1.5"),
        (["--protocol", "emodb_loso"], "--protocol emodb_loso is for emodb, not ravdess"),
        (["--model", "resnet"], "invalid choice: 'resnet'"),
        (["--devices", "0"], "--devices: must be an integer in [1, 2147483647], got 0"),
        (
            ["--max-models-per-wave", "0"],
            "--max-models-per-wave: must be an integer in [1, 2147483647], got 0",
        ),
        (["--tags", "a/b"], "--tags 'a/b' must not contain /"),
        (
            ["--learning-rate", "inf"],
            "--learning-rate: must be a finite number in (0, 3.40282e+38], got inf",
        ),
        (
            ["--weight-decay", "nan"],
            "--weight-decay: must be a finite number in [0, 3.40282e+38], got nan",
        ),
        (["--noise-snr", "1e308"], "--noise-snr: must be a number in [-140, 140], got 1e308"),
        (["--wandb-project", " "], "--wandb-project ' ' must not be empty"),
    ],
)
def test_misuse_is_one_line_and_exit_2(
    corpus, feature_cache, tmp_path, extra, message, train_command, run_main
):
    proc = train_main(run_main, train_command(corpus, tmp_path / "x", feature_cache, *extra))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x" / "results.json").exists()


def train_main(run_main, argv):
    """The train CLI's `main` in this process on `argv` of `train_command` (`run_main`)."""
    from reslstm_jax.train.__main__ import main

    assert argv[1:3] == ["-m", "reslstm_jax.train"]
    return run_main(main, argv[3:])


def test_missing_corpus_and_mismatched_out_dir(
    corpus, feature_cache, tmp_path, trained, train_command, run_main
):
    missing = train_main(run_main, train_command(tmp_path / "nowhere", tmp_path / "x",
                                                 feature_cache))  # fmt: skip
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
    # an output directory holding checkpoints of another configuration is refused, untouched
    out = trained[0]
    before = [(out / name).read_bytes() for name in ("results.json", "config.yaml")]
    other = train_main(
        run_main, train_command(corpus, out, feature_cache, "--learning-rate", "0.1")
    )
    assert other.returncode == 2 and "another configuration" in other.stderr
    # nothing of the refused run is written there: not even its config.yaml
    assert "Traceback" not in other.stderr
    assert [(out / name).read_bytes() for name in ("results.json", "config.yaml")] == before


def test_outputs_are_checked_before_any_work_and_no_other_run_is_overwritten(
    corpus, feature_cache, tmp_path, trained, train_command, run_command, run_main
):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    sweep_dir = tmp_path / "study"
    (sweep_dir / "trials").mkdir(parents=True)
    finished = tmp_path / "finished"  # another run's results, its checkpoints gone
    finished.mkdir()
    before = (trained[0] / "results.json").read_bytes()
    (finished / "results.json").write_bytes(before)
    for out, message in [
        (blocker, f"--out {blocker} is a file, not a directory"),
        (blocker / "run", f"--out {blocker / 'run'} is under {blocker}, which is a file"),
        (sweep_dir, f"--out {sweep_dir} holds a sweep study"),
        (finished, f"--out {finished} holds a finished run (results.json) without its checkpoints"),
    ]:
        started = time.monotonic()
        proc = train_main(
            run_main, train_command(corpus, out, feature_cache, "--learning-rate", "0.1")
        )
        assert proc.returncode == 2, proc.stderr[-2000:]
        (line,) = proc.stderr.strip().splitlines()
        assert line.startswith(f"error: {message}") and line.endswith("(or --overwrite)")
        assert "protocol" not in proc.stdout  # refused before the data was even read
        assert time.monotonic() - started < 60
    assert (finished / "results.json").read_bytes() == before
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        proc = train_main(run_main, train_command(corpus, locked / "run", feature_cache))
        assert proc.returncode == 2 and "cannot be written" in proc.stderr
    # --overwrite replaces the other run (2 epochs in chunks of 2: a cached program)
    proc = run_command(train_command(corpus, finished, feature_cache, "--epochs", "2",
                                     "--overwrite"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((finished / "results.json").read_text())["settings"]["epochs"] == 2


def test_every_file_not_used_is_listed_with_its_reason(
    corpus, feature_cache, tmp_path, train_command, run_command
):
    """A broken download: the bad files among the good ones are named in skipped.csv, and one
    line of the log says how many, why, and where the list is."""
    import shutil

    from reslstm_jax import artifacts

    tree = tmp_path / "ravdess"
    shutil.copytree(corpus, tree)
    good = (tree / "Actor_01" / "03-01-01-01-01-01-01.wav").read_bytes()
    (tree / "Actor_01" / "x.wav").write_bytes(good)  # the same 48 utterances are used
    (tree / "Actor_01" / "03-02-01-01-01-01-01.wav").write_bytes(good)  # a song file
    (tree / "Actor_02" / ".DS_Store").write_bytes(b"\0")
    (tree / "Actor_03" / "03-01-05-01-02-01-03.wav").write_bytes(b"RIFF0000WAVEjunk")
    out = tmp_path / "out"
    # 2 epochs in chunks of 2: the program of the other train CLI tests (a cache hit)
    proc = run_command(train_command(tree, out, feature_cache, "--epochs", "2"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = artifacts.read_skipped(out / "skipped.csv")
    assert [(pathlib.Path(p).name, reason) for p, reason in rows] == [
        ("03-02-01-01-01-01-01.wav", "song (vocal channel 02)"),
        ("x.wav", "name does not match the RAVDESS pattern"),
        (".DS_Store", "hidden file"),
        ("03-01-05-01-02-01-03.wav", "truncated: no data chunk"),
    ]
    (line,) = [line for line in proc.stdout.splitlines() if "not used" in line]
    assert line == (f"4 file(s) under {tree.resolve()} not used (1 hidden file, 1 name does not "
                    f"match the RAVDESS pattern, 1 song (vocal channel 02), 1 truncated); each "
                    f"file and its reason: {out / 'skipped.csv'}")  # fmt: skip


def export_predicts_as_the_run(run, folder, files, int8: bool = True) -> None:
    """The run's ONNX export (with int8 unless not `int8`; the export extra) labels `files` as
    the run's same member does: labels equal, probabilities within 1e-5. Both are float32
    (predict reads model.onnx, never the int8 graph): onnxruntime and XLA round the forward
    pass otherwise, measured <= 3e-8 for DS-LSTM and Light-SERNet (Intel Xeon); a label flips
    only where two probabilities lie within that."""
    pytest.importorskip("onnxruntime")
    from reslstm_jax.export.__main__ import main as export_main
    from reslstm_jax.predict import main as predict_main

    quantize = ["--quantize", "int8"] if int8 else []
    assert export_main(["--run", str(run), "--out", str(folder), *quantize]) == 0
    assert (folder / "model.int8.onnx").is_file() == int8
    member = json.loads((folder / "export.json").read_text())["member"]
    docs = []
    for source, extra in (
        (folder, []),
        (run, ["--fold", member["fold"], "--seed", str(member["seed"])]),
    ):
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            assert predict_main(["--run", str(source), "--format", "json", *extra,
                                 *map(str, files)]) == 0  # fmt: skip
        docs.append(json.loads(buffer.getvalue()))
    for a, b in zip(docs[0]["results"], docs[1]["results"], strict=True):
        assert a["label"] == b["label"]
        for c, prob in b["probabilities"].items():
            # onnxruntime against XLA: the same model's float32 rounding in another order, on
            # probabilities in [0, 1]; 1e-5 is 84 eps (measured <= 3e-8)
            assert a["probabilities"][c] == pytest.approx(prob, abs=1e-5)


def test_ds_lstm_trains_through_the_cli_with_its_recipe_and_predicts(corpus, tmp_path, run_command):
    """A small DS-LSTM (both branches) on the tone corpus: features, two-head loss, schedule.
    Spectrograms smaller than the paper's (the tones last 0.5 s; a twentieth of its cells)
    reach the model's input sizes through the features' shapes."""
    out = tmp_path / "ds"
    tiny = '{"hidden_size": 8, "cnn_channels": [4, 2]}'
    small = '{"frames_a": 48, "n_mels_a": 32, "frames_b": 24, "n_mels_b": 64}'
    proc = run_command([sys.executable, "-m", "reslstm_jax.train", "--model", "ds_lstm", "--corpus",
                "ravdess", "--data-dir", str(corpus), "--model-config", tiny, "--epochs", "2",
                "--feature-params", small,
                "--batch-size", "16", "--feature-workers", "1",
                "--cache-dir", str(tmp_path / "cache"),
                "--no-progress", "--no-latency", "--devices", "1", "--wandb", "disabled",
                "--out", str(out)])  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["model"]["name"] == "ds_lstm" and results["model"]["config"]["hidden_size"] == 8
    assert results["card"]["features"]["name"] == "ds_lstm_inputs"
    config = results["model"]["config"]
    assert (config["frames_a"], config["n_mels_a"], config["frames_b"], config["n_mels_b"]) == (
        48, 32, 24, 64)  # fmt: skip
    assert results["card"]["normalisation"] == "none"
    s = results["settings"]
    assert (s["schedule"], s["learning_rate"], s["weight_decay"]) == ("multistep", 1e-3, 0.0)
    assert all(np.isfinite(r["train_loss"]).all() for r in results["runs"])
    clip = corpus / "Actor_02" / "03-01-05-01-01-01-02.wav"
    pred = run_command([sys.executable, "-m", "reslstm_jax.predict", "--run", str(out),
                        "--format", "json", str(clip)])  # fmt: skip
    assert pred.returncode == 0, pred.stderr[-2000:]
    doc = json.loads(pred.stdout)
    assert len(doc["members"]) == 5 and doc["results"][0]["label"] in {"neutral", "angry",
        "calm", "happy", "sad", "fearful", "disgust", "surprised"}  # fmt: skip
    # its ONNX export (three inputs: both spectrograms and the MFCCs) predicts as the run
    export_predicts_as_the_run(out, tmp_path / "onnx", [clip, corpus / "Actor_03" / (
        "03-01-01-01-01-01-03.wav")])  # fmt: skip


def test_light_sernet_trains_through_the_cli_with_its_recipe(
    corpus, tmp_path, run_command, run_main
):
    """Light-SERNet with its recipe; 0.5 s crops instead of 3 s keep the test fast (the model
    is fully convolutional: only the frame count changes, not the parameters)."""
    out = tmp_path / "lsn"
    proc = run_command([sys.executable, "-m", "reslstm_jax.train", "--model", "light_sernet",
                "--corpus", "ravdess", "--data-dir", str(corpus), "--feature-params",
                '{"seconds": 0.5}', "--epochs", "1", "--loss", "focal", "--workers", "1",
                "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--no-latency",
                "--devices", "1", "--wandb", "disabled", "--out", str(out)])  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["model"]["trainable_params"] == 460_740 + 4 * 320 + 4  # 8 classes
    card = results["card"]
    assert card["features"]["name"] == "tf_mfcc" and card["features"]["params"]["seconds"] == 0.5
    assert card["frames"] == 32 and card["normalisation"] == "none"  # 1 + (8000 - 1024) // 256
    s = results["settings"]
    assert (s["schedule"], s["adam_eps"], s["learning_rate"], s["loss"]) == (
        "exp_decay", 1e-7, 1e-4, "focal")  # fmt: skip
    assert s["batch_size"] == 32 and s["weight_decay"] == 0.0
    export_predicts_as_the_run(out, tmp_path / "onnx", sorted(corpus.rglob("*.wav"))[:2],
                               int8=False)  # fmt: skip
    # no int8 graph: its weights are in convolutions, which dynamic quantisation leaves fp32
    from reslstm_jax.export.__main__ import main as export_main

    refused = run_main(export_main, ["--run", out, "--out", tmp_path / "q",
                                     "--quantize", "int8"])  # fmt: skip
    assert refused.returncode == 2 and "light_sernet: no int8 graph" in refused.stderr
    assert not list(tmp_path.glob("q*"))
    bad = train_main(run_main, [sys.executable, "-m", "reslstm_jax.train", "--model",
                                "light_sernet", "--feature-params", "[1]", "--out",
                                tmp_path / "x"])  # fmt: skip
    assert bad.returncode == 2 and "--feature-params must be a JSON object" in bad.stderr


def test_seed_model_experiments_declare_their_recipes_and_protocols():
    from experiments import common, emodb_light_sernet, iemocap_ds_lstm
    from reslstm_jax import families, protocols

    for exp in (emodb_light_sernet.EXPERIMENT, iemocap_ds_lstm.EXPERIMENT):
        for corpus, setups in exp.setups.items():
            for setup in setups.values():
                assert protocols.get(setup.protocol).corpus == corpus
        for config in exp.configs.values():
            settings = common.settings(config, next(iter(exp.setups["ravdess"].values())),
                                       exp.budgets["full"])  # fmt: skip
            recipe = families.recipe(config.model)
            assert (settings.schedule, settings.batch_size) == (recipe.schedule, recipe.batch_size)
    paper = emodb_light_sernet.EXPERIMENT.setups["emodb"]["paper"]
    assert protocols.get(paper.protocol).leaky  # the paper's protocol is labelled leaky
    focal = emodb_light_sernet.EXPERIMENT.configs["light_sernet_focal"]
    assert common.settings(focal, paper, {"seeds": 1, "epochs": 1}).loss == "focal"
    balanced = emodb_light_sernet.EXPERIMENT.configs["light_sernet_balanced"]
    assert common.settings(balanced, paper, {"seeds": 1, "epochs": 1}).class_weights == "balanced"


def test_reproduction_protocol_selects_on_test_and_every_output_says_so(tiny_dataset):
    from reslstm_jax import data, protocols, report

    base = tiny_dataset
    manifest = dataclasses.replace(base.manifest, corpus="emodb")
    feats = [base.x[i, : base.lengths[i]] for i in range(len(base.ids))]
    dataset = data.build(manifest, "emodb_random10", feats, extractor_info={"name": "test"},
                         extraction=base.extraction)  # fmt: skip
    assert protocols.get("emodb_random10").leaky
    settings = train_mod.RunSettings(model_config=(("hidden_size", 4),), epochs=2, batch_size=8)
    results = train_mod.fit(dataset, settings, progress=False)
    # validation is the test fold: best val UAR = UAR of best epoch, the same fraction in
    # float32 (training) and float64 (metrics of the predict program's predictions from the
    # same parameters): abs 1e-6 covers float32's 6e-8. The two programs' logits differ by
    # rounding (~1e-6), so a prediction flips only on a tie within that
    for r in results["runs"]:
        assert r["best_val_uar"] == pytest.approx(r["test"]["uar"], abs=1e-6)
    summary = "\n".join(train_mod.summary_lines(results))
    assert "best TEST UAR" in summary
    # one seed: no "+- 0.0000" spread, the count instead
    assert "(n = 1 seed)" in summary and "+-" not in summary
    configs = report.label_configs([report.Config(results, "x/results.json")])
    (table,) = report.build_tables(configs, ci_resamples=200)
    assert "best epoch by TEST UAR" in table.caption and "LEAKY" in table.caption
    assert "speaker-dependent" in table.caption


@pytest.mark.parametrize("command", ["train", "baseline", "sweep", "report", "cross_corpus"])
def test_an_output_place_that_cannot_be_created_is_one_line_before_any_work(command, run_main,
                                                                            tmp_path):  # fmt: skip
    """`--out` under /proc (where root's permission bits say yes and the kernel says no):
    one line naming the place, exit 2, before any data is read."""
    from experiments import cross_corpus
    from experiments import report as report_cli
    from reslstm_jax import baseline
    from reslstm_jax.train.__main__ import main as train_cli
    from sweeps.run import main as sweep_cli

    place = "/proc/nope/x"
    main, argv = {
        "train": (train_cli, ["--out", place]),
        "baseline": (baseline.main, ["--out", place]),
        "sweep": (sweep_cli, ["--space", "hidden_sizes", "--out", place]),
        "report": (report_cli.main, [str(tmp_path), "--out", place + ".md"]),
        "cross_corpus": (cross_corpus.main, ["--corpora", "ravdess", "synthetic", "--data-dir",
                                             f"ravdess={tmp_path}", "--out", place]),
    }[command]  # fmt: skip
    done = run_main(main, argv)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{place}" in done.stderr and "cannot be written (in /proc)" in done.stderr


def test_a_second_process_on_one_out_is_refused_and_the_first_goes_on(
    corpus, feature_cache, tmp_path, train_command, run_command
):
    """Two trainings on one --out (real processes): the second gets one line naming the folder
    and the first's pid, exit 2; the first is untouched and goes on; once it has ended the lock
    is free again (the kernel released it)."""
    import signal
    import subprocess

    from conftest import INTERRUPTED_LINE

    from reslstm_jax import runlock

    out = tmp_path / "run"
    first = subprocess.Popen(train_command(corpus, out, feature_cache, "--epochs", "400"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    owner = runlock.lock_path(out).with_name(runlock.lock_path(out).name + ".owner")
    deadline = time.monotonic() + 300
    while not owner.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    try:
        assert owner.exists(), first.communicate()[1][-2000:]
        second = run_command(train_command(corpus, out, feature_cache, "--epochs", "400"))
        (line,) = second.stderr.strip().splitlines()
        assert second.returncode == 2 and line.startswith(
            f"error: --out {out} is in use by another process (pid {first.pid} "
        )
        assert first.poll() is None  # the first goes on
    finally:
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=120)
    assert INTERRUPTED_LINE in err and "Traceback" not in err
    with runlock.hold(out):  # free again
        assert not owner.exists() or owner.read_text().startswith(f"pid {os.getpid()} ")


@pytest.mark.parametrize("command", ["baseline", "experiment", "cross_corpus", "export"])
def test_every_command_that_writes_a_run_folder_takes_its_lock(command, corpus, trained_run,
                                                              tmp_path, run_main):  # fmt: skip
    """The folder held (here by the test, as by another process): one line, exit 2, before
    any data is read; nothing written."""
    from experiments import common, cross_corpus, ravdess_reslstm_sa
    from reslstm_jax import baseline, runlock
    from reslstm_jax.export.__main__ import main as export_main

    out = tmp_path / "out"
    main, argv = {
        "baseline": (baseline.main, ["--corpus", "ravdess", "--data-dir", corpus, "--out", out]),
        "experiment": (lambda a: common.main(ravdess_reslstm_sa.EXPERIMENT, a),
                       ["--data-dir", corpus, "--out", out]),
        "cross_corpus": (cross_corpus.main, ["--corpora", "ravdess", "synthetic", "--data-dir",
                                             f"ravdess={corpus}", "--out", out]),
        "export": (export_main, ["--run", trained_run[0], "--out", out]),
    }[command]  # fmt: skip
    with runlock.hold(out):
        done = run_main(main, argv)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{out} is in use by another process (pid {os.getpid()} " in done.stderr
    assert not out.exists()
