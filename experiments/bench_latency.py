"""`python -m experiments.bench --latency-repeatability`: do two runs of the same small sweep
give each model the same latency?

Runs `python -m sweeps.run --space hidden_sizes --trials 4 --epochs 1 --workers 2` twice, each
into a fresh folder (the feature cache shared), and compares the models' latencies of the two
`pareto.csv` files: the median model time (`model_ms_per_s`), its interquartile range, and
the ratio to the reference model (`model_rel`). Two checks, printed PASS or FAIL:

* repeatable: each model's median in the second run within 15% of the first;
* ordered: within a family, a bigger model never reads faster than a smaller one by more than
  the smaller one's interquartile range.

Corpus: the embedded synthetic one unless `--corpus`/`--data-dir` follow (passed on to the
sweep). Expected runtime: 3-6 minutes on a 2-core CPU. docs/performance.md records the
figures of a run.
"""

from __future__ import annotations

import csv
import itertools
import pathlib
import subprocess
import sys
import tempfile

TOLERANCE = 0.15


def sweep_once(folder: pathlib.Path, cache: pathlib.Path, corpus_args: list[str]) -> list[dict]:
    """The rows of one sweep's pareto.csv."""
    args = [sys.executable, "-m", "sweeps.run", "--space", "hidden_sizes", "--trials", "4",
            "--epochs", "1", "--workers", "2", "--wandb", "disabled", "--no-progress",
            "--out", str(folder), "--cache-dir", str(cache), *corpus_args]  # fmt: skip
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"the sweep failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    (table,) = folder.glob("*/pareto.csv")
    with open(table, newline="") as f:
        return list(csv.DictReader(f))


def label(row: dict) -> str:
    return f"{row['model']} h{row['hidden_size']}"


def compare(first: list[dict], second: list[dict]) -> tuple[list[str], bool]:
    """The comparison table's lines and whether both checks pass."""
    a = {label(r): r for r in first}
    b = {label(r): r for r in second}
    lines = [f"{'model':<16}{'run 1 ms/s (IQR)':>26}{'run 2 ms/s (IQR)':>26}{'2 / 1':>8}"
             f"{'x ref 1':>9}{'x ref 2':>9}"]  # fmt: skip
    repeatable = True
    for name in sorted(a, key=lambda n: (a[n]["model"], int(a[n]["hidden_size"]))):
        one, two = a[name], b[name]
        ratio = float(two["model_ms_per_s"]) / float(one["model_ms_per_s"])
        repeatable &= abs(ratio - 1) <= TOLERANCE

        def cell(r):
            return (f"{float(r['model_ms_per_s']):.4f} ({float(r['model_ms_q1']):.4f}-"
                    f"{float(r['model_ms_q3']):.4f})")  # fmt: skip

        lines.append(f"{name:<16}{cell(one):>26}{cell(two):>26}{ratio:>8.3f}"
                     f"{float(one['model_rel']):>9.3f}{float(two['model_rel']):>9.3f}")  # fmt: skip
    ordered = all(in_order(rows) for rows in (first, second))
    lines.append(f"repeatable (every median within {TOLERANCE:.0%}): "
                 f"{'PASS' if repeatable else 'FAIL'}")  # fmt: skip
    lines.append("ordered (no bigger model faster than a smaller one by more than its IQR): "
                 f"{'PASS' if ordered else 'FAIL'}")  # fmt: skip
    cpu = {r.get("latency_cpu") for r in first + second}
    lines.append(f"machine: {', '.join(sorted(c for c in cpu if c))}")
    return lines, repeatable and ordered


def in_order(rows: list[dict]) -> bool:
    """Within each family, sorted by hidden size: no model's median below a smaller one's
    median minus that one's interquartile range."""
    for family in {r["model"] for r in rows}:
        mine = sorted(
            (r for r in rows if r["model"] == family), key=lambda r: int(r["hidden_size"])
        )
        for small, big in itertools.pairwise(mine):
            spread = float(small["model_ms_q3"]) - float(small["model_ms_q1"])
            if float(big["model_ms_per_s"]) < float(small["model_ms_per_s"]) - spread:
                return False
    return True


def main(corpus_args: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="reslstm-latency-bench-") as tmp:
        root = pathlib.Path(tmp)
        runs = [sweep_once(root / f"run{i}", root / "cache", corpus_args) for i in (1, 2)]
    lines, ok = compare(*runs)
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    import sys

    from reslstm_jax import flags

    sys.exit(flags.not_a_command(__spec__.name))
