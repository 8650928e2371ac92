"""The command lines' one vocabulary: old spellings kept as hidden aliases, and `--help` in
groups with every default said.

```python
p = argparse.ArgumentParser(..., formatter_class=flags.HelpFormatter)
data = p.add_argument_group("data")
data.add_argument("--feature-workers", type=int, help="feature extraction processes")
flags.deprecated(data, "--workers", "--feature-workers", type=int)
```
An old spelling still works; it prints one line on stderr naming the new one. The names, once
for every tool, are in docs/cli.md.

Every numeric flag has its valid values (`RANGES`, one table for every tool: what the
computation can represent and what the flag means, not taste), checked when the command line
is parsed and said in `--help`: `flags.ranged(parser)` at the end of each parser's builder.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys

# The words every summary and table uses, said once at the end of the main commands' --help.
WORDS = ("UAR: unweighted average recall, the mean of the per-class recalls (every class counts "
         "alike; chance = 1 / classes). WA: plain accuracy. Pooled: every fold's test "
         "predictions together, per seed. Fold, protocol, LOSO, Pareto front, card, study, "
         "trial: docs/glossary.md.")  # fmt: skip


class HelpFormatter(argparse.HelpFormatter):
    """argparse's, with `(default: X)` after every flag's help that has a default worth
    saying (not None, not off, not an empty list) and does not say it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.help == argparse.SUPPRESS or not action.option_strings:
            return text
        default = action.default
        if (
            default is None
            or default is False
            or default is argparse.SUPPRESS
            or (isinstance(default, (list, tuple)) and not default)
        ):
            return text
        if isinstance(default, (list, tuple)):
            default = " ".join(map(str, default))
        return f"{text} (default: {default})".lstrip()


class RawDescriptionHelpFormatter(HelpFormatter, argparse.RawDescriptionHelpFormatter):
    """`HelpFormatter` with the description as written (a module docstring)."""


class Deprecated(argparse.Action):
    """An old spelling of a flag: warns once, then stores as the new flag does."""

    def __init__(self, option_strings, dest, *, new: str, convert=None, **kwargs):
        self.new, self.convert = new, convert
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"warning: {option_string} is deprecated; use {self.new}", file=sys.stderr)
        if self.convert is not None:
            values = self.convert(values)
        setattr(namespace, self.dest, values)


def deprecated(group, old: str, new: str, *, dest: str | None = None, **kwargs) -> None:
    """`old` as a hidden alias of `new` (same `dest`; `kwargs` as `new`'s: type, metavar,
    choices)."""
    dest = dest or new.lstrip("-").replace("-", "_")
    group.add_argument(old, dest=dest, action=Deprecated, new=new, help=argparse.SUPPRESS,
                       default=argparse.SUPPRESS, **kwargs)  # fmt: skip


def require(parser: argparse.ArgumentParser, args, *names: str) -> None:
    """argparse's own error for a required flag that was not given, for flags that have an
    older spelling (argparse's `required=True` would not count the alias as given)."""
    missing = [n for n in names if getattr(args, n.lstrip("-").replace("-", "_"), None) is None]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")


def deprecated_switch(group, old: str, new: str, dest: str, value) -> None:
    """A switch `old` that meant `new` (e.g. `--json` for `--format json`): sets `dest` to
    `value`, after its one deprecation line."""
    group.add_argument(old, dest=dest, action=Deprecated, new=new, nargs=0,
                       convert=lambda _: value, help=argparse.SUPPRESS,
                       default=argparse.SUPPRESS)  # fmt: skip


def corpus_dir(text: str) -> str:
    """A `CORPUS=DIR` value (`CORPUS` alone for the synthetic corpus); the older `CORPUS:DIR`
    still works, with its deprecation line. Checked later, where the corpora are known."""
    corpus, sep, where = text.partition("=")
    if not sep and ":" in text:
        corpus, _, where = text.partition(":")
        print(f"warning: {text} is deprecated; use {corpus}={where}", file=sys.stderr)
        return f"{corpus}={where}"
    return text


# The destinations of `add_corpus_options`' flags.
CORPUS_OPTIONS = ("corpus_name", "classes", "audio_root", "raw_labels", "label_map")


def add_corpus_options(d) -> None:
    """A corpus's own options and the label map, the same flags in every command that reads a
    corpus (train, sweeps, experiments): values for `corpus_options` and `label_map`."""
    d.add_argument("--corpus-name", metavar="NAME",
                   help="a manifest's name in cards, results and reports (default: the "
                   "file's stem)")  # fmt: skip
    d.add_argument("--classes", nargs="+", metavar="CLASS",
                   help="a manifest's classes, in this order (default: the sorted labels "
                   "found; rows of other labels are left out)")  # fmt: skip
    d.add_argument("--audio-root", metavar="DIR",
                   help="EmoBox: the folder its `wav` paths are relative to (default: the "
                   "EmoBox root, the folder that holds data/)")  # fmt: skip
    d.add_argument("--raw-labels", action="store_true",
                   help="every category of the corpus rather than its class set, for "
                   "--label-map to build another (IEMOCAP: all ten, excited apart from "
                   "happy); the other corpora already read all of theirs")  # fmt: skip
    d.add_argument("--label-map", metavar="MAP",
                   help="rename, merge and drop classes before the folds are made: "
                   "old=new pairs (old=- drops), inline (excited=happy,calm=neutral) or a "
                   "file of them; applied before --label-set")  # fmt: skip


def corpus_options(args) -> dict:
    """`corpora.load`'s options from `add_corpus_options`' flags (those not given left out)."""
    given = {"name": args.corpus_name, "classes": tuple(args.classes or ()) or None,
             "audio_root": args.audio_root, "raw": args.raw_labels}  # fmt: skip
    return {k: v for k, v in given.items() if v}


def label_map(args) -> dict | None:
    """The --label-map as {old: new, or None to drop}, or None; ValueError naming the flag."""
    from reslstm_jax.corpora import labelsets
    from reslstm_jax.corpora.base import CorpusError

    if not args.label_map:
        return None
    try:
        return labelsets.parse_map(args.label_map)
    except CorpusError as exc:
        raise ValueError(str(exc)) from None


# ----------------------------------------------------------------------------- numeric ranges

INT32_MAX = 2**31 - 1  # counts travel through the compiled program as int32
FLOAT32_MAX = 3.4028234663852886e38  # hyperparameters are computed in float32


@dataclasses.dataclass(frozen=True)
class Range:
    """A numeric flag's valid values, and its argparse type: `Range(int, 1)("0")` raises
    `argparse.ArgumentTypeError("must be an integer in [1, 2147483647], got 0")`, which
    argparse prints as `argument --epochs: must be ...` with exit code 2."""

    kind: type  # int or float
    low: float
    high: float | None = None  # None: INT32_MAX or FLOAT32_MAX
    low_open: bool = False  # (low, ...: low itself is not valid
    high_open: bool = False

    @property
    def top(self) -> float:
        if self.high is not None:
            return self.high
        return INT32_MAX if self.kind is int else FLOAT32_MAX

    def __str__(self) -> str:
        def show(x):
            return f"{x:g}" if self.kind is float else str(x)

        return (f"{'(' if self.low_open else '['}{show(self.low)}, {show(self.top)}"
                f"{')' if self.high_open else ']'}")  # fmt: skip

    def __call__(self, text: str):
        noun = "an integer" if self.kind is int else "a number"
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {noun} in {self}, got {text!r}") from None
        if self.kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number in {self}, got {text}")
        low_ok = value > self.low if self.low_open else value >= self.low
        high_ok = value < self.top if self.high_open else value <= self.top
        if not (low_ok and high_ok):
            raise argparse.ArgumentTypeError(f"must be {noun} in {self}, got {text}")
        return value


COUNT = Range(int, 1)
OPTIONAL_COUNT = Range(int, 0)  # 0: off, none
POSITIVE = Range(float, 0, low_open=True)
NON_NEGATIVE = Range(float, 0)
SECONDS = Range(float, 0, 86400.0, low_open=True)

# Every numeric flag of every command, by destination (one meaning per name across tools).
RANGES: dict[str, Range] = {
    **dict.fromkeys(
        (
            "epochs",
            "seeds",
            "batch_size",
            "t0",
            "hidden_size",
            "hidden_sizes",
            "num_att",
            "checkpoint_every",
            "devices",
            "max_models_per_wave",
            "trials",
            "feature_workers",
            "group_size",
            "slurm_cpus_per_worker",
            "ci_resamples",
            "models",
            "trial_epochs",
            "blocks",
            "calls_per_block",
        ),
        COUNT,
    ),  # fmt: skip
    **dict.fromkeys(
        (
            "res_blocks",
            "patience",
            "time_mask",
            "feature_mask",
            "seed",
            "sampler_seed",
            "configuration",
            "max_retries",
            "slurm_gpus_per_worker",
            "worker",
        ),
        OPTIONAL_COUNT,
    ),  # fmt: skip
    "time_masks": Range(int, 1, 4),  # settings.MAX_MASKS
    "feature_masks": Range(int, 1, 4),
    # one fold would test nothing it did not train on; speaker_folds.MAX_FOLDS above
    "folds": Range(int, 2, 50),
    "learning_rate": POSITIVE,
    "weight_decay": NON_NEGATIVE,
    "dropout": Range(float, 0, 1, high_open=True),
    "noise_std": NON_NEGATIVE,
    "mixup_alpha": NON_NEGATIVE,
    "speed_perturb": Range(float, 0.5, 2.0),  # perturb.SPEED_RANGE
    "noise_snr": Range(float, -140.0, 140.0),  # perturb.SNR_RANGE: float32 audio's range
    "heartbeat_seconds": SECONDS,
    "grace_seconds": SECONDS,
    "seconds": Range(float, 0, 3600.0, low_open=True),  # an utterance's length
}


def ranged(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """`parser` with every int or float flag checked against `RANGES` when parsed, and its
    range said in its help. A numeric flag `RANGES` does not know is a programming error
    (ValueError when the parser is built), so no flag goes unchecked."""
    for action in parser._actions:
        if action.type not in (int, float) and not isinstance(action.type, Range):
            continue
        if action.dest not in RANGES:
            raise ValueError(f"{'/'.join(action.option_strings)}: no range in flags.RANGES")
        valid = RANGES[action.dest]
        if valid.kind is not (action.type.kind if isinstance(action.type, Range) else
                              action.type):  # fmt: skip
            raise ValueError(f"{'/'.join(action.option_strings)}: {action.type} flag, "
                             f"{valid.kind.__name__} range")  # fmt: skip
        action.type = valid
        if action.help not in (None, argparse.SUPPRESS) and f"range {valid}" not in action.help:
            action.help = f"{action.help}; range {valid}"
        elif action.help is None:
            action.help = f"range {valid}"
    return parser


# ----------------------------------------------------------------------------- not a command


def not_a_command(module: str) -> int:
    """For `python -m MODULE` of a module that is a library, not a command: one line saying so
    and where the commands are; exit code 2 (`sys.exit(flags.not_a_command(__spec__.name))`
    at the end of such a module). Without it the module ran silently and exited 0."""
    print(f"error: {module} is a module of the project, not a command; the commands "
          "(python -m reslstm_jax.train, sweeps.run, experiments.report, ...) are listed in "
          "docs/cli.md", file=sys.stderr)  # fmt: skip
    return 2
