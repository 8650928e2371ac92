"""Every command in README.md and docs/*.md is checked, so a documented command cannot rot:
the fenced `bash` blocks are read, and each `python -m MODULE ...` of this project must name
a module that exists and pass its command line's parser (flags that exist, values in range,
choices known); each `make TARGET` must name a Makefile target. Commands of other tools (pip,
git, wandb, squeue, ...) are not checked. The paths in the docs (`~/data/RAVDESS`, `runs/h64`)
are examples: parsing never opens them.

The commands that need no corpus of the reader's (the demo on the embedded synthetic corpus,
its report, the generator) also run, as written plus one trial of one epoch (`RUNS`); every
other command says why it only parses (`why_not_run`): a real corpus, a run folder or study
of the reader's, or a benchmark."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import re
import shlex
import sys

import pytest
from doc_blocks import REPO, fenced_blocks

FENCES = ("```bash", "```sh", "```console")


@dataclasses.dataclass
class Command:
    where: str  # file:line
    words: list[str]

    def __str__(self) -> str:
        return f"{self.where}: {shlex.join(self.words)}"


def documented_commands() -> list[Command]:
    """Each command line of the fenced shell blocks (continuation lines joined, comments and
    `VAR=value` prefixes dropped, `a && b` split)."""
    found = []
    for where, _, lines in fenced_blocks(FENCES):
        text, start = "", 0
        for number, line in lines:
            text, start = (f"{text} {line.strip()}", start) if text else (line.strip(), number)
            if text.endswith("\\"):
                text = text[:-1]
                continue
            words, text = shlex.split(text, comments=True), ""
            for part in _split_on(words, "&&"):
                while part and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", part[0]):
                    part = part[1:]
                if part:
                    found.append(Command(f"{where}:{start}", part))
    return found


def _split_on(words: list[str], separator: str) -> list[list[str]]:
    parts, current = [], []
    for word in words:
        if word == separator:
            parts.append(current)
            current = []
        else:
            current.append(word)
    return [*parts, current]


COMMANDS = documented_commands()
PYTHON_COMMANDS = [c for c in COMMANDS if c.words[:2] == ["python", "-m"]]
OURS = ("reslstm_jax", "sweeps", "experiments")


def parser_of(module: str):
    """The argparse parser of one of the project's commands, or None for a command whose
    arguments are not an argparse parser's (experiments.run takes a file first)."""
    from experiments import cli_reference

    factories = {spec_module: spec for _, spec_module, _, spec in cli_reference.COMMANDS}
    if module in factories:
        return cli_reference._factory(factories[module])()
    loaded = importlib.import_module(module)
    if hasattr(loaded, "EXPERIMENT"):  # a shipped experiment: the shared parser
        from experiments import common

        return common.parser(loaded.EXPERIMENT)
    for name in ("build_parser", "parser", "_parser"):
        if callable(getattr(loaded, name, None)):
            return getattr(loaded, name)()
    return None


def test_the_docs_hold_commands_to_check():
    assert len(PYTHON_COMMANDS) > 50 and any(c.words[0] == "make" for c in COMMANDS)


@pytest.mark.parametrize("command", PYTHON_COMMANDS, ids=str)
def test_a_documented_python_command_parses(command, capsys):
    module, args = command.words[2], command.words[3:]
    if not module.startswith(OURS):
        pytest.skip(f"{module} is not this project's command")
    assert importlib.util.find_spec(module) is not None, f"{command}: no module {module}"
    if module == "experiments.run":  # EXPERIMENT first, then the experiments' flags
        from experiments import common, setup_files

        name = args[0]
        if not name.endswith((".yaml", ".yml")):  # a shipped one, by name
            assert name in setup_files.names(), f"{command}: no shipped experiment {name}"
        parser, args = common.parser(setup_files.load("ravdess_reslstm_sa")), args[1:]
    else:
        parser = parser_of(module)
    assert parser is not None, f"{command}: no parser found for {module}"
    if "--config" in args:  # the file gives what the command line leaves out (configfile)
        at = args.index("--config")
        args = args[:at] + args[at + 2 :]
        for action in parser._actions:
            action.required = False
    try:
        parser.parse_args(args)
    except SystemExit as exited:
        if exited.code != 0:  # --help exits 0
            pytest.fail(f"{command}\n{capsys.readouterr().err.strip()}")


# The documented commands that run here, in order (the report and the ONNX axis read the demo's
# study): each as the docs write it, then what this test adds. The sweeps train one trial of
# one epoch, W&B off, into the test's folder; the demo's corpus is the suite's (`demo_data`).
TINY = ("--trials", "1", "--epochs", "1", "--no-progress", "--wandb", "disabled")
DEMO_STUDY = "hidden_sizes-synthetic-ravdess_paper-quick"
RUNS = (
    # `make demo`, the README's first command (with the latency and ONNX figures, as a user
    # gets them)
    ("python -m sweeps.run --space hidden_sizes", (*TINY, "--out", "{out}")),
    # the same study again, plotted over the ONNX size its trial measured: nothing to train
    ("python -m sweeps.run --space hidden_sizes --pareto-x onnx_kib", (*TINY, "--out", "{out}")),
    (f"python -m experiments.report --study {DEMO_STUDY} --format md", ("--sweep-out", "{out}")),
    ("python -m sweeps.run --space paper --trials 100 --objective test",
     (*TINY, "--no-latency", "--out", "{out}")),
    ("python -m reslstm_jax.corpora.synthetic --out DIR --seed 1 --small --workers 2", ()),
)  # fmt: skip
RUN_DOCS = {doc for doc, _ in RUNS}


def why_not_run(command: Command) -> str | None:
    """Why a documented command of this project only parses here, or None when it should run."""
    words, module = command.words, command.words[2]
    if " ".join(words) in RUN_DOCS:
        return None
    if "--data-dir" in words or module == "experiments.run":
        return "trains on a corpus of the reader's"
    if module == "experiments.bench":
        return "a benchmark: minutes of timing by design (docs/performance.md)"
    if module == "reslstm_jax.models":
        return "the zoo card: run end to end by tests/test_cli_models.py"
    if words[3:] == ["--out", "DIR"] and module == "reslstm_jax.corpora.synthetic":
        return "the demo's corpus: tests/conftest.py's demo_data runs it, once per machine"
    space = words[words.index("--space") + 1] if "--space" in words[:-1] else ""
    if module == "sweeps.run" and space.endswith((".yaml", ".yml")):
        return "a space file of the reader's (tests/test_sweeps.py trains one)"
    if any(w in words for w in ("--run", "--config", "--storage")) or (
        module == "experiments.report" and "--study" not in words):  # fmt: skip
        return "reads a run folder, config or storage of the reader's"
    if module == "experiments.report":
        return "reports a study of the reader's"
    return None


def test_every_documented_command_runs_or_says_why_not():
    ours = [c for c in PYTHON_COMMANDS if c.words[2].startswith(OURS)]
    documented = {" ".join(c.words) for c in ours}
    for doc in RUN_DOCS:  # a command dropped from the docs leaves this table too
        assert doc in documented, f"no longer documented: {doc}"
    unexplained = [str(c) for c in ours if " ".join(c.words) not in RUN_DOCS
                   and why_not_run(c) is None]  # fmt: skip
    assert not unexplained, f"runnable without a corpus, add to RUNS: {unexplained}"
    # `make demo` is the first of them
    assert "\t$(PY) -m sweeps.run --space hidden_sizes\n" in (REPO / "Makefile").read_text()


def test_the_commands_that_need_no_corpus_run(demo_data, tmp_path, run_command, run_main):
    """The demo as a newcomer runs it, its ONNX axis, its report, the paper space and the small
    synthetic corpus: each exits 0 with what its docs promise."""
    from experiments import report

    out = tmp_path / "runs"
    done = {}
    for doc, extra in RUNS:
        words = [str(tmp_path / "small") if w == "DIR" else w for w in shlex.split(doc)]
        argv = [*words[3:], *(e.format(out=out) for e in extra)]
        if words[2] == "experiments.report":  # reads files only: in this process
            proc = run_main(report.main, argv)
        else:
            proc = run_command([sys.executable, "-m", words[2], *argv], env=demo_data.env,
                               cwd=tmp_path)  # fmt: skip
        assert proc.returncode == 0, f"{doc}\n{proc.stderr[-3000:]}"
        done[doc] = proc.stdout
    demo, onnx, table, paper, _ = done.values()
    assert "study hidden_sizes-synthetic-ravdess_paper-quick" in demo
    assert "protocol ravdess_paper on synthetic: 1440 utterances, 24 speakers" in demo
    assert "ONNX KiB" in demo and "features mfcc_chroma at 48000 Hz" in demo
    front = (out / DEMO_STUDY / "pareto.csv").read_text().splitlines()
    assert len(front) == 2 and front[1].startswith("0,lstm_sa,16,")  # the grid's first point
    assert "ONNX KiB" in onnx and (out / DEMO_STUDY / "pareto.png").stat().st_size > 0
    assert "| configuration | params |" in table and "| lstm_sa h16 " in table
    assert "objective test" in paper and "1 trials x 1 epochs" in paper
    small = sorted(p.name for p in (tmp_path / "small").iterdir() if p.is_dir())
    assert small == ["Actor_01", "Actor_02", "Actor_03", "Actor_04"]


def study_of(command: Command) -> str | None:
    """The study a documented `sweeps.run` command makes, as `sweeps.run` names it; None for a
    space file or a corpus whose name is read from the reader's files (manifest, EmoBox)."""
    from sweeps import run, spaces

    args = command.words[3:]
    if "--config" in args:  # the reader's file names the rest
        return None
    parser = parser_of("sweeps.run")
    args = parser.parse_args(args)
    if args.space.endswith((".yaml", ".yml")) or args.corpus in ("manifest", "emobox"):
        return None
    corpus, protocol = run.corpus_and_protocol(args, parser)
    return run.study_name(args, spaces.load(args.space).name, corpus, protocol)


def test_every_study_a_documented_report_reads_is_one_a_documented_sweep_makes():
    """`experiments.report --study NAME` after a sweep must name the study that sweep made
    (`<space>-<corpus>-<protocol>-<budget>` unless `--study`): the sweeps of the same page, or
    of any page when the page runs none."""
    made: dict[str, set[str]] = {}
    for command in PYTHON_COMMANDS:
        if command.words[2] == "sweeps.run" and (name := study_of(command)) is not None:
            made.setdefault(command.where.split(":")[0], set()).add(name)
    everywhere = set().union(*made.values())
    assert DEMO_STUDY in everywhere and len(everywhere) > 3
    wrong = []
    for command in PYTHON_COMMANDS:
        words = command.words
        if words[2] == "experiments.report" and "--study" in words[:-1]:
            study = words[words.index("--study") + 1]
            if study not in made.get(command.where.split(":")[0], everywhere):
                wrong.append(f"{command}: no documented sweep makes {study}")
    assert not wrong, "\n".join(wrong)


def test_documented_make_targets_exist():
    targets = set(re.findall(r"^([a-z][a-z-]*):", (REPO / "Makefile").read_text(), re.M))
    for command in (c for c in COMMANDS if c.words[0] == "make"):
        for target in command.words[1:]:
            if "=" not in target and not target.startswith("-"):
                assert target in targets, f"{command}: no Makefile target {target}"
