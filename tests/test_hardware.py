"""How the engine spreads models over devices (the multi-device runs are in test_train)."""

from __future__ import annotations

import os

import jax
import pytest
from conftest import FAST_COMPILE_FLAGS, with_fast_compile

from reslstm_jax import hardware
from reslstm_jax.errors import cli_message


@pytest.mark.parametrize(
    "models,requested,expected",
    [(5, None, 1), (5, 1, 1), (1, None, 1)],  # this test process has one CPU device
)
def test_model_devices_never_exceed_models_or_devices(models, requested, expected):
    assert len(jax.local_devices()) == 1
    assert hardware.model_devices(models, requested) == expected


@pytest.mark.parametrize("requested", [0, 2])
def test_model_devices_refuses_what_is_not_there(requested):
    with pytest.raises(ValueError, match=r"^devices must be in \[1, 1\]") as caught:
        hardware.model_devices(5, requested)
    assert cli_message(caught.value).startswith("--devices must be in [1, 1]")


def test_cpu_cores_cannot_change_once_jax_runs():
    jax.numpy.zeros(1).block_until_ready()
    assert hardware.use_cpu_cores(2) == len(jax.devices("cpu")) == 1
    with pytest.raises(ValueError, match="must be >= 1"):
        hardware.use_cpu_cores(0)
    assert hardware.usable_cores() >= 1


def test_train_config_devices_are_checked():
    import reslstm_jax as rj
    from reslstm_jax import train

    model = rj.models.get("lstm_sa", hidden_size=4)
    with pytest.raises(ValueError, match="devices must be >= 1"):
        train.TrainConfig(model=model, devices=0)
    with pytest.raises(ValueError, match=r"devices=2, but JAX has 1 local cpu device"):
        train.make_train(train.TrainConfig(model=model, devices=2))


# Gradients of whole models, hashed, in a fresh process (XLA_FLAGS act once per process).
GRADIENT_HASHES = """
import hashlib, sys
import jax, jax.numpy as jnp, numpy as np
import reslstm_jax as rj

for name, hidden, batch, steps, row_block in [
    ("reslstm_sa", 8, 8, 16, None),  # a shape whose weight-gradient matmul XLA folded
    ("lstm_sa", 16, 16, 32, 4),  # packed
]:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((batch, steps, 46)), jnp.float32)
    lengths = jnp.asarray(rng.integers(steps // 2, steps + 1, batch))
    labels = jnp.asarray(rng.integers(0, 8, batch))
    model = rj.models.get(name, hidden_size=hidden, row_block=row_block)
    variables = model.init(jax.random.key(0))

    def loss(params):
        (logits, _), _ = model.apply({"params": params, "batch_stats": variables["batch_stats"]},
                                     x, lengths, train=True, key=jax.random.key(1))
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(batch), labels])

    value, grads = jax.jit(jax.value_and_grad(loss))(variables["params"])
    leaves = [np.asarray(value)] + [np.asarray(g) for g in jax.tree_util.tree_leaves(grads)]
    print(name, hidden, hashlib.sha256(b"".join(a.tobytes() for a in leaves)).hexdigest())
"""


def test_gradients_do_not_depend_on_the_cpu_device_count():
    # One device per core (an entry point's `use_cpu_cores(2)`, in a fresh process) must give
    # the gradients of this test process (one device, XLA single-threaded as every entry
    # point runs it: conftest) bit for bit (docs/training.md). XLA's threaded contractions sum
    # in another order on some CPUs (this VM's AMD EPYC: every gradient differed). Exact: the
    # same jitted function on the same shapes, single-threaded, compiled on the same machine.
    import contextlib
    import io
    import subprocess
    import sys

    assert hardware.SINGLE_THREAD_FLAG in os.environ["XLA_FLAGS"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    setup = "from reslstm_jax import hardware\nassert hardware.use_cpu_cores(2) == 2\n"
    proc = subprocess.run([sys.executable, "-c", setup + GRADIENT_HASHES], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    here = io.StringIO()
    with contextlib.redirect_stdout(here):
        exec(GRADIENT_HASHES, {})
    assert len(here.getvalue().splitlines()) == 2
    assert proc.stdout.splitlines() == here.getvalue().splitlines()


def test_entry_points_turn_xla_threads_off_unless_told(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--x")
    hardware.single_threaded_xla()
    assert os.environ["XLA_FLAGS"] == f"--x {hardware.SINGLE_THREAD_FLAG}"
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true")  # the user's choice
    hardware.single_threaded_xla()
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_multi_thread_eigen=true"


FAST = " ".join(FAST_COMPILE_FLAGS)


@pytest.mark.parametrize(
    "given,expected",
    [("", FAST),
     ("--x", f"--x {FAST}"),
     (f"--x {FAST}", f"--x {FAST}"),  # an xdist worker inherits the controller's: nothing twice
     ("--xla_backend_optimization_level=3",  # the user's own level stays
      "--xla_backend_optimization_level=3 " + " ".join(FAST_COMPILE_FLAGS[1:]))],
)  # fmt: skip
def test_the_suites_fast_compile_adds_each_flag_once(given, expected):
    """RESLSTM_TEST_FAST_COMPILE=1 (tests/conftest.py) appends only the flags not set."""
    assert with_fast_compile(given) == expected


@pytest.mark.parametrize(
    "count,gpus,expected",
    [(None, ["0", "1", "2", "3"], ["0", "1", "2", "3"]),  # auto: one worker per GPU
     (2, ["0", "1", "2", "3"], ["0", "1"]),
     (3, ["4", "7"], ["4", "7", "4"])],  # more workers than GPUs: round-robin
)  # fmt: skip
def test_each_gpu_worker_sees_only_its_own_gpu(count, gpus, expected):
    envs = hardware.worker_environments(count, gpus, {"PATH": "/bin", "XLA_FLAGS": "--x"})
    assert [env["CUDA_VISIBLE_DEVICES"] for env in envs] == expected
    assert all(env["PATH"] == "/bin" and env["XLA_FLAGS"] == "--x" for env in envs)


def test_cpu_workers_are_one_per_core_and_single_threaded(monkeypatch):
    monkeypatch.setattr(hardware, "usable_cores", lambda: 3)
    envs = hardware.worker_environments(None, [], {"XLA_FLAGS": "--x"})
    assert len(envs) == 3 and "CUDA_VISIBLE_DEVICES" not in envs[0]
    assert envs[0]["XLA_FLAGS"] == "--x --xla_cpu_multi_thread_eigen=false"
    assert len(hardware.worker_environments(2, [], {})) == 2


@pytest.mark.parametrize(
    "visible,expected", [("2,5", ["2", "5"]), ("", []), ("-1", []), (None, ["0", "1"])]
)
def test_visible_gpus_follow_cuda_visible_devices(monkeypatch, tmp_path, visible, expected):
    import importlib.util
    import os

    real = importlib.util.find_spec

    def find_spec(name):  # as if JAX's CUDA plugin were installed
        return object() if name == "jax_cuda12_plugin" else real(name)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    fake = tmp_path / "nvidia-smi"  # lists two GPUs
    fake.write_text(
        "#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: a)'\necho 'GPU 1: NVIDIA H100 (UUID: b)'\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert hardware.visible_gpus() == expected
