"""Config files for the command lines: `--config FILE` and `--print-config`, and the resolved
`config.yaml` that each output folder holds so that it can be run again.

```python
parser = argparse.ArgumentParser(...)        # the CLI's flags, as before
configfile.add_flags(parser)                 # --config FILE, --print-config
args = configfile.parse_args(parser, argv)   # the file's values, then the command line's
configfile.write(out / "config.yaml", configfile.resolved(parser, args), command=argv)
```

A config file is YAML. Its keys are the long flag names with `_` for `-` (`hidden_size: 64`
for `--hidden-size 64`); keys may be grouped under any heading (`training: {epochs: 50}`), and a
flag that takes JSON (`--model-config`) takes a mapping. A flag given on the command line wins
over the file wherever it stands on the line, a repeatable flag (`--cross-test`) included: the
command line's list replaces the file's. A key that is no flag, or a value its flag would refuse,
stops the command with one line naming the file and the key (and the nearest key there is), exit
code 2, before anything is read or written.

`data:` in a file is not a flag: it is the identity of the data a run was trained on (corpus,
folder, utterance hash and counts), written by `write` and read back into `args.config_data`
so that a rerun can check that it finds the same data (`data_problem`).

The parsing stays argparse's (the flags, their types, choices and help are the CLIs' own) and
the files are read and written with PyYAML's safe loader: docs/architecture.md says why.
"""

from __future__ import annotations

import argparse
import difflib
import json
import pathlib
import re
import shlex
import sys
from collections.abc import Iterable, Sequence

import yaml

CONFIG_NAME = "config.yaml"
DATA_KEY = "data"  # the data's identity: recorded and checked, never a flag
# The config flags themselves: no key of a config file.
CONFIG_FLAGS = ("help", "config", "print_config")
# Not settings: the config flags, and where the outputs go (a rerun names its own).
NOT_SETTINGS = (*CONFIG_FLAGS, "out", "overwrite")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading `1e-3` as a float as YAML 1.2 and JSON do (YAML 1.1, which
    PyYAML follows, wants `1.0e-3`): learning rates are written that way."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(text: str):
    """The YAML document `text` (safe: plain data only; `1e-3` is a float)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506  (a SafeLoader subclass)


class ConfigError(ValueError):
    """A config file that cannot be used: the message names the file and the key."""


def read_mapping(path, what: str) -> dict:
    """The YAML mapping in the file `path` (a space, an experiment); ConfigError naming the file
    when it cannot be read, is not YAML, or holds no mapping (`what`: what it should hold)."""
    try:
        tree = read_yaml(pathlib.Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({getattr(exc, 'strerror', exc)})") from None
    except yaml.YAMLError:
        raise ConfigError(f"{path}: not YAML") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: {what}")
    return tree


def add_flags(parser: argparse.ArgumentParser) -> None:
    """`--config FILE` and `--print-config`, in a group of their own."""
    group = parser.add_argument_group("config file")
    group.add_argument("--config", metavar="FILE",
                       help="YAML file of settings: keys are the long flag names with _ for - "
                       "(e.g. hidden_size: 64); flags on the command line win over it")  # fmt: skip
    group.add_argument("--print-config", action="store_true",
                       help="print the resolved settings as a config file and exit")  # fmt: skip


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None):
    """argparse's `parse_args` with the `--config` file's values as defaults, so every flag on
    the command line wins. The namespace gets `config_data` (the file's `data:`, or None).
    A bad file: one line on stderr naming it and the key, SystemExit(2)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    path = pre.parse_known_args(argv)[0].config
    values, recorded = {}, None
    if path is not None:
        try:
            values, recorded = load(parser, path)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
    actions = _actions(parser)
    if "print_config" in actions and _given(actions["print_config"], argv):
        for action in actions.values():  # printing the settings needs none of them (--out)
            action.required = False
    for dest in list(values):
        action = actions[dest]
        if _given(action, argv):
            del values[dest]  # the command line's (a repeatable flag's list too) replaces it
        elif action.required:
            action.required = False  # the file gives it
    parser.set_defaults(**values)
    args = parser.parse_args(argv)
    args.config_data = recorded
    return args


def load(parser: argparse.ArgumentParser, path) -> tuple[dict, dict | None]:
    """({dest: value}, the file's `data:` or None) of a config file, every value checked as
    its flag checks it; ConfigError naming the file and the key."""
    path = pathlib.Path(path)
    try:
        tree = read_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config {path}: cannot be read ({exc})") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigError(f"--config {path}: not YAML{line}") from None
    if tree is None:
        return {}, None
    if not isinstance(tree, dict):
        raise ConfigError(f"--config {path}: must be a mapping of settings (key: value)")
    recorded = tree.pop(DATA_KEY, None)
    if recorded is not None and not isinstance(recorded, dict):
        raise ConfigError(f"{path}: {DATA_KEY} must be a mapping (the data's identity)")
    actions = _actions(parser)
    values = {}
    for key, value in _flat(tree, actions, path, aliases=_aliases(parser)):
        if key in values:
            raise ConfigError(f"{path}: {key} is given twice")
        values[key] = _checked(actions[key], key, value, path)
    return values, recorded


def resolved(parser: argparse.ArgumentParser, args, **filled) -> dict:
    """Every setting of `args` in the parser's order (what was not given: its default),
    with `filled` values (e.g. the model family's recipe for a flag left to it) in place of
    None; the output place and the config flags left out. Plain YAML-able values."""
    config = {}
    for dest, action in _actions(parser).items():
        if dest in NOT_SETTINGS or not hasattr(args, dest):
            continue
        value = getattr(args, dest)
        if value is None and filled.get(dest) is not None:
            value = filled[dest]
        config[dest] = _plain(_parsed_json(action, value))
    return config


# The data's identity in an output's config.yaml: a rerun from it checks that it finds the same.
DATA_IDENTITY = ("corpus", "utterance_ids_sha256", "n_utterances", "n_speakers", "classes")


def data_identity(card: dict, data_dir) -> dict:
    """The `data:` of a config.yaml: which data a protocol card was made from, and where."""
    identity = {key: card[key] for key in DATA_IDENTITY if key in card}
    identity["data_dir"] = str(pathlib.Path(data_dir).expanduser().resolve()) if data_dir else None
    return identity


def data_problem(parser: argparse.ArgumentParser, argv: Sequence[str], args,
                 card: dict) -> str | None:  # fmt: skip
    """Why the data found is not the data a --config file's output was made from (another
    utterance hash than its `data:`), or None. Data named anew on the command line
    (--corpus, --data-dir) is the user's choice and not checked."""
    recorded = getattr(args, "config_data", None)
    if not recorded or not recorded.get("utterance_ids_sha256"):
        return None
    if any(given_on_command_line(parser, argv, d) for d in ("corpus", "data_dir")
           if d in _actions(parser)):  # fmt: skip
        return None
    if recorded["utterance_ids_sha256"] == card["utterance_ids_sha256"]:
        return None
    return (
        f"--config {args.config}: the data found ({card['corpus']}, {card['n_utterances']} "
        f"utterances) is not the data this config was made from (utterance hash "
        f"{recorded['utterance_ids_sha256'][:12]}, {recorded.get('n_utterances')} utterances); "
        "name the data on the command line (--data-dir) to use it anyway"
    )


def print_if_asked(parser: argparse.ArgumentParser, args, **filled) -> bool:
    """`--print-config`: the resolved settings printed as a config file; True when printed (the
    command then exits 0 having done nothing else)."""
    if not getattr(args, "print_config", False):
        return False
    print(dumps(resolved(parser, args, **filled)), end="")
    return True


def dumps(config: dict, *, command: Sequence[str] | None = None, data: dict | None = None,
          notes: Iterable[str] = ()) -> str:  # fmt: skip
    """YAML text of `config` (and `data:`, the data's identity), headed by comments: the
    package version and commit, the command line, and `notes`."""
    from reslstm_jax import provenance

    env = provenance.environment()
    git = env["git"] or {}
    version = env["packages"].get("reslstm-jax") or "unknown"
    commit = git.get("commit")
    head = [f"reslstm-jax {version}" + (f", commit {commit}" if commit else "")
            + (" (with uncommitted changes)" if git.get("dirty") else "")]  # fmt: skip
    if command is not None:
        head.append("command: " + " ".join(shlex.quote(str(word)) for word in command))
    head.extend(notes)
    text = "".join(f"# {line}\n" for line in head)
    text += yaml.safe_dump(config, sort_keys=False, default_flow_style=False, width=100)
    if data:
        text += yaml.safe_dump({DATA_KEY: _plain(data)}, sort_keys=False, width=100)
    return text


def write(path, config: dict, **header) -> pathlib.Path:
    """`dumps(config, **header)` written atomically to `path`."""
    from reslstm_jax import artifacts

    return artifacts.write_text_atomic(path, dumps(config, **header))


def given_on_command_line(parser: argparse.ArgumentParser, argv: Sequence[str], dest: str) -> bool:
    """Whether the flag of `dest` appears in `argv` (not only in a config file)."""
    return _given(_actions(parser)[dest], list(argv))


# ----------------------------------------------------------------------------- internals


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """{dest: action} of the parser's long flags (hidden aliases share their flag's dest)."""
    from reslstm_jax import flags

    actions = {}
    for action in parser._actions:
        if isinstance(action, flags.Deprecated):
            continue
        if action.option_strings and action.dest not in actions:
            actions[action.dest] = action
    return actions


def _given(action: argparse.Action, argv: list[str]) -> bool:
    if "--" in argv:
        argv = argv[: argv.index("--")]
    return any(word == flag or word.startswith(flag + "=")
               for word in argv for flag in action.option_strings)  # fmt: skip


def _aliases(parser: argparse.ArgumentParser) -> dict[str, str]:
    """{older key: its setting} of the flags' older spellings that take the same value
    (`lr` -> `learning_rate`, `workers` -> `feature_workers`)."""
    from reslstm_jax import flags

    return {option.lstrip("-").replace("-", "_"): action.dest
            for action in parser._actions
            if isinstance(action, flags.Deprecated) and action.convert is None
            and action.nargs != 0 for option in action.option_strings}  # fmt: skip


def _flat(tree: dict, actions: dict, path, heading: str = "", aliases=None):
    """(dest, value) pairs of a config mapping; a mapping is a group of settings under a
    heading, except as the value of a flag that takes JSON. An older key of a setting is read
    as it, with one deprecation line."""
    aliases = aliases or {}
    for key, value in tree.items():
        name = str(key).replace("-", "_")
        if name not in actions and name in aliases:
            print(f"warning: {path}: {key} is deprecated; use {aliases[name]}", file=sys.stderr)
            name = aliases[name]
        takes_mapping = name in actions and actions[name].metavar == "JSON"
        if isinstance(value, dict) and not takes_mapping:  # a heading (`model:` too)
            yield from _flat(value, actions, path, f"{heading}{name}.", aliases)
        elif name in actions and name not in CONFIG_FLAGS:
            yield name, value
        else:
            known = [d for d in actions if d not in CONFIG_FLAGS]
            near = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise ConfigError(f"{path}: {heading}{key} is not a setting{hint}")


def _checked(action: argparse.Action, key: str, value, path):
    """The value as the flag would parse it; ConfigError naming the key."""
    where = f"{path}: {key}"
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if value is None:  # `key: null`: the flag not given
        return action.default
    many = action.nargs in ("+", "*") or isinstance(action, argparse._AppendAction)
    if many:
        items = value if isinstance(value, list) else [value]  # [] is the flag not given
        return [_one(action, where, item) for item in items]
    if isinstance(value, list):
        raise ConfigError(f"{where} takes one value, got a list")
    return _one(action, where, value)


def _one(action: argparse.Action, where: str, value):
    if isinstance(value, dict):
        if action.type is not None or action.metavar != "JSON":
            raise ConfigError(f"{where} takes a value, not a mapping")
        return json.dumps(value)
    if isinstance(value, (bool, list)):
        raise ConfigError(f"{where} takes a value, got {value!r}")
    convert = action.type or str
    try:
        value = convert(value if isinstance(value, str) else str(value))
    except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
        kind = getattr(convert, "__name__", "")
        detail = f"invalid {kind} value {value!r}" if kind in ("int", "float") else str(exc)
        raise ConfigError(f"{where}: {detail}") from None
    if action.choices is not None and value not in action.choices:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(str, action.choices))}")
    return value


def _parsed_json(action: argparse.Action, value):
    """A JSON flag's text as the mapping it holds (readable in YAML)."""
    if action.metavar == "JSON" and isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, pathlib.PurePath):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value
