"""Paper-ready tables (and plots) from a sweep study or from training results directories.

```bash
python -m experiments.report --study hidden_sizes-ravdess-ravdess_paper-quick --format md
python -m experiments.report --storage postgresql+psycopg://u@host/db --study NAME --format latex
python -m experiments.report runs/train/h64 runs/train/h32 --compare "lstm_sa h32" "reslstm_sa h64"
python -m experiments.report runs/exp/ravdess_reslstm_sa --plots runs/exp/plots --out table.md
```

One row per configuration, one table per protocol card (the caption states it). See
`reslstm_jax/report.py` for every column and `docs/reports.md` for how to read them.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from reslstm_jax import configfile, flags, report
from reslstm_jax.plots import PARETO_X, PLOT_FORMATS


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments.report",
                                description=__doc__.split("\n")[0], epilog=flags.WORDS,
                                formatter_class=flags.HelpFormatter)  # fmt: skip
    p.add_argument("paths", nargs="*", help="results.json files, training output directories, or "
                   "directories to search for results.json and sweep trials/*.json")  # fmt: skip
    p.add_argument("--study", help="an Optuna study (its completed trials are the rows)")
    p.add_argument("--storage", help="storage URL of --study (default: the journal file in "
                   "--sweep-out, as sweeps.run writes it; also $RESLSTM_STORAGE)")  # fmt: skip
    p.add_argument("--sweep-out", default="runs", help="the --out of sweeps.run")
    flags.deprecated(p, "--workdir", "--sweep-out")
    p.add_argument("--format", choices=("md", "latex", "csv", "json"), default="md",
                   help="table format")  # fmt: skip
    p.add_argument("--out", help="write the table here instead of standard output")
    p.add_argument(
        "--compare",
        nargs=2,
        metavar=("A", "B"),
        help="paired tests of two configurations (label, prefix or trial number)",
    )
    p.add_argument(
        "--plots", metavar="DIR", help="write the Pareto, confusion and learning-curve figures here"
    )
    p.add_argument("--plot-format", choices=PLOT_FORMATS, default="png",
                   help="format of --plots: png, or pdf / svg (vector, for papers)")  # fmt: skip
    p.add_argument("--pareto-x", choices=PARETO_X, default="params",
                   help="x axis of the Pareto plot and its front: params, model_ms_per_s "
                   "(the model's own latency), model_rel (relative to the reference model), "
                   "onnx_kib (the ONNX file), ort_ms_per_s or ort_model_ms_per_s "
                   "(onnxruntime); the ONNX figures exist for runs trained with the export "
                   "extra installed")  # fmt: skip
    flags.deprecated(p, "--x", "--pareto-x", choices=PARETO_X)
    p.add_argument("--ci-resamples", type=int, default=2000,
                   help="bootstrap resamples of the pooled UAR's interval")  # fmt: skip
    configfile.add_flags(p)
    return flags.ranged(p)


def formatted(fmt: str, tables, comparison, cross) -> str:
    """The report text in `fmt`: the tables, the paired test where asked (a LaTeX comment),
    and the cross-corpus matrix of runs that have cross-corpus tests."""
    from reslstm_jax import crosscorpus

    if fmt == "json":
        from reslstm_jax.artifacts import dumps

        return dumps({"tables": [t.__dict__ for t in tables], "comparison": comparison,
                      "cross_corpus": cross})  # fmt: skip
    text = {"md": report.format_markdown, "latex": report.format_latex,
            "csv": report.format_csv}[fmt](tables)  # fmt: skip
    if comparison and fmt == "md":
        text += "\n" + report.format_comparison(comparison) + "\n"
    elif comparison and fmt == "latex":
        lines = report.format_comparison(comparison).splitlines()
        text += "\n".join("% " + line for line in lines) + "\n"
    if cross is not None:
        text += "\n" + crosscorpus.format_matrix(cross, fmt)
    return text


def main(argv=None) -> int:
    p = parser()
    args = configfile.parse_args(p, argv)
    if configfile.print_if_asked(p, args):
        return 0
    if bool(args.study) == bool(args.paths):
        p.error("give either --study (with optional --storage) or results paths, not both")
    if args.storage and not args.study:
        p.error("--storage needs --study")
    if args.pareto_x != "params" and not args.plots:
        p.error("--pareto-x sets the axis of the Pareto plot: give --plots DIR too")
    if args.ci_resamples < 100:
        p.error(f"--ci-resamples must be >= 100, got {args.ci_resamples}")
    from reslstm_jax import artifacts

    checks = (("--out", args.out, artifacts.check_output_file),
              ("--plots", args.plots, artifacts.check_output_dir))  # fmt: skip
    for flag, value, check in checks:  # every output location, before any table is built
        try:
            if value:
                check(value)
        except artifacts.OutputError as exc:
            print(f"error: {flag} {exc}", file=sys.stderr)
            return 2
    try:
        if args.study:
            from sweeps import storage as sweep_storage

            url = sweep_storage.storage_url_from(args.storage)
            configs = report.load_selected(
                sweep_storage.completed_results(url, args.study, args.sweep_out)
            )
        else:
            configs = report.load_paths(args.paths)
        if not configs:
            raise report.ReportError("no finished configuration to report")
        tables = report.build_tables(configs, ci_resamples=args.ci_resamples)
        x = args.pareto_x
        if x != "params" and not any(r.get(x) is not None for t in tables for r in t.rows):
            raise report.ReportError(
                f"--pareto-x {x}: no configuration has it (its runs were trained without the "
                "export extra, or with --no-latency)")  # fmt: skip
        comparison = None
        if args.compare:
            a, b = (report.find(configs, name) for name in args.compare)
            comparison = report.compare(a, b)
    except (report.ReportError, ValueError) as exc:  # sweeps' StorageError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from reslstm_jax import crosscorpus

    tested = [c.results for c in configs if c.results.get("cross_test")]
    cross = crosscorpus.matrix(tested) if tested else None
    text = formatted(args.format, tables, comparison, cross)
    if args.out:
        out = pathlib.Path(args.out)
        from reslstm_jax.artifacts import write_text_atomic

        write_text_atomic(out, text)
        print(f"wrote {out}")
    else:
        print(text)
    if comparison and args.format == "csv":  # CSV has no place for it; JSON holds it
        print(report.format_comparison(comparison), file=sys.stderr)
    if args.plots:
        from reslstm_jax import plots

        for path in plots.for_configs(args.plots, tables, configs, fmt=args.plot_format,
                                      x=args.pareto_x):  # fmt: skip
            print(f"wrote {path}")
        if cross is not None:
            heatmap = pathlib.Path(args.plots) / f"cross_corpus.{args.plot_format}"
            print(f"wrote {plots.cross_matrix(heatmap, cross, title='cross-corpus UAR')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
