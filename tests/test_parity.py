"""Numerical parity with the PyTorch reference (fixtures: tests/fixtures/make_torch_golden.py)."""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import reslstm_jax as rj

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def highest_precision():
    """Parity is checked at full float32 matmul precision on every backend (a GPU's default may
    be TF32, which no float32 reference matches to these tolerances)."""
    with jax.default_matmul_precision("highest"):
        yield


TOL = 1e-5

# fixture name -> model config
CASES = {
    "reslstm_sa_h32": ("reslstm_sa", {"hidden_size": 32}),
    "lstm_sa_h64": ("lstm_sa", {"hidden_size": 64}),
    "reslstm_sa_h16_att4_linear": (
        "reslstm_sa",
        {"hidden_size": 16, "num_att": 4, "att_combine": "linear"},
    ),
    "lstm_sa_h16_att3_mean": ("lstm_sa", {"hidden_size": 16, "num_att": 3}),
}


def load(name: str, paper_compat: bool):
    golden = dict(np.load(FIXTURES / f"golden_{name}.npz"))
    family, config = CASES[name]
    model = rj.models.get(family, input_size=46, num_classes=8, paper_compat=paper_compat, **config)
    state = {k[3:]: v for k, v in golden.items() if k.startswith("sd/")}
    return golden, model, rj.interop.from_torch_state_dict(model, state)


def pad_to(x: np.ndarray, steps: int, value: float = 0.0) -> np.ndarray:
    """Extra static padding beyond the batch's longest sequence."""
    extra = np.full((x.shape[0], steps - x.shape[1], x.shape[2]), value, x.dtype)
    return np.concatenate([x, extra], axis=1)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("static_steps", [None, 16])
def test_eval_parity(name, static_steps):
    golden, model, variables = load(name, paper_compat=True)
    x, lengths = golden["x"], golden["lengths"]
    if static_steps:
        x = pad_to(x, static_steps)
    logits, extras = jax.jit(model.apply)(variables, x, lengths)
    attention = extras["attention"]
    np.testing.assert_allclose(logits, golden["eval_logits"], atol=TOL, rtol=0)
    batch_steps = golden["eval_attention"].shape[1]
    np.testing.assert_allclose(
        attention[:, :batch_steps], golden["eval_attention"], atol=TOL, rtol=0
    )
    assert np.all(np.asarray(attention)[:, batch_steps:] == 0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_train_forward_and_gradient_parity(name):
    """Training mode (dropout 0): batch statistics, running-stat update and gradients."""
    golden, model, variables = load(name, paper_compat=True)
    x, lengths, labels = pad_to(golden["x"], 16), golden["lengths"], golden["labels"]

    def loss_fn(params):
        (logits, attention), stats = model.apply(
            {"params": params, "batch_stats": variables["batch_stats"]},
            x,
            lengths,
            train=True,
            dropout_rate=0.0,
        )
        log_probs = jax.nn.log_softmax(logits)
        loss = -jnp.take_along_axis(log_probs, labels[:, None], axis=1).mean()
        return loss, (logits, stats)

    grads, (logits, stats) = jax.grad(loss_fn, has_aux=True)(variables["params"])
    np.testing.assert_allclose(logits, golden["train_logits"], atol=TOL, rtol=0)
    exported_stats = rj.interop.to_torch_state_dict({"params": {}, "batch_stats": stats})
    exported_grads = rj.interop.to_torch_state_dict({"params": grads, "batch_stats": {}})
    for key, expected in golden.items():
        if key.startswith("train_stats/"):
            np.testing.assert_allclose(exported_stats[key[12:]], expected, atol=TOL, rtol=1e-5)
        if key.startswith("grad/"):
            scale = max(1.0, float(np.abs(expected).max()))
            np.testing.assert_allclose(
                exported_grads[key[5:]], expected, atol=TOL * scale, rtol=0, err_msg=key
            )


@pytest.mark.parametrize("name", sorted(CASES))
def test_masked_mode_matches_reference_on_rows_without_padding(name):
    golden, model, variables = load(name, paper_compat=False)
    logits, _ = model.apply(variables, pad_to(golden["x"], 16), golden["lengths"])
    full = golden["lengths"] == golden["lengths"].max()
    assert full.sum() >= 2
    np.testing.assert_allclose(
        np.asarray(logits)[full], golden["eval_logits"][full], atol=TOL, rtol=0
    )
    # ...and differs from the reference on padded rows: the pitfall parity mode reproduces.
    assert np.abs(np.asarray(logits)[~full] - golden["eval_logits"][~full]).max() > 1e-3
