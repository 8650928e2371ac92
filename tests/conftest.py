"""Test-session setup shared by every test file."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import signal
import tempfile

# numba's cache of librosa's functions, one for the test processes and every process they start
# (`setdefault`: xdist workers keep the controller's directory), kept per machine like JAX's
# below: compiling it takes about 30 s of CPU. Processes share it safely because the project
# imports librosa's numba modules one process at a time (`audio.import_librosa`, a file lock in
# RESLSTM_JAX_LOCKS); tests that call librosa themselves call `import_librosa()` first.
os.environ.setdefault(
    "NUMBA_CACHE_DIR",
    str(pathlib.Path(tempfile.gettempdir()) / f"reslstm-test-numba-{os.getuid()}"),
)

# JAX's persistent compilation cache, shared by the test processes and the subprocesses they
# start (the environment is inherited: `setdefault`, so xdist workers keep the controller's
# directory). The suite compiles the same small programs many times over (the train CLI on
# the tone corpus, the sweeps' hidden sizes): each is compiled once per machine. The key
# covers the program, the jaxlib version, the backend and XLA_FLAGS, so a cached executable
# is the one a fresh compile would give (the determinism tests compare across processes).
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    str(pathlib.Path(tempfile.gettempdir()) / f"reslstm-test-jax-cache-{os.getuid()}"),
)
# Cache every program, not only those that take over a second to compile (JAX's default): each
# process otherwise recompiles ~80 small eager operations (key stacking, metrics, init), about
# 5 s per subprocess and half the time of a short sweep run.
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# The run-folder locks (`reslstm_jax.runlock`) of the suite's processes and their subprocesses
# in one temporary directory, not in the user's ~/.cache.
os.environ.setdefault(
    "RESLSTM_JAX_LOCKS",
    str(pathlib.Path(tempfile.gettempdir()) / f"reslstm-test-locks-{os.getuid()}"),
)

# XLA's intra-op threads off, as in every entry point (`hardware.single_threaded_xla`): the
# in-process results equal the CLI's bit for bit on every CPU, the two test processes do not
# compete for the cores with threads, and the subprocesses (same XLA_FLAGS) share their
# compiled programs through the cache above.
from reslstm_jax import hardware  # noqa: E402  (does not start JAX)

# RESLSTM_TEST_FAST_COMPILE=1 (for a contributor's cold machine, never CI's): XLA compiles the
# suite's programs for speed of compiling rather than of running, LLVM at optimisation level 1
# without its costly passes and XLA's older CPU fusion emitters. A cold `.ci/run` took 16.5
# instead of 22 minutes (docs/performance.md#the-test-suite-make-test), but those builds round
# some values differently from XLA's defaults, the build users run, so the suite's exactness
# claims are then checked on another build: the default and CI keep XLA's flags. Every process
# of the session and every subprocess (they inherit XLA_FLAGS) compiles the same way.
FAST_COMPILE_FLAGS = (
    "--xla_backend_optimization_level=1",
    "--xla_llvm_disable_expensive_passes=true",
    "--xla_cpu_use_fusion_emitters=false",
)


def with_fast_compile(xla_flags: str) -> str:
    """`xla_flags` with each of FAST_COMPILE_FLAGS it does not set already appended (xdist's
    workers inherit the controller's flags: nothing is added twice)."""
    missing = [f for f in FAST_COMPILE_FLAGS if f.split("=")[0] not in xla_flags]
    return " ".join([xla_flags, *missing]).strip()


if os.environ.get("RESLSTM_TEST_FAST_COMPILE") == "1":
    os.environ["XLA_FLAGS"] = with_fast_compile(os.environ.get("XLA_FLAGS", ""))
hardware.single_threaded_xla()

# Every test process keeps JAX's default single CPU device: start the backend now, so that an
# entry point called in-process (experiments' `main` calls `hardware.use_cpu_cores`) cannot
# turn the rest of the session into two single-threaded devices. Tests that need two devices
# run them in a subprocess.
import jax  # noqa: E402

jax.devices()


# ----------------------------------------------------------------------------- shared fixtures
# One of each per test process (pytest-xdist worker): end-to-end tests share them instead of
# building their own corpus, features and runs.
#
# The suite's shapes. Most of a cold run is XLA compiling (docs/performance.md): a training
# program is keyed by everything static, the model and its size, batch, number of models M
# (folds x seeds x trials), epoch chunk, the data's shapes (utterances, frames, features,
# classes) and the devices, and costs 10-20 s however small. A new end-to-end test trains one
# of these, so that the compilation cache serves it, unless a shape is what it tests:
# - the train CLI (`train_command`): ResLSTM-SA h8, batch 8, 2 seeds, 2-epoch chunks, one
#   device, on `tone_corpus` (also the user's experiment file of tests/test_experiments.py);
# - sweeps on the tone corpus: LSTM-SA h16 and h32 of the quick budget (the hidden_sizes
#   space's first points, `two_sizes` of tests/test_sweeps.py);
# - the shared4 tone tree at batch 32, 2 seeds (the cross-corpus experiment's ravdess row and
#   the cross-corpus train CLI test);
# - in-process engine runs on `tiny_dataset`: tests/test_training_options.py's COMMON
#   (ResLSTM-SA h4, batch 8, `map`) and tests/test_train.py's SMALL (LSTM-SA h4).

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def write_tone_corpus(root: pathlib.Path, emotions=(1, 5)) -> pathlib.Path:
    """A RAVDESS-named tree of tones: 24 actors x `emotions` (RAVDESS codes; default neutral
    and angry), 0.4-0.6 s at 48 kHz; the pitch gives the emotion (120 + 40 x code Hz, with
    jitter)."""
    import soundfile

    rng = np.random.default_rng(0)
    for actor in range(1, 25):
        for emotion in emotions:
            t = np.arange(int(48000 * (0.4 + 0.2 * rng.random()))) / 48000
            y = 0.3 * np.sin(2 * np.pi * (120 + 40 * emotion + 10 * rng.random()) * t)
            folder = root / f"Actor_{actor:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            name = f"03-01-{emotion:02d}-01-01-01-{actor:02d}.wav"
            soundfile.write(folder / name, y + 0.01 * rng.standard_normal(t.size), 48000)
    return root


@pytest.fixture(scope="session")
def tone_corpus(tmp_path_factory) -> pathlib.Path:
    """The tone corpus (`write_tone_corpus`); read-only for tests."""
    return write_tone_corpus(tmp_path_factory.mktemp("tones") / "ravdess")


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory) -> pathlib.Path:
    """One feature cache per test process: the tone corpus's features are extracted once."""
    return tmp_path_factory.mktemp("feature-cache")


def _random_feature_dataset(seed: int = 3):
    """A data.Dataset of random features [3-8, 6] over the 24 RAVDESS actors x 3 emotions
    (ravdess_paper folds); the label shifts the features, so models can learn it."""
    from reslstm_jax import data, features
    from reslstm_jax.corpora.base import Manifest, Utterance

    rng = np.random.default_rng(seed)
    utterances = [
        Utterance(id=f"03-01-{e:02d}-01-01-01-{a:02d}", path=f"/x/{a}-{e}.wav", corpus="ravdess",
                  speaker=f"{a:02d}", label=e - 1, emotion=f"c{e}")
        for a in range(1, 25) for e in (1, 2, 3)
    ]  # fmt: skip
    manifest = Manifest("ravdess", "/x", tuple(f"c{e}" for e in range(1, 9)), utterances)
    feats = [(rng.standard_normal((rng.integers(3, 9), 6)) + u.label).astype(np.float32)
             for u in utterances]  # fmt: skip
    report = features.ExtractionReport({"name": "test"}, total=len(feats))
    return data.build(manifest, "ravdess_paper", feats, extractor_info={"name": "test"},
                      extraction=report)  # fmt: skip


@pytest.fixture(scope="session")
def tiny_dataset():
    """A data.Dataset of random features over the 24 RAVDESS actors (`_random_feature_dataset`),
    built once per process (tests must not modify it)."""
    return _random_feature_dataset()


def _train_command(corpus, out, cache, *extra, latency: bool = False, one_device=True,
                   wandb: str = "disabled") -> list:  # fmt: skip
    """The train CLI on the tone corpus: ResLSTM-SA h8, batch 8, 2 seeds, 6 epochs (W&B off
    unless asked: `trained_run` has its offline run)."""
    import sys

    # One device keeps the suite's processes single-threaded; `trained_run` runs the default
    # (one CPU device per core) once.
    return [
        sys.executable, "-m", "reslstm_jax.train", "--corpus", "ravdess",
        "--data-dir", str(corpus), "--hidden-size", "8", "--batch-size", "8", "--seeds", "2",
        "--epochs", "6", "--checkpoint-every", "2", "--feature-workers", "1",
        "--cache-dir", str(cache),
        "--no-progress", "--out", str(out), *([] if latency else ["--no-latency"]),
        "--wandb", wandb,
        *(["--devices", "1"] if one_device else []), *extra,
    ]  # fmt: skip


def _run_command(args, **kwargs):
    import subprocess

    return subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)


@pytest.fixture(scope="session")
def train_command():
    """`(corpus, out, cache, *extra, latency=False, one_device=True, wandb="disabled") -> argv`
    of the train CLI on the tone corpus (ResLSTM-SA h8, batch 8, 2 seeds, 6 epochs,
    checkpoints every 2)."""
    return _train_command


INTERRUPTED_LINE = "interrupted; rerun the same command to resume"


@dataclasses.dataclass
class Interruption:
    """How a process ended after a signal (`interrupt`)."""

    returncode: int
    seconds: float  # from the signal to the exit
    stderr: str
    before: object  # what `before(process)` returned, just before the signal

    def assert_left(self, code: int, within: float) -> None:
        """It exited with `code` within `within` seconds, its last line the interrupt's one,
        no traceback anywhere."""
        assert self.returncode == code and self.seconds < within, (
            self.returncode, self.seconds, self.stderr[-3000:])  # fmt: skip
        assert self.stderr.strip().splitlines()[-1] == INTERRUPTED_LINE
        assert "Traceback" not in self.stderr, self.stderr


def _interrupt(argv, ready, signum, *, env=None, before=None, poll=0.05,
               timeout=300) -> Interruption:  # fmt: skip
    """Start `argv` in a session of its own, wait until `ready()` (the process still running),
    call `before(process)`, send `signum` and wait for the exit. The process group is killed
    when anything fails, so that no test leaves processes behind."""
    import subprocess
    import time

    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert process.poll() is None, process.communicate()[1][-3000:]
            assert time.monotonic() < deadline, f"not ready within {timeout} s"
            time.sleep(poll)
        seen = before(process) if before is not None else None
        sent = time.monotonic()
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
        return Interruption(process.returncode, time.monotonic() - sent, err, seen)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()


@pytest.fixture(scope="session")
def interrupt():
    """`(argv, ready, signum, *, env=None, before=None, poll=0.05, timeout=300) ->
    Interruption`: a real process stopped by a signal once `ready()` (see `_interrupt`)."""
    return _interrupt


@pytest.fixture(scope="session")
def run_command():
    """`(argv, **kwargs) -> CompletedProcess` with text output captured (10 minute limit)."""
    return _run_command


@pytest.fixture
def run_main(capsys):
    """`(main, argv) -> CompletedProcess`: an entry point's `main(argv)` run in this process,
    with its exit code (argparse's SystemExit included) and what it printed, as `run_command`
    gives them for a subprocess. For misuse tests, which stop before any work, and runs whose
    CLI process is tested elsewhere: a process of their own would spend its seconds importing
    JAX. An exception `main` should have turned into one line fails the test, as a traceback
    in a subprocess's stderr would."""
    import subprocess

    def run(main, argv) -> subprocess.CompletedProcess:
        capsys.readouterr()
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(list(argv), code, out, err)

    return run


@contextlib.contextmanager
def _built_once(tmp_path_factory, name: str):
    """`name`'s directory in the temporary root that every test process of this session
    shares, held under an exclusive lock: the first process to get here builds it, the
    others wait and find it built. (pytest-xdist's `--dist loadgroup` cannot keep the tests of
    one fixture on one process under pytest 9: it never groups them.) The lock is the one the
    project's run folders use (`filelock`, `reslstm_jax.runlock`), waiting here."""
    import filelock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's root, above each worker's own
    with filelock.FileLock(root / f"{name}.lock"):
        yield root / name


@pytest.fixture(scope="session")
def trained_run(tone_corpus, feature_cache, tmp_path_factory):
    """One finished training run of the train CLI (with the latency measurement, on the
    default devices, with its offline W&B run), trained once per test session whatever the
    number of test processes: (output dir, completed process). Read-only for tests."""
    import json
    import subprocess

    with _built_once(tmp_path_factory, "trained") as root:
        out, record = root / "run", root / "process.json"
        if not record.exists():
            proc = _run_command(_train_command(tone_corpus, out, feature_cache, "--tags", "suite",
                                               "first", latency=True, one_device=False,
                                               wandb="offline"))  # fmt: skip
            assert proc.returncode == 0, proc.stderr[-2000:]
            record.write_text(json.dumps([proc.args, proc.returncode, proc.stdout, proc.stderr]))
        args, code, stdout, stderr = json.loads(record.read_text())
    return out, subprocess.CompletedProcess(args, code, stdout, stderr)


def _skip_without_the_synthetic_extra() -> None:
    import importlib.util

    if importlib.util.find_spec("espeakng_loader") is None:
        pytest.skip("espeakng-loader (the 'synthetic' extra) is not installed")


@dataclasses.dataclass(frozen=True)
class DemoData:
    """The environment under which the demo's commands find the embedded synthetic corpus and
    its features (`demo_data`)."""

    corpus: pathlib.Path  # the default corpus, `synthetic.default_dir()` under `env`
    env: dict  # os.environ with RESLSTM_JAX_DATA and RESLSTM_JAX_CACHE set


@pytest.fixture(scope="session")
def demo_data() -> DemoData:
    """The demo's corpus (the full seed-0 synthetic corpus, 24 speakers, 1440 files) and its
    feature cache, kept per machine like the compilation cache: generating it and extracting
    its features take 40-75 s on a 2-core machine, a demo sweep on it then 10-20 s. Built by
    the documented command (docs/data.md, `python -m reslstm_jax.corpora.synthetic --out DIR`)
    when the corpus is not complete (it finishes one left half-written), under a lock that the
    suites of one machine share. Read-only for tests. Skips the test without the synthetic
    extra."""
    import sys

    import filelock

    _skip_without_the_synthetic_extra()
    from reslstm_jax.corpora import synthetic

    root = pathlib.Path(tempfile.gettempdir()) / f"reslstm-test-demo-{os.getuid()}"
    root.mkdir(exist_ok=True)
    env = {**os.environ, synthetic.DATA_ENV: str(root / "data"),
           "RESLSTM_JAX_CACHE": str(root / "features")}  # fmt: skip
    corpus = root / "data" / synthetic.default_dir().name
    with filelock.FileLock(root / "build.lock"):
        if synthetic.read_marker(corpus) is None:
            proc = _run_command([sys.executable, "-m", "reslstm_jax.corpora.synthetic",
                                 "--out", str(corpus), "--no-progress"], env=env)  # fmt: skip
            assert proc.returncode == 0, proc.stderr[-2000:]
    return DemoData(corpus, env)


@pytest.fixture(scope="session")
def synthetic_actor(tmp_path_factory) -> pathlib.Path:
    """Actor 01 of the seed-0 synthetic corpus (eSpeak NG, generated with two workers), once
    per test session whatever the number of test processes; read-only for tests. Skips the
    test without the synthetic extra."""
    _skip_without_the_synthetic_extra()
    from reslstm_jax.corpora import synthetic

    with _built_once(tmp_path_factory, "synthetic") as root:
        out = root / "corpus"
        if not (out / synthetic.MARKER_NAME).exists():
            synthetic.generate(out, speakers=1, seed=0, workers=2, progress=False)
    return out


# ----------------------------------------------------------------------------- ordering
# The end-to-end tests take 10-140 s each (compiling their programs on a cold machine), the
# others a second or less. pytest-xdist hands tests out in collection order: a long test that
# starts last keeps one process busy while the other has nothing left. These run first, so
# the processes end together, provided tests are handed out one at a time (the Makefile's
# `--maxschedchunk 1`: in blocks, one process would get all of these). A name here that no
# longer exists fails the collection. Tests that read programs another compiles (the two-worker
# sweep, the end-to-end sweep's; the cross-corpus train CLI test, the cross-corpus experiment's;
# the group test, the options test's) come a few places after it, so that the two do not compile
# them at the same time on both processes.
SLOW_FIRST = (
    "test_cross_corpus.py::test_the_cross_corpus_experiment_writes_the_matrix_and_the_report_prints_it",
    "test_train.py::test_executors_give_identical_results",
    "test_doc_commands.py::test_the_commands_that_need_no_corpus_run",
    "test_sweeps.py::test_sweep_end_to_end_resume_and_wandb",
    "test_experiments.py::test_a_users_experiment_file_trains_reports_and_resumes",
    "test_train_cli.py::test_ds_lstm_trains_through_the_cli_with_its_recipe_and_predicts",
    "test_configfile.py::test_a_runs_config_yaml_trains_the_same_folds_again",
    "test_cross_corpus.py::test_train_on_ravdess_tones_and_test_on_emodb_and_ravdess_tones",
    "test_manifest.py::test_the_train_cli_trains_on_a_manifest",
    "test_sweeps.py::test_two_local_workers_stop_on_sigterm_and_the_rerun_trains_every_point_once",
    "test_corpora.py::test_a_new_corpus_is_a_module_and_a_line_in_the_list",
    "test_families.py::test_ds_lstm_features",
    "test_postgres.py::test_a_worker_killed_mid_trial_is_reaped_and_its_trial_retried",
    "test_hardware.py::test_gradients_do_not_depend_on_the_cpu_device_count",
    "test_sweeps.py::test_architectures_space_trains_each_family_on_its_own_features",
    "test_sweeps.py::test_trials_of_one_static_shape_share_one_program",
    "test_train_cli.py::test_a_killed_run_resumes_to_identical_results",
    "test_train_cli.py::test_light_sernet_trains_through_the_cli_with_its_recipe",
    "test_training_options.py::test_options_that_are_off_change_nothing_for_the_other_models_of_a_program",
    "test_train.py::test_a_mesh_over_two_devices_trains_like_one_device_and_keeps_its_state_sharded",
    "test_train.py::test_models_trained_in_waves_equal_one_wave",
    "test_train.py::test_a_group_of_configurations_equals_each_trained_alone",
    "test_train_cli.py::test_predict_labels_files_and_folders_and_reports_bad_files",
    "test_train_cli.py::test_damaged_checkpoints_resume_from_the_one_before_and_predict_names_the_file",
    "test_sweeps.py::test_a_pruned_trial_stops_its_program_early",
    "test_train_cli.py::test_outputs_are_checked_before_any_work_and_no_other_run_is_overwritten",
    "test_sweeps.py::test_slurm_launcher_submits_workers_that_train_the_study",
    "test_train_cli.py::test_ctrl_c_stops_training_in_seconds_with_one_line_and_the_rerun_resumes",
)  # fmt: skip


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselect: every collected test is seen
def pytest_collection_modifyitems(config, items):
    """The tests of `SLOW_FIRST` first, in its order; the rest as collected."""
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}

    def key(item) -> str:
        return f"{pathlib.Path(item.fspath).name}::{item.originalname}"

    # checked against the test modules, not the items: a run of one test by its node id
    # collects only that one
    modules = {pathlib.Path(item.fspath).name: item.module for item in items}
    named = [(name, *name.split("::")) for name in SLOW_FIRST]
    missing = [name for name, file, test in named
               if file in modules and not hasattr(modules[file], test)]  # fmt: skip
    if missing:
        raise pytest.UsageError(f"tests/conftest.py SLOW_FIRST names no test: {missing}")
    items.sort(key=lambda item: rank.get(key(item), len(rank)))
