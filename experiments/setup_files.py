"""Experiments as YAML files: what `python -m experiments.run FILE` trains, and the form of the
shipped ones (`experiments/setups/<name>.yaml`).

```yaml
description: one line for --help and the report
default_corpus: ravdess              # the corpus --data-dir holds when --corpus is not given
configs:                             # name -> a model family and the settings it changes
  reslstm_h32: {model: reslstm_sa, hidden_size: 32, weight_decay: 1.6e-3}
  lstm_h32: {model: lstm_sa, hidden_size: 32}
setups:                              # corpus -> name -> how its data and models are prepared
  ravdess:
    fair: {protocol: ravdess_paper, note: per-fold normalisation}
    leaky: {protocol: ravdess_paper, normalisation: global, model_config: {paper_compat: true},
            share_init_across_seeds: true}
budgets:                             # full (required) and quick: seeds and epochs
  full: {seeds: 10, epochs: 100}
  quick: {seeds: 2, epochs: 4, model_config: {hidden_size: 16},
          feature_params: {tf_mfcc: {seconds: 0.5}}}
pairs: [[reslstm_h32, lstm_h32]]     # compared with paired tests in each setup
```

A configuration's keys besides `model` are run settings (`lr` or `learning_rate`, `epochs`,
`weight_decay`, `loss`, ...) and model fields the family declares (`hidden_size`, `num_att`,
...). A setup takes `protocol` (required), `normalisation`, `model_config`,
`share_init_across_seeds`, `note`, `label_set` and `audio_variants` (`[{speed: 0.9},
{snr_db: 20}]`). Every configuration is checked in every setup and budget when the file is
loaded: an unknown key (with the nearest one named), a protocol of another corpus or a bad
value fails in one line before any data is read.
"""

from __future__ import annotations

import difflib
import pathlib

from experiments.common import Config, Experiment, Setup, settings
from reslstm_jax import configfile
from reslstm_jax.settings import canonical

HERE = pathlib.Path(__file__).parent / "setups"
KEYS = ("name", "description", "default_corpus", "configs", "setups", "budgets", "pairs")
SETUP_KEYS = ("protocol", "normalisation", "model_config", "share_init_across_seeds", "note",
              "label_set", "audio_variants")  # fmt: skip
BUDGET_KEYS = ("seeds", "epochs", "model_config", "feature_params")


class SetupError(ValueError):
    """An experiment file that cannot be run (one line naming the file and the key)."""


def names() -> list[str]:
    """The shipped experiments (`python -m experiments.run NAME`)."""
    return sorted(p.stem for p in HERE.glob("*.yaml"))


def find(name: str) -> pathlib.Path:
    """A shipped experiment's file, or a file of the user's (a path separator or `.yaml`)."""
    if "/" in name or name.endswith((".yaml", ".yml")):
        path = pathlib.Path(name).expanduser()
        if not path.is_file():
            raise SetupError(f"{name}: no such file")
        return path.resolve()
    if name not in names():
        raise SetupError(f"unknown experiment {name!r}; shipped: {', '.join(names())} (or a "
                         "file: PATH.yaml)")  # fmt: skip
    return HERE / f"{name}.yaml"


def load(name_or_path: str, doc: str | None = None) -> Experiment:
    """The Experiment of a shipped name or a YAML file, checked (`SetupError`, one line).
    `doc`: the long description (a shipped experiment's module docstring)."""
    path = find(name_or_path)
    try:
        tree = configfile.read_mapping(path, "an experiment file is a mapping (configs, setups, "
                                       "budgets)")  # fmt: skip
    except configfile.ConfigError as exc:
        raise SetupError(str(exc)) from None
    _known(path, "", tree, KEYS)
    for key in ("configs", "setups", "budgets"):
        if not isinstance(tree.get(key), dict) or not tree[key]:
            raise SetupError(f"{path}: {key} must be a non-empty mapping")
    exp = Experiment(
        name=str(tree.get("name", path.stem)),
        doc=doc or str(tree.get("description", path.stem)),
        configs={str(n): _config(path, n, c) for n, c in tree["configs"].items()},
        setups={str(corpus): {str(n): _setup(path, f"setups.{corpus}.{n}", s)
                              for n, s in _mapping(path, f"setups.{corpus}", named).items()}
                for corpus, named in tree["setups"].items()},
        budgets={str(n): _budget(path, n, b) for n, b in tree["budgets"].items()},
        pairs=tuple(_pair(path, p) for p in tree.get("pairs") or ()),
        default_corpus=str(tree.get("default_corpus", next(iter(tree["setups"])))),
        source=str(path),
    )  # fmt: skip
    check(path, exp)
    return exp


def check(path, exp: Experiment) -> None:
    """Every configuration trains in every setup and budget; corpora, protocols and pairs
    exist. SetupError naming the file and what is wrong."""
    from reslstm_jax import corpora, protocols

    if "full" not in exp.budgets:
        raise SetupError(f"{path}: budgets needs `full` (and may have `quick`)")
    if exp.default_corpus not in exp.setups:
        raise SetupError(f"{path}: default_corpus {exp.default_corpus} has no setups")
    for a, b in exp.pairs:
        for name in (a, b):
            if name not in exp.configs:
                raise SetupError(f"{path}: pairs: {name} is not a configuration")
    for corpus, named in exp.setups.items():
        if corpus not in corpora.CORPORA:
            raise SetupError(f"{path}: setups.{corpus}: unknown corpus"
                             f"{_near(corpus, corpora.CORPORA)}")  # fmt: skip
        for name, setup in named.items():
            where = f"{path}: setups.{corpus}.{name}"
            if not protocols.exists(setup.protocol):
                raise SetupError(f"{where}: unknown protocol {setup.protocol!r}"
                                 f"{_near(setup.protocol, protocols.names())}")  # fmt: skip
            if not protocols.applies_to(setup.protocol, corpus):
                raise SetupError(
                    f"{where}: protocol {setup.protocol} does not split {corpus} "
                    f"(its protocols: {', '.join(protocols.for_corpus(corpus))})"
                )
            for config_name, config in exp.configs.items():
                for budget_name, budget in exp.budgets.items():
                    try:
                        settings(config, setup, {"seeds": 1, "epochs": 1, **budget})
                    except ValueError as exc:
                        raise SetupError(
                            f"{path}: configs.{config_name} in setup {name}, "
                            f"budget {budget_name}: {exc}"
                        ) from None


# ----------------------------------------------------------------------------- fields


def _config(path, name, tree) -> Config:
    tree = _mapping(path, f"configs.{name}", tree)
    if "model" not in tree:
        raise SetupError(f"{path}: configs.{name} needs model (a family)")
    overrides = {canonical(k): v for k, v in tree.items() if k != "model"}  # `lr` too
    return Config(str(tree["model"]), overrides=_pairs(overrides))


def _setup(path, where, tree) -> Setup:
    tree = _mapping(path, where, tree)
    _known(path, where, tree, SETUP_KEYS)
    if "protocol" not in tree:
        raise SetupError(f"{path}: {where} needs protocol")
    fields = dict(tree)
    fields["model_config"] = _pairs(_mapping(path, f"{where}.model_config",
                                             tree.get("model_config") or {}))  # fmt: skip
    variants = tree.get("audio_variants") or []
    if not isinstance(variants, list) or not all(isinstance(v, dict) and len(v) == 1
                                                 for v in variants):  # fmt: skip
        raise SetupError(f"{path}: {where}.audio_variants is a list like [{{speed: 0.9}}]")
    fields["audio_variants"] = tuple(next(iter(v.items())) for v in variants)
    return Setup(**fields)


def _budget(path, name, tree) -> dict:
    tree = _mapping(path, f"budgets.{name}", tree)
    _known(path, f"budgets.{name}", tree, BUDGET_KEYS)
    for key in ("seeds", "epochs"):
        if not isinstance(tree.get(key), int) or isinstance(tree.get(key), bool) or tree[key] < 1:
            raise SetupError(f"{path}: budgets.{name}.{key} must be a whole number >= 1")
    budget = dict(tree)
    if "model_config" in tree:
        budget["model_config"] = _pairs(_mapping(path, f"budgets.{name}.model_config",
                                                 tree["model_config"]))  # fmt: skip
    return budget


def _pair(path, pair) -> tuple[str, str]:
    if not isinstance(pair, list) or len(pair) != 2:
        raise SetupError(f"{path}: pairs is a list of [config A, config B]")
    return str(pair[0]), str(pair[1])


def _pairs(mapping: dict) -> tuple:
    """(key, value) pairs with lists as tuples (setups and configurations are hashable)."""
    return tuple((str(k), tuple(v) if isinstance(v, list) else v) for k, v in mapping.items())


def _mapping(path, where, tree) -> dict:
    if not isinstance(tree, dict):
        raise SetupError(f"{path}: {where} must be a mapping")
    return tree


def _known(path, where, tree, known) -> None:
    for key in tree:
        if key not in known:
            place = f"{where}.{key}" if where else str(key)
            raise SetupError(f"{path}: {place} is not a key here{_near(key, known)}")


def _near(key, known) -> str:
    near = difflib.get_close_matches(str(key), list(known), n=1)
    return f" (did you mean {near[0]}?)" if near else ""


if __name__ == "__main__":
    import sys

    from reslstm_jax import flags

    sys.exit(flags.not_a_command(__spec__.name))
