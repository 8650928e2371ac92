"""Figures (matplotlib Agg): Pareto front, confusion matrix, learning curves, attention.

Every function takes plain numbers (rows from `reslstm_jax.report`, a results dict, arrays)
and a path, writes one figure and returns the path; nothing is shown on screen. The format
follows the path's suffix (`PLOT_FORMATS`: PNG for screens and W&B, PDF or SVG as vector
figures for papers). Titles name the model and size (the report's label) and the split
their numbers come from.
"""

from __future__ import annotations

import pathlib
import re
import textwrap

import numpy as np

PLOT_FORMATS = ("png", "pdf", "svg")
FAMILY_COLORS = {"lstm_sa": "tab:blue", "reslstm_sa": "tab:red", "ds_lstm": "tab:green",
                 "light_sernet": "tab:purple"}  # fmt: skip


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def slug(text: str) -> str:
    """A file-name-safe version of a configuration label."""
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()


# The x axes a Pareto plot can have (`--x`): the row key, its label, and whether log scale.
PARETO_X = {
    "params": ("trainable parameters (log scale)", True),
    "model_ms_per_s": ("model latency, ms per second of audio (JAX, batch 1, one thread; "
                       "median)", False),
    "model_rel": ("model latency relative to the reference model (same machine)", False),
    "onnx_kib": ("ONNX model file, fp32 (KiB, log scale)", True),
    "ort_ms_per_s": ("onnxruntime ms per second of audio (features + model, batch 1, one "
                     "thread)", False),
    "ort_model_ms_per_s": ("onnxruntime model latency, ms per second of audio (fp32, batch "
                           "1, one thread)", False),
}  # fmt: skip


def pareto(path, rows: list[dict], on_front: list[bool], *, title: str = "",
           y: str = "selection", y_label: str = "selection metric (validation UAR)",
           x: str = "params") -> pathlib.Path:  # fmt: skip
    """Every configuration as a point (rows' `x`, one of `PARETO_X`, and `y`), coloured by
    "model"; the rows marked `on_front` circled, connected as a step line and annotated with
    their "label". Rows without an `x` value are left out."""
    plt = _pyplot()
    x_label, log = PARETO_X[x]
    shown = [(r, f) for r, f in zip(rows, on_front, strict=True) if r.get(x) is not None]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for model in sorted({r["model"] for r, _ in shown}):
        pts = [r for r, _ in shown if r["model"] == model]
        ax.scatter([r[x] for r in pts], [r[y] for r in pts], s=30, alpha=0.65,
                   color=FAMILY_COLORS.get(model, "tab:gray"), label=model)  # fmt: skip
    front = sorted((r for r, f in shown if f), key=lambda r: r[x])
    if front:
        ax.step([r[x] for r in front], [r[y] for r in front], where="post",
                color="black", linewidth=1.2, label="Pareto front")  # fmt: skip
        ax.scatter([r[x] for r in front], [r[y] for r in front], s=70,
                   facecolors="none", edgecolors="black")  # fmt: skip
        for r in front:
            ax.annotate(r["label"], (r[x], r[y]), textcoords="offset points",
                        xytext=(4, 5), fontsize=7)  # fmt: skip
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return pathlib.Path(path)


def pooled_confusion(results: dict) -> np.ndarray:
    """[C, C] counts of the pooled out-of-fold predictions, summed over seeds."""
    return np.sum([p["confusion"] for p in results["aggregate"]["pooled_oof"]], axis=0)


def confusion(path, matrix: np.ndarray, classes: list[str], *, title: str = "") -> pathlib.Path:
    """Row-normalised confusion matrix (recall per true class), counts in each cell."""
    plt = _pyplot()
    matrix = np.asarray(matrix, np.float64)
    rows = matrix.sum(1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    n = len(classes)
    width = max(4.0, 1.0 + 0.75 * n)
    fig, ax = plt.subplots(figsize=(width, max(3.2, 0.8 + 0.7 * n)), dpi=120)
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{norm[i, j]:.2f}\n({int(matrix[i, j])})", ha="center", va="center",
                    fontsize=7, color="white" if norm[i, j] > 0.6 else "black")  # fmt: skip
    ax.set_xticks(range(n), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (rows sum to 1)")
    # about 11 characters of a 9 pt title per inch: wrapped, a long title stays on the figure
    ax.set_title("\n".join(textwrap.wrap(title, int(width * 11))), fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return pathlib.Path(path)


def cross_matrix(path, m: dict, *, title: str = "") -> pathlib.Path:
    """The cross-corpus matrix (`crosscorpus.matrix`) as a heatmap of mean UAR, rows train,
    columns test, the in-corpus diagonal outlined; cells never measured left blank."""
    plt = _pyplot()
    values = np.array([[np.nan if v is None else v[0] for v in row] for row in m["uar"]])
    rows, cols = len(m["rows"]), len(m["columns"])
    width = max(4.5, 1.8 + 1.0 * cols)
    fig, ax = plt.subplots(figsize=(width, max(3.0, 1.0 + 0.7 * rows)), dpi=120)
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=0, vmax=1)
    for i, row in enumerate(m["rows"]):
        for j, col in enumerate(m["columns"]):
            if not np.isnan(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.3f}", ha="center", va="center", fontsize=8,
                        color="black" if values[i, j] > 0.6 else "white")  # fmt: skip
            if row.split(" / ")[0] == col:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, linewidth=1.5,
                                           edgecolor="red"))  # fmt: skip
    ax.set_xticks(range(cols), m["columns"], rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(rows), m["rows"], fontsize=8)
    ax.set_xlabel("test corpus")
    ax.set_ylabel("training corpus / model (red: in-corpus)")
    ax.set_title("\n".join(textwrap.wrap(title or "cross-corpus UAR", int(width * 11))),
                 fontsize=9)  # fmt: skip
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return pathlib.Path(path)


def learning_curves(path, results: dict, *, title: str = "") -> pathlib.Path:
    """Validation UAR per epoch of each fold (mean over seeds, band = min..max over seeds),
    with each fold's best epoch marked."""
    plt = _pyplot()
    folds = list(results["aggregate"]["per_fold"])
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    for i, fold in enumerate(folds):
        runs = [r for r in results["runs"] if r["fold"] == fold]
        curves = np.array([r["val_uar"] for r in runs])
        stop = results.get("stopped_at_epoch") or curves.shape[1]
        curves = curves[:, :stop]
        epochs = np.arange(1, curves.shape[1] + 1)
        color = f"C{i % 10}"
        ax.plot(epochs, curves.mean(0), color=color, linewidth=1.2, label=fold)
        if len(runs) > 1:
            ax.fill_between(epochs, curves.min(0), curves.max(0), color=color, alpha=0.15)
        for r in runs:
            ax.plot(r["best_epoch"] + 1, r["best_val_uar"], "o", color=color, markersize=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation UAR")
    ax.set_title(title or "validation UAR per fold (mean over seeds; dots: best epochs)",
                 fontsize=9)  # fmt: skip
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return pathlib.Path(path)


def attention(path, features: np.ndarray, weights: np.ndarray, *, title: str = "",
              feature_label: str = "feature",
              seconds_per_frame: float | None = None) -> pathlib.Path:  # fmt: skip
    """Features of one utterance as an image with the attention weights above it.

    Args:
      features: [T, D] (time first), the model's input before normalisation.
      weights: [T] attention weights (sum to 1 over the valid frames).
      seconds_per_frame: the frame hop in seconds: the time axis is in seconds (frame t
        centred at t x hop); None: in frames.
    """
    plt = _pyplot()
    features, weights = np.asarray(features), np.asarray(weights)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 4.5), dpi=120, sharex=True,
                                      gridspec_kw={"height_ratios": [1, 2.5]})  # fmt: skip
    step = seconds_per_frame or 1.0
    times = np.arange(len(weights)) * step
    top.bar(times, weights, width=step, color="tab:orange")
    top.set_ylabel("attention")
    top.set_title(title, fontsize=9)
    bottom.imshow(features.T, aspect="auto", origin="lower", cmap="magma",
                  extent=(-0.5 * step, (len(features) - 0.5) * step, -0.5,
                          features.shape[1] - 0.5))  # fmt: skip
    bottom.set_xlabel("time (s)" if seconds_per_frame else "frame")
    bottom.set_ylabel(feature_label)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return pathlib.Path(path)


def confusion_title(label: str) -> str:
    return f"{label}: test, pooled out-of-fold predictions, all seeds"


def curves_title(label: str) -> str:
    return f"{label}: validation UAR per fold (mean over seeds; dots: best epochs)"


def for_configs(out_dir, tables, configs, fmt: str = "png",
                x: str = "params") -> list[pathlib.Path]:  # fmt: skip
    """Pareto front per table (selection metric against `x`, one of `PARETO_X`: the front is
    the one on those axes), pooled confusion and learning curves per configuration, as `fmt`
    files (one of `PLOT_FORMATS`)."""
    from reslstm_jax.report import pareto_front

    if fmt not in PLOT_FORMATS:
        raise ValueError(f"plot format {fmt!r}: use one of {', '.join(PLOT_FORMATS)}")
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, t in enumerate(tables):
        suffix = f"_{i}" if len(tables) > 1 else ""
        front = t.front if x == "params" else pareto_front(t.rows, x)
        on_front = [r["label"] in front for r in t.rows]
        written.append(pareto(out_dir / f"pareto{suffix}.{fmt}", t.rows, on_front,
                              title=t.title, x=x))  # fmt: skip
    for c in configs:
        name = slug(c.label)
        classes = c.results["card"]["classes"]
        matrix = pooled_confusion(c.results)
        written.append(confusion(out_dir / f"confusion_{name}.{fmt}", matrix, classes,
                                 title=confusion_title(c.label)))  # fmt: skip
        if not c.results.get("baseline"):  # a classical baseline has no epochs
            written.append(learning_curves(out_dir / f"curves_{name}.{fmt}", c.results,
                                           title=curves_title(c.label)))  # fmt: skip
    return written
