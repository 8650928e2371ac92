"""Statistics for comparing configurations: bootstrap intervals and paired tests.

Every function works on plain NumPy arrays of one configuration's results (see
`reslstm_jax.report` for how they are read from results JSON):

* `bootstrap_uar_ci`: a percentile bootstrap interval of the pooled out-of-fold UAR. The
  resampling unit is the test utterance (the source of sampling error a reader cares about:
  another draw of test speakers' utterances); each resample is applied to every seed's pooled
  predictions at once (the same utterances), and the statistic is the mean over seeds.
* `wilcoxon_paired`: Wilcoxon signed-rank test over matched fold x seed UARs of two
  configurations (exact two-sided p without ties or zeros for n <= 50, as scipy decides).
* `mcnemar_paired`: McNemar's exact test on matched pooled predictions (same utterance, same
  seed): b = only A right, c = only B right, p = two-sided binomial(b; b + c, 1/2). Pairs from
  several seeds of the same utterance are not independent, so with more than one seed the
  p-value is optimistic; the per-seed p-values are returned beside it.
"""

from __future__ import annotations

import numpy as np


def uar(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Mean recall over the classes present in `y_true`."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    recalls = [np.mean(y_pred[y_true == k] == k) for k in range(num_classes) if (y_true == k).any()]
    return float(np.mean(recalls))


def bootstrap_uar_ci(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    num_classes: int,
    *,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the seed-mean pooled UAR.

    Args:
      y_true: [N] int labels of the pooled test utterances.
      y_pred: [S, N] int predictions of each seed for the same utterances (or [N]).
      num_classes: C.
      level: coverage of the interval.
      resamples: bootstrap resamples (deterministic for a given `seed`).

    Returns:
      (low, high).
    """
    y_true = np.asarray(y_true)
    y_pred = np.atleast_2d(np.asarray(y_pred))
    if y_pred.shape[1] != y_true.shape[0]:
        raise ValueError(f"predictions {y_pred.shape} do not match {y_true.shape[0]} labels")
    n = y_true.shape[0]
    rng = np.random.default_rng(seed)
    onehot = np.eye(num_classes)[y_true]  # [N, C]
    out = np.empty(resamples)
    # Resample in chunks: the weights matrix is [chunk, N].
    chunk = 500
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(size, n))
        weights = np.zeros((size, n))
        np.add.at(weights, (np.arange(size)[:, None], idx), 1.0)
        support = weights @ onehot  # [b, C]
        present = support > 0
        recalls = []
        for preds in y_pred:
            correct = weights @ (onehot * (preds == y_true)[:, None])  # [b, C]
            recall = np.divide(correct, support, out=np.zeros_like(correct), where=present)
            recalls.append(recall.sum(1) / present.sum(1))
        out[start : start + size] = np.mean(recalls, axis=0)
    alpha = (1 - level) / 2
    low, high = np.quantile(out, [alpha, 1 - alpha])
    return float(low), float(high)


def wilcoxon_paired(a: np.ndarray, b: np.ndarray) -> dict:
    """Two-sided Wilcoxon signed-rank test of matched values `a` [n] and `b` [n].

    Returns {"statistic", "p_value", "n", "median_difference"}; p is 1.0 when all
    differences are zero (no evidence of any difference).
    """
    from scipy.stats import wilcoxon

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values must be two equal 1-d arrays, got {a.shape}, {b.shape}")
    diff = a - b
    if np.all(diff == 0):
        return {"statistic": 0.0, "p_value": 1.0, "n": int(len(a)), "median_difference": 0.0}
    result = wilcoxon(a, b, alternative="two-sided")
    return {
        "statistic": float(result.statistic),
        "p_value": float(result.pvalue),
        "n": int(len(a)),
        "median_difference": float(np.median(diff)),
    }


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """McNemar's exact test on matched correctness vectors (bool [n] each)."""
    from scipy.stats import binomtest

    correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if correct_a.shape != correct_b.shape:
        raise ValueError(
            f"paired predictions differ in shape: {correct_a.shape}, {correct_b.shape}"
        )
    only_a = int(np.sum(correct_a & ~correct_b))
    only_b = int(np.sum(~correct_a & correct_b))
    if only_a + only_b == 0:
        p = 1.0
    else:
        p = float(binomtest(only_a, only_a + only_b, 0.5, alternative="two-sided").pvalue)
    return {"only_a_correct": only_a, "only_b_correct": only_b, "p_value": p}


def mcnemar_paired(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict:
    """McNemar over matched pooled predictions of all seeds, plus one test per seed.

    Args:
      y_true: [N] labels; pred_a, pred_b: [S, N] predictions of the same seeds and utterances.
    """
    y_true = np.asarray(y_true)
    pred_a, pred_b = np.atleast_2d(pred_a), np.atleast_2d(pred_b)
    if pred_a.shape != pred_b.shape or pred_a.shape[1] != y_true.shape[0]:
        raise ValueError(f"predictions {pred_a.shape} and {pred_b.shape} are not matched")
    pooled = mcnemar_exact((pred_a == y_true).ravel(), (pred_b == y_true).ravel())
    pooled["per_seed_p_values"] = [
        mcnemar_exact(a == y_true, b == y_true)["p_value"]
        for a, b in zip(pred_a, pred_b, strict=True)
    ]
    return pooled
