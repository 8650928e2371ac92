"""`python -m sweeps.run --space NAME`: the sweep launcher.

It checks every flag, opens (or creates) the study before any worker starts, enqueues grid
points once, prepares the data once (synthetic corpus and feature cache), runs the workers
(in-process for one, spawned `python -m sweeps.run` processes for several), then writes the
Pareto table (CSV), the Pareto plot (PNG) and prints the front.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import shlex
import subprocess
import sys
import time

from reslstm_jax import configfile, flags  # no JAX: --help and a bad config stay fast

BUDGETS = {
    # epochs, seeds; quick: sized for a laptop CPU (about 6 minutes for hidden_sizes on 2 cores)
    "quick": {"epochs": 10, "seeds": 1, "trials": 8},
    "full": {"epochs": 100, "seeds": 1, "trials": 100},  # the paper's epochs
}
WANDB_MODES = ("offline", "online", "disabled")
WANDB_FLAGS = {"project": "--wandb-project", "entity": "--wandb-entity", "tag": "--tags"}


def parser() -> argparse.ArgumentParser:
    from reslstm_jax.plots import PARETO_X
    from sweeps import spaces

    p = argparse.ArgumentParser(
        prog="python -m sweeps.run",
        description="Optuna sweep over a search space; every trial trains all folds x seeds "
        "of the protocol in one compiled program (trials of one static shape share it). "
        "Budgets: quick = 10 epochs, 1 seed, all folds (about 6 minutes for hidden_sizes on a "
        "2-core CPU); full = 100 epochs, all folds. Without --corpus: the embedded synthetic "
        "corpus (synthetic speech; its numbers are not emotion-recognition results).",
        epilog=flags.WORDS,
        formatter_class=flags.HelpFormatter,
    )
    d = p.add_argument_group("data")
    d.add_argument("--corpus", help="the corpus in --data-dir (default: the embedded synthetic "
                   "corpus, `synthetic`)")  # fmt: skip
    d.add_argument("--data-dir", help="where the corpus is")
    d.add_argument("--protocol", help="fold protocol (default: the corpus's)")
    d.add_argument("--folds", type=int, metavar="K",
                   help="folds of --protocol speaker_kfold (default 5)")  # fmt: skip
    flags.add_corpus_options(d)
    d.add_argument("--cross-test", action="append", default=[], metavar="CORPUS[=DIR]",
                   type=flags.corpus_dir,
                   help="after training, every trial's models also label the whole of this "
                   "corpus (repeatable; docs/protocols.md): cross_<corpus>_uar in its results, "
                   "Optuna attributes and W&B summary; the objective stays in-corpus")  # fmt: skip
    d.add_argument("--cache-dir", help="feature cache (default ~/.cache/reslstm_jax/features)")
    s = p.add_argument_group("search")
    s.add_argument("--space", required=True,
                   help=f"a shipped space ({', '.join(spaces.names())}) or a space file "
                   "(PATH.yaml; docs/sweeps.md)")  # fmt: skip
    s.add_argument("--budget", choices=list(BUDGETS), default="quick", type=budget_name,
                   help="quick: 10 epochs, 1 seed, 8 trials of a sampled space; full: 100 "
                   "epochs, 1 seed, 100 trials")  # fmt: skip
    s.add_argument("--trials", type=int, help="trials to finish (grid spaces: at most the grid)")
    s.add_argument("--epochs", type=int, help="override the budget's epochs")
    s.add_argument("--seeds", type=int, help="override the budget's seeds per trial")
    s.add_argument("--objective", choices=["val", "test"], default="val",
                   help="val or test (reproduces the paper's tuning; leaky)")  # fmt: skip
    s.add_argument("--sampler-seed", type=int, default=0,
                   help="Optuna sampler seed (worker r uses seed + r)")  # fmt: skip
    flags.deprecated(s, "--seed", "--sampler-seed", type=int)
    s.add_argument("--study", help="study name (default: <space>-<corpus>-<protocol>-<budget>)")
    s.add_argument("--storage", help="sqlite:///PATH or postgresql+psycopg://... (default: a "
                   "journal file in --out; or $RESLSTM_STORAGE)")  # fmt: skip
    add_execution(p.add_argument_group("execution (no effect on results)"))
    o = p.add_argument_group("outputs")
    o.add_argument("--out", default="runs", help="where studies are kept: <out>/<study>/ and "
                   "the journal storage")  # fmt: skip
    flags.deprecated(o, "--workdir", "--out")
    o.add_argument("--no-progress", action="store_true", help="no progress bars")
    o.add_argument("--no-latency", action="store_true",
                   help="skip the latency measurements and the ONNX figures (edge "
                   "metrics)")  # fmt: skip
    o.add_argument("--pareto-x", choices=PARETO_X, default="params",
                   help="x axis of pareto.png: params, model_ms_per_s (the model's own "
                   "latency), model_rel (relative to the reference model: compares machines), "
                   "or the ONNX figures onnx_kib, ort_ms_per_s, ort_model_ms_per_s (the export "
                   "extra)")  # fmt: skip
    t = p.add_argument_group("tracking (Weights & Biases)")
    t.add_argument(
        "--wandb",
        choices=WANDB_MODES,
        default="offline",
        help="W&B runs of the study (offline: files under <out>/<study>/wandb)",
    )
    t.add_argument("--wandb-project", default="reslstm-jax", help="W&B project")
    t.add_argument("--wandb-entity", help="W&B entity (user or team; default: yours)")
    t.add_argument("--tags", nargs="+", default=[], metavar="TAG",
                   help="W&B tags of every run of the study")  # fmt: skip
    configfile.add_flags(p)
    return flags.ranged(p)


def add_execution(e) -> None:
    """Where and how the trials run: workers, groups, waves, heartbeats, SLURM."""
    e.add_argument("--workers", default="auto",
                   help="worker processes on this machine: a number, or auto: one per "
                   "visible NVIDIA GPU, each seeing only its own (CUDA_VISIBLE_DEVICES), else "
                   "one per core")  # fmt: skip
    e.add_argument(
        "--group-size",
        type=int,
        help="trials asked per worker turn and trained "
        "together when they share a static shape (default 1 for grids, 4 otherwise)",
    )
    e.add_argument("--max-models-per-wave", type=int,
                   help="train at most this many of a group's models (trials x folds x seeds) "
                   "at a time; on a GPU the waves are also sized to its memory")  # fmt: skip
    e.add_argument("--heartbeat-seconds", type=float, default=10.0,
                   help="how often a worker stamps its running trials, in seconds")  # fmt: skip
    e.add_argument("--grace-seconds", type=float, default=60.0,
                   help="a running trial whose stamp is older is failed and retried, in "
                   "seconds")  # fmt: skip
    e.add_argument("--max-retries", type=int, default=2, help="retries of a dead trial")
    e.add_argument("--launcher", choices=["local", "slurm"], default="local",
                   help="local: worker processes on this machine; slurm: --workers "
                   "SLURM jobs through submitit (needs the cluster extra and a PostgreSQL "
                   "--storage), the launcher returns their job ids")  # fmt: skip
    e.add_argument("--slurm-partition", help="SLURM partition of the worker jobs")
    e.add_argument("--slurm-gpus-per-worker", type=int, default=1, help="GPUs per worker job")
    e.add_argument("--slurm-cpus-per-worker", type=int, default=4, help="CPUs per worker job")
    e.add_argument("--slurm-time", default="4:00:00",
                   help="time limit of a worker job (SLURM format)")  # fmt: skip
    # submitit's local executor instead of sbatch: tests, one machine
    e.add_argument("--slurm-cluster", choices=["slurm", "local"], default="slurm",
                   help=argparse.SUPPRESS)  # fmt: skip
    e.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    # a spawned worker's SweepConfig as JSON ("-": on its standard input): internal
    e.add_argument("--worker-config", help=argparse.SUPPRESS)


def budget_name(value: str) -> str:
    """A --budget value; `paper`, its older name for `full`, with a deprecation line."""
    if value == "paper":
        print("warning: --budget paper is deprecated; use --budget full", file=sys.stderr)
        return "full"
    return value


def check_data(args, p) -> None:
    """The data flags: a known corpus with its data where the corpus reads it (a manifest's
    file, another corpus's folder); argparse's one-line error otherwise."""
    from reslstm_jax import corpora

    if args.corpus is not None and args.corpus not in corpora.CORPORA:
        p.error(f"--corpus: unknown {args.corpus!r}; corpora: {', '.join(corpora.CORPORA)}")
    if args.corpus and not args.data_dir:
        p.error(f"--corpus {args.corpus} needs --data-dir")
    if args.data_dir and not args.corpus:
        p.error("--data-dir needs --corpus (which corpus is in that directory?)")
    where = pathlib.Path(args.data_dir).expanduser() if args.data_dir else None
    if where is not None and not (where.is_file() if args.corpus == "manifest" else where.is_dir()):
        kind = "a manifest file" if args.corpus == "manifest" else "a directory"
        p.error(f"--data-dir {args.data_dir} does not exist or is not {kind}")


def corpus_and_protocol(args, p) -> tuple[str, str]:
    """(the corpus's name in the study name, the protocol the sweep runs): `--folds` applied,
    the corpus's default, a manifest's own name and default (`given` with folds)."""
    from reslstm_jax import corpora, speaker_folds

    try:
        args.protocol = speaker_folds.with_folds(args.protocol, args.folds)
    except ValueError as exc:
        p.error(str(exc))
    corpus = args.corpus or "synthetic"
    protocol = args.protocol or corpora.default_protocol(corpus)
    if corpus in ("manifest", "emobox"):  # their names and default protocols are their own
        try:
            found = corpora.load(corpus, args.data_dir, **flags.corpus_options(args))
        except corpora.CorpusError as exc:
            p.error(str(exc))
        protocol = args.protocol or corpora.default_protocol(corpus, found)
        corpus = found.corpus
    return corpus, protocol


def study_name(args, space: str, corpus: str, protocol: str) -> str:
    """The study a sweep runs: `--study`, or `<space>-<corpus>-<protocol>-<budget>` (the
    names `experiments.report --study` takes; `corpus_and_protocol` gives the middle two)."""
    return args.study or f"{space}-{corpus}-{protocol}-{args.budget}"


def build_config(args, p) -> tuple:
    from reslstm_jax import tracking
    from sweeps import spaces, storage
    from sweeps.engine import SweepConfig

    try:
        space = spaces.load(args.space)
    except spaces.SpaceError as exc:
        p.error(str(exc))
    args.space = space.source  # a file by its absolute path: config.yaml and workers find it
    budget = BUDGETS[args.budget]
    trials = args.trials if args.trials is not None else (
        len(space.grid) if space.grid is not None else budget["trials"])  # fmt: skip
    if space.grid is not None:
        trials = min(trials, len(space.grid))
    epochs = args.epochs if args.epochs is not None else budget["epochs"]
    seeds = args.seeds if args.seeds is not None else budget["seeds"]
    if args.workers != "auto":
        given = args.workers
        args.workers = int(given) if given.isdigit() else 0
        if args.workers < 1:
            p.error(f"--workers must be a number >= 1 or auto, got {given}")
    if args.grace_seconds <= args.heartbeat_seconds:  # (each > 0: flags.RANGES)
        p.error("--grace-seconds must exceed --heartbeat-seconds")
    for what, name, problem in tracking.name_problems(args.wandb_project, args.wandb_entity,
                                                      args.tags):  # fmt: skip
        p.error(f"{WANDB_FLAGS[what]} {name!r} {problem}")
    url = storage.storage_url_from(args.storage)
    try:
        storage.check_url(url, len(worker_environments(args, trials)))
    except storage.StorageError as exc:
        p.error(str(exc))
    if args.launcher == "slurm":
        try:
            args.slurm = slurm_settings(args, url)
        except ValueError as exc:  # cluster.ClusterError
            p.error(str(exc))
    check_data(args, p)
    from reslstm_jax import artifacts, crosscorpus

    try:
        artifacts.check_output_dir(args.out)
        cross_test = tuple(crosscorpus.parse_target(text) for text in args.cross_test)
    except artifacts.OutputError as exc:
        p.error(f"--out {exc}")
    except crosscorpus.CrossCorpusError as exc:
        p.error(str(exc))
    try:
        label_map = flags.label_map(args)
    except ValueError as exc:
        p.error(str(exc))
    corpus, protocol = corpus_and_protocol(args, p)
    study = study_name(args, space.name, corpus, protocol)
    config = SweepConfig(
        space=space.source, study=study, trials=trials, epochs=epochs, seeds=seeds,
        objective=args.objective, corpus=args.corpus, data_dir=args.data_dir,
        protocol=protocol, storage=url, workdir=args.out, wandb=args.wandb,
        sampler_seed=args.sampler_seed,
        group_size=args.group_size or (1 if space.grid is not None else 4),
        heartbeat_seconds=args.heartbeat_seconds, grace_seconds=args.grace_seconds,
        max_retries=args.max_retries, cache_dir=args.cache_dir, progress=not args.no_progress,
        latency=not args.no_latency, budget=args.budget, wandb_project=args.wandb_project,
        wandb_entity=args.wandb_entity, tags=tuple(args.tags),
        max_models_per_wave=args.max_models_per_wave, cross_test=cross_test,
        label_map=label_map, corpus_options=flags.corpus_options(args) or None,
    )  # fmt: skip
    return space, config


# How often the launcher reads the study while workers run (its W&B study run follows it).
POLL_SECONDS = 5.0


def wait_for(processes: list[subprocess.Popen], study, record) -> list[int]:
    """Wait for the worker processes, logging the study run as trials finish; on an interrupt
    the workers are stopped first (`stop_workers`): none is left behind."""
    from reslstm_jax import interrupts

    with interrupts.cleanup_on_interrupt(lambda: stop_workers(processes)):
        logged = time.monotonic()
        while any(proc.poll() is None for proc in processes):
            time.sleep(1.0)
            if time.monotonic() - logged >= POLL_SECONDS:
                record.update(study)
                logged = time.monotonic()
    return [proc.wait() for proc in processes]


# A worker leaves within interrupts.GRACE_SECONDS of SIGTERM (giving back its trials first).
STOP_SECONDS = 6.0


def stop_workers(processes: list[subprocess.Popen]) -> None:
    """SIGTERM every running worker, wait up to STOP_SECONDS for them, then SIGKILL the rest."""
    import signal

    running = [p for p in processes if p.poll() is None]
    for proc in running:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    for proc in running:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def worker_environments(args, trials: int) -> list[dict]:
    """The environment of each local worker (`hardware.worker_environments`: one per visible
    GPU, each seeing its own, or one per core, single-threaded), at most one per trial."""
    from reslstm_jax import hardware

    count = None if args.workers == "auto" else args.workers
    envs = hardware.worker_environments(count, hardware.visible_gpus(), dict(os.environ))
    return envs[: max(1, trials)]


def slurm_settings(args, storage_url: str | None):
    """`cluster.SlurmSettings` of the --slurm-* flags, checked (`cluster.ClusterError`)."""
    from sweeps import cluster

    settings = cluster.SlurmSettings(
        partition=args.slurm_partition, gpus_per_worker=args.slurm_gpus_per_worker,
        cpus_per_worker=args.slurm_cpus_per_worker, minutes=cluster.minutes_from(args.slurm_time),
        cluster=args.slurm_cluster,
    )  # fmt: skip
    cluster.check(settings, storage_url, args.workers)
    return settings


def submit_jobs(config, args) -> None:
    """--launcher slurm: the workers as SLURM jobs (`sweeps.cluster`), their ids printed."""
    from sweeps import cluster

    folder = config.study_dir / "slurm"
    ids = cluster.submit(config, args.workers, args.slurm, folder)
    print(f"submitted {len(ids)} worker job(s): {' '.join(ids)} (logs in {folder})")
    print(f"when they are done: {report_command(config)}")


def report_command(config) -> str:
    """The `experiments.report` command line that tables this sweep's study. A storage given
    by --storage is named, not printed (its URL may hold a password); one from
    $RESLSTM_STORAGE the report reads itself."""
    from sweeps import storage

    words = ["python", "-m", "experiments.report", "--study", config.study,
             "--sweep-out", str(config.workdir)]  # fmt: skip
    flag_given = config.storage and config.storage != os.environ.get(storage.ENV_STORAGE)
    return shlex.join(words) + (" --storage <this sweep's --storage>" if flag_given else "")


def start_workers(config, environments: list[dict]) -> list[subprocess.Popen]:
    """Spawn one worker process per environment. Each gets its configuration on its standard
    input, never on its command line: the storage URL may hold a password, and any local user
    can read a process's arguments (`ps`, /proc/<pid>/cmdline).

    Workers sharing this machine do not time their models: one would time while another
    trains on the other cores. The launcher times every trial's model once they have all
    finished (`measure_deferred`)."""
    payload = json.dumps({**dataclasses.asdict(config), "latency": False})
    processes = []
    for rank, env in enumerate(environments):
        proc = subprocess.Popen(
            [sys.executable, "-m", "sweeps.run", "--space", config.space, "--worker", str(rank),
             "--worker-config", "-"],
            env=env, stdin=subprocess.PIPE, text=True,
        )  # fmt: skip
        proc.stdin.write(payload)
        proc.stdin.close()
        processes.append(proc)
    return processes


def measure_deferred(config, study, datasets) -> None:
    """Time the models of the study's completed trials that have no latency yet, all in one
    measuring process (`reslstm_jax.latency`) while no worker runs: each distinct
    architecture once. The figures go to the study's attributes (`sweeps.study.DEFERRED`:
    a finished trial's own attributes cannot change) and into each trial's results file,
    with the int8 graphs' test UAR where an int8 size is measured (`datasets`: the trials'
    data, from the feature cache)."""
    import optuna

    from reslstm_jax import artifacts, latency, train
    from sweeps import storage
    from sweeps import study as study_view

    pending = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        key = study_view.DEFERRED.format(number=t.number)
        if "model_ms_per_s" in t.user_attrs or key in study.user_attrs:
            continue
        path = storage.results_path(config.study_dir, t.user_attrs.get("results", ""))
        if not path.is_file():
            continue
        results = artifacts.read_json(path)
        arch = train.architecture(results, results["card"])
        if arch is not None:
            pending.append((key, path, results, arch))
    if not pending:
        return
    distinct = {arch.key(): arch for *_, arch in pending}  # each architecture once
    print(f"timing {len(distinct)} model(s) of {len(pending)} trial(s), no worker running "
          "(reslstm_jax.latency)")  # fmt: skip
    try:
        figures = latency.measure(list(distinct.values()))
    except latency.LatencyError as exc:  # the results stand without their latencies
        print(f"warning: {exc}; the trials keep their results without latencies",
              file=sys.stderr)  # fmt: skip
        return
    from reslstm_jax.export import measure

    position = {arch_key: i for i, arch_key in enumerate(distinct)}
    for key, path, results, arch in pending:
        fields = latency.edge_fields(figures, position[arch.key()])
        trial = results["trial"]  # its dataset: the launcher prepared it before the workers
        fields.update(measure.int8_uar_beside(
            fields, config.study_dir / "groups" / trial["group"],
            datasets.for_trial(trial["params"]), results,
            configuration=trial["group"].split("-").index(str(trial["number"]))))  # fmt: skip
        study.set_user_attr(key, fields)
        results["edge"] = {**(results.get("edge") or {}), **fields}
        artifacts.write_json(path, results)


def budget_values(args, config) -> dict:
    """What the budget and the space gave to the flags left unset (for the resolved config)."""
    return {"trials": config.trials, "epochs": config.epochs, "seeds": config.seeds,
            "study": config.study, "group_size": config.group_size,
            "protocol": config.protocol}  # fmt: skip


def write_config(p, argv, args, config, card: dict) -> None:
    """<study>/config.yaml: the sweep's resolved settings, its command line, and the data's
    identity (`python -m sweeps.run --config <study>/config.yaml` runs the study again)."""
    identity = configfile.data_identity(card, args.data_dir)
    resolved = configfile.resolved(p, args, **budget_values(args, config))
    for internal in ("worker", "worker_config"):
        resolved.pop(internal)
    configfile.write(config.study_dir / configfile.CONFIG_NAME, resolved, data=identity,
                     command=["python", "-m", "sweeps.run", *argv])  # fmt: skip


def report_skipped(config, prepared) -> None:
    """Every file the sweep's data does not use (over its feature sets), listed with its reason
    in `<study>/skipped.csv`, and one line saying how many and why."""
    from reslstm_jax import artifacts

    skipped = {(s.path, s.reason): s for d in prepared for s in d.manifest.skipped}
    where = config.study_dir / artifacts.SKIPPED_FILE
    artifacts.write_skipped(where, skipped.values())
    manifest = dataclasses.replace(prepared[0].manifest, skipped=list(skipped.values()))
    line = manifest.skipped_line(where)
    if line:
        print(line)


def finish(config, space, study, x: str = "params") -> None:
    """Pareto CSV and PNG (UAR against `x`) under the study directory; the front printed."""
    from sweeps import pareto
    from sweeps import study as study_view

    rows = study_view.trial_rows(study, space)
    if not rows:
        print("no completed trial yet")
        return
    front = study_view.front_numbers(study, space)
    config.study_dir.mkdir(parents=True, exist_ok=True)
    pareto.write_csv(config.study_dir / "pareto.csv", rows, front)
    title = (f"{config.study}: {len(rows)} trials, {config.epochs} epochs, "
             f"{config.seeds} seed(s)")  # fmt: skip
    if x != "params" and not any(r.get(x) is not None for r in rows):
        print(f"note: no trial has {x} (the export extra is not installed, or --no-latency); "
              "pareto.png is against params")  # fmt: skip
        x = "params"
    pareto.plot(config.study_dir / "pareto.png", rows, front, title, config.objective, x=x)
    print(pareto.table(rows, front, config.objective))
    print(f"wrote {config.study_dir / 'pareto.csv'} and {config.study_dir / 'pareto.png'}")


def data_points(space, trials: int) -> list[dict]:
    """A full parameter set per dataset the run's trials may read: each family's, and each
    grid point's data choices (`families.data_choices`) among the first `trials`. A sampled
    space's data choices are prepared by the worker that draws them (from the warm cache of
    the librosa functions the families' datasets compiled here)."""
    points = [space.complete({"model": family}) for family in space.families]
    if space.grid is not None:
        points += [space.complete(dict(point)) for point in space.grid[:trials]]
    return points


def refusal_before_work(config) -> str | None:
    """Why this sweep cannot train, found before the study, the features and config.yaml are
    made (online W&B without a login; no corpus and no synthetic extra), or None."""
    from reslstm_jax import tracking
    from reslstm_jax.corpora import synthetic

    try:
        tracking.require_credentials(config.wandb)
        if config.corpus is None:
            synthetic.require_available(synthetic.default_dir())
    except (tracking.TrackingError, synthetic.SyntheticUnavailable) as exc:
        return str(exc)
    return None


def main(argv=None) -> int:
    import optuna

    from reslstm_jax import hardware, interrupts, protocols
    from reslstm_jax.corpora.base import CorpusError
    from sweeps import engine, storage
    from sweeps import study as study_view

    p = parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = configfile.parse_args(p, argv)
    hardware.single_threaded_xla()  # an in-process worker trains as a spawned one does
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.worker is not None:  # a spawned worker process: its configuration on stdin
        text = sys.stdin.read() if args.worker_config == "-" else args.worker_config
        config = engine.SweepConfig(**json.loads(text))
        engine.run_worker(config, args.worker)
        return 0
    space, config = build_config(args, p)
    if configfile.print_if_asked(p, args, **budget_values(args, config)):
        return 0
    if problem := refusal_before_work(config):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        if config.storage is None:  # before any worker appends to it: a torn last line goes
            warning = storage.check_journal(
                storage.journal_path(pathlib.Path(config.workdir), config.study), repair=True
            )
            if warning:
                print(warning, file=sys.stderr)
        store = storage.open_storage(config.storage, pathlib.Path(config.workdir), config.study)
        study = storage.create_or_load(store, config.study, space, config.sampler_seed)
    except storage.StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if space.grid is not None:
        # Only the points this run may train, each once: a retry of a dead trial is queued
        # behind them (Optuna pops the oldest waiting trial), so queueing the whole grid would
        # let --trials finish without the retried point. A later run with more --trials
        # queues the next points.
        for point in space.grid[: config.trials]:
            study.enqueue_trial(point, skip_if_exists=True)
    where = storage.describe(config.storage, config.study_dir.parent, config.study)
    print(f"study {config.study} on {where}: "
          f"space {space.name} ({space.description}); objective {config.objective}"
          f"{' [LEAKY]' if config.objective == 'test' else ''}; {config.trials} trials x "
          f"{config.epochs} epochs x {config.seeds} seed(s); W&B {config.wandb}")  # fmt: skip
    datasets = engine.Datasets(config)
    try:
        # every dataset the space needs, extracted once here (the workers read the cache)
        prepared = [datasets.for_trial(full) for full in data_points(space, config.trials)]
    except (CorpusError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(protocols.format_card(prepared[0].card))
    if problem := configfile.data_problem(p, argv, args, prepared[0].card):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    write_config(p, argv, args, config, prepared[0].card)
    report_skipped(config, prepared)
    environments = worker_environments(args, config.trials)
    workers = len(environments)
    if args.launcher == "slurm":
        submit_jobs(config, args)
        return 0
    record = study_view.StudyRecord(config, space)  # the study's one W&B study run
    with interrupts.cleanup_on_interrupt(record.close):
        try:
            if workers == 1:
                engine.run_worker(config, 0, datasets, on_group=record.update)
            else:
                codes = wait_for(start_workers(config, environments), study, record)
                if any(codes):
                    print(f"error: worker exit codes {codes}", file=sys.stderr)
                if config.latency:
                    done = optuna.load_study(study_name=config.study, storage=store)
                    measure_deferred(config, done, datasets)
            study = optuna.load_study(study_name=config.study, storage=store)
            record.update(study)
        finally:
            record.close()
    finish(config, space, study, args.pareto_x)
    return 0


def console() -> int:
    """The console script's entry point (pyproject.toml): `main` with Ctrl-C and SIGTERM
    turned into one line and a resumable state (`reslstm_jax.interrupts`)."""
    from reslstm_jax import interrupts

    return interrupts.run(main)


if __name__ == "__main__":
    sys.exit(console())
