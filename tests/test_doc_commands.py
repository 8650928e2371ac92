"""Every command in README.md and docs/*.md is checked, so a documented command cannot rot:
the fenced `bash` blocks are read, and each `python -m MODULE ...` of this project must name
a module that exists and pass its command line's parser (flags that exist, values in range,
choices known); each `make TARGET` must name a Makefile target. Commands of other tools (pip,
git, wandb, squeue, ...) are not checked. The paths in the docs (`~/data/RAVDESS`, `runs/h64`)
are examples: parsing never opens them."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import pathlib
import re
import shlex

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
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
    for path in DOCS:
        inside, text, start = False, "", 0
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip().startswith("```"):
                inside = line.strip() in FENCES if not inside else False
                continue
            if not inside:
                continue
            text, start = (f"{text} {line.strip()}", start) if text else (line.strip(), number)
            if text.endswith("\\"):
                text = text[:-1]
                continue
            words, text = shlex.split(text, comments=True), ""
            for part in _split_on(words, "&&"):
                while part and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", part[0]):
                    part = part[1:]
                if part:
                    found.append(Command(f"{path.relative_to(REPO)}:{start}", part))
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


def test_documented_make_targets_exist():
    targets = set(re.findall(r"^([a-z][a-z-]*):", (REPO / "Makefile").read_text(), re.M))
    for command in (c for c in COMMANDS if c.words[0] == "make"):
        for target in command.words[1:]:
            if "=" not in target and not target.startswith("-"):
                assert target in targets, f"{command}: no Makefile target {target}"
