"""Classification metrics and their aggregations, every number labelled.

Definitions (the SER literature's; docs/glossary.md; checked against sklearn in the tests):
* WA (weighted accuracy) = sum_k TP_k / N.
* UAR (unweighted average recall) = mean over classes of TP_k / N_k
  = `sklearn.metrics.balanced_accuracy_score` = macro recall.
* macro-F1 = unweighted mean of the per-class F1 (F1 = 0 where precision + recall = 0).

Absent classes: a class with no true sample in the evaluated set has no recall. Policy:
it is excluded from UAR and macro-F1 (as sklearn's balanced accuracy does) and the excluded
classes are reported in `absent_classes` next to the numbers.

Aggregations (`aggregate`): per fold; mean +- std over folds; pooled out-of-fold (all test
predictions of a seed concatenated); and over seeds, mean +- std and max of the pooled values
(the ResLSTM-SA paper's table). Standard deviations are population std (ddof 0), as the
reference's `np.std`; the field names say so.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """[C, C] counts, rows = true class, columns = predicted class."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def from_confusion(matrix: np.ndarray) -> dict:
    """WA, UAR, macro-F1, per-class recall and the absent classes of a confusion matrix."""
    matrix = np.asarray(matrix, np.float64)
    support = matrix.sum(1)
    predicted = matrix.sum(0)
    tp = np.diag(matrix)
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=present)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(tp),
                   where=denominator > 0)  # fmt: skip
    total = matrix.sum()
    return {
        "wa": float(tp.sum() / total) if total else float("nan"),
        "uar": float(recall[present].mean()) if present.any() else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "recall_per_class": recall.tolist(),
        "absent_classes": np.flatnonzero(~present).tolist(),
    }


def classification(y_true, y_pred, num_classes: int) -> dict:
    """All metrics of one prediction set, with its confusion matrix."""
    matrix = confusion(y_true, y_pred, num_classes)
    return {**from_confusion(matrix), "confusion": matrix.tolist(), "n": int(len(y_true))}


def _spread(values: Sequence[float]) -> dict:
    values = np.asarray(values, np.float64)
    return {
        "mean": float(values.mean()),
        "std_population": float(values.std()),
        "std_sample": float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
        "max": float(values.max()),
        "min": float(values.min()),
        "n": int(len(values)),
    }


def aggregate(
    fold_names: Sequence[str],
    seeds: Sequence[int],
    y_true: Sequence[Sequence[np.ndarray]],
    y_pred: Sequence[Sequence[np.ndarray]],
    num_classes: int,
) -> dict:
    """Every labelled aggregation of a folds x seeds run.

    Args:
      fold_names: K fold names.
      seeds: S seeds.
      y_true, y_pred: [S][K] arrays of test labels and predictions.

    Returns:
      {"per_fold": {fold: {"per_seed": [...metrics], "uar": spread over seeds}},
       "fold_mean": per seed, the mean (and population std) of fold UARs; and their spread,
       "pooled_oof": per seed, metrics of the concatenated test predictions of all folds,
       "pooled_oof_uar": spread over seeds of the pooled UAR (the paper's mean +- std, max)}
    """
    per_fold = {}
    for k, name in enumerate(fold_names):
        runs = [classification(y_true[s][k], y_pred[s][k], num_classes) for s in range(len(seeds))]
        per_fold[name] = {"per_seed": runs, "uar": _spread([r["uar"] for r in runs])}
    fold_means = []
    pooled = []
    for s in range(len(seeds)):
        uars = [per_fold[name]["per_seed"][s]["uar"] for name in fold_names]
        fold_means.append({"seed": seeds[s], "uar_mean": float(np.mean(uars)),
                           "uar_std_population": float(np.std(uars))})  # fmt: skip
        pooled.append(
            {"seed": seeds[s], **classification(np.concatenate(y_true[s]),
                                                np.concatenate(y_pred[s]), num_classes)}
        )  # fmt: skip
    return {
        "per_fold": per_fold,
        "fold_mean": {
            "per_seed": fold_means,
            "uar": _spread([f["uar_mean"] for f in fold_means]),
        },
        "pooled_oof": pooled,
        "pooled_oof_uar": _spread([p["uar"] for p in pooled]),
        "pooled_oof_wa": _spread([p["wa"] for p in pooled]),
        "pooled_oof_macro_f1": _spread([p["macro_f1"] for p in pooled]),
    }
