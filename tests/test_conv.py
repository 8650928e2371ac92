"""conv.conv2d: XLA's convolution forward, with a matrix-product kernel gradient."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reslstm_jax import conv


def xla_conv(x, kernel, padding):
    return jax.lax.conv_general_dilated(
        x, kernel, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


@pytest.mark.parametrize(
    "kernel_hw, padding",
    [
        ((3, 3), ((1, 1), (1, 1))),  # Keras "same"
        ((2, 2), ((0, 1), (0, 1))),  # Keras "same", even kernel: the extra pad at the end
        ((1, 9), ((0, 0), (4, 4))),
        ((11, 1), ((5, 5), (0, 0))),
        ((4, 4), ((1, 1), (1, 1))),  # PyTorch floor((k - 1) / 2): an even kernel shrinks
        ((1, 1), ((0, 0), (0, 0))),
    ],
)
def test_values_and_gradients_are_xlas_convolution(kernel_hw, padding):
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(2, 12, 10, 3)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(*kernel_hw, 3, 4)), jnp.float32)
    np.testing.assert_array_equal(conv.conv2d(x, kernel, padding), xla_conv(x, kernel, padding))

    def loss(f):
        return lambda x, kernel: jnp.sum(jnp.sin(f(x, kernel, padding)))

    expected = jax.grad(loss(xla_conv), (0, 1))(x, kernel)
    got = jax.jit(jax.grad(loss(conv.conv2d), (0, 1)))(x, kernel)
    np.testing.assert_array_equal(got[0], expected[0])  # the input gradient is XLA's own
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-5, atol=1e-5)  # summation order
