"""`python -m reslstm_jax.models`: the zoo card (end to end, and misuse)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from reslstm_jax.models.__main__ import main

# as few timed calls as the latency process takes: the tests check what is measured, not speed
QUICK = ["--blocks", "1", "--calls-per-block", "1"]


def test_zoo_card_json(capsys):
    """One JSON row per model, the attention LSTMs at each size, the seed models once at their
    published size; the latency under pareto.csv's names, measured by the latency process on
    the family's own features (mfcc_chroma at 48 kHz: 1 + 3 s * 48000 // 2048 frames)."""
    assert main(["--hidden-sizes", "64", *QUICK, "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["model"], r["hidden_size"], r["params"], r["frames"], r["latency_features"])
            for r in rows] == [
        ("ds_lstm", 200, 3_732_296, 297, "ds_lstm_inputs at 16000 Hz"),  # IEMOCAP's 4 classes
        ("light_sernet", None, 461_703, 184, "tf_mfcc at 16000 Hz"),  # EMO-DB's 7 classes, 3 s
        ("lstm_sa", 64, 29_384, 71, "mfcc_chroma at 48000 Hz"),
        ("reslstm_sa", 64, 46_772, 71, "mfcc_chroma at 48000 Hz"),
    ]  # fmt: skip
    assert rows[3]["kib_fp32"] == round(46_772 * 4 / 1024, 1)
    assert rows[3]["kib_fp16"] == round(46_772 * 2 / 1024, 1)
    for r in rows:
        assert r["latency_reference"] == "reslstm_sa h64" and r["latency_threads"] == 1
        assert 0 < r["model_ms_q1"] <= r["model_ms_per_s"] <= r["model_ms_q3"]
        assert r["model_rel"] == pytest.approx(r["model_ms_per_s"] / r["reference_model_ms_per_s"])
        assert r["latency_ms_per_s"] == pytest.approx(r["model_ms_per_s"] + r["features_ms_per_s"])


def test_zoo_card_table(capsys):
    """The table: a row per model, then each feature set's time once and the machine."""
    assert main(["--models", "lstm_sa", "--hidden-sizes", "32", "16", *QUICK]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Model zoo: each model's own latency per second of audio")
    assert out[1].split() == ["model", "H", "params", "KiB", "fp32", "KiB", "fp16", "frames",
                              "ms/s", "IQR", "x", "ref"]  # fmt: skip
    assert [line.split()[:6] for line in out[3:5]] == [
        ["lstm_sa", "32", "10,600", "41.4", "20.7", "71"],
        ["lstm_sa", "16", "4,280", "16.7", "8.4", "71"],
    ]  # fmt: skip
    assert out[5].startswith("features mfcc_chroma at 48000 Hz: ") and len(out) == 7
    assert out[6].startswith("measured on ") and out[6].endswith(", 1 thread")


def test_a_failed_measurement_is_one_line_and_exit_1(capsys, monkeypatch):
    from reslstm_jax import latency

    def fail(*args, **kwargs):
        raise latency.LatencyError("the latency measurement failed (exit 1): out of memory")

    monkeypatch.setattr(latency, "measure", fail)
    assert main(["--models", "lstm_sa", "--hidden-sizes", "16"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "error: the latency measurement failed (exit 1): out of memory\n"


@pytest.mark.parametrize(
    "args,message",
    [
        (["--models", "resnet"], "--models: unknown ['resnet']"),
        (["--hidden-sizes", "0"], "--hidden-sizes: must be an integer in [1, 2147483647], got 0"),
        (["--blocks", "0"], "--blocks: must be an integer in [1, 2147483647], got 0"),
        (["--seconds", "0"], "--seconds: must be a number in (0, 3600], got 0"),
    ],
)
def test_misuse_exits_2_with_one_line(args, message):
    proc = subprocess.run(
        [sys.executable, "-m", "reslstm_jax.models", *args], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
