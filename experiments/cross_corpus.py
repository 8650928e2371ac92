r"""Cross-corpus matrix: train on each corpus, test on every other, on the shared label set.

Command (each corpus in its own folder under ROOT, named as the corpus: ravdess, cremad, tess,
savee, emodb, iemocap; `--data-dir CORPUS=DIR` for another place; `synthetic` needs none):

    python -m experiments.cross_corpus --data-root ~/data \
        --corpora ravdess cremad tess savee emodb iemocap

Every corpus trains the model (default ResLSTM-SA h64 with its recipe) on its own
speaker-independent protocol with `--label-set shared4` (neutral, happy, angry, sad:
docs/protocols.md), validation speakers picking the epoch; then every fold x seed model labels
the whole of every other corpus (`reslstm_jax.crosscorpus`). The diagonal of the matrix is the
in-corpus pooled test UAR, the other cells the mean over models of the cross-corpus UAR.
Targets are normalised with each training fold's statistics, or with their own
(`--cross-norm target`, using unlabelled target audio).

`--test-only CORPUS ...` adds columns without a row: corpora only tested on (held out, or
too small for their protocol, as the suite's one-actor synthetic corpus). `--manifest FILE`
adds a corpus of your own (a CSV, TSV or JSON Lines manifest, docs/data.md) as a row and a
column, named after the file's stem; `--test-only-manifest FILE` as a column only. Its rows
join the shared label set by their labels (neutral, happy, angry, sad).

Budgets: `full` (the recipe's epochs, 5 seeds) is GPU work for six corpora; `quick` (10
epochs, 1 seed) is a smoke run of the whole matrix.

Output: `runs/experiments/cross_corpus/<corpus>/` training runs (results with `cross_test`),
`matrix.md`, `matrix.tex`, `matrix.csv`, `cross_corpus.png`. Rerunning skips finished rows;
`python -m experiments.report runs/experiments/cross_corpus` prints the matrix again with
the in-corpus tables.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from reslstm_jax import configfile, flags

BUDGETS = {"full": {"seeds": 5, "epochs": None}, "quick": {"seeds": 1, "epochs": 10}}
DEFAULT_CORPORA = ("ravdess", "cremad", "tess", "savee", "emodb", "iemocap")


def parser() -> argparse.ArgumentParser:
    from reslstm_jax import corpora, models

    p = argparse.ArgumentParser(prog="python -m experiments.cross_corpus",
                                description=__doc__.split("\n")[0],
                                formatter_class=flags.HelpFormatter)  # fmt: skip
    p.add_argument("--corpora", nargs="+", choices=corpora.CORPORA, default=DEFAULT_CORPORA,
                   help="the corpora trained and tested on: the rows and columns")  # fmt: skip
    p.add_argument("--test-only", nargs="+", choices=corpora.CORPORA, default=[],
                   metavar="CORPUS", help="corpora only tested on (columns without a row): "
                   "held out, or too small for their protocol")  # fmt: skip
    p.add_argument("--manifest", action="append", default=[], metavar="FILE",
                   help="a corpus of your own, a manifest (docs/data.md): trained on and "
                   "tested on, named after the file's stem (repeatable)")  # fmt: skip
    p.add_argument(
        "--test-only-manifest",
        action="append",
        default=[],
        metavar="FILE",
        help="a manifest only tested on (a column without a row; repeatable)",
    )
    p.add_argument("--data-root", help="a folder holding each corpus in a folder of its name")
    p.add_argument("--data-dir", action="append", default=[], metavar="CORPUS=DIR",
                   help="where one corpus is, instead of DATA_ROOT/CORPUS")  # fmt: skip
    p.add_argument("--model", default="reslstm_sa", choices=models.names(),
                   help="the model family every row trains")  # fmt: skip
    p.add_argument(
        "--hidden-size",
        type=int,
        help="the model's hidden size (default: the family's, 64 for ResLSTM-SA)",
    )
    p.add_argument("--budget", choices=sorted(BUDGETS), default="full",
                   help="full: 5 seeds at the recipe's epochs; quick: 1 seed, 10 "
                   "epochs")  # fmt: skip
    p.add_argument("--seeds", type=int, help="override the budget's seeds")
    p.add_argument("--epochs", type=int, help="override the budget's epochs")
    p.add_argument("--cross-norm", choices=("train", "target"), default="train",
                   help="normalise a target with the training fold's statistics (train), "
                   "or with its own, from its unlabelled audio (target)")  # fmt: skip
    p.add_argument("--out", default="runs/experiments/cross_corpus",
                   help="output directory (one run per row, the matrix, the report)")  # fmt: skip
    p.add_argument("--cache-dir", help="feature cache (default ~/.cache/reslstm_jax/features)")
    p.add_argument("--feature-workers", type=int,
                   help="feature extraction processes (default: one per core)")  # fmt: skip
    flags.deprecated(p, "--workers", "--feature-workers", type=int)
    p.add_argument("--no-latency", action="store_true",
                   help="skip the latency measurements (JAX, onnxruntime)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    configfile.add_flags(p)
    return flags.ranged(p)


def manifest_entries(p, files: list[str]) -> dict:
    """{a manifest's name (its stem): ("manifest", its path)}; exits 2 on a missing file."""
    entries = {}
    for text in files:
        where = pathlib.Path(text).expanduser()
        if not where.is_file():
            p.error(f"--manifest {text}: no such file")
        if where.stem in entries:
            p.error(f"--manifest {text}: a second manifest named {where.stem}")
        entries[where.stem] = ("manifest", where)
    return entries


def corpus_entries(p, args) -> tuple[dict, list[str]]:
    """({name: (loader, its folder or file; None for the synthetic corpus)}, the names that
    train a row); exits 2 on a missing one."""
    dirs = {name: (name, where) for name, where in corpus_dirs(p, args).items()}
    rows = list(dict.fromkeys(args.corpora))
    for files, trains in ((args.manifest, True), (args.test_only_manifest, False)):
        for name, entry in manifest_entries(p, files).items():
            if name in dirs:
                p.error(f"--manifest {entry[1]}: its name {name} is already a corpus here")
            dirs[name] = entry
            rows += [name] if trains else []
    return dirs, rows


def corpus_dirs(p, args) -> dict:
    """{corpus: its folder, or None for the synthetic corpus}; exits 2 on a missing one."""
    given = {}
    for text in args.data_dir:
        name, _, where = text.partition("=")
        if name not in [*args.corpora, *args.test_only] or not where:
            p.error(f"--data-dir {text}: give CORPUS=DIR for one of --corpora or --test-only")
        given[name] = pathlib.Path(where).expanduser()
    dirs = {}
    for name in [*args.corpora, *args.test_only]:
        where = given.get(name) or (pathlib.Path(args.data_root).expanduser() / name
                                    if args.data_root else None)  # fmt: skip
        if where is None and name != "synthetic":
            p.error(f"{name}: give --data-root or --data-dir {name}=DIR")
        if where is not None and not where.is_dir():
            p.error(f"{name}: {where} is not a directory")
        dirs[name] = where
    return dirs


def train_row(args, corpus: str, dirs: dict, out: pathlib.Path) -> dict:
    """Train on `corpus` and test on the other corpora (or read the finished row); `dirs`:
    `corpus_entries`'."""
    from reslstm_jax import artifacts, crosscorpus, data, families

    run_dir = out / corpus
    if (run_dir / artifacts.RESULTS_FILE).is_file():
        print(f"{corpus}: done earlier, kept")
        return artifacts.read_json(run_dir / artifacts.RESULTS_FILE)
    recipe = families.recipe(args.model)
    budget = BUDGETS[args.budget]
    fields = {} if args.hidden_size is None else {"hidden_size": args.hidden_size}
    settings = families.settings_from(args.model, {
        "seeds": tuple(range(args.seeds or budget["seeds"])),
        "epochs": args.epochs or budget["epochs"], **fields})  # fmt: skip
    options = {"cache_dir": args.cache_dir, "workers": args.feature_workers,
               "progress": not args.no_progress}  # fmt: skip
    loader, where = dirs[corpus]
    dataset = data.prepare(None if loader == "synthetic" else loader, where,
                           extractor=recipe.features, normalisation=recipe.normalisation,
                           label_set="shared4", **options)  # fmt: skip
    targets = [crosscorpus.load_target(*dirs[name], dataset.card, **options)
               for name in dirs if name != corpus]  # fmt: skip
    results = crosscorpus.fit_and_test(dataset, settings, run_dir, targets, args.cross_norm,
                                       latency=not args.no_latency,
                                       progress=not args.no_progress)  # fmt: skip
    print(f"{corpus}: in-corpus UAR {results['aggregate']['pooled_oof_uar']['mean']:.4f}; "
          + "; ".join(crosscorpus.summary_lines(results["cross_test"])))  # fmt: skip
    return results


def main(argv=None) -> int:
    p = parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = configfile.parse_args(p, argv)
    if configfile.print_if_asked(p, args):
        return 0
    wanted = [*args.corpora, *args.test_only, *args.manifest, *args.test_only_manifest]
    if len(set(wanted)) < 2:
        p.error("--corpora: give at least two corpora (with --test-only or --manifest)")
    if set(args.corpora) & set(args.test_only):
        p.error(f"--test-only {' '.join(sorted(set(args.corpora) & set(args.test_only)))}: "
                "already in --corpora")  # fmt: skip
    for flag in ("seeds", "epochs"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            p.error(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    dirs, row_names = corpus_entries(p, args)
    from reslstm_jax import artifacts, checkpoint, crosscorpus, hardware, plots, protocols
    from reslstm_jax.corpora.base import CorpusError
    from reslstm_jax.errors import cli_message

    out = pathlib.Path(args.out).expanduser()
    try:
        artifacts.check_output_dir(out)
    except artifacts.OutputError as exc:
        p.error(f"--out {exc}")
    hardware.use_cpu_cores(None)
    from reslstm_jax import runlock

    try:
        with runlock.hold(out):  # one process per matrix folder, until the matrix is written
            configfile.write(out / configfile.CONFIG_NAME, configfile.resolved(p, args),
                             command=["python", "-m", "experiments.cross_corpus",
                                      *argv])  # fmt: skip
            rows = [train_row(args, corpus, dirs, out) for corpus in row_names]
            m = crosscorpus.matrix(rows)
            for fmt, suffix in (("md", "md"), ("latex", "tex"), ("csv", "csv")):
                artifacts.write_text_atomic(out / f"matrix.{suffix}",
                                            crosscorpus.format_matrix(m, fmt))  # fmt: skip
            plots.cross_matrix(out / "cross_corpus.png", m, title="cross-corpus UAR (shared4)")
    except runlock.FolderBusy as exc:
        print(f"error: --out {exc}", file=sys.stderr)
        return 2
    except (CorpusError, protocols.ProtocolError, checkpoint.CheckpointMismatch,
            ValueError) as exc:  # fmt: skip
        print(f"error: {cli_message(exc)}", file=sys.stderr)
        return 2
    print(crosscorpus.format_matrix(m, "md"))
    print(f"wrote {out / 'matrix.md'}, matrix.tex, matrix.csv and cross_corpus.png")
    return 0


if __name__ == "__main__":
    from reslstm_jax import interrupts

    sys.exit(interrupts.run(main))
