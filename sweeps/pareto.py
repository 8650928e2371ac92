"""The study's Pareto front: table (text and CSV) and plot (PNG)."""

from __future__ import annotations

import csv
import pathlib

COLUMNS = ("trial", "model", "hidden_size", "res_blocks", "num_att", "n_params", "fp16_kib",
           "latency_ms_per_s", "val_uar", "test_uar")  # fmt: skip


def label(row: dict) -> str:
    return f"{row['model']} h{row['hidden_size']}" if row.get("hidden_size") else row["model"]


def table(rows: list[dict], front: list[int], objective: str) -> str:
    """Aligned text: every completed trial, front members starred, sorted by size."""
    leaky = "  [objective = TEST UAR: leaky, as the reference tuned]" if objective == "test" else ""
    lines = [
        f"{'':2}{'model':<14}{'hidden':>7}{'params':>10}{'fp16 KiB':>9}{'ms/s':>7}"
        f"{'val UAR':>9}{'test UAR':>10}  trial",
    ]
    for row in sorted(rows, key=lambda r: (r["n_params"], r["trial"])):
        star = "* " if row["trial"] in front else "  "
        kib = row.get("fp16_kib")
        ms = row.get("latency_ms_per_s")
        lines.append(
            f"{star}{row['model']:<14}{row.get('hidden_size') or '-':>7}{row['n_params']:>10,}"
            f"{'-' if kib is None else f'{kib:.1f}':>9}{'-' if ms is None else f'{ms:.2f}':>7}"
            f"{row['val_uar']:>9.4f}{row['test_uar']:>10.4f}  {row['trial']}"
        )
    lines.append(
        "* = Pareto front (max UAR by the objective, min parameters). val UAR: mean best-epoch "
        "validation UAR over folds x seeds; test UAR: pooled out-of-fold, mean over seeds; "
        "fp16 KiB: trainable parameters at 2 bytes; ms/s: CPU latency per second of audio "
        "(features + model, batch 1)." + leaky
    )
    return "\n".join(lines)


def write_csv(path: pathlib.Path, rows: list[dict], front: list[int]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*COLUMNS, "uar", "pareto"])
        writer.writeheader()
        for row in sorted(rows, key=lambda r: (r["n_params"], r["trial"])):
            writer.writerow({**{k: row.get(k) for k in COLUMNS}, "uar": row["uar"],
                             "pareto": row["trial"] in front})  # fmt: skip


def plot(path: pathlib.Path, rows: list[dict], front: list[int], title: str, objective: str):
    """All trials as points, the front connected and labelled by model and size."""
    from reslstm_jax import plots

    points = [{"model": r["model"], "params": r["n_params"], "uar": r["uar"], "label": label(r)}
              for r in rows]  # fmt: skip
    which = "test UAR (pooled OOF) - LEAKY objective" if objective == "test" else (
        "validation UAR (mean over folds x seeds)")  # fmt: skip
    plots.pareto(path, points, [r["trial"] in front for r in rows], title=title, y="uar",
                 y_label=which)  # fmt: skip
