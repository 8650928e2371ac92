"""conv.conv2d: XLA's convolution forward, with a matrix-product kernel gradient."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numerics import assert_rounding_close

from reslstm_jax import conv

# The gradients below are one jitted program against XLA's own, run op by op. The input gradient
# is XLA's transposed convolution of the same cos(y) in both (equal here). The kernel gradient
# sums the B * H * W = 240 output positions in another order (image patches times the output
# gradient against XLA's kernel-gradient convolution): a reordered n-term sum moves by about
# sqrt(n) eps of its terms' size in practice (n eps at worst), and its terms are smaller than
# the sum's scale here. Measured on an Intel Xeon (AVX-512): <= 3.8 ulps; 64 = 4 * sqrt(240).
GRADIENT_ULPS = 64


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
    # exact: the forward is `xla_conv`'s one convolution with the same parameters (compiled, the
    # two differ in metadata only), dispatched alone as it is: the same program, the same inputs
    np.testing.assert_array_equal(conv.conv2d(x, kernel, padding), xla_conv(x, kernel, padding))

    def loss(f):
        return lambda x, kernel: jnp.sum(jnp.sin(f(x, kernel, padding)))

    expected = jax.grad(loss(xla_conv), (0, 1))(x, kernel)
    got = jax.jit(jax.grad(loss(conv.conv2d), (0, 1)))(x, kernel)
    assert_rounding_close(got, expected, ulps=GRADIENT_ULPS, err_msg="(dx, dkernel)")
