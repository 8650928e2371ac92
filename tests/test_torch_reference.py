"""The PyTorch speed reference (`experiments/torch_reference.py`, run by `experiments.bench
--torch-python`): it imports and prints its usage without torch (the project never installs
torch), and where torch happens to be importable its model is the paper's ResLSTM-SA with the
JAX model's parameter count."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from experiments import bench, torch_reference

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_help_works_without_torch():
    result = subprocess.run(
        [sys.executable, "-m", "experiments.torch_reference", "--help"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "--models" in result.stdout and "--device" in result.stdout


def test_importing_it_does_not_import_torch():
    # a fresh interpreter, so that a torch another test may have loaded cannot hide an import
    check = "import sys, experiments.torch_reference; assert 'torch' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                            cwd=REPO, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_the_bench_runs_this_script_by_default():
    assert pathlib.Path(bench.DEFAULT_TORCH_SCRIPT) == REPO / "experiments" / "torch_reference.py"
    assert bench.DEFAULT_TORCH_SCRIPT.exists()


@pytest.mark.parametrize("hidden", [32, 64, 128])
def test_the_paper_formula_gives_the_jax_models_count(hidden):
    from reslstm_jax import models, params

    expected = params.param_count(models.get("reslstm_sa", hidden_size=hidden))
    assert torch_reference.paper_param_count(hidden) == expected


def test_the_torch_model_is_the_jax_model_in_torch():
    torch = pytest.importorskip("torch")
    import jax

    from reslstm_jax import interop, models, params

    jax_model = models.get("reslstm_sa", hidden_size=64)
    torch_model = torch_reference.build_model(64)
    assert params.param_count(jax_model) == 46_772
    assert torch_reference.trainable_params(torch_model) == params.param_count(jax_model)
    # the same tensors, not only the same total: the JAX model's weights load strictly
    exported = interop.to_torch_state_dict(jax_model.init(jax.random.key(0)))
    torch_model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in exported.items()})
