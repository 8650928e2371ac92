"""The study's Pareto front: table (text and CSV) and plot (PNG)."""

from __future__ import annotations

import csv
import pathlib

from reslstm_jax.edge import LATENCY_KEYS, ONNX_KEYS, feature_timings, latency_machines

COLUMNS = ("trial", "model", "hidden_size", "res_blocks", "num_att", "n_params", "fp16_kib",
           *LATENCY_KEYS, *ONNX_KEYS, "val_uar", "test_uar", "collapsed_models")  # fmt: skip


def _cell(value, digits: int, width: int) -> str:
    return f"{'-' if value is None else f'{value:.{digits}f}':>{width}}"


def label(row: dict) -> str:
    return f"{row['model']} h{row['hidden_size']}" if row.get("hidden_size") else row["model"]


def table(rows: list[dict], front: list[int], objective: str) -> str:
    """Aligned text: every completed trial, front members starred, sorted by size; the ONNX
    columns where any trial has them (trained with the `export` extra)."""
    leaky = "  [objective = TEST UAR: leaky, as the reference tuned]" if objective == "test" else ""
    onnx = any(r.get("onnx_kib") is not None for r in rows)
    lines = [
        f"{'':2}{'model':<14}{'hidden':>7}{'params':>10}{'fp16 KiB':>9}{'model ms/s':>11}"
        f"{'IQR':>14}{'x ref':>6}"
        + (
            f"{'ONNX KiB':>9}{'int8 KiB':>9}{'int8 UAR':>9}{'ort ms/s':>9}{'int8 ms/s':>10}"
            if onnx
            else ""
        )
        + f"{'val UAR':>9}{'test UAR':>10}  trial",
    ]
    for row in sorted(rows, key=lambda r: (r["n_params"], r["trial"])):
        star = "* " if row["trial"] in front else "  "
        lines.append(
            f"{star}{row['model']:<14}{row.get('hidden_size') or '-':>7}{row['n_params']:>10,}"
            f"{_cell(row.get('fp16_kib'), 1, 9)}{_cell(row.get('model_ms_per_s'), 3, 11)}"
            f"{_iqr(row):>14}{_cell(row.get('model_rel'), 2, 6)}"
            + (f"{_cell(row.get('onnx_kib'), 1, 9)}{_cell(row.get('onnx_int8_kib'), 1, 9)}"
               f"{_cell(row.get('int8_uar'), 4, 9)}"
               f"{_cell(row.get('ort_model_ms_per_s'), 3, 9)}"
               f"{_cell(row.get('ort_int8_model_ms_per_s'), 3, 10)}" if onnx else "")
            + f"{row['val_uar']:>9.4f}{row['test_uar']:>10.4f}  {row['trial']}"
            + (f" [COLLAPSED {row['collapsed_models']}]" if row.get("collapsed_models") else "")
        )  # fmt: skip
    lines.append(
        "* = Pareto front (max UAR by the objective, min parameters). val UAR: mean best-epoch "
        "validation UAR over folds x seeds; test UAR: pooled out-of-fold, mean over seeds; "
        "fp16 KiB: trainable parameters at 2 bytes; model ms/s: the model's own CPU latency "
        "per second of audio (JAX, batch 1, median of many calls, IQR its interquartile "
        "range; x ref: relative to the reference model timed alongside, which compares "
        "machines); features are timed once per feature set, below."
        + (" ONNX / int8 KiB: the exported graph's file, fp32 and int8; int8 UAR: the int8 "
           "graphs' test UAR (pooled, mean over seeds); ort / int8 ms/s: "
           "onnxruntime's model time, fp32 and int8." if onnx else "")
        + leaky
    )  # fmt: skip
    lines += features_lines(rows)
    return "\n".join(lines)


def _iqr(row: dict) -> str:
    q1, q3 = row.get("model_ms_q1"), row.get("model_ms_q3")
    return "-" if q1 is None or q3 is None else f"{q1:.3f}-{q3:.3f}"


def features_lines(rows: list[dict]) -> list[str]:
    """The feature front-end's latency, once per feature set (every model reading those
    features pays it alike), and the machine the figures belong to."""
    lines = [f"features {name}: {timing} per second of audio; model + features = "
             f"latency_ms_per_s in pareto.csv"
             for name, timing in feature_timings(rows).items()]  # fmt: skip
    return lines + [f"latencies measured on {cpu}, {threads} thread, apart from training"
                    for cpu, threads in latency_machines(rows)]  # fmt: skip


def write_csv(path: pathlib.Path, rows: list[dict], front: list[int]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*COLUMNS, "uar", "pareto"])
        writer.writeheader()
        for row in sorted(rows, key=lambda r: (r["n_params"], r["trial"])):
            writer.writerow({**{k: row.get(k) for k in COLUMNS}, "uar": row["uar"],
                             "pareto": row["trial"] in front})  # fmt: skip


def plot(path: pathlib.Path, rows: list[dict], front: list[int], title: str, objective: str,
         x: str = "params"):  # fmt: skip
    """All trials as points, the front connected and labelled by model and size; `x` one of
    `reslstm_jax.plots.PARETO_X` (against params the study's own front, otherwise the front
    on the plotted axes)."""
    from reslstm_jax import plots
    from reslstm_jax.report import front_mask

    shown = (*LATENCY_KEYS, *ONNX_KEYS)
    points = [{"model": r["model"], "params": r["n_params"], "uar": r["uar"], "label": label(r),
               **{key: r.get(key) for key in shown}} for r in rows]  # fmt: skip
    on_front = [r["trial"] in front for r in rows]
    if x != "params":
        having = [i for i, p in enumerate(points) if p.get(x) is not None]
        mask = front_mask([points[i][x] for i in having], [points[i]["uar"] for i in having])
        on_front = [False] * len(points)
        for i, on in zip(having, mask, strict=True):
            on_front[i] = on
    which = "test UAR (pooled OOF) - LEAKY objective" if objective == "test" else (
        "validation UAR (mean over folds x seeds)")  # fmt: skip
    plots.pareto(path, points, on_front, title=title, y="uar", y_label=which, x=x)


if __name__ == "__main__":
    import sys

    from reslstm_jax import flags

    sys.exit(flags.not_a_command(__spec__.name))
