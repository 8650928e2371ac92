"""The command lines' one vocabulary: docs/cli.md matches the parsers, old spellings still work
with one deprecation line, and --help says every default."""

from __future__ import annotations

import pathlib

import pytest

from experiments import cli_reference

DOCS = pathlib.Path(__file__).parent.parent / "docs" / "cli.md"


def test_the_cli_reference_is_generated_from_the_parsers():
    assert DOCS.read_text(encoding="utf-8") == cli_reference.reference(), (
        "docs/cli.md is stale: python -m experiments.cli_reference --write docs/cli.md"
    )


def parser_of(spec: str):
    return cli_reference._factory(spec)()


TRAIN = "reslstm_jax.train.__main__:build_parser"
SWEEP = "sweeps.run:parser"


@pytest.mark.parametrize(
    "spec, old, new, dest, value",
    [
        (TRAIN, ["--workers", "3"], "--feature-workers", "feature_workers", 3),
        ("experiments.cli_reference:experiment_parser", ["--workers", "3"], "--feature-workers",
         "feature_workers", 3),
        ("experiments.cross_corpus:parser", ["--workers", "3"], "--feature-workers",
         "feature_workers", 3),
        ("reslstm_jax.baseline:build_parser", ["--workers", "3"], "--feature-workers",
         "feature_workers", 3),
        (SWEEP, ["--workdir", "w"], "--out", "out", "w"),
        (SWEEP, ["--seed", "4"], "--sampler-seed", "sampler_seed", 4),
        (SWEEP, ["--budget", "paper"], "--budget full", "budget", "full"),
        (SWEEP, ["--cross-test", "emodb:/d"], "emodb=/d", "cross_test", ["emodb=/d"]),
        (TRAIN, ["--cross-test", "emodb:/d"], "emodb=/d", "cross_test", ["emodb=/d"]),
        ("experiments.report:parser", ["--x", "onnx_kib"], "--pareto-x", "pareto_x", "onnx_kib"),
        ("experiments.report:parser", ["--workdir", "w"], "--sweep-out", "sweep_out", "w"),
        ("reslstm_jax.predict:build_parser", ["--checkpoint", "r", "f.wav"], "--run", "run", "r"),
        ("reslstm_jax.predict:build_parser", ["--json", "--run", "r", "f.wav"], "--format json",
         "format", "json"),
        ("reslstm_jax.export.__main__:build_parser", ["--checkpoint", "r"], "--run", "run", "r"),
        ("reslstm_jax.models.__main__:build_parser", ["--json"], "--format json", "format",
         "json"),
        ("experiments.bench:build_parser", ["--hidden", "32"], "--hidden-size", "hidden_size", 32),
        ("experiments.bench:build_parser", ["--batch", "8"], "--batch-size", "batch_size", 8),
        ("experiments.bench:build_parser", ["--json", "m.json"], "--out", "out", "m.json"),
    ],
)  # fmt: skip
def test_an_old_spelling_works_and_says_the_new_one_once(capsys, spec, old, new, dest, value):
    required = {TRAIN: ["--out", "o"], SWEEP: ["--space", "hidden_sizes"],
                "reslstm_jax.export.__main__:build_parser": ["--out", "o"],
                "reslstm_jax.baseline:build_parser": ["--out", "o"]}  # fmt: skip
    args = parser_of(spec).parse_args([*old, *required.get(spec, [])])
    assert getattr(args, dest) == value
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "deprecated" in err and new in err, err


def test_comma_lists_still_work_with_their_deprecation_line(capsys):
    import argparse

    from experiments import common

    p = argparse.ArgumentParser()
    assert common.parse_list(p, "--configs", ["a,b", "c"], ["a", "b", "c"]) == ["a", "b", "c"]
    assert "--configs a,b is deprecated; use --configs a b" in capsys.readouterr().err
    assert common.parse_list(p, "--configs", ["a", "b"], ["a", "b"]) == ["a", "b"]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "spec, shown",
    [
        (TRAIN, ["data:", "model:", "training (default: the model family's recipe):",
                 "execution (no effect on results unless said):", "outputs:",
                 "tracking (Weights & Biases):", "(default: offline)", "(default: reslstm_sa)",
                 "(default: auto)", "(default: 10)"]),
        (SWEEP, ["data:", "search:", "execution (no effect on results):", "outputs:",
                 "tracking (Weights & Biases):", "(default: quick)", "(default: offline)",
                 "(default: runs)", "(default: val)", "(default: 0)"]),
    ],
)  # fmt: skip
def test_help_is_grouped_and_says_the_defaults(spec, shown):
    text = " ".join(parser_of(spec).format_help().split())
    for words in shown:
        assert " ".join(words.split()) in text, words


@pytest.mark.parametrize("spec", [c[3] for c in cli_reference.COMMANDS])
def test_every_numeric_flag_is_range_checked_and_says_its_range(spec):
    """No int or float flag escapes `flags.RANGES`: each is checked when parsed (one line,
    exit 2) and its `--help` names the range."""
    import argparse

    from reslstm_jax import flags

    parser = cli_reference._factory(spec)()
    numeric = [a for a in parser._actions if isinstance(a.type, flags.Range)]
    assert not [a.dest for a in parser._actions if a.type in (int, float)]
    for action in numeric:
        assert action.help == argparse.SUPPRESS or f"range {action.type}" in action.help


@pytest.mark.parametrize("spec", [c[3] for c in cli_reference.COMMANDS])
def test_every_flag_says_what_it_does(spec):
    """Each flag a command shows has help text (docs/cli.md's third column is never empty);
    the help formatter adds its default."""
    import argparse

    parser = cli_reference._factory(spec)()
    shown = [a for a in parser._actions if a.option_strings and a.help != argparse.SUPPRESS]
    silent = [a.option_strings[0] for a in shown if not a.help]
    assert not silent, f"flags without help: {silent}"


@pytest.mark.parametrize(
    "dest, limit",
    [("folds", "speaker_folds.MAX_FOLDS"), ("time_masks", "settings.MAX_MASKS"),
     ("feature_masks", "settings.MAX_MASKS")],
)  # fmt: skip
def test_a_flags_range_is_the_limit_the_library_enforces(dest, limit):
    """A value the flag lets through is never refused later by the library (with another
    message, after the run's work began): the flag's top is the library's limit."""
    import importlib

    from reslstm_jax import flags

    module, name = limit.split(".")
    assert flags.RANGES[dest].top == getattr(importlib.import_module(f"reslstm_jax.{module}"), name)


@pytest.mark.parametrize(
    "valid,text,message",
    [
        (flags_range := ("int", 1, None), "0", "must be an integer in [1, 2147483647], got 0"),
        (flags_range, "2147483648", "must be an integer in [1, 2147483647], got 2147483648"),
        (flags_range, "1.5", "must be an integer in [1, 2147483647], got '1.5'"),
        (("float", 0, None, True), "0", "must be a number in (0, 3.40282e+38], got 0"),
        (("float", 0, None, True), "1e39", "must be a number in (0, 3.40282e+38], got 1e39"),
        (("float", 0, None, True), "nan", "must be a finite number in (0, 3.40282e+38], got nan"),
        (("float", 0, 1.0, False, True), "1", "must be a number in [0, 1), got 1"),
        (("float", -140.0, 140.0), "-141", "must be a number in [-140, 140], got -141"),
    ],
)
def test_a_value_out_of_range_names_the_range(valid, text, message):
    import argparse

    from reslstm_jax import flags

    kind, *bounds = valid
    checked = flags.Range({"int": int, "float": float}[kind], *bounds)
    with pytest.raises(argparse.ArgumentTypeError) as caught:
        checked(text)
    assert str(caught.value) == message
    inside = checked(str(bounds[0] + 0.5 if kind == "float" else bounds[0]))
    assert type(inside) is checked.kind  # a value inside comes back, of its kind


@pytest.mark.parametrize(
    "module",
    ["experiments.bench_latency", "experiments.bench_onnx", "experiments.common",
     "experiments.setup_files", "sweeps.cluster", "sweeps.engine", "sweeps.heartbeats",
     "sweeps.pareto", "sweeps.storage", "sweeps.study"],
)  # fmt: skip
def test_a_module_that_is_not_a_command_says_so(module, capsys, monkeypatch):
    """`python -m MODULE` of a library module of the command packages: one line, exit 2
    (it used to print nothing and exit 0)."""
    import runpy
    import sys
    import warnings

    monkeypatch.setattr(sys, "argv", [module, "--help"])
    with pytest.raises(SystemExit) as exited, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # runpy: the module is imported already
        runpy.run_module(module, run_name="__main__")
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2
    assert line.startswith(f"error: {module} is a module of the project, not a command")
