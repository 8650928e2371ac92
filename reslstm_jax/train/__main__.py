"""`python -m reslstm_jax.train`: the command line of the trainer (parse, validate, call).

Train one configuration on every fold x seed of a protocol in one compiled program and write
results, protocol card and best checkpoints (docs/training.md). The work is
`reslstm_jax.train.fit.run`; this module only maps flags to it and its errors to exit code 2.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import sys

from reslstm_jax import configfile, flags  # no JAX: --help and a bad config file stay fast
from reslstm_jax.train.resolved import (  # noqa: F401  (run_config: for the experiments)
    filled_values,
    run_config,
    spread_warning,
    write_config,
)


def build_parser():
    import argparse

    from reslstm_jax import data, features, models
    from reslstm_jax.settings import LOSSES, SCHEDULES, RunSettings

    defaults = RunSettings()
    p = argparse.ArgumentParser(
        prog="python -m reslstm_jax.train",
        description="Train one configuration on every fold x seed of a protocol, in one "
        "compiled program, and write results, protocol card and best checkpoints. A flag left "
        "out takes the model family's recipe (docs/models.md); --print-config shows them all.",
        epilog=flags.WORDS,
        formatter_class=flags.HelpFormatter,
    )
    d = p.add_argument_group("data")
    add_corpus(d)
    d.add_argument("--features", choices=features.names(),
                   help="feature extractor (default: the model's recipe)")  # fmt: skip
    d.add_argument("--feature-params", metavar="JSON",
                   help='extractor parameters, e.g. \'{"seconds": 7}\' (tf_mfcc, 7 s)')  # fmt: skip
    d.add_argument(
        "--normalisation",
        choices=data.NORMALISATIONS,
        help="fold (training speakers only), global (the paper's; leaky) or none (raw); "
        "default: the model's recipe",
    )
    add_options(d)
    d.add_argument("--cache-dir", help="feature cache (default ~/.cache/reslstm_jax/features)")
    d.add_argument("--feature-workers", type=int, default=None,
                   help="feature extraction processes (default: one per core)")  # fmt: skip
    flags.deprecated(d, "--workers", "--feature-workers", type=int)
    m = p.add_argument_group("model")
    m.add_argument("--model", default=defaults.model, choices=models.names(),
                   help="model family (docs/models.md)")  # fmt: skip
    m.add_argument("--hidden-size", type=int, help="hidden size (model default: 64 for the "
                   "attention LSTMs, 200 for ds_lstm; light_sernet has none)")  # fmt: skip
    m.add_argument("--num-att", type=int, help="attention vectors (lstm_sa, reslstm_sa; default 1)")
    m.add_argument("--res-blocks", type=int, default=None,
                   help="residual blocks (reslstm_sa; default 1)")  # fmt: skip
    m.add_argument("--paper-compat", action="store_true",
                   help="reproduce the reference's unmasked attention/BatchNorm")  # fmt: skip
    m.add_argument("--model-config", metavar="JSON",
                   help='more model fields as JSON, e.g. \'{"branches": "ds"}\'')  # fmt: skip
    t = p.add_argument_group("training (default: the model family's recipe)")
    t.add_argument("--seeds", type=int, default=1, help="independent runs (seeds 0..N-1)")
    # None = the model family's recipe (reslstm_jax.families); shown in --help per family there
    t.add_argument("--epochs", type=int, help="default: the recipe's (100 for the LSTMs)")
    t.add_argument("--learning-rate", type=float, help="Adam's learning rate (default: the "
                   "recipe's, 1e-3 for the LSTMs)")  # fmt: skip
    flags.deprecated(t, "--lr", "--learning-rate", type=float)
    t.add_argument("--weight-decay", type=float, help="coupled L2 (default: the recipe's)")
    t.add_argument("--dropout", type=float, help="dropout rate (default: the recipe's)")
    t.add_argument("--t0", type=int, help="cosine restart period in epochs (default 10)")
    t.add_argument("--batch-size", type=int, help="utterances per batch (default: the recipe's, "
                   "32 for the LSTMs)")  # fmt: skip
    t.add_argument("--schedule", choices=SCHEDULES, help="default: the recipe's")
    t.add_argument("--loss", choices=LOSSES, help="default: the recipe's (ce)")
    add_training_options(t)
    add_execution(p.add_argument_group("execution (no effect on results unless said)"))
    o = p.add_argument_group("outputs")
    o.add_argument("--out", required=True, help="output directory (rerun the same command on "
                   "it to resume)")  # fmt: skip
    o.add_argument("--overwrite", action="store_true",
                   help="replace what --out holds (another run's results and checkpoints) "
                   "instead of refusing")  # fmt: skip
    o.add_argument("--checkpoint-every", type=int, default=10, help="epochs between checkpoints")
    o.add_argument("--no-progress", action="store_true", help="no progress bars")
    o.add_argument("--no-latency", action="store_true",
                   help="skip the latency measurements (JAX; onnxruntime with the export "
                   "extra) of the edge metrics")  # fmt: skip
    add_wandb(p.add_argument_group("tracking (Weights & Biases)"))
    configfile.add_flags(p)
    return flags.ranged(p)


def add_corpus(d) -> None:
    """Which corpus, where, its folds, and its own options and label map
    (`flags.add_corpus_options`)."""
    from reslstm_jax import corpora, protocols

    d.add_argument(
        "--corpus",
        choices=corpora.CORPORA,
        help="the corpus in --data-dir (`manifest`: a CSV, TSV or JSON Lines file listing "
        "your own, docs/data.md; `synthetic`: one generated with `python -m "
        "reslstm_jax.corpora.synthetic`); default: the embedded synthetic corpus",
    )
    d.add_argument("--data-dir", help="where the corpus is (for a manifest: the file)")
    d.add_argument(
        "--protocol", type=protocol_name, metavar="NAME",
        help=f"fold protocol: {', '.join(protocols.names())} (default: the corpus's, "
        "ravdess_paper for RAVDESS and synthetic; speaker_kfold and loso split any corpus)",
    )  # fmt: skip
    d.add_argument("--folds", type=int, metavar="K",
                   help="folds of --protocol speaker_kfold (default 5)")  # fmt: skip
    flags.add_corpus_options(d)


def add_execution(p) -> None:
    """How the models run: executor, matmul precision, devices, waves and shared
    initialisations. Devices and waves change no result, the executor only its float rounding
    (docs/performance.md); precision and shared initialisations change results."""
    from reslstm_jax.settings import MATMUL_PRECISIONS

    p.add_argument("--executor", default="auto", choices=["auto", "vmap", "map"],
                   help="how the folds x seeds models share the program: vmap (batched), "
                   "map (one after another) or auto (per backend); float rounding "
                   "only")  # fmt: skip
    p.add_argument("--matmul-precision", default="default", choices=MATMUL_PRECISIONS,
                   help="float32 matmul precision: default (the backend's: TF32 on recent "
                   "NVIDIA GPUs, float32 on the CPU), high or highest; --paper-compat always "
                   "runs highest; recorded in results.json; changes results")  # fmt: skip
    p.add_argument("--devices", type=int, default=None,
                   help="devices sharing the models (default: all; on a CPU one per core, "
                   "each single-threaded, at most one per model)")  # fmt: skip
    p.add_argument("--max-models-per-wave", type=int, default=None,
                   help="train at most this many of the folds x seeds models at a time (on a "
                   "GPU the waves are also sized to its memory)")  # fmt: skip
    p.add_argument(
        "--share-init-across-seeds",
        action="store_true",
        help="the reference's per-fold reseeding: seeds share initialisations (changes results)",
    )


def add_wandb(p) -> None:
    """The W&B flags (checked before any work: `checked_flags`, `open_outputs`)."""
    p.add_argument("--wandb", choices=("offline", "online", "disabled"), default="offline",
                   help="W&B run of this training (offline: files under OUT/wandb, uploaded "
                   "with `wandb sync`)")  # fmt: skip
    p.add_argument("--wandb-project", default="reslstm-jax", help="W&B project")
    p.add_argument("--wandb-entity", help="W&B entity (user or team; default: yours)")
    p.add_argument("--tags", nargs="+", default=[], metavar="TAG", help="W&B tags of the run")


def add_options(p) -> None:
    """The label set, the cross-corpus tests and audio augmentation (docs/protocols.md,
    docs/training.md)."""
    from reslstm_jax.corpora.labelsets import LABEL_SETS

    p.add_argument("--label-set", choices=LABEL_SETS, default="native",
                   help="native: the corpus's classes; shared4: neutral, happy, angry, sad, "
                   "which every corpus has (docs/protocols.md)")  # fmt: skip
    p.add_argument("--cross-test", action="append", default=[], metavar="CORPUS[=DIR]",
                   type=flags.corpus_dir,
                   help="after training, every fold x seed model also labels the whole of "
                   "this corpus (repeatable; synthetic needs no DIR); with --label-set shared4 "
                   "for corpora with other classes")  # fmt: skip
    p.add_argument("--cross-norm", choices=("train", "target"), default="train",
                   help="normalise a --cross-test corpus with each training fold's statistics "
                   "or with the target corpus's own (uses unlabelled target audio)")  # fmt: skip
    p.add_argument("--speed-perturb", type=float, nargs="+", default=[], metavar="FACTOR",
                   help="audio augmentation: a copy of every training utterance played at "
                   "each speed (e.g. 0.9 1.1: tempo and pitch, as Kaldi's), as extra training "
                   "rows; never of validation or test utterances (docs/training.md); not "
                   "1")  # fmt: skip
    p.add_argument("--noise-snr", type=float, nargs="+", default=[], metavar="DB",
                   help="audio augmentation: a copy of every training utterance with white "
                   "noise at each signal-to-noise ratio in dB (e.g. 20 10; float32 audio's "
                   "range)")  # fmt: skip


def add_training_options(p) -> None:
    """Class weights, early stopping and in-program augmentation (docs/training.md)."""
    from reslstm_jax.settings import CLASS_WEIGHTS

    p.add_argument("--class-weights", choices=CLASS_WEIGHTS,
                   help="loss weights: none (default) or balanced (from each fold's training "
                   "labels)")  # fmt: skip
    p.add_argument("--patience", type=int,
                   help="early stopping: freeze a model after N epochs without a better "
                   "validation UAR; training ends when every model is frozen (default 0: "
                   "off)")  # fmt: skip
    p.add_argument("--time-mask", type=int, metavar="FRAMES",
                   help="SpecAugment time masks up to FRAMES wide (default 0: off)")  # fmt: skip
    p.add_argument("--time-masks", type=int, metavar="N",
                   help="time masks per utterance (default 2)")  # fmt: skip
    p.add_argument("--feature-mask", type=int, metavar="WIDTH",
                   help="feature masks up to WIDTH features wide (default 0: off)")  # fmt: skip
    p.add_argument("--feature-masks", type=int, metavar="N",
                   help="feature masks per utterance (default 2)")  # fmt: skip
    p.add_argument("--noise-std", type=float,
                   help="Gaussian noise on the normalised features (default 0: off)")  # fmt: skip
    p.add_argument("--mixup-alpha", type=float,
                   help="mixup within each batch, Beta(alpha, alpha) (default 0: off)")  # fmt: skip


WANDB_FLAGS = {"project": "--wandb-project", "entity": "--wandb-entity", "tag": "--tags"}


def parse_json_object(flag: str, text: str | None) -> dict:
    """A JSON object flag ({} when not given); lists become tuples (hashable configs)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{flag} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{flag} must be a JSON object, got {text!r}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}


def parse_model_config(args) -> dict:
    """Model fields from the flags that were given (the model's defaults for the rest)."""
    config = parse_json_object("--model-config", args.model_config)
    for flag, field in (("hidden_size", "hidden_size"), ("num_att", "num_att"),
                        ("res_blocks", "res_blocks")):  # fmt: skip
        if getattr(args, flag) is not None:
            config[field] = getattr(args, flag)
    if args.paper_compat:
        config["paper_compat"] = True
    return config


def settings_from_args(args):
    """RunSettings from the flags: the family's recipe for every flag not given."""
    from reslstm_jax import families

    run_fields = {
        "seeds": tuple(range(args.seeds)), "epochs": args.epochs, "batch_size": args.batch_size,
        "learning_rate": args.learning_rate, "weight_decay": args.weight_decay,
        "dropout": args.dropout,
        "t0": args.t0, "executor": args.executor, "schedule": args.schedule, "loss": args.loss,
        "share_init_across_seeds": args.share_init_across_seeds,
        "matmul_precision": args.matmul_precision, "class_weights": args.class_weights,
        "patience": args.patience, "time_mask": args.time_mask, "time_masks": args.time_masks,
        "feature_mask": args.feature_mask, "feature_masks": args.feature_masks,
        "noise_std": args.noise_std, "mixup_alpha": args.mixup_alpha,
    }  # fmt: skip
    return families.settings_from(args.model, run_fields, model_config=parse_model_config(args))


def protocol_name(text: str) -> str:
    """A --protocol value: a registered protocol (`speaker_kfold<K>` included)."""
    import argparse

    from reslstm_jax import protocols

    try:
        protocols.get(text)
    except protocols.ProtocolError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def checked_flags(args) -> tuple:
    """(RunSettings, feature parameters) of the flags; ValueError naming the flag."""
    from reslstm_jax import speaker_folds, tracking

    settings = settings_from_args(args)
    args.protocol = speaker_folds.with_folds(args.protocol, args.folds)
    cross_tests(args)  # checked now: a typo fails before any work
    flags.label_map(args)
    feature_params = parse_json_object("--feature-params", args.feature_params)
    audio_variants(args)
    for what, name, problem in tracking.name_problems(args.wandb_project, args.wandb_entity,
                                                      args.tags):  # fmt: skip
        raise ValueError(f"{WANDB_FLAGS[what]} {name!r} {problem}")
    return settings, feature_params


def cross_tests(args) -> list[tuple[str, str | None]]:
    """(corpus, data dir or None) of each --cross-test; ValueError naming the flag."""
    from reslstm_jax import crosscorpus

    return [crosscorpus.parse_target(text) for text in args.cross_test]


def audio_variants(args) -> list[dict]:
    """The audio variants of --speed-perturb and --noise-snr; ValueError naming the flag."""
    from reslstm_jax import perturb

    try:
        return perturb.variants(args.speed_perturb, args.noise_snr)
    except perturb.VariantError as exc:
        flag = {"speed": "--speed-perturb", "snr_db": "--noise-snr"}[exc.key]
        raise ValueError(f"{flag} {exc.problem}") from None


def open_outputs(args, out):
    """(W&B tracker, None), or (None, the problem) when `out` cannot be written, holds another
    run (without --overwrite), or W&B online mode has no credentials: checked before any work."""
    from reslstm_jax import artifacts, tracking

    try:
        artifacts.check_output_dir(out)
        if not args.overwrite:
            artifacts.check_not_another_run(
                out, resumable=(out / artifacts.CHECKPOINTS_DIR).is_dir()
            )
    except artifacts.OutputError as exc:
        return None, f"--out {exc}{'' if args.overwrite else ' (or --overwrite)'}"
    try:
        return tracking.Tracker(args.wandb, out, project=args.wandb_project,
                                entity=args.wandb_entity, tags=args.tags), None  # fmt: skip
    except tracking.TrackingError as exc:
        return None, str(exc)


def main(argv=None) -> int:
    from reslstm_jax import (
        artifacts,
        checkpoint,
        crosscorpus,
        hardware,
        protocols,
        runlock,
        tracking,
    )
    from reslstm_jax.corpora.base import CorpusError
    from reslstm_jax.corpora.synthetic import SyntheticUnavailable
    from reslstm_jax.errors import cli_message
    from reslstm_jax.train.fit import check_resumable

    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = configfile.parse_args(parser, argv)
    try:
        settings, feature_params = checked_flags(args)
    except ValueError as exc:
        parser.error(str(exc))
    if configfile.print_if_asked(parser, args, **filled_values(args, settings)):
        return 0
    out = pathlib.Path(args.out)
    tracker, problem = open_outputs(args, out)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    # one process per run folder, from here to the end (`reslstm_jax.runlock`)
    held = contextlib.ExitStack()
    try:
        held.enter_context(runlock.hold(out))
    except runlock.FolderBusy as exc:
        print(f"error: --out {exc}", file=sys.stderr)
        return 2
    with held:
        try:
            dataset, targets = prepare_data(args, feature_params)
            print(protocols.format_card(dataset.card))
            if problem := configfile.data_problem(parser, argv, args, dataset.card):
                print(f"error: {problem}", file=sys.stderr)
                return 2
            if warning := spread_warning(args.seeds):  # once it will train, not before an error
                print(warning, file=sys.stderr)
            # JAX has not computed anything yet (data.prepare is NumPy and librosa): a CPU gets one
            # device per core (or --devices), never more than there are models to share them.
            n_models = len(dataset.folds.names) * args.seeds
            hardware.use_cpu_cores(min(args.devices or hardware.usable_cores(), n_models))
            if args.overwrite:  # the data is ready: now the old run's state may go
                artifacts.remove_run_state(out)
            # another run's checkpoints in OUT: refused before its config.yaml is replaced
            check_resumable(out, dataset, [settings])
            resolved = write_config(parser, argv, args, settings, dataset, out)
            with tracker:  # a run left open (an error, Ctrl-C) is closed as failed
                outcome = crosscorpus.fit_and_test(
                    dataset, settings, out, targets, args.cross_norm, latency=not args.no_latency,
                    checkpoint_every=args.checkpoint_every, tracker=tracker, config=resolved,
                    progress=not args.no_progress, devices=args.devices,
                    max_models_per_wave=args.max_models_per_wave,
                )  # fmt: skip
        except (
            CorpusError,
            protocols.ProtocolError,
            checkpoint.CheckpointMismatch,
            SyntheticUnavailable,
            tracking.TrackingError,
            ValueError,  # (crosscorpus.CrossCorpusError is one)
        ) as exc:  # fmt: skip  (ValueError: flag combinations data.prepare refuses)
            print(f"error: {cli_message(exc)}", file=sys.stderr)
            return 2
        print_outcome(outcome, dataset, out, args.wandb)
        return 0


def prepare_data(args, feature_params: dict) -> tuple:
    """(the run's dataset, its cross-corpus targets) from the flags (`data.prepare`, the
    family's recipe for the features not given); the files whose features failed printed."""
    from reslstm_jax import crosscorpus, data, families

    recipe = families.get(args.model).recipe
    dataset = data.prepare(
        args.corpus, args.data_dir, protocol=args.protocol,
        extractor=args.features or recipe.features, extractor_params=feature_params,
        normalisation=args.normalisation or recipe.normalisation,
        cache_dir=args.cache_dir, workers=args.feature_workers, progress=not args.no_progress,
        label_set=args.label_set, audio_variants=audio_variants(args),
        label_map=flags.label_map(args), corpus_options=flags.corpus_options(args),
    )  # fmt: skip
    if dataset.extraction.failed:
        print(dataset.extraction.summary(), file=sys.stderr)
    targets = [crosscorpus.load_target(corpus, where, dataset.card, cache_dir=args.cache_dir,
                                       workers=args.feature_workers,
                                       progress=not args.no_progress)
               for corpus, where in cross_tests(args)]  # fmt: skip
    return dataset, targets


def print_outcome(outcome: dict, dataset, out, wandb: str) -> None:
    """The run's summary lines, edge figures, cross-corpus results, skipped files and where
    everything was written."""
    from reslstm_jax import artifacts, crosscorpus, edge
    from reslstm_jax.train.results import summary_lines

    print("\n".join(summary_lines(outcome)))
    print(f"  edge: {edge.summary(outcome['edge'])}")
    for line in crosscorpus.summary_lines(outcome.get("cross_test", [])):
        print(f"  {line}")
    skipped = dataset.manifest.skipped_line(out / artifacts.SKIPPED_FILE)
    if skipped:
        print(skipped)
    print(f"wrote {out / 'results.json'}, {out / 'card.json'}, best checkpoints in {out / 'best'}")
    if wandb == "offline":
        print(
            f"W&B offline run in {out / 'wandb'} (upload: wandb sync {out / 'wandb'}/offline-run-*)"
        )


def console() -> int:
    """The console script's entry point (pyproject.toml): `main` with Ctrl-C and SIGTERM
    turned into one line and a resumable state (`reslstm_jax.interrupts`)."""
    from reslstm_jax import interrupts

    return interrupts.run(main)


if __name__ == "__main__":
    sys.exit(console())
