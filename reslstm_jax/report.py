"""Paper-ready tables from training results: fold-wise UAR, spread over seeds, intervals, tests.

```python
configs = report.load_paths(["runs/train/h64", "runs/reslstm-demo/trials"])  # or load_selected
tables = report.build_tables(configs)           # one table per protocol card
print(report.format_markdown(tables))           # or format_latex / format_csv
print(report.format_comparison(report.compare(configs[0], configs[1])))
```

A *configuration* is one results dict as `python -m reslstm_jax.train` writes it
(`results.json`) or as a sweep trial stores it (`trials/<number>.json`): every fold x seed of
one set of settings. Rows are grouped into tables by their protocol card (corpus, protocol,
utterance-id hash, features, normalisation, objective), and every caption states the card, so a
table cannot be separated from how it was made.

Columns (each labelled in the caption): trainable parameters; model size at fp32 and fp16;
CPU latency per second of audio when measured; test UAR of every fold (mean over seeds);
pooled out-of-fold UAR mean +- population std over seeds and max (the ResLSTM-SA paper's
numbers); a 95% percentile-bootstrap interval over test utterances; pooled WA and macro-F1
(means over seeds). The Pareto table picks its front by the *selection* metric (mean best-epoch
validation UAR, or the study's objective value) and parameters, never by the test numbers it
shows.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np

from reslstm_jax import edge, stats
from reslstm_jax.edge import LATENCY_KEYS, ONNX_KEYS, size_kib
from reslstm_jax.report_formats import (  # noqa: F401  (the report's API: tables and their text)
    format_comparison,
    format_csv,
    format_latex,
    format_markdown,
    latex_escape,
    spread,
)

LEAKY_NOTE = "LEAKY"


class ReportError(ValueError):
    """A results file or study that cannot be reported (one line, names the source)."""


@dataclasses.dataclass
class Config:
    """One configuration's results and where they came from."""

    results: dict
    source: str
    label: str = ""
    selection: float | None = None  # study objective value (None: mean best validation UAR)


# ----------------------------------------------------------------------------- loading


def _read(path: pathlib.Path) -> dict:
    try:
        results = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: not a readable results JSON ({exc})") from None
    missing = [k for k in ("runs", "aggregate", "card", "model", "settings") if k not in results]
    if missing:
        raise ReportError(f"{path}: not a training results file (missing {', '.join(missing)})")
    return results


def load_paths(paths) -> list[Config]:
    """Configurations from results files or directories.

    A file is read as results JSON; a directory holding `results.json` is one configuration;
    any other directory contributes every `results.json` below it and every sweep trial file
    (`trials/<number>.json`) below it, in sorted order.
    """
    configs = []
    for raw in paths:
        path = pathlib.Path(raw).expanduser()
        if path.is_file():
            files = [path]
        elif (path / "results.json").is_file():
            files = [path / "results.json"]
        elif path.is_dir():
            files = sorted(path.rglob("results.json")) + sorted(
                (p for p in path.rglob("*.json") if p.parent.name == "trials"),
                key=lambda p: (str(p.parent), int(p.stem) if p.stem.isdigit() else 0),
            )
            if not files:
                raise ReportError(f"{path}: no results.json or trials/*.json below it")
        else:
            raise ReportError(f"{path}: no such file or directory")
        for file in files:
            results = _read(file)
            trial = results.get("trial") or {}
            if trial.get("state") == "pruned":
                continue  # a pruned trial's numbers stop early: not a finished configuration
            configs.append(Config(results, str(file), selection=_trial_value(trial)))
    return label_configs(configs)


def _trial_value(trial: dict) -> float | None:
    values = trial.get("values")
    return float(values[0]) if values else None


def load_selected(items) -> list[Config]:
    """Configurations from (results path, selection value) pairs, e.g. a study's completed
    trials (`sweeps.storage.completed_results` reads them; the library never opens a study)."""
    configs = [Config(_read(pathlib.Path(path)), str(path), selection=float(value))
               for path, value in items]  # fmt: skip
    return label_configs(configs)


# ----------------------------------------------------------------------------- labels


def base_label(results: dict) -> str:
    """Model family and size, with every setting that changes the model's behaviour."""
    model = results["model"]
    cfg = model.get("config", {})
    parts = [model["name"]]
    if "hidden_size" in cfg:
        parts[0] += f" h{cfg['hidden_size']}"
    if cfg.get("res_blocks", 1) > 1:
        parts.append(f"{cfg['res_blocks']} blocks")
    if cfg.get("num_att", 1) > 1:
        parts.append(f"K={cfg['num_att']}")
    if cfg.get("paper_compat"):
        parts.append("paper-compat")
    if cfg.get("branches") == "ds":
        parts.append("DS branch only")
    if results["settings"].get("loss", "ce") != "ce":
        parts.append(f"{results['settings']['loss']} loss")
    if results["settings"].get("share_init_across_seeds"):
        parts.append("shared init")
    return ", ".join(parts)


def label_configs(configs: list[Config]) -> list[Config]:
    """Give every configuration a unique label (trial number or source where needed)."""
    counts: dict[str, int] = {}
    for c in configs:
        counts[base_label(c.results)] = counts.get(base_label(c.results), 0) + 1
    for c in configs:
        label = base_label(c.results)
        if counts[label] > 1:
            trial = (c.results.get("trial") or {}).get("number")
            label += (
                f" (trial {trial})"
                if trial is not None
                else f" ({pathlib.Path(c.source).parent.name})"
            )
        c.label = label
    return configs


# ----------------------------------------------------------------------------- numbers


def _grid(results: dict):
    """Runs as [seed][fold] with seeds and folds in order."""
    seeds = sorted({r["seed"] for r in results["runs"]})
    folds = list(results["aggregate"]["per_fold"])
    grid = {(r["seed"], r["fold"]): r for r in results["runs"]}
    missing = [(s, f) for s in seeds for f in folds if (s, f) not in grid]
    if missing:
        raise ReportError(f"results miss fold x seed runs {missing[:3]}")
    return seeds, folds, [[grid[(s, f)] for f in folds] for s in seeds]


def pooled_predictions(results: dict):
    """(ids [N], labels [N], predictions [S, N]) of the pooled out-of-fold test sets."""
    seeds, folds, grid = _grid(results)
    ids = [i for run in grid[0] for i in run["test_predictions"]["ids"]]
    labels = np.array([y for run in grid[0] for y in run["test_predictions"]["labels"]])
    preds = []
    for row in grid:
        if [i for run in row for i in run["test_predictions"]["ids"]] != ids:
            raise ReportError("seeds of one configuration were tested on different utterances")
        preds.append([p for run in row for p in run["test_predictions"]["predictions"]])
    return ids, labels, np.array(preds)


def fold_seed_uars(results: dict) -> tuple[list[tuple[int, str]], np.ndarray]:
    """Matched keys (seed, fold) and test UARs [S * K]."""
    seeds, folds, grid = _grid(results)
    keys = [(s, f) for s in seeds for f in folds]
    return keys, np.array([run["test"]["uar"] for row in grid for run in row])


def row(config: Config, *, ci_resamples: int = 2000) -> dict:
    """Every number of one configuration's table row (JSON-ready)."""
    results = config.results
    agg = results["aggregate"]
    n_classes = len(results["card"]["classes"])
    _, labels, preds = pooled_predictions(results)
    low, high = stats.bootstrap_uar_ci(labels, preds, n_classes, resamples=ci_resamples)
    val = float(np.mean([r["best_val_uar"] for r in results["runs"]]))
    n_params = int(results["model"]["trainable_params"])
    edge = results.get("edge") or {}
    return {
        "label": config.label,
        "model": results["model"]["name"],
        "params": n_params,
        **size_kib(n_params),
        **{key: edge.get(key) for key in (*LATENCY_KEYS, *ONNX_KEYS)},
        "folds": {name: f["uar"]["mean"] for name, f in agg["per_fold"].items()},
        "pooled_uar_mean": agg["pooled_oof_uar"]["mean"],
        "pooled_uar_std": agg["pooled_oof_uar"]["std_population"],
        "pooled_uar_max": agg["pooled_oof_uar"]["max"],
        "ci95": [low, high],
        "wa": agg["pooled_oof_wa"]["mean"],
        "macro_f1": agg["pooled_oof_macro_f1"]["mean"],
        "val_uar": val,
        "selection": config.selection if config.selection is not None else val,
        "seeds": len(results["settings"]["seeds"]),
        "epochs": results["settings"]["epochs"],
        "source": config.source,
        # models whose training loss became non-finite: their numbers are not results
        "diverged": len(results.get("diverged") or []),
        # models that predict one class, or never beat chance: their UARs measure no learning
        "collapsed": len(results.get("collapsed") or []),
        "models": len(results["runs"]),
        "baseline": bool(results.get("baseline")),  # `reslstm_jax.baseline`: last, no front
    }


def card_key(results: dict) -> tuple:
    card = results["card"]
    return (card["corpus"], card["protocol"], card["utterance_ids_sha256"],
            json.dumps(card.get("features", {}), sort_keys=True), card.get("normalisation"),
            results.get("objective", "val"),
            # a label map changes the classes, not always the utterances: its own table
            json.dumps(card.get("label_map", {}), sort_keys=True))  # fmt: skip


NORMALISATION_WORDS = {
    "fold": "per-fold (training speakers) normalisation",
    "global": "global normalisation",
    "none": "raw features (no normalisation)",
}


def selected_on(card: dict) -> str:
    """Which split picked the best epoch: "validation", or "TEST" for reproduction protocols."""
    return "TEST" if any(f.get("val_is_test") for f in card["folds"]) else "validation"


def caption(results: dict, rows: list[dict]) -> str:
    """The protocol card in one paragraph: what a reader needs to know how the table was made."""
    card = results["card"]
    features = card.get("features", {})
    normalisation = card.get("normalisation", "fold")
    objective = results.get("objective", "val")
    leaky = []
    if card.get("leaky"):
        leaky.append(f"protocol {card['protocol']}: {card['leaky']}")
    if card.get("normalisation_leaky"):
        leaky.append("global normalisation uses test speakers' statistics")
    if objective == "test":
        leaky.append("hyperparameters selected on test UAR")
    if any("paper-compat" in r["label"] for r in rows):
        leaky.append("paper-compat rows reproduce the reference's unmasked attention/BatchNorm")
    seeds = sorted({r["seeds"] for r in rows})
    epochs = sorted({r["epochs"] for r in rows})
    source = card.get("source")
    corpus = f"{card['corpus']} ({source['description']}, seed {source['seed']})" if source else (
        card["corpus"])  # fmt: skip
    text = (
        f"{corpus}, protocol {card['protocol']} ({len(card['folds'])} folds, "
        f"{card['n_utterances']} utterances, {card['n_speakers']} speakers, utterance ids "
        f"sha256 {card['utterance_ids_sha256'][:16]}), features {features.get('name', '?')}, "
        f"{NORMALISATION_WORDS.get(normalisation, normalisation + ' normalisation')}, "
        f"objective {objective}; {'/'.join(map(str, seeds))} seed(s) x "
        f"{'/'.join(map(str, epochs))} epochs, best epoch by {selected_on(card)} UAR. "
        "Fold columns: test UAR, mean over seeds. Pooled: out-of-fold test predictions of all "
        "folds pooled per seed, mean +- population std over seeds (n = 1: one seed, no "
        "spread), and max. CI: 95% percentile "
        "bootstrap over test utterances. WA, macro-F1: pooled, mean over seeds."
    )
    text += latency_note(rows)
    if leaky:
        text += f" {LEAKY_NOTE}: " + "; ".join(leaky) + "."
    return text


def latency_note(rows: list[dict]) -> str:
    """What the latency column is and where it was measured: the model's own time, the
    feature front-end's once per feature set, and each machine named (figures from two
    machines compare through the relative column only)."""
    timed = [r for r in rows if r.get("model_ms_per_s") is not None]
    if not timed:
        return ""
    timings = "; ".join(f"{name} {t}" for name, t in edge.feature_timings(timed).items())
    machines = ", ".join(f"{cpu} ({threads} thread)"
                         for cpu, threads in edge.latency_machines(timed))  # fmt: skip
    return (
        " Model ms / s: the model's own latency per second of audio (JAX, batch 1, "
        "median of many calls, measured apart from training), x ref: relative to "
        f"{timed[0].get('latency_reference', 'the reference model')} on the same machine; "
        f"features per second of audio, once per feature set: {timings}; measured on "
        f"{machines}."
    )


def title(results: dict) -> str:
    card = results["card"]
    leaky = (" [LEAKY]" if card.get("leaky") or card.get("normalisation_leaky")
             or results.get("objective") == "test" else "")  # fmt: skip
    return (f"{card['corpus']} / {card['protocol']} ({card['utterance_ids_sha256'][:8]}), "
            f"{card.get('normalisation', 'fold')} normalisation, objective "
            f"{results.get('objective', 'val')}{leaky}")  # fmt: skip


@dataclasses.dataclass
class Table:
    title: str  # short: corpus, protocol, normalisation, objective
    caption: str
    folds: list[str]
    rows: list[dict]
    front: list[str]  # labels on the Pareto front (selection metric max, params min)


def front_mask(costs: list[float], scores: list[float]) -> list[bool]:
    """Which points no other point beats on both: a cost at most as high and a score at
    least as high, one of them strictly (costs: parameters, KiB, ms; scores: UAR)."""
    points = list(zip(costs, scores, strict=True))
    return [
        not any(c <= cost and s >= score and (c < cost or s > score) for c, s in points)
        for cost, score in points
    ]


def pareto_front(rows: list[dict], x: str = "params") -> list[str]:
    """Labels of the rows no other row beats on both selection metric and `x` (parameters,
    or an edge figure such as "onnx_kib"; rows without it and rows with diverged models are
    never on it, nor is the classical baseline: its weights are not a model size)."""
    rows = [r for r in rows if r.get(x) is not None
            and not r.get("diverged") and not r.get("baseline")]  # fmt: skip
    mask = front_mask([r[x] for r in rows], [r["selection"] for r in rows])
    return [r["label"] for r, on in zip(rows, mask, strict=True) if on]


def same_utterances(a: dict, b: dict) -> bool:
    """Whether two results were tested on the same corpus, protocol and utterances."""
    return all(a["card"].get(k) == b["card"].get(k)
               for k in ("corpus", "protocol", "utterance_ids_sha256"))  # fmt: skip


def build_tables(configs: list[Config], *, ci_resamples: int = 2000) -> list[Table]:
    """One table per protocol card, rows sorted by parameters. A classical baseline
    (`reslstm_jax.baseline`) joins every table of its corpus, protocol and utterances, after
    the models, whatever features they read; one that matches none makes its own table."""
    groups: dict[tuple, list[Config]] = {}
    baselines = [c for c in configs if c.results.get("baseline")]
    for c in configs:
        if not c.results.get("baseline"):
            groups.setdefault(card_key(c.results), []).append(c)
    placed = set()
    for members in groups.values():
        joined = [b for b in baselines if same_utterances(b.results, members[0].results)]
        placed.update(id(b) for b in joined)
        members.extend(joined)
    for b in baselines:
        if id(b) not in placed:
            groups.setdefault(card_key(b.results), []).append(b)
    tables = []
    for members in groups.values():
        rows = sorted((row(c, ci_resamples=ci_resamples) for c in members),
                      key=lambda r: (r["baseline"], r["params"], r["label"]))  # fmt: skip
        folds = list(members[0].results["aggregate"]["per_fold"])
        first = members[0].results
        tables.append(Table(title(first), caption(first, rows), folds, rows, pareto_front(rows)))
    return tables


# ----------------------------------------------------------------------------- comparison


def compare(a: Config, b: Config) -> dict:
    """Paired tests of two configurations trained on the same folds x seeds."""
    if card_key(a.results)[:3] != card_key(b.results)[:3]:
        raise ReportError(
            f"cannot pair {a.label!r} and {b.label!r}: different corpus, protocol or utterances"
        )
    keys_a, uar_a = fold_seed_uars(a.results)
    keys_b, uar_b = fold_seed_uars(b.results)
    if keys_a != keys_b:
        raise ReportError(f"cannot pair {a.label!r} and {b.label!r}: different folds or seeds")
    ids_a, labels, pred_a = pooled_predictions(a.results)
    ids_b, _, pred_b = pooled_predictions(b.results)
    if ids_a != ids_b:
        raise ReportError(f"cannot pair {a.label!r} and {b.label!r}: different test utterances")
    return {
        "a": a.label,
        "b": b.label,
        "pairs": len(keys_a),
        "mean_uar_a": float(uar_a.mean()),
        "mean_uar_b": float(uar_b.mean()),
        "wilcoxon": stats.wilcoxon_paired(uar_a, uar_b),
        "mcnemar": stats.mcnemar_paired(labels, pred_a, pred_b),
    }


def find(configs: list[Config], name: str) -> Config:
    """A configuration by exact label, trial number, or unique label prefix."""
    exact = [c for c in configs if c.label == name]
    if not exact and name.isdigit():
        exact = [c for c in configs if (c.results.get("trial") or {}).get("number") == int(name)]
    if not exact:
        exact = [c for c in configs if c.label.startswith(name)]
    if len(exact) != 1:
        known = "; ".join(c.label for c in configs)
        what = "matches several" if exact else "matches none"
        raise ReportError(f"--compare {name!r} {what} of the configurations: {known}")
    return exact[0]
