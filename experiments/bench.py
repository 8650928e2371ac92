"""Training throughput of the engine, and the wall time of one paper-protocol trial.

```bash
python -m experiments.bench [--models 1 5 10 50] [--executors map vmap] [--epochs 2]
                            [--layouts 1x1 1x2 2x1] [--torch-python /tmp/torchvenv/bin/python]
                            [--out FILE]
```

Data: RAVDESS-shaped random features (1440 utterances, 46 features, lengths 60-125 frames
padded to T = 128, 8 classes), ResLSTM-SA h64, batch 32; every model trains on 1020 utterances
and validates on 120 after every epoch (as in `ravdess_paper`), so the time includes the
per-epoch validation the paper protocol needs.

* Throughput = training utterances (models x 1020 x epochs) / wall seconds of the timed epochs,
  after a warm-up run of the same (compiled) program. A layout PxD splits the models over P
  processes started together (each pinned to its own cores, XLA single-threaded) with D JAX
  devices each (`TrainConfig.devices`; 1x2 = what `python -m reslstm_jax.train` does on a
  2-core CPU); the machine's throughput is the total over the slowest process's time.
* Paper trial = 5 folds x 100 epochs: compile time and the per-epoch time of a 5-model run are
  measured; 100 epochs are extrapolated linearly from the measured epochs (never from less).
* `--torch-python PATH`: first runs the PyTorch reference, `experiments/torch_reference.py` (or
  `--torch-script`), with that interpreter (a throwaway venv with torch and numpy only; torch
  is never a project dependency, docs/install.md) and prints every rate as a multiple of its
  utterances per second: the ratio is taken within one session, on one machine.
* Instead of the above: `--families` (the seed models at their recipes), `--onnx` (export sizes
  and onnxruntime latency, docs/export.md), `--options` (what class weights, early stopping
  and each augmentation cost in throughput, docs/training.md), `--cli` (the train CLI's rate),
  `--latency-repeatability` (two runs of one small sweep: each model's latency compared,
  docs/performance.md), `--suite-compiles` (which test of the suite compiles what, and how long
  JAX traced, lowered and compiled in all).

Expected runtime: 5-10 minutes on a 2-core CPU with the defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import platform
import re
import subprocess
import sys
import time

from reslstm_jax import flags, hardware

N_UTTERANCES, N_TRAIN, N_VAL, N_FEATURES, FRAMES, CLASSES = 1440, 1020, 120, 46, 128, 8
REPO = pathlib.Path(__file__).resolve().parents[1]
# run by path with another interpreter (`--torch-python`), never imported here
DEFAULT_TORCH_SCRIPT = REPO / "experiments" / "torch_reference.py"


def random_problem(models: int, options: dict | None = None, train_copies: int = 1) -> tuple:
    """The benchmark's data for `models` models: (Shared, ModelData, HParams, keys) of
    RAVDESS-shaped random features (module docstring); `options` (RunSettings fields: class
    weights, patience, augmentation) set on every model as the fit loop sets them;
    `train_copies` > 1: every training row that many times, as audio variants add rows."""
    import types

    import jax.numpy as jnp
    import numpy as np

    from reslstm_jax import train
    from reslstm_jax.train.layout import ModelLayout

    rng = np.random.default_rng(0)
    lengths = rng.integers(60, 126, N_UTTERANCES).astype(np.int32)
    x = rng.standard_normal((N_UTTERANCES, FRAMES, N_FEATURES)).astype(np.float32)
    x *= np.arange(FRAMES)[None, :, None] < lengths[:, None, None]
    labels = rng.integers(0, CLASSES, N_UTTERANCES).astype(np.int32)
    shared = train.Shared(jnp.asarray(x), jnp.asarray(lengths), jnp.asarray(labels))
    rows = [rng.permutation(N_UTTERANCES) for _ in range(models)]

    def part(a, b):
        return jnp.asarray(np.stack([r[a:b] for r in rows]).astype(np.int32))

    def ones(n):
        return jnp.ones((models, n), bool)

    data = train.ModelData(
        train=jnp.tile(part(0, N_TRAIN), (1, train_copies)),
        train_mask=ones(N_TRAIN * train_copies),
        val=part(N_TRAIN, N_TRAIN + N_VAL), val_mask=ones(N_VAL),
        test=part(N_TRAIN + N_VAL, N_UTTERANCES), test_mask=ones(N_UTTERANCES - N_TRAIN - N_VAL),
        mean=jnp.zeros((models, N_FEATURES)), std=jnp.ones((models, N_FEATURES)),
    )  # fmt: skip
    layout = ModelLayout(1, tuple(range(models)), ("all",))
    folds = types.SimpleNamespace(train=np.arange(N_TRAIN)[None],
                                  train_mask=np.ones((1, N_TRAIN), bool))  # fmt: skip
    settings = train.RunSettings(learning_rate=1e-3, weight_decay=1e-3, dropout=0.2, t0=10,
                                 **(options or {}))  # fmt: skip
    hparams = layout.hparams([settings], folds, labels, CLASSES)
    keys = jnp.stack([train.model_key(0, m) for m in range(models)])
    return shared, data, hparams, keys


def measure(
    models: int,
    executor: str,
    epochs: int,
    hidden: int,
    batch: int,
    devices: int = 1,
    row_block: int | None = 8,
    device_split: str = "auto",
) -> dict:
    """Train `models` models for `epochs` epochs (after a warm-up) in this process, the models
    split over `devices` devices (`reslstm_jax.hardware.use_cpu_cores` must have made them) by
    `device_split` (`TrainConfig.device_split`); `row_block` is the model's packing setting
    (None: every row runs all T steps)."""
    import jax

    import reslstm_jax as rj
    from reslstm_jax import train

    shared, data, hparams, keys = random_problem(models)
    model = rj.models.get(
        "reslstm_sa", hidden_size=hidden, input_size=N_FEATURES, row_block=row_block
    )
    config = train.TrainConfig(
        model=model, batch_size=batch, executor=executor,
        devices=hardware.model_devices(models, devices), device_split=device_split,
    )  # fmt: skip
    program = train.make_train(config)
    start = time.perf_counter()
    state = program.init(keys, hparams)
    state, _ = program.run(state, hparams, data, shared, epochs=epochs)  # compile + warm-up
    jax.block_until_ready(state)
    first = time.perf_counter() - start
    start = time.perf_counter()
    state, _ = program.run(state, hparams, data, shared, epochs=epochs)
    jax.block_until_ready(state)
    seconds = time.perf_counter() - start
    return {
        "models": models, "executor": executor, "epochs": epochs, "seconds": seconds,
        "devices": config.devices, "row_block": row_block,
        "device_split": train.resolve_device_split(device_split) if config.devices > 1 else None,
        "compile_seconds": max(0.0, first - seconds),
        "utt_per_s": models * N_TRAIN * epochs / seconds,
        "seconds_per_model_epoch": seconds / (models * epochs),
    }  # fmt: skip


# `--options`: what each training option costs (docs/training.md); patience never freezes a
# model in the few measured epochs, so its row is the cost of the check alone
OPTION_SETS = [
    ("none", {}),
    ("class_weights balanced", {"class_weights": "balanced"}),
    ("patience 20", {"patience": 20}),
    ("time masks 2 x 20 frames", {"time_mask": 20}),
    ("feature masks 2 x 8", {"feature_mask": 8}),
    ("noise_std 0.1", {"noise_std": 0.1}),
    ("mixup_alpha 0.4", {"mixup_alpha": 0.4}),
    ("all of them", {"class_weights": "balanced", "patience": 20, "time_mask": 20,
                     "feature_mask": 8, "noise_std": 0.1, "mixup_alpha": 0.4}),
]  # fmt: skip
# audio variants (`--speed-perturb 0.9 1.1`): the same program on 3x the training rows (a
# variant row costs what any row costs; utt/s counts the utterances, not the rows)
TRAIN_COPIES = [("audio variants: speed 0.9 and 1.1 (3x training rows)", 3)]


def print_options_table(args, rounds: int = 5) -> None:
    """`--options`: training throughput with each of `OPTION_SETS`, relative to none. One
    program (M = the first --models, the first --executors, ResLSTM-SA --hidden-size); each option
    set is compiled and warmed up, then timed `rounds` times over --epochs epochs, the sets
    taking turns in every round (the machine's drift hits them alike), and the medians
    compared."""
    import jax
    import numpy as np

    import reslstm_jax as rj
    from reslstm_jax import train

    models, executor = args.models[0], args.executors[0]
    model = rj.models.get("reslstm_sa", hidden_size=args.hidden_size, input_size=N_FEATURES,
                          row_block=args.row_block)  # fmt: skip
    program = train.make_train(train.TrainConfig(model=model, batch_size=args.batch_size,
                                                 executor=executor))  # fmt: skip
    runs = {}
    problems = [(name, options, 1) for name, options in OPTION_SETS]
    problems += [(name, {}, copies) for name, copies in TRAIN_COPIES]
    for name, options, copies in problems:
        shared, data, hparams, keys = random_problem(models, options, copies)
        state = program.init(keys, hparams)
        start = time.perf_counter()
        jax.block_until_ready(program.run(state, hparams, data, shared, epochs=args.epochs))
        runs[name] = (state, hparams, data, shared, time.perf_counter() - start)
    seconds = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (state, hparams, data, shared, _) in runs.items():
            start = time.perf_counter()
            jax.block_until_ready(program.run(state, hparams, data, shared, epochs=args.epochs))
            seconds[name].append(time.perf_counter() - start)
    hidden = args.hidden_size
    print(f"| option (M = {models}, {executor}, ResLSTM-SA h{hidden}, median of {rounds}) "
          "| utt/s | relative | spread |")  # fmt: skip
    print("|---|---|---|---|")
    base = np.median(seconds["none"])
    for name, times in seconds.items():
        rate = models * N_TRAIN * args.epochs / np.median(times)
        print(f"| {name} | {rate:.0f} | {base / np.median(times):.2f} | "
              f"{min(times) / max(times):.2f} |", flush=True)  # fmt: skip


def measure_family(family: str, steps: int = 4) -> dict:
    """Training throughput of one seed-model family at its recipe's batch size and feature
    shapes (random inputs, M = 1, the map executor), after a warm-up epoch of the same size:
    `steps` batches per epoch plus one validation batch."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from reslstm_jax import families, train

    recipe = families.recipe(family)
    shapes = {"light_sernet": {"x": (184, 40)},
              "ds_lstm": {"a": (230, 128), "b": (120, 256), "mfcc": (400, 39)}}[family]  # fmt: skip
    model = families.build_model(family, shapes, CLASSES)
    batch, n_train = recipe.batch_size, recipe.batch_size * steps
    n = n_train + 2 * batch
    rng = np.random.default_rng(0)
    arrays = {k: jnp.asarray(rng.standard_normal((n, *v)).astype(np.float32))
              for k, v in shapes.items()}  # fmt: skip
    x = arrays.get("x", arrays)
    first = next(iter(shapes.values()))[0]
    shared = train.Shared(x, jnp.full(n, first if "x" in arrays else 400, jnp.int32),
                          jnp.asarray(rng.integers(0, CLASSES, n).astype(np.int32)))  # fmt: skip
    idx = jnp.arange(n, dtype=jnp.int32)
    data = train.ModelData(
        train=idx[None, :n_train], train_mask=jnp.ones((1, n_train), bool),
        val=idx[None, n_train : n_train + batch], val_mask=jnp.ones((1, batch), bool),
        test=idx[None, n_train + batch :], test_mask=jnp.ones((1, batch), bool),
        mean=jnp.zeros((1, 1)), std=jnp.ones((1, 1)),
    )  # fmt: skip
    hp = train.HParams(jnp.full(1, recipe.learning_rate), jnp.zeros(1), jnp.full(1, recipe.dropout),
                       jnp.full(1, recipe.t0, jnp.int32))  # fmt: skip
    program = train.make_train(train.TrainConfig(
        model=model, batch_size=batch, executor="map", schedule=recipe.schedule,
        adam_eps=recipe.adam_eps, loss=recipe.loss))  # fmt: skip
    start = time.perf_counter()
    state = program.init(jnp.stack([train.model_key(0, 0)]), hp)
    state, _ = program.run(state, hp, data, shared, epochs=1)
    jax.block_until_ready(state)
    first_seconds = time.perf_counter() - start
    start = time.perf_counter()
    state, _ = program.run(state, hp, data, shared, epochs=1)
    jax.block_until_ready(state)
    seconds = time.perf_counter() - start
    return {"family": family, "batch": batch, "train_utterances": n_train, "seconds": seconds,
            "compile_seconds": max(0.0, first_seconds - seconds),
            "utt_per_s": n_train / seconds}  # fmt: skip


def in_layout(models: int, executor: str, epochs: int, layout: str, args) -> dict:
    """Split `models` over the processes x devices of `layout` ("PxD"); the machine's rate.

    Each process is a fresh interpreter (JAX's device count is fixed at start-up); with more
    than one process each is pinned to its own cores and runs single-threaded XLA.
    """
    processes, devices = (int(v) for v in layout.split("x"))
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    split = [models // processes + (i < models % processes) for i in range(processes)]
    split = [m for m in split if m > 0]
    per_process = max(1, len(cores) // len(split)) if cores else 0
    children = []
    for rank, m in enumerate(split):
        command = [sys.executable, "-m", "experiments.bench", "--one", str(m), executor,
                   str(epochs), "--hidden-size", str(args.hidden_size),
                   "--batch-size", str(args.batch_size), "--devices", str(devices),
                   "--row-block", str(args.row_block),
                   "--device-split", args.device_split]  # fmt: skip
        if len(split) > 1 and cores:
            own = cores[rank * per_process : (rank + 1) * per_process] or cores[-1:]
            command += ["--pin", ",".join(map(str, own))]
        children.append(subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO))
    results = []
    for child in children:
        out, _ = child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"benchmark process failed ({child.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    seconds = max(r["seconds"] for r in results)
    return {
        "models": models, "executor": executor, "layout": layout, "processes": len(split),
        "devices_per_process": devices, "row_block": args.row_block, "epochs": epochs,
        "device_split": results[0]["device_split"],
        "seconds": seconds,
        "compile_seconds": max(r["compile_seconds"] for r in results),
        "utt_per_s": models * N_TRAIN * epochs / seconds,
    }  # fmt: skip


def torch_reference(python: str, script: str, hidden: int, batch: int) -> dict:
    out = subprocess.run(
        [python, script, "--hidden", str(hidden), "--batch", str(batch), "--epochs", "3"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> dict:
    import jax

    import reslstm_jax

    device = jax.devices()[0]
    return {
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "python": platform.python_version(), "jax": jax.__version__,
        "backend": jax.default_backend(), "device": device.device_kind,
        "reslstm_jax": reslstm_jax.__version__,
    }  # fmt: skip


def bench_dataset(seed: int = 0):
    """The engine measurement's data as a prepared corpus (`data.Dataset`): 1440 utterances of
    24 RAVDESS-named speakers, random [L, 46] features with L in 60..126 (T = 128 once padded),
    the ravdess_paper protocol with per-fold normalisation, as the train CLI prepares it."""
    import numpy as np

    from reslstm_jax import data, features
    from reslstm_jax.corpora.base import Manifest, Utterance

    rng = np.random.default_rng(seed)
    codes = [(e, i, s, r) for e in range(1, 9) for i in (1, 2) for s in (1, 2) for r in (1, 2)]
    utterances = [
        Utterance(id=f"03-01-{e:02d}-{i:02d}-{s:02d}-{r:02d}-{a:02d}", path=f"/bench/{a}/{k}.wav",
                  corpus="ravdess", speaker=f"{a:02d}", label=e - 1, emotion=f"c{e}")
        for a in range(1, 25) for k, (e, i, s, r) in enumerate(codes[: N_UTTERANCES // 24])
    ]  # fmt: skip
    manifest = Manifest("ravdess", "/bench", tuple(f"c{e}" for e in range(1, 9)), utterances)
    feats = [rng.standard_normal((int(rng.integers(60, 126)), N_FEATURES)).astype(np.float32)
             for _ in utterances]  # fmt: skip
    report = features.ExtractionReport({"name": "bench"}, total=len(feats))
    return data.build(manifest, "ravdess_paper", feats, extractor_info={"name": "bench"},
                      extraction=report, max_frames=FRAMES)  # fmt: skip


@contextlib.contextmanager
def compilation_cache_in(folder: pathlib.Path):
    """JAX's persistent compilation cache in `folder`, every program however short, within the
    block; the process's own settings after it. JAX keeps the cache it opened whatever the
    settings say later (it wrote to a deleted folder, with a warning per program, after
    `measure_cli`), hence the resets."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    before = {name: getattr(jax.config, name) for name in names}
    compilation_cache.reset_cache()
    jax.config.update(names[0], str(folder))
    jax.config.update(names[1], 0)
    try:
        yield
    finally:
        for name, value in before.items():
            jax.config.update(name, value)
        compilation_cache.reset_cache()


def measure_cli(hidden: int, batch: int, devices: int, short: int = 12, long: int = 22) -> dict:
    """The train CLI's path (`train.fit.run`: epoch chunks, a checkpoint every 10 epochs, the
    device split, best parameters, results files) on `bench_dataset`, ResLSTM-SA, 5 folds x 1
    seed: seconds per epoch = (time of `long` epochs - time of `short`) / (long - short), both
    after a warm-up run that compiles, so compile, data and files cancel. (The runs share the
    training programs `train.make_train` keeps per configuration, and a persistent compilation
    cache in a temporary folder serves whatever else a run compiles, so no timed run compiles:
    a compile's time varies by seconds.)"""
    import tempfile

    from reslstm_jax import families, train

    dataset = bench_dataset()
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp, compilation_cache_in(pathlib.Path(tmp) / "jax"):
        for epochs in (short, short, long):  # the first compiles (chunks of 10 and 2)
            settings = families.settings_from("reslstm_sa", {
                "hidden_size": hidden, "batch_size": batch, "seeds": (0,), "epochs": epochs,
                "executor": "map"})  # fmt: skip
            out = pathlib.Path(tmp) / f"{epochs}-{len(seconds)}"
            start = time.perf_counter()
            train.run(dataset, settings, out, latency=False, progress=False,
                      checkpoint_every=10, devices=devices)  # fmt: skip
            seconds[epochs] = time.perf_counter() - start
    per_epoch = (seconds[long] - seconds[short]) / (long - short)
    return {"path": "cli", "models": 5, "devices": devices, "seconds_per_epoch": per_epoch,
            "utt_per_s": 5 * 1020 / per_epoch}  # fmt: skip


def compare_cli(args) -> None:
    """`--cli`: the train CLI's path (`measure_cli`) next to the engine alone, printed."""
    devices = hardware.use_cpu_cores(min(5, hardware.usable_cores()))
    cli = measure_cli(args.hidden_size, args.batch_size, devices)
    engine = measure(
        5, "map", args.epochs, args.hidden_size, args.batch_size, devices, args.row_block
    )
    engine_epoch = engine["seconds"] / args.epochs
    print(json.dumps({"cli": cli, "engine": engine}), flush=True)
    print(f"M=5 map, {devices} devices: train CLI path {cli['seconds_per_epoch']:.2f} s per "
          f"epoch, engine alone {engine_epoch:.2f} s per epoch "
          f"({cli['seconds_per_epoch'] / engine_epoch:.2f}x)")  # fmt: skip


# the six configurations of the paper's tables (docs/performance.md's latency table)
PAPER_CONFIGS = [(name, h) for name in ("lstm_sa", "reslstm_sa") for h in (32, 64, 128)]


def row_block_arg(text: str) -> int | None:
    """`--row-block`: a positive integer or 'none'."""
    if text.lower() == "none":
        return None
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer or 'none', got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments.bench", description=__doc__,
                                formatter_class=flags.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--models", type=int, nargs="+", default=[1, 5, 10, 50])
    p.add_argument("--executors", nargs="+", default=["map", "vmap"], choices=["map", "vmap"],
                   help="how one program runs its models: lax.map or vmap")  # fmt: skip
    p.add_argument("--layouts", nargs="+", default=["1x1", "1x2", "2x1"],
                   help="PxD: P processes (pinned to their own cores) x D JAX devices each "
                   "(the models are split over all of them)")  # fmt: skip
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per measurement")
    p.add_argument("--trial-epochs", type=int, default=3, help="measured epochs of the trial")
    p.add_argument("--hidden-size", type=int, default=64, help="ResLSTM-SA's hidden size")
    flags.deprecated(p, "--hidden", "--hidden-size", type=int)
    p.add_argument("--batch-size", type=int, default=32, help="utterances per batch")
    flags.deprecated(p, "--batch", "--batch-size", type=int)
    p.add_argument("--row-block", type=row_block_arg, default=8,
                   help="the model's packing: rows dropped in blocks of this many once their "
                   "sequences end; 'none' runs every row for all T steps (default 8)")  # fmt: skip
    p.add_argument("--torch-python", help="interpreter of a venv with torch, for the reference")
    p.add_argument("--torch-script", default=str(DEFAULT_TORCH_SCRIPT),
                   help="the reference script --torch-python runs (default: "
                   "experiments/torch_reference.py)")  # fmt: skip
    p.add_argument("--out", metavar="FILE", help="also write all measurements to this JSON file")
    flags.deprecated(p, "--json", "--out", metavar="FILE")
    p.add_argument("--families", nargs="+", choices=["light_sernet", "ds_lstm"],
                   help="instead: training throughput of these seed models")  # fmt: skip
    p.add_argument("--one", nargs=3, metavar=("MODELS", "EXECUTOR", "EPOCHS"),
                   help=argparse.SUPPRESS)  # fmt: skip
    p.add_argument("--cli", action="store_true",
                   help="instead: the train CLI's path (fit.run: chunks, checkpoints, results) "
                   "on the same data, 5 folds x 1 seed, one device per core, next to the engine "
                   "alone (M = 5, map)")  # fmt: skip
    p.add_argument("--device-split", choices=["auto", "mesh", "threads"], default="auto",
                   help="how a process's D devices share its models: one sharded program "
                   "(mesh) or one program per device (threads); auto: threads on the CPU, "
                   "mesh elsewhere")  # fmt: skip
    p.add_argument("--onnx", action="store_true",
                   help="instead: onnxruntime latency per second of audio (batch 1, one "
                   "thread, as reslstm_jax.latency measures) and .onnx sizes, fp32 and int8, of "
                   "the paper's six configurations and the seed models next to JAX (needs the "
                   "export extra)")  # fmt: skip
    p.add_argument("--options", action="store_true",
                   help="instead: training throughput with each training option (class "
                   "weights, patience, masks, noise, mixup) against none, at the first "
                   "--models and --executors")  # fmt: skip
    p.add_argument("--latency-repeatability", nargs=argparse.REMAINDER, metavar="SWEEP_FLAGS",
                   help="instead: two runs of the same small sweep (4 trials, 1 epoch, 2 "
                   "workers), each model's latency compared (experiments/bench_latency.py); "
                   "flags after it (--corpus, --data-dir) go to the sweep")  # fmt: skip
    p.add_argument("--suite-compiles", nargs=argparse.REMAINDER, metavar="PYTEST_ARGS",
                   help="instead: run the test suite (or the pytest arguments after it; "
                   "--cold first for an empty compilation cache) and print which test compiles "
                   "what no other test shares, then how long JAX traced, lowered and compiled "
                   "in all (experiments/bench_suite.py)")  # fmt: skip
    p.add_argument("--devices", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--pin", help=argparse.SUPPRESS)
    return flags.ranged(p)


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    for layout in args.layouts:
        if not re.fullmatch(r"[1-9][0-9]*x[1-9][0-9]*", layout):
            p.error(f"--layouts: {layout!r} is not PxD (for example 2x1)")
    if args.one:
        if args.pin:  # one of several processes: its own cores, XLA single-threaded
            os.sched_setaffinity(0, {int(c) for c in args.pin.split(",")})
            hardware.single_threaded_xla()
        hardware.use_cpu_cores(args.devices)
        print(json.dumps(measure(int(args.one[0]), args.one[1], int(args.one[2]), args.hidden_size,
                                 args.batch_size, args.devices, args.row_block,
                                 args.device_split)))  # fmt: skip
        return 0
    if args.latency_repeatability is not None:
        from experiments import bench_latency

        return bench_latency.main(args.latency_repeatability)
    if args.suite_compiles is not None:
        from experiments import bench_suite

        return bench_suite.main(args.suite_compiles)
    if args.cli:
        compare_cli(args)
        return 0
    if args.onnx:
        from experiments import bench_onnx

        bench_onnx.print_onnx_table()
        return 0
    if args.options:
        print_options_table(args)
        return 0
    if args.families:
        for family in args.families:
            r = measure_family(family)
            print(json.dumps(r), flush=True)
            print(f"{family}: {r['utt_per_s']:.1f} training utt/s at batch {r['batch']} "
                  f"(+1 validation batch; compile {r['compile_seconds']:.0f} s)")  # fmt: skip
        return 0
    if args.torch_python and not pathlib.Path(args.torch_script).exists():
        p.error(f"--torch-script {args.torch_script} does not exist")

    report = {"machine": machine(), "throughput": [], "paper_trial": [], "torch": None}
    print(json.dumps(report["machine"]))
    if args.torch_python:
        report["torch"] = torch_reference(args.torch_python, args.torch_script, args.hidden_size,
                                          args.batch_size)  # fmt: skip
        print(f"torch reference: {report['torch']['utt_per_s']:.0f} utt/s "
              f"({report['torch']['threads']} threads)", flush=True)  # fmt: skip
    for models in args.models:
        for executor in args.executors:
            for layout in args.layouts:
                if int(layout.split("x")[0]) > models:
                    continue
                r = in_layout(models, executor, args.epochs, layout, args)
                report["throughput"].append(r)
                ratio = (f", {r['utt_per_s'] / report['torch']['utt_per_s']:.1f}x torch"
                         if report["torch"] else "")  # fmt: skip
                print(f"M={models:<3} {executor:<4} {layout} (processes x devices): "
                      f"{r['utt_per_s']:7.0f} utt/s{ratio} (compile {r['compile_seconds']:.0f} s)",
                      flush=True)  # fmt: skip
    for layout in args.layouts:
        r = in_layout(5, args.executors[0], args.trial_epochs, layout, args)
        per_epoch = r["seconds"] / args.trial_epochs
        trial = {"layout": layout, "executor": args.executors[0],
                 "measured_epochs": args.trial_epochs, "seconds_per_epoch": per_epoch,
                 "compile_seconds": r["compile_seconds"],
                 "trial_seconds": r["compile_seconds"] + 100 * per_epoch}  # fmt: skip
        report["paper_trial"].append(trial)
        print(
            f"paper trial (5 folds x 100 epochs, {layout} processes x devices): "
            f"{trial['trial_seconds']:.0f} s = compile {trial['compile_seconds']:.0f} s + "
            f"100 x {per_epoch:.2f} s (measured over {args.trial_epochs} epochs)",
            flush=True,
        )
    if args.out:
        from reslstm_jax import artifacts

        pathlib.Path(args.out).write_text(artifacts.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
