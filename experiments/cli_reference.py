"""`python -m experiments.cli_reference`: docs/cli.md, the reference of every command line,
generated from the parsers themselves (a test fails when the file is stale).

```bash
python -m experiments.cli_reference --write docs/cli.md   # after changing a flag
```
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from reslstm_jax import flags

PREAMBLE = """\
# Command lines: one vocabulary

Generated from the parsers by `python -m experiments.cli_reference --write docs/cli.md`; a
test fails when it is stale. Every command but the model zoo and the benchmark also takes
`--config FILE` (YAML; keys are the long flag names with `_` for `-`; flags on the command line
win) and `--print-config`; those that train (train, sweeps, experiments, the baseline) write
the resolved `config.yaml` into their output
([training.md](training.md#an-experiment-as-a-file---config-and-configyaml)).

## The same word for the same thing
"""

# (concept, the flag in every tool, older spellings still accepted with a deprecation line)
VOCABULARY = (
    ("where a command writes",
     "`--out` (a folder; a file for `experiments.report` and the bench)",
     "`--workdir` (sweeps.run), `--json FILE` (bench)"),
    ("a finished run to read", "`--run DIR` (predict, export)", "`--checkpoint DIR`"),
    ("a sweep's folder, read by the report", "`--sweep-out DIR` (the sweep's `--out`)",
     "`--workdir` (experiments.report)"),
    ("how long to train",
     "`--budget quick` (minutes to an hour on a laptop CPU: checks the pipeline and shows the "
     "shape of the results) or `--budget full` (the published budget: hours to days on a CPU)",
     "`--budget paper` (sweeps.run)"),
    ("seeds of the models", "`--seeds N` (seeds 0..N-1)", ""),
    ("the seed of Optuna's sampler", "`--sampler-seed` (sweeps.run)", "`--seed`"),
    ("feature extraction processes", "`--feature-workers`",
     "`--workers` (train, experiments, cross_corpus, baseline)"),
    ("the processes that do a command's main work",
     "`--workers` (sweeps.run: training workers; the synthetic corpus: synthesis)", ""),
    ("a model's size", "`--hidden-size`, `--batch-size`", "`--hidden`, `--batch` (bench)"),
    ("the x axis of a Pareto front", "`--pareto-x`", "`--x` (experiments.report)"),
    ("a corpus and its folder in one value",
     "`CORPUS=DIR` (`--cross-test`, cross_corpus's `--data-dir`)", "`CORPUS:DIR` (`--cross-test`)"),
    ("a list of names", "space-separated: `--configs a b`, `--corpora a b`",
     "`--configs a,b`, `--setups a,b`"),
    ("an output format",
     "`--format table|json` (predict, models), `--format md|latex|csv|json` (report)",
     "`--json` (predict, models)"),
)  # fmt: skip

# (title, module, console script or None, parser factory)
COMMANDS = (
    ("Training", "reslstm_jax.train", "reslstm-train", "reslstm_jax.train.__main__:build_parser"),
    ("Sweeps", "sweeps.run", "reslstm-sweep", "sweeps.run:parser"),
    ("Experiments", "experiments.<name>", None, "experiments.cli_reference:experiment_parser"),
    ("Cross-corpus matrix", "experiments.cross_corpus", None, "experiments.cross_corpus:parser"),
    ("Reports", "experiments.report", "reslstm-report", "experiments.report:parser"),
    ("Classical baseline", "reslstm_jax.baseline", None, "reslstm_jax.baseline:build_parser"),
    ("Prediction", "reslstm_jax.predict", "reslstm-predict", "reslstm_jax.predict:build_parser"),
    ("ONNX export", "reslstm_jax.export", "reslstm-export",
     "reslstm_jax.export.__main__:build_parser"),
    ("Model zoo", "reslstm_jax.models", None, "reslstm_jax.models.__main__:build_parser"),
    ("Benchmark", "experiments.bench", None, "experiments.bench:build_parser"),
)  # fmt: skip


def experiment_parser() -> argparse.ArgumentParser:
    """The experiments' shared parser (shown for ravdess_reslstm_sa; the others differ only in
    their corpora, configurations, setups and budgets)."""
    from experiments import common, ravdess_reslstm_sa

    return common.parser(ravdess_reslstm_sa.EXPERIMENT)


def _factory(spec: str):
    import importlib

    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def _default(action: argparse.Action) -> str:
    default = action.default
    if default in (None, argparse.SUPPRESS) or isinstance(action, argparse._HelpAction):
        return ""
    if isinstance(action, argparse._StoreTrueAction):
        return "off"
    if isinstance(default, (list, tuple)):
        return " ".join(map(str, default)) if default else ""
    if isinstance(default, str) and pathlib.PurePath(default).is_absolute():
        return "a path (see help)"
    return f"`{default}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _flag(action: argparse.Action) -> str:
    spelled = ", ".join(f"`{o}`" for o in action.option_strings)
    if action.choices is not None and not isinstance(action, flags.Deprecated):
        spelled += " " + "\\|".join(map(str, action.choices))
    elif action.nargs != 0 and action.metavar and not isinstance(action.metavar, tuple):
        spelled += f" {action.metavar}"
    return spelled


def section(title: str, module: str, script: str | None, parser) -> str:
    lines = [f"## {title}: `python -m {module}`", ""]
    if script:
        lines += [f"Also installed as `{script}`.", ""]
    lines += [_cell(parser.description.split("\n\n")[0]) if parser.description else "", ""]
    positionals = [a for a in parser._actions if not a.option_strings]
    for action in positionals:
        lines.append(f"Positional `{action.metavar or action.dest}`: {_cell(action.help or '')}")
        lines.append("")
    old = [a for a in parser._actions if isinstance(a, flags.Deprecated)]
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a.option_strings
                   and a.help != argparse.SUPPRESS
                   and not isinstance(a, argparse._HelpAction)]  # fmt: skip
        if not actions:
            continue
        heading = group.title if group.title not in ("options", "optional arguments") else ""
        if heading:
            lines += [f"**{heading}**", ""]
        lines += ["| flag | default | meaning |", "|---|---|---|"]
        lines += [f"| {_flag(a)} | {_default(a)} | {_cell(a.help or '')} |" for a in actions]
        lines.append("")
    if old:
        spelled = ", ".join(f"`{a.option_strings[0]}` ({a.new})" for a in old)
        lines += [f"Older spellings, still accepted with a deprecation line: {spelled}.", ""]
    return "\n".join(lines)


def reference() -> str:
    """The whole of docs/cli.md."""
    table = ["| concept | flag, in every tool | older spellings (accepted, with a deprecation "
             "line) |", "|---|---|---|"]  # fmt: skip
    table += [f"| {_cell(a)} | {_cell(b)} | {_cell(c)} |" for a, b, c in VOCABULARY]
    parts = [PREAMBLE + "\n" + "\n".join(table) + "\n"]
    for title, module, script, spec in COMMANDS:
        parts.append(section(title, module, script, _factory(spec)()))
    return "\n".join(parts).rstrip("\n") + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.cli_reference",
                                description="Write the CLI reference (docs/cli.md) from the "
                                "parsers.")  # fmt: skip
    p.add_argument("--write", metavar="FILE", help="write it here (default: standard output)")
    args = p.parse_args(argv)
    text = reference()
    if args.write:
        pathlib.Path(args.write).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
