"""The classical reference row: openSMILE functionals + a linear SVM or logistic regression.

```python
dataset = data.prepare("ravdess", DIR, extractor="egemaps",
                       extractor_params={"level": "functionals"}, normalisation="none")
results = baseline.fit(dataset, "svm")     # the training results format: a report row
```
```
python -m reslstm_jax.baseline --corpus ravdess --data-dir DIR --out runs/baseline
```

On the folds of the protocol, as a neural run: per fold, the functionals are standardised
with the mean and std of the fold's training utterances, one classifier is fitted on them for
each C of `C_GRID`, the C with the best validation UAR is kept (ties: the smaller C), and it
labels the fold's test speakers. Class weights are balanced (n / (classes x count)), as UAR
asks. Deterministic (one "seed", 0). scikit-learn and opensmile come with the opensmile
extra (`reslstm_jax.smile`: a non-commercial licence).

The results have the training results' fields (`runs` with test predictions, `aggregate`,
`card`, `model` with `trainable_params` = the classifier's weights and biases, `settings`)
and `baseline`: `reslstm_jax.report` adds the row to every table of the same corpus,
protocol and utterances, whatever features the neural rows read.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from reslstm_jax import configfile, flags

CLASSIFIERS = {"svm": "linear SVM", "logreg": "logistic regression"}
C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
FEATURE_SETS = ("egemaps", "compare")


def available() -> bool:
    """Whether the opensmile extra (opensmile and scikit-learn) is installed."""
    import importlib.util

    from reslstm_jax import smile

    return smile.available() and importlib.util.find_spec("sklearn") is not None


def functionals(dataset) -> np.ndarray:
    """x [N, D]: the one frame per utterance of functionals features; ValueError otherwise."""
    if isinstance(dataset.x, dict) or not np.all(np.asarray(dataset.lengths) == 1):
        name = dataset.card.get("features", {}).get("name")
        raise ValueError(f"the baseline reads one vector of functionals per utterance; features "
                         f"{name} have frame sequences (use level functionals)")  # fmt: skip
    return np.asarray(dataset.x[:, 0, :], np.float64)


def classifier(kind: str, c: float):
    """An unfitted scikit-learn classifier: `kind` "svm" or "logreg", regularisation `c`."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    if kind == "svm":
        return LinearSVC(C=c, class_weight="balanced", max_iter=20000, random_state=0)
    if kind == "logreg":
        return LogisticRegression(C=c, class_weight="balanced", max_iter=5000)
    raise ValueError(f"classifier must be one of {', '.join(CLASSIFIERS)}, got {kind!r}")


def fit_fold(x, labels, train, val, test, kind: str, n_classes: int, c_grid=C_GRID) -> dict:
    """One fold: standardise with the training rows, pick C on validation UAR, label test.
    x [N, D]; train, val, test: row indices. Returns the run record (test predictions too)."""
    from reslstm_jax import metrics

    mean, std = x[train].mean(0), x[train].std(0)
    z = (x - mean) / np.where(std > 0, std, 1.0)  # a constant functional stays 0
    fitted, val_uars = [], []
    for c in c_grid:
        model = classifier(kind, c).fit(z[train], labels[train])
        val_uars.append(
            metrics.classification(labels[val], model.predict(z[val]), n_classes)["uar"]
        )
        fitted.append(model)
    best = int(np.argmax(val_uars))  # the first maximum: the smallest C among ties
    pred = fitted[best].predict(z[test]).astype(int)
    return {"best_val_uar": val_uars[best], "val_uar": val_uars, "best_c": c_grid[best],
            "test_pred": pred,
            "weights": int(fitted[best].coef_.size + fitted[best].intercept_.size)}  # fmt: skip


def fit(dataset, kind: str = "svm", c_grid=C_GRID) -> dict:
    """Every fold of `dataset` (functionals features): the results of the baseline."""
    from reslstm_jax import metrics

    classifier(kind, 1.0)  # an unknown kind fails before any fit
    x, labels = functionals(dataset), np.asarray(dataset.labels)
    folds, n_classes = dataset.folds, len(dataset.classes)
    runs, y_true, y_pred, weights = [], [], [], 0
    for k, name in enumerate(folds.names):
        rows = {split: getattr(folds, split)[k][getattr(folds, f"{split}_mask")[k]]
                for split in ("train", "val", "test")}  # fmt: skip
        fold = fit_fold(x, labels, rows["train"], rows["val"], rows["test"], kind, n_classes,
                        c_grid)  # fmt: skip
        test = rows["test"]
        y_true.append(labels[test])
        y_pred.append(fold["test_pred"])
        weights = max(weights, fold["weights"])
        runs.append({
            "seed": 0, "fold": name, "train_loss": [], "val_uar": fold["val_uar"],
            "best_epoch": c_grid.index(fold["best_c"]), "best_val_uar": fold["best_val_uar"],
            "best_c": fold["best_c"], "diverged_at_epoch": None,
            "test": metrics.classification(labels[test], fold["test_pred"], n_classes),
            "test_predictions": {"ids": [dataset.ids[i] for i in test],
                                 "labels": labels[test].tolist(),
                                 "predictions": fold["test_pred"].tolist()},
        })  # fmt: skip
    feature_name = dataset.card.get("features", {}).get("name", "features")
    return {
        "model": {"name": f"{feature_name} functionals + {CLASSIFIERS[kind]} (baseline)",
                  "config": {"classifier": kind}, "trainable_params": weights},
        "settings": {"seeds": [0], "epochs": 0, "classifier": kind, "c_grid": list(c_grid),
                     "class_weights": "balanced"},
        "baseline": {"classifier": kind, "features": dataset.card.get("features"),
                     "selection": "C by validation UAR per fold"},
        "card": dataset.card, "runs": runs, "diverged": [], "edge": {},
        "aggregate": metrics.aggregate(list(folds.names), [0], [y_true], [y_pred], n_classes),
    }  # fmt: skip


def dataset_options(feature_set: str = "egemaps") -> dict:
    """The `data.prepare` (or `DatasetCache.get`) arguments of the baseline's features:
    `feature_set`'s functionals, raw (`fit` standardises them per fold)."""
    return {"extractor": feature_set, "extractor_params": {"level": "functionals"},
            "normalisation": "none"}  # fmt: skip


def prepare(corpus, data_dir, *, feature_set: str = "egemaps", **options):
    """The dataset of the baseline (`dataset_options`; `data.prepare` options: protocol,
    label_set, cache_dir, workers, progress)."""
    from reslstm_jax import data

    return data.prepare(corpus, data_dir, **dataset_options(feature_set), **options)


def summary_line(results: dict) -> str:
    """The baseline's name, pooled test UAR and the C each fold chose."""
    chosen = ", ".join(f"{r['best_c']:g}" for r in results["runs"])
    model, pooled = results["model"], results["aggregate"]["pooled_oof_uar"]["mean"]
    return (f"{model['name']}: pooled test UAR {pooled:.4f} over {len(results['runs'])} folds "
            f"(C per fold: {chosen}); {model['trainable_params']} weights")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m reslstm_jax.baseline",
        description="openSMILE functionals + a linear SVM or logistic regression on the "
        "protocol's folds: the classical reference row of experiments.report",
        formatter_class=flags.HelpFormatter,
    )
    p.add_argument("--corpus", help="corpus name (default: the synthetic corpus; `manifest`: "
                   "a CSV, TSV or JSON Lines file of your own, docs/data.md)")  # fmt: skip
    p.add_argument("--data-dir", help="where the corpus is (for a manifest: the file)")
    p.add_argument("--protocol", help="fold protocol (default: the corpus's)")
    p.add_argument("--folds", type=int, metavar="K",
                   help="folds of --protocol speaker_kfold (default 5)")  # fmt: skip
    flags.add_corpus_options(p)
    p.add_argument("--features", choices=FEATURE_SETS, default="egemaps",
                   help="the openSMILE functionals (the opensmile extra)")  # fmt: skip
    p.add_argument("--classifier", choices=tuple(CLASSIFIERS), default="svm",
                   help="linear SVM or logistic regression, balanced class weights")  # fmt: skip
    p.add_argument("--label-set", choices=("native", "shared4"), default="native",
                   help="native: the corpus's classes; shared4: neutral, happy, angry, "
                   "sad")  # fmt: skip
    p.add_argument("--cache-dir", help="feature cache (default ~/.cache/reslstm_jax/features)")
    p.add_argument("--feature-workers", type=int,
                   help="feature extraction processes (default: one per core)")  # fmt: skip
    flags.deprecated(p, "--workers", "--feature-workers", type=int)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--out", required=True, help="output directory (results.json, card.json)")
    configfile.add_flags(p)
    return flags.ranged(p)


def main(argv=None) -> int:
    from reslstm_jax import artifacts, runlock, speaker_folds
    from reslstm_jax.corpora.base import CorpusError
    from reslstm_jax.errors import cli_message
    from reslstm_jax.protocols import ProtocolError

    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = configfile.parse_args(parser, argv)
    if configfile.print_if_asked(parser, args):
        return 0
    out = pathlib.Path(args.out)
    try:
        artifacts.check_output_dir(out)
        with runlock.hold(out):  # one process per run folder, until everything is written
            dataset = prepare(args.corpus, args.data_dir, feature_set=args.features,
                              protocol=speaker_folds.with_folds(args.protocol, args.folds),
                              label_set=args.label_set, cache_dir=args.cache_dir,
                              workers=args.feature_workers, progress=not args.no_progress,
                              label_map=flags.label_map(args),
                              corpus_options=flags.corpus_options(args))  # fmt: skip
            results = fit(dataset, args.classifier)
            artifacts.write_run(out, dataset, results)
            configfile.write(out / configfile.CONFIG_NAME, configfile.resolved(parser, args),
                             command=["python", "-m", "reslstm_jax.baseline", *argv],
                             data=configfile.data_identity(dataset.card,
                                                           args.data_dir))  # fmt: skip
    except (CorpusError, ProtocolError, artifacts.OutputError, ValueError) as exc:
        print(f"error: {cli_message(exc)}", file=sys.stderr)
        return 2
    except runlock.FolderBusy as exc:
        print(f"error: --out {exc}", file=sys.stderr)
        return 2
    print(summary_line(results))
    print(f"wrote {out / artifacts.RESULTS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
