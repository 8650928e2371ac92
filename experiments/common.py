"""The shared runner of the experiment files: setups x configurations, resumable, then a report.

An experiment file declares what it trains (`Experiment`) and calls `main(EXPERIMENT, argv)`.
Each configuration trains every fold x seed of each setup in one program (the family's recipe,
`reslstm_jax.families`, for everything the configuration does not override), writes a training
directory `<out>/<setup>/<config>/` (results.json, best/, inference.json: usable by
`reslstm_jax.predict` and `experiments.report`), and skips configurations finished earlier. At
the end: `report.md` and `report.tex` (one table per protocol card; paired tests of the
declared pairs) and `plots/`.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys

from reslstm_jax import configfile, flags


@dataclasses.dataclass(frozen=True)
class Setup:
    """How a setup prepares data and models.

    Attributes:
      protocol: fold protocol (its corpus is the setup's corpus).
      normalisation: None = the family's recipe.
      model_config: fields added to every configuration's model (e.g. paper_compat).
      share_init_across_seeds: the ResLSTM-SA reference's per-fold reseeding.
      note: one line for the report (why this setup exists).
      label_set: "native" or "shared4" (`reslstm_jax.corpora.labelsets`).
      audio_variants: training-only audio variants, e.g. `(("speed", 0.9), ("snr_db", 20.0))`
        (one variant per pair: `data.prepare(audio_variants=...)`, docs/training.md).
    """

    protocol: str
    normalisation: str | None = None
    model_config: tuple = ()
    share_init_across_seeds: bool = False
    note: str = ""
    label_set: str = "native"
    audio_variants: tuple = ()


@dataclasses.dataclass(frozen=True)
class Config:
    """One trained configuration: a model family, its model fields and RunSettings overrides."""

    model: str
    model_config: tuple = ()
    overrides: tuple = ()  # (RunSettings field, value) pairs, e.g. (("loss", "focal"),)


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    doc: str
    configs: dict  # name -> Config
    setups: dict  # corpus -> {setup name -> Setup}
    # name -> {"seeds": S, "epochs": E} and optionally "model_config" (fields added to every
    # model) and "feature_params" (extractor parameters): a smoke budget may shrink the model
    budgets: dict
    pairs: tuple = ()  # (config A, config B) compared with paired tests in each setup
    default_corpus: str = "ravdess"
    source: str = ""  # the experiment file it was read from (experiments.setup_files)


def parser(exp: Experiment, prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog or f"python -m experiments.{exp.name}",
                                description=exp.doc.split("\n")[0], epilog=flags.WORDS,
                                formatter_class=flags.HelpFormatter)  # fmt: skip
    d = p.add_argument_group("data")
    d.add_argument("--corpus", choices=sorted(exp.setups),
                   help=f"the corpus in --data-dir (default {exp.default_corpus}); without "
                   "either: the RAVDESS setups on the embedded synthetic corpus")  # fmt: skip
    d.add_argument("--data-dir", help="the corpus directory (default: the synthetic corpus; "
                   "for a manifest: the file)")  # fmt: skip
    d.add_argument(
        "--folds",
        type=int,
        metavar="K",
        help="folds of the setups whose protocol is speaker_kfold (default 5)",
    )
    flags.add_corpus_options(d)
    d.add_argument("--cache-dir", help="feature cache (default ~/.cache/reslstm_jax/features)")
    d.add_argument("--feature-workers", type=int,
                   help="feature extraction processes (default: one per core)")  # fmt: skip
    flags.deprecated(d, "--workers", "--feature-workers", type=int)
    t = p.add_argument_group("what to train")
    t.add_argument("--budget", choices=sorted(exp.budgets),
                   help="default: full with --data-dir; quick on the synthetic corpus, whose "
                   "numbers are no emotion-recognition results")  # fmt: skip
    t.add_argument("--seeds", type=int, help="override the budget's seeds")
    t.add_argument("--epochs", type=int, help="override the budget's epochs")
    t.add_argument("--configs", nargs="+", metavar="NAME", default=list(exp.configs),
                   help=f"a subset of: {', '.join(exp.configs)}")  # fmt: skip
    t.add_argument("--setups", nargs="+", metavar="NAME",
                   help="a subset of the corpus's setups (default: all)")  # fmt: skip
    t.add_argument("--no-baseline", action="store_true",
                   help="skip the classical reference row of each setup (eGeMAPS functionals + "
                   "linear SVM; needs the opensmile extra)")  # fmt: skip
    e = p.add_argument_group("execution (no effect on results)")
    e.add_argument("--devices", type=int, help="devices sharing each configuration's models "
                   "(default: all; on a CPU one per core)")  # fmt: skip
    o = p.add_argument_group("outputs")
    o.add_argument("--out", default=f"runs/experiments/{exp.name}", help="output directory")
    o.add_argument("--no-latency", action="store_true",
                   help="skip the latency measurements (JAX, onnxruntime)")  # fmt: skip
    o.add_argument("--no-progress", action="store_true", help="no progress bars")
    configfile.add_flags(p)
    return flags.ranged(p)


def default_budget(exp: Experiment, data_dir) -> str:
    """full on real data; quick (where the experiment has it) on the synthetic corpus, whose
    numbers mean nothing for emotion recognition and are not worth hours of CPU."""
    return "full" if data_dir or "quick" not in exp.budgets else "quick"


def parse_list(p, flag: str, values: list[str], known) -> list[str]:
    """The names of a list flag, checked; the older comma-separated form (`a,b`) still works,
    with its deprecation line."""
    if any("," in v for v in values):
        print(f"warning: {flag} a,b is deprecated; use {flag} a b", file=sys.stderr)
    items = [v.strip() for value in values for v in value.split(",") if v.strip()]
    unknown = [v for v in items if v not in known]
    if unknown or not items:
        p.error(f"{flag}: unknown {', '.join(unknown) or 'empty list'}; known: {', '.join(known)}")
    return items


def settings(exp_config: Config, setup: Setup, budget: dict):
    """RunSettings of a configuration in a setup (`families.settings_from`): the recipe, then
    the configuration's overrides, then the setup's and the budget's model fields."""
    from reslstm_jax import families

    overrides = {**dict(exp_config.overrides), "seeds": tuple(range(budget["seeds"])),
                 "epochs": budget["epochs"],
                 "share_init_across_seeds": setup.share_init_across_seeds}  # fmt: skip
    model_config = {**dict(exp_config.model_config), **dict(setup.model_config),
                    **dict(budget.get("model_config", ()))}  # fmt: skip
    return families.settings_from(exp_config.model, overrides, model_config=model_config)


def run(exp: Experiment, args, corpus: str, configs: list[str], setups: list[str]):
    """Train every setup x configuration (resuming), then write the report and plots."""
    from reslstm_jax import artifacts, data, families, train

    told: set[str] = set()  # skipped-file lines printed
    budget = {**exp.budgets[args.budget or default_budget(exp, args.data_dir)]}
    budget.update({k: getattr(args, k) for k in ("seeds", "epochs") if getattr(args, k)})
    out = pathlib.Path(args.out)
    cache = data.DatasetCache(corpus if args.data_dir else None, args.data_dir,
                              cache_dir=args.cache_dir, workers=args.feature_workers,
                              progress=not args.no_progress, label_map=flags.label_map(args),
                              corpus_options=flags.corpus_options(args))  # fmt: skip
    for setup_name in setups:
        setup = exp.setups[corpus][setup_name]
        for name in configs:
            run_dir = out / setup_name / name
            if (run_dir / "results.json").is_file():
                print(f"{setup_name}/{name}: done earlier, kept")
                continue
            cfg = exp.configs[name]
            features = families.recipe(cfg.model).features
            dataset = families.dataset_for(
                cache, cfg.model, protocol=setup.protocol, normalisation=setup.normalisation,
                feature_params=dict(budget.get("feature_params", {})).get(features, {}),
                label_set=setup.label_set, audio_variants=[dict([v]) for v in setup.audio_variants],
            )  # fmt: skip
            experiment = {"name": exp.name, "setup": setup_name, "config": name,
                          "budget": args.budget, "note": setup.note}  # fmt: skip
            run_settings = settings(cfg, setup, budget)
            results = train.run(dataset, run_settings, run_dir,
                                latency=not args.no_latency, extra={"experiment": experiment},
                                progress=not args.no_progress, devices=args.devices)  # fmt: skip
            write_run_config(run_dir, run_settings, dataset.card, args, corpus, setup,
                             f"{exp.source or exp.name}, setup {setup_name}, configuration "
                             f"{name}")  # fmt: skip
            print(f"{setup_name}/{name}: " + train.summary_lines(results)[0])
            line = dataset.manifest.skipped_line(run_dir / artifacts.SKIPPED_FILE)
            if line and line.split("; ")[0] not in told:  # once per set of skipped files
                told.add(line.split("; ")[0])
                print(line)
        if not args.no_baseline:
            run_baseline(cache, setup_name, setup, out / setup_name / BASELINE_DIR)
    write_report(exp, out, setups)
    return out


def with_folds(exp: Experiment, corpus: str, setups: list[str], folds: int | None) -> Experiment:
    """`exp` with `--folds K` applied to the chosen setups of `corpus` (`speaker_kfold<K>`);
    ValueError naming the flag and the setup whose protocol is another."""
    from reslstm_jax import speaker_folds

    if folds is None:
        return exp
    changed = dict(exp.setups[corpus])
    for name in setups:
        try:
            protocol = speaker_folds.with_folds(changed[name].protocol, folds)
        except ValueError as exc:
            raise ValueError(f"{exc} (setup {name})") from None
        changed[name] = dataclasses.replace(changed[name], protocol=protocol)
    return dataclasses.replace(exp, setups={**exp.setups, corpus: changed})


def write_run_config(run_dir, run_settings, card, args, corpus: str, setup: Setup,
                     origin: str) -> None:  # fmt: skip
    """RUN/config.yaml of an experiment's run: the train CLI's settings that train it alone
    (`args`: the experiment's flags, whose data and corpus options it shares)."""
    from reslstm_jax.train.resolved import run_config  # the train CLI's flags (its parser)

    data_dir = args.data_dir
    resolved = run_config(run_settings, card, data_dir=data_dir, corpus=corpus,
                          label_set=setup.label_set, audio_variants=setup.audio_variants,
                          corpus_flags={d: getattr(args, d) for d in flags.CORPUS_OPTIONS},
                          )  # fmt: skip
    rerun = f"python -m reslstm_jax.train --config {run_dir / configfile.CONFIG_NAME} --out NEW"
    configfile.write(run_dir / configfile.CONFIG_NAME, resolved,
                     data=configfile.data_identity(card, data_dir),
                     notes=[f"from the experiment {origin}", f"rerun alone: {rerun}"])  # fmt: skip


BASELINE_DIR = "baseline_egemaps_svm"


def run_baseline(cache, setup_name: str, setup: Setup, run_dir: pathlib.Path) -> None:
    """A setup's classical reference row (`reslstm_jax.baseline`: eGeMAPS functionals and a
    linear SVM on the setup's folds), when the opensmile extra is installed; resumable."""
    from reslstm_jax import artifacts, baseline, smile

    if (run_dir / artifacts.RESULTS_FILE).is_file():
        print(f"{setup_name}/baseline: done earlier, kept")
        return
    if not baseline.available():
        print(f"{setup_name}/baseline: skipped ({smile.INSTALL_HINT})")
        return
    dataset = cache.get(protocol=setup.protocol, label_set=setup.label_set,
                        **baseline.dataset_options("egemaps"))  # fmt: skip
    results = baseline.fit(dataset, "svm")
    results["experiment"] = {"setup": setup_name, "config": "baseline", "note": setup.note}
    artifacts.write_run(run_dir, dataset, results)
    print(f"{setup_name}/baseline: {baseline.summary_line(results)}")


def write_report(exp: Experiment, out: pathlib.Path, setups: list[str]) -> None:
    """report.md, report.tex (one table per protocol card; paired tests of the declared
    pairs) and plots/ of the finished runs under `out`."""
    from reslstm_jax import artifacts, plots, report

    done = report.load_paths([out / s for s in setups if (out / s).is_dir()])
    tables = report.build_tables(done)
    text = report.format_markdown(tables)
    comparisons = []
    for setup_name in setups:
        found = {c.results.get("experiment", {}).get("config"): c for c in done
                 if c.results.get("experiment", {}).get("setup") == setup_name}  # fmt: skip
        for a, b in exp.pairs:
            if a in found and b in found:
                result = report.compare(found[a], found[b])
                comparisons.append(f"[{setup_name}] " + report.format_comparison(result))
    if comparisons:
        text += "\nPaired tests (same folds x seeds):\n\n" + "\n\n".join(comparisons) + "\n"
    artifacts.write_text_atomic(out / "report.md", text)
    artifacts.write_text_atomic(out / "report.tex", report.format_latex(tables))
    plots.for_configs(out / "plots", tables, done)
    print(text)
    print(f"wrote {out / 'report.md'}, {out / 'report.tex'} and {out / 'plots'}")


def main(exp: Experiment, argv=None, *, command: list[str] | None = None) -> int:
    """Run `exp` with the experiments' flags `argv`. `command`: the command line that ran it
    (for config.yaml and --help; default `python -m experiments.<name> ARGV`)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = command or ["python", "-m", f"experiments.{exp.name}", *argv]
    p = parser(exp, prog=" ".join(command[:4]) if command[2:3] == ["experiments.run"] else None)
    args = configfile.parse_args(p, argv)
    configs = parse_list(p, "--configs", args.configs, exp.configs)
    corpus = args.corpus or exp.default_corpus
    if not args.data_dir:
        if args.corpus is not None or "ravdess" not in exp.setups:
            # a named corpus is never swapped for another one
            print(f"error: --corpus {corpus} needs --data-dir (where the corpus is); without "
                  "--corpus, the RAVDESS setups run on the embedded synthetic corpus",
                  file=sys.stderr)  # fmt: skip
            return 2
        corpus = "ravdess"
    args.budget = args.budget or default_budget(exp, args.data_dir)
    if configfile.print_if_asked(p, args, corpus=corpus):
        return 0
    if not args.data_dir:
        print(f"no --data-dir: the RAVDESS setups on the embedded synthetic corpus, "
              f"{args.budget} budget (synthetic speech: its numbers are no emotion-recognition "
              "results)")  # fmt: skip
    known_setups = exp.setups[corpus]
    setups = parse_list(p, "--setups", args.setups or list(known_setups), known_setups)
    try:  # --folds on the setups' protocols, the label map: checked before any work
        exp = with_folds(exp, corpus, setups, args.folds)
        flags.label_map(args)
    except ValueError as exc:
        p.error(str(exc))
    where = pathlib.Path(args.data_dir).expanduser() if args.data_dir else None
    if where is not None and not (where.is_file() if corpus == "manifest" else where.is_dir()):
        p.error(
            f"--data-dir {args.data_dir}: no such {'file' if corpus == 'manifest' else 'directory'}"
        )
    from reslstm_jax import artifacts

    try:  # before any data is read
        artifacts.check_output_dir(args.out)
    except artifacts.OutputError as exc:
        p.error(f"--out {exc}")
    from reslstm_jax import checkpoint, hardware, protocols
    from reslstm_jax.corpora.base import CorpusError
    from reslstm_jax.errors import cli_message

    # Before JAX's first computation: a CPU gets one device per core (or --devices).
    hardware.use_cpu_cores(args.devices)
    from reslstm_jax import runlock

    try:
        with runlock.hold(args.out):  # one process per experiment folder
            configfile.write(pathlib.Path(args.out) / configfile.CONFIG_NAME,
                             configfile.resolved(p, args, corpus=corpus), command=command,
                             notes=[f"experiment file: {exp.source}"] if exp.source
                             else [])  # fmt: skip
            run(exp, args, corpus, configs, setups)
    except runlock.FolderBusy as exc:
        print(f"error: --out {exc}", file=sys.stderr)
        return 2
    except (CorpusError, protocols.ProtocolError, checkpoint.CheckpointMismatch,
            ValueError) as exc:  # fmt: skip
        print(f"error: {cli_message(exc)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    import sys

    from reslstm_jax import flags

    sys.exit(flags.not_a_command(__spec__.name))
