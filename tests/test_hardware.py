"""How the engine spreads models over devices (the multi-device runs are in test_train)."""

from __future__ import annotations

import jax
import pytest

from reslstm_jax import hardware


@pytest.mark.parametrize(
    "models,requested,expected",
    [(5, None, 1), (5, 1, 1), (1, None, 1)],  # this test process has one CPU device
)
def test_model_devices_never_exceed_models_or_devices(models, requested, expected):
    assert len(jax.local_devices()) == 1
    assert hardware.model_devices(models, requested) == expected


@pytest.mark.parametrize("requested", [0, 2])
def test_model_devices_refuses_what_is_not_there(requested):
    with pytest.raises(ValueError, match=r"--devices must be in \[1, 1\]"):
        hardware.model_devices(5, requested)


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
