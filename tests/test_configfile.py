"""Config files (`--config FILE`, `--print-config`) and the resolved config.yaml of a run."""

from __future__ import annotations

import argparse
import json

import pytest
import yaml

from reslstm_jax import configfile
from reslstm_jax.configfile import data_problem
from reslstm_jax.train.__main__ import build_parser, spread_warning
from reslstm_jax.train.__main__ import main as train_main


def small_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tool")
    p.add_argument("--hidden-size", type=int)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--model", choices=["a", "b"], default="a")
    p.add_argument("--paper-compat", action="store_true")
    p.add_argument("--model-config", metavar="JSON")
    p.add_argument("--tags", nargs="+", default=[])
    p.add_argument("--cross-test", action="append", default=[])
    p.add_argument("--out", required=True)
    configfile.add_flags(p)
    return p


def write(tmp_path, text: str, name="c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, argv, expected",
    [
        ("hidden_size: 16\nlr: 0.01\n", [], {"hidden_size": 16, "lr": 0.01}),
        # groups are headings only; `-` is accepted for `_`
        ("training:\n  lr: 0.01\nmodel:\n  hidden-size: 16\n", [], {"hidden_size": 16}),
        # the command line wins, before or after --config
        ("hidden_size: 16\nlr: 0.01\n", ["--lr", "0.5"], {"hidden_size": 16, "lr": 0.5}),
        ("lr: 0.01\n", ["--lr=0.5", "FIRST"], {"lr": 0.5}),
        # a repeatable flag's list on the command line replaces the file's
        ("cross_test: [x, y]\ntags: [t]\n", ["--cross-test", "z"],
         {"cross_test": ["z"], "tags": ["t"]}),
        ("model_config: {branches: ds}\npaper_compat: true\nmodel: b\n", [],
         {"model_config": '{"branches": "ds"}', "paper_compat": True, "model": "b"}),
        ("out: somewhere\n", [], {"out": "somewhere"}),  # the file may name it
        ("", [], {"lr": 1e-3}),
    ],
)  # fmt: skip
def test_a_config_file_gives_defaults_that_the_command_line_overrides(
    tmp_path, text, argv, expected
):
    path = write(tmp_path, text)
    if argv[-1:] == ["FIRST"]:  # the flag before --config
        argv = [*argv[:-1], "--config", str(path)]
    else:
        argv = ["--config", str(path), *argv]
    if "out:" not in text:
        argv += ["--out", "o"]
    args = configfile.parse_args(small_parser(), argv)
    assert {k: getattr(args, k) for k in expected} == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("hiden_size: 16\n", "c.yaml: hiden_size is not a setting (did you mean hidden_size?)"),
        ("training:\n  lrr: 1\n", "c.yaml: training.lrr is not a setting (did you mean lr?)"),
        ("hidden_size: abc\n", "c.yaml: hidden_size: invalid int value 'abc'"),
        ("hidden_size: [1, 2]\n", "c.yaml: hidden_size takes one value, got a list"),
        ("model: c\n", "c.yaml: model: 'c' is not one of a, b"),
        ("paper_compat: 3\n", "c.yaml: paper_compat must be true or false, got 3"),
        ("lr: {a: 1}\n", "c.yaml: lr.a is not a setting"),
        ("config: other.yaml\n", "c.yaml: config is not a setting"),
        ("lr: 1\nlr: 2\n", None),  # PyYAML keeps the last; no error needed
        ("- a\n- b\n", "c.yaml: must be a mapping of settings"),
        ("a: [\n", "c.yaml: not YAML (line 2)"),
        ("data: 3\n", "c.yaml: data must be a mapping"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_the_file_and_the_key(tmp_path, capsys, text, message):
    path = write(tmp_path, text)
    if message is None:
        assert configfile.parse_args(small_parser(), ["--config", str(path), "--out", "o"]).lr == 2
        return
    with pytest.raises(SystemExit) as exc:
        configfile.parse_args(small_parser(), ["--config", str(path), "--out", "o"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and message in err and str(path) in err


def test_a_missing_config_file(tmp_path, run_main):
    done = run_main(train_main, ["--config", tmp_path / "none.yaml", "--out", tmp_path / "o"])
    assert done.returncode == 2 and done.stderr.strip().endswith("none.yaml: no such file")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "text, message",
    [
        ("hidden_size: 8\nepoch: 3\n", "epoch is not a setting (did you mean epochs?)"),
        ("epochs: three\n", "epochs: must be an integer in [1, 2147483647], got 'three'"),
        ("model: resnet\n", "model: 'resnet' is not one of"),
    ],
)
def test_the_train_cli_refuses_a_bad_config_with_nothing_created(tmp_path, run_main, text, message):
    done = run_main(train_main, ["--config", write(tmp_path, text), "--out", tmp_path / "o"])
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_print_config_resolves_the_recipe_and_creates_nothing(tmp_path, run_main):
    path = write(
        tmp_path, "model: lstm_sa\ntraining: {epochs: 3, learning_rate: 0.002}\nhidden_size: 16\n"
    )
    done = run_main(train_main, ["--config", path, "--epochs", "5", "--print-config",
                                 "--out", tmp_path / "o"])  # fmt: skip
    assert done.returncode == 0 and not (tmp_path / "o").exists()
    # nothing is written, so --out (required to train) is not needed to print
    assert run_main(train_main, ["--config", path, "--epochs", "5", "--print-config"]).stdout == (
        done.stdout
    )
    assert done.stdout.startswith("# reslstm-jax ")
    printed = yaml.safe_load(done.stdout)
    # the file's, the command line's over it, and the recipe's for what neither gives
    assert printed["model"] == "lstm_sa" and printed["hidden_size"] == 16
    assert printed["epochs"] == 5 and printed["learning_rate"] == 0.002
    assert printed["batch_size"] == 32 and printed["features"] == "mfcc_chroma"
    assert "out" not in printed and "overwrite" not in printed and "config" not in printed
    # what it prints is a config file the parser takes back, to the same settings
    printed_file = str(write(tmp_path, done.stdout, "p.yaml"))
    again = configfile.parse_args(build_parser(), ["--config", printed_file, "--out", "x"])
    assert configfile.resolved(build_parser(), again) == printed


def test_a_rerun_from_another_corpus_is_refused_unless_the_data_is_named(tmp_path):
    parser = build_parser()
    path = write(tmp_path, "data:\n  utterance_ids_sha256: abc\n  n_utterances: 10\n")
    card = {"corpus": "ravdess", "n_utterances": 48, "utterance_ids_sha256": "def"}
    args = configfile.parse_args(parser, argv := ["--config", str(path), "--out", "o"])
    assert "is not the data this config was made from" in data_problem(parser, argv, args, card)
    assert data_problem(parser, argv, args, {**card, "utterance_ids_sha256": "abc"}) is None
    named = [*argv, "--data-dir", "elsewhere"]
    assert data_problem(parser, named, configfile.parse_args(parser, named), card) is None


def test_a_runs_config_yaml_trains_the_same_folds_again(trained_run, tmp_path, run_command):
    """The trained run's config.yaml holds every setting and the data's identity; trained again
    from it (flags beside it win), on the same machine, every fold x seed gives the same UAR:
    the same compiled program on the same inputs."""
    run, _ = trained_run
    config_text = (run / "config.yaml").read_text()
    config = yaml.safe_load(config_text)
    assert "# command: python -m reslstm_jax.train --corpus ravdess" in config_text
    assert config["hidden_size"] == 8 and config["epochs"] == 6 and config["seeds"] == 2
    assert config["learning_rate"] == 1e-3 and config["protocol"] == "ravdess_paper"  # recipe's
    assert "out" not in config and config["tags"] == ["suite", "first"]
    card = json.loads((run / "card.json").read_text())
    assert config["data"]["utterance_ids_sha256"] == card["utterance_ids_sha256"]
    assert config["data"]["n_utterances"] == card["n_utterances"] == 48

    import sys

    out = tmp_path / "again"
    done = run_command([sys.executable, "-m", "reslstm_jax.train", "--config",
                        str(run / "config.yaml"), "--out", str(out), "--wandb", "disabled",
                        "--no-latency", "--tags", "rerun"])  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    again = yaml.safe_load((out / "config.yaml").read_text())
    assert again["tags"] == ["rerun"] and again["wandb"] == "disabled" and again["no_latency"]
    assert {k: v for k, v in again.items() if k not in ("tags", "wandb", "no_latency")} == {
        k: v for k, v in config.items() if k not in ("tags", "wandb", "no_latency")
    }

    def fold_uars(folder):
        results = json.loads((folder / "results.json").read_text())
        return [(r["fold"], r["seed"], r["test"]["uar"]) for r in results["runs"]]

    assert fold_uars(out) == fold_uars(run)  # exact: the same program on the same inputs


def test_console_scripts_are_the_python_m_commands(run_command):
    import pathlib
    import sys
    from importlib import metadata

    scripts = {e.name: e for e in metadata.entry_points(group="console_scripts")
               if e.name.startswith("reslstm-")}  # fmt: skip
    expected = {"reslstm-train": "reslstm_jax.train.__main__", "reslstm-sweep": "sweeps.run",
                "reslstm-report": "experiments.report", "reslstm-predict": "reslstm_jax.predict",
                "reslstm-export": "reslstm_jax.export.__main__"}  # fmt: skip
    assert {name: e.module for name, e in scripts.items()} == expected
    assert all(callable(e.load()) for e in scripts.values())
    # installed beside the interpreter (pip's scripts folder); JAX-free, so quick to start
    done = run_command([str(pathlib.Path(sys.executable).parent / "reslstm-predict"), "--help"])
    assert done.returncode == 0 and "--print-config" in done.stdout


def test_one_seed_is_warned_about_once():
    """The line comes once the data is ready (a misuse before it stays one line: the synthetic
    corpus's test of a missing extra checks that)."""
    assert "no spread over seeds" in spread_warning(1) and spread_warning(2) is None


def test_an_older_key_is_read_as_its_setting_with_one_line(tmp_path, capsys):
    """`lr:` (the flag `--lr` before it was `--learning-rate`) is the one setting
    `learning_rate` everywhere: in a config file, a space and an experiment file."""
    path = write(tmp_path, "lr: 0.02\nworkers: 3\n")
    args = configfile.parse_args(build_parser(), ["--config", str(path), "--out", "o"])
    assert (args.learning_rate, args.feature_workers) == (0.02, 3)
    err = capsys.readouterr().err
    assert "lr is deprecated; use learning_rate" in err and err.count("\n") == 2
