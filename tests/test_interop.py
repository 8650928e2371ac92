"""PyTorch state_dict import/export: round trips and clear errors."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import reslstm_jax as rj


@pytest.mark.parametrize(
    "name,config",
    [
        ("lstm_sa", {"hidden_size": 8}),
        ("reslstm_sa", {"hidden_size": 8, "num_att": 3, "att_combine": "linear"}),
        ("reslstm_sa", {"hidden_size": 8, "res_blocks": 2}),
    ],
)
def test_round_trip(name, config):
    model = rj.models.get(name, **config)
    variables = model.init(jax.random.key(0))
    state = rj.interop.to_torch_state_dict(variables)
    assert all(k.endswith("num_batches_tracked") for k in state if state[k].dtype == np.int64)
    back = rj.interop.from_torch_state_dict(model, state)
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(variables)
    for a, b in zip(
        jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(variables), strict=True
    ):
        np.testing.assert_array_equal(a, b)  # copied and transposed, not computed: exact


def test_extra_block_names():
    model = rj.models.get("reslstm_sa", hidden_size=8, res_blocks=3)
    keys = rj.interop.torch_keys(model)
    for name in (
        "lstm1.weight_ih_l0",
        "lstm1_2.weight_hh_l0",
        "lstm1_3.bias_ih_l0",
        "bn_residual_2.running_var",
        "bn_residual_3.weight",
    ):
        assert name in keys


def state_of(name, **config):
    model = rj.models.get(name, **config)
    return rj.interop.to_torch_state_dict(model.init(jax.random.key(0)))


@pytest.mark.parametrize(
    "state,message",
    [
        (state_of("reslstm_sa", hidden_size=16), r"lstm2.weight_ih_l0 has shape \(64, 46\)"),
        (state_of("lstm_sa", hidden_size=8), r"missing keys \['bn_residual.bias'"),
        (
            state_of("reslstm_sa", hidden_size=8, att_combine="linear"),
            r"unexpected keys \['head_combine.weight'\]",
        ),
        (state_of("reslstm_sa", hidden_size=8, num_att=2), r"attention_vector has shape \(8, 2\)"),
    ],
)
def test_mismatched_state_dicts_are_refused(state, message):
    model = rj.models.get("reslstm_sa", hidden_size=8)
    with pytest.raises(ValueError, match=message):
        rj.interop.from_torch_state_dict(model, state)


def test_num_batches_tracked_is_ignored_and_optional():
    model = rj.models.get("lstm_sa", hidden_size=8)
    state = state_of("lstm_sa", hidden_size=8)
    without = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    rj.interop.from_torch_state_dict(model, without)
    state["bn.num_batches_tracked"] = np.array(123)
    rj.interop.from_torch_state_dict(model, state)
