"""`python -m reslstm_jax.models`: the zoo card (end to end, and misuse)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from reslstm_jax.models.__main__ import main


def test_zoo_card_json(capsys):
    assert (
        main(
            [
                "--models",
                "reslstm_sa",
                "lstm_sa",
                "--hidden-sizes",
                "32",
                "--repeats",
                "2",
                "--format",
                "json",
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["model"], r["params"]) for r in rows] == [
        ("reslstm_sa", 27_988),
        ("lstm_sa", 10_600),
    ]
    assert all(r["latency_ms"] > 0 and r["frames"] == 87 for r in rows)
    assert rows[0]["kib_fp32"] == round(27_988 * 4 / 1024, 1)


def test_zoo_card_seed_models_at_their_published_size(capsys):
    assert main(["--models", "light_sernet", "ds_lstm", "--repeats", "1", "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["model"], r["hidden_size"], r["params"], r["frames"]) for r in rows] == [
        ("light_sernet", None, 461_703, 184),  # EMO-DB's 7 classes, 3 s
        ("ds_lstm", 200, 3_732_296, 370),  # IEMOCAP's 4 classes, both branches
    ]


def test_zoo_card_table(capsys):
    assert (
        main(["--models", "lstm_sa", "reslstm_sa", "--hidden-sizes", "64", "--repeats", "1"]) == 0
    )
    out = capsys.readouterr().out
    assert "46,772" in out and "29,384" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (["--models", "resnet"], "--models: unknown ['resnet']"),
        (["--hidden-sizes", "0"], "--hidden-sizes: must be an integer in [1, 2147483647], got 0"),
        (["--repeats", "0"], "--repeats: must be an integer in [1, 2147483647], got 0"),
    ],
)
def test_misuse_exits_2_with_one_line(args, message):
    proc = subprocess.run(
        [sys.executable, "-m", "reslstm_jax.models", *args], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
