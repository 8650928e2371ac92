"""A finished program's results: the results dict, its summary lines, the edge metrics.

```python
group_results = assemble(layout, group, state, history, predictions, dataset, run_info)
results = group_results[0]                       # one results dict per configuration of group
print("\n".join(summary_lines(results)))
results["edge"] = edge_metrics(results, dataset)
```
The format is documented in docs/training.md; `reslstm_jax.report`, the sweep engine and
`reslstm_jax.predict` read it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from reslstm_jax import metrics


def assemble(layout, group: list, state, history: dict, predictions: dict, dataset,
             run_info: dict) -> list[dict]:  # fmt: skip
    """One results dict per configuration of `group` (the program's RunSettings).

    Args:
      layout: the program's `ModelLayout`.
      state: the final TrainState [M] (best epochs and best validation UARs are read).
      history: {"train_loss", "val_uar"}: [M, epochs] NumPy arrays.
      predictions: {"test": [M, n_test]} class predictions of the best parameters.
      dataset: the prepared dataset (labels, ids, folds, classes, card).
      run_info: fields every configuration's results share (model, executor, timings, ...).
    """
    labels = np.asarray(dataset.labels)
    folds = dataset.folds
    n_classes = len(dataset.classes)
    best_epoch, best_val = np.asarray(state.best_epoch), np.asarray(state.best_val_uar)
    epochs_done = np.asarray(state.epoch)
    results = []
    for c, settings in enumerate(group):
        y_true = [[None] * len(layout.folds) for _ in layout.seeds]
        y_pred = [[None] * len(layout.folds) for _ in layout.seeds]
        runs = []
        diverged, collapsed = [], []
        for m in layout.config_models(c):
            _, s, k = layout.position(m)
            rows = folds.test[k][folds.test_mask[k]]
            pred = predictions["test"][m][folds.test_mask[k]]
            probs = predictions["test_probabilities"][m][folds.test_mask[k]]  # [n, C]
            y_true[s][k], y_pred[s][k] = labels[rows], pred
            trained = trained_epochs(settings.patience, int(epochs_done[m]), int(best_epoch[m]))
            epoch = diverged_at(history["train_loss"][m][:trained])
            if epoch is not None:
                diverged.append({"seed": layout.seeds[s], "fold": layout.folds[k],
                                 "epoch": epoch})  # fmt: skip
            val_rows = folds.val[k][folds.val_mask[k]]
            why = None if epoch is not None else collapse(
                labels[rows], pred, float(best_val[m]), labels[val_rows])  # fmt: skip
            if why is not None:
                collapsed.append({"seed": layout.seeds[s], "fold": layout.folds[k], "why": why})
            runs.append({
                "seed": layout.seeds[s], "fold": layout.folds[k],
                "train_loss": history["train_loss"][m].tolist(),
                "val_uar": history["val_uar"][m].tolist(),
                "best_epoch": int(best_epoch[m]),
                "best_val_uar": float(best_val[m]),
                "diverged_at_epoch": epoch,
                "collapsed": why,
                # early stopping: epochs this model trained (later ones froze it: loss null)
                **({"trained_epochs": trained} if settings.patience else {}),
                "test": metrics.classification(labels[rows], pred, n_classes),
                "test_predictions": {"ids": [dataset.ids[i] for i in rows],
                                     "labels": labels[rows].tolist(),
                                     "predictions": pred.tolist(),
                                     # of the selected checkpoint; 6 decimals
                                     "probabilities": np.round(probs.astype(np.float64),
                                                               6).tolist()},
            })  # fmt: skip
        results.append({
            "settings": settings.to_json(),
            **run_info,
            "diverged": diverged,
            "collapsed": collapsed,
            "runs": runs,
            "aggregate": metrics.aggregate(list(layout.folds), list(layout.seeds), y_true,
                                           y_pred, n_classes),
        })  # fmt: skip
    return results


def trained_epochs(patience: int, epochs_done: int, best_epoch: int) -> int:
    """The epochs a model trained before early stopping froze it (`engine.frozen_at`:
    `patience` epochs after its best, 0-based `best_epoch`), at most `epochs_done`."""
    if patience <= 0:
        return epochs_done
    return min(epochs_done, best_epoch + 1 + patience)


def diverged_at(train_loss) -> int | None:
    """The first epoch (1-based) whose training loss is not finite, or None: from there the
    model's parameters are NaN or infinite, and its later numbers mean nothing."""
    bad = np.flatnonzero(~np.isfinite(np.asarray(train_loss, np.float64)))
    return int(bad[0]) + 1 if bad.size else None


def diverged_line(results: dict) -> str | None:
    """One line naming the models whose loss became non-finite, or None when none did."""
    diverged = results.get("diverged") or []
    if not diverged:
        return None
    first = min(d["epoch"] for d in diverged)
    return (f"DIVERGED: {len(diverged)} of {len(results['runs'])} models (training loss "
            f"non-finite from epoch {first} on); their numbers are not results: lower the "
            f"learning rate or check the features")  # fmt: skip


COLLAPSE_REASONS = {
    "one class": "predicts one class for its whole test part",
    "chance": "its validation UAR never rose above chance",
}


def collapse(test_labels, test_predictions, best_val_uar: float, val_labels) -> str | None:
    """Why a model is no classifier, or None: "one class" when it predicts one class for a
    whole test part that holds several, "chance" when its best validation UAR never rose
    above chance (1 / the classes its validation part holds; a model predicting one class
    scores exactly that). Its UAR then says nothing about the architecture or its settings.

    Args:
      test_labels, test_predictions: [n_test] int class indices of one fold's test part.
      best_val_uar: the model's best validation UAR (UAR over the classes present).
      val_labels: [n_val] int class indices of that fold's validation part.
    """
    if len(set(np.asarray(test_labels).tolist())) > 1 and len(set(np.asarray(
            test_predictions).tolist())) == 1:  # fmt: skip
        return "one class"
    n_val = len(set(np.asarray(val_labels).tolist()))
    if n_val > 1 and best_val_uar <= 1.0 / n_val + 1e-6:
        return "chance"
    return None


def collapsed_line(results: dict) -> str | None:
    """One line naming the models that collapsed (`collapse`), or None when none did."""
    collapsed = results.get("collapsed") or []
    if not collapsed:
        return None
    whys = sorted({c["why"] for c in collapsed})
    return (f"COLLAPSED: {len(collapsed)} of {len(results['runs'])} models "
            f"({'; '.join(f'{w}: {COLLAPSE_REASONS[w]}' for w in whys)}); their UARs measure "
            f"no learning: train longer, change the learning rate, or check the data")  # fmt: skip


def run_info(model, n_params: int, dataset, **fields) -> dict:
    """The results fields of a program's configurations that are not per configuration, in
    the documented order: model, card, then `fields` (objective, executor, timings...)."""
    return {
        "model": {"name": model.name, "config": dataclasses.asdict(model),
                  "trainable_params": n_params},
        "card": dataset.card,
        **fields,
    }  # fmt: skip


def model_of(results: dict):
    """The model configuration a results dict was trained with."""
    from reslstm_jax import models

    config = {k: v for k, v in results["model"]["config"].items() if k != "name"}
    return models.get(results["model"]["name"], **config)


def edge_metrics(results: dict, dataset, *, latency: bool = True) -> dict:
    """Edge metrics of a finished run's model: parameters and sizes (`edge.metrics`) and, with
    `latency`, its latencies measured apart from training (`reslstm_jax.latency`, in a
    process of its own, on the training audio's most common sample rate; with the `export`
    extra also the ONNX sizes and onnxruntime's times). The caller makes sure nothing of this
    project trains meanwhile (a sweep's local workers defer theirs to the launcher)."""
    from reslstm_jax import edge

    out = edge.metrics(model_of(results))
    if latency and (arch := architecture(results, dataset.card)) is not None:
        import warnings

        from reslstm_jax import latency as latency_mod

        try:
            out.update(latency_mod.edge_fields(latency_mod.measure([arch])))
        except latency_mod.LatencyError as exc:  # the trained results stand without them
            warnings.warn(f"{exc}; the results are kept without latencies", stacklevel=2)
    return out


def architecture(results: dict, card: dict):
    """What `reslstm_jax.latency` times for a run: its model configuration and the features
    and sample rate it was trained on; None for features made by hand (no extractor)."""
    from reslstm_jax import edge, features
    from reslstm_jax.latency import Architecture

    info = card["features"]
    if info.get("name") not in features.EXTRACTORS:
        return None
    config = {k: v for k, v in results["model"]["config"].items() if k != "name"}
    return Architecture(results["model"]["name"], config, info["name"], info["params"],
                        edge.signal_rate(card.get("sample_rates")))  # fmt: skip


def summary_lines(results: dict) -> list[str]:
    """Human-readable result lines, each aggregation named."""
    agg = results["aggregate"]
    card = results["card"]
    leaky = " [LEAKY: global normalisation]" if card.get("normalisation_leaky") else ""
    if card.get("leaky"):
        leaky += f" [LEAKY protocol: {card['leaky']}]"
    diverged = diverged_line(results)
    lines = [
        f"{results['model']['name']} ({results['model']['trainable_params']:,} params) on "
        f"{card['corpus']} / {card['protocol']}, {len(results['settings']['seeds'])} seed(s), "
        f"{results['settings']['epochs']} epochs{leaky}",
        "  model selection: best validation UAR; test read once at the end",
    ]
    if any(f.get("val_is_test") for f in card["folds"]):
        lines[1] = f"  model selection: best TEST UAR (LEAKY: {card.get('leaky')})"
    fewer = card.get("test_absent_classes") or {}
    for name, fold in agg["per_fold"].items():
        u = fold["uar"]
        over = f"; no {', '.join(fewer[name])} in its test part" if name in fewer else ""
        lines.append(f"  {name}: test UAR {u['mean']:.4f} (mean over seeds, max "
                     f"{u['max']:.4f}{over})")  # fmt: skip
    fm = agg["fold_mean"]["uar"]
    if len(results["settings"]["seeds"]) == 1:  # one run: no spread to report
        lines.append(f"  mean of fold UARs: {fm['mean']:.4f} (n = 1 seed)")
        p = agg["pooled_oof_uar"]
        lines.append(f"  pooled out-of-fold UAR: {p['mean']:.4f} (n = 1 seed)")
    else:
        lines.append(f"  mean of fold UARs: {fm['mean']:.4f} +- {fm['std_population']:.4f} "
                     f"(population std over seeds)")  # fmt: skip
        p = agg["pooled_oof_uar"]
        lines.append(f"  pooled out-of-fold UAR: {p['mean']:.4f} +- {p['std_population']:.4f} "
                     f"(population std over seeds), max {p['max']:.4f}")  # fmt: skip
    lines.append(f"  pooled out-of-fold WA {agg['pooled_oof_wa']['mean']:.4f}, macro-F1 "
                 f"{agg['pooled_oof_macro_f1']['mean']:.4f} (means over seeds)")  # fmt: skip
    if absent := card.get("absent_classes"):
        n = len(card["classes"])
        lines.insert(2, f"  classes: every UAR is over {n - len(absent)} of {n} classes (no "
                        f"utterance of {', '.join(absent)})")  # fmt: skip
    if collapsed := collapsed_line(results):
        lines.insert(1, "  " + collapsed)
    if diverged:
        lines.insert(1, "  " + diverged)
    return lines


def headline(results: dict) -> dict:
    """The numbers a reader compares, under names that cannot be misread: `val_uar` (mean
    best-epoch validation UAR over folds x seeds), `test_uar` (pooled out-of-fold test UAR,
    mean over seeds; `test_uar_max_seed` the best seed's), `test_wa`, `test_macro_f1` (pooled,
    means over seeds), `test_uar_per_fold`, `test_uar_per_seed`, `diverged_models` and
    `collapsed_models`."""
    agg = results["aggregate"]
    return {
        "val_uar": float(np.mean([r["best_val_uar"] for r in results["runs"]])),
        "test_uar": agg["pooled_oof_uar"]["mean"],
        "test_uar_max_seed": agg["pooled_oof_uar"]["max"],
        "test_wa": agg["pooled_oof_wa"]["mean"],
        "test_macro_f1": agg["pooled_oof_macro_f1"]["mean"],
        "test_uar_per_fold": {k: v["uar"]["mean"] for k, v in agg["per_fold"].items()},
        "test_uar_per_seed": [p["uar"] for p in agg["pooled_oof"]],
        # models whose training loss became non-finite (`diverged_line`): 0 for a real result
        "diverged_models": len(results.get("diverged") or []),
        # models that predict one class or stay at chance (`collapsed_line`): 0 for a result
        "collapsed_models": len(results.get("collapsed") or []),
        # cross-corpus tests (`reslstm_jax.crosscorpus`): per target corpus, the mean UAR of
        # the fold x seed models and of the per-seed fold ensembles
        **{f"cross_{c['target']['corpus']}_{key}": c[f"{key}_mean"]
           for c in results.get("cross_test") or [] for key in ("uar", "ensemble_uar")},
    }  # fmt: skip


def pooled_predictions(results: dict) -> dict:
    """Every seed's pooled test labels and predictions, concatenated, with the class names
    (`{"y_true": [N S], "y_pred": [N S], "classes": [C]}`; the confusion PNG counts the same)."""
    y_true, y_pred = [], []
    for run in results["runs"]:
        y_true += run["test_predictions"]["labels"]
        y_pred += run["test_predictions"]["predictions"]
    return {"y_true": y_true, "y_pred": y_pred, "classes": list(results["card"]["classes"])}


def epoch_rows(history: dict, models: range, settings, start: int, end: int) -> list[dict]:
    """Per-epoch curves of one configuration for epochs [start, end) (W&B history rows):
    "epoch" (1-based), train loss (mean over the configuration's models: folds x seeds),
    validation UAR (mean, min, max over them) and the epoch's learning rate.

    Args:
      history: {"train_loss", "val_uar"}: [M, epochs] arrays (`fit_group`'s `on_chunk`).
      models: the configuration's rows of M (`ModelLayout.config_models`).
      settings: its RunSettings (schedule, learning rate, T_0).
    """
    from reslstm_jax.train.engine import learning_rate_at

    rows = []
    for e in range(start, end):
        loss = history["train_loss"][models.start : models.stop, e]
        val = history["val_uar"][models.start : models.stop, e]
        lr = learning_rate_at(settings.schedule, settings.learning_rate, settings.t0, e)
        row = {"epoch": e + 1, "val_uar_mean": float(val.mean()), "val_uar_min": float(val.min()),
               "val_uar_max": float(val.max()), "learning_rate": float(lr)}  # fmt: skip
        if settings.patience:  # models frozen by early stopping have no loss (NaN): left out
            loss = loss[~np.isnan(loss)]
        if loss.size:
            row["train_loss"] = float(loss.mean())
        rows.append(row)
    return rows
