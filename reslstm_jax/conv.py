"""Convolution for the CNN families (Light-SERNet, DS-LSTM), fast to train on CPU.

```python
y = conv.conv2d(x, kernel, ((1, 1), (1, 1)))   # x [B, H, W, Cin], kernel [kh, kw, Cin, Cout]
```
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

_CONV_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv2d(x: jax.Array, kernel: jax.Array, padding: tuple) -> jax.Array:
    """Stride-1 2-D convolution, channels last, whose kernel gradient is a matrix product.

    Args:
      x: [B, H, W, Cin] float32.
      kernel: [kh, kw, Cin, Cout] (HWIO).
      padding: ((top, bottom), (left, right)), static.

    Returns:
      [B, H + top + bottom - kh + 1, W + left + right - kw + 1, Cout].

    Why: XLA's CPU backend runs the kernel-gradient convolution of `lax.conv_general_dilated`
    about 50x slower inside a loop (`lax.scan`, as in the training program) than outside one
    (measured on jax 0.10.2: a 3x3x32x64 kernel on [32, 32, 40, 32], 3.4 s against 74 ms a
    step; the forward and input-gradient convolutions are unaffected). The same sum written as
    image patches times the output gradient is a matrix product, fast everywhere. The forward
    pass and the input gradient are XLA's own convolution, unchanged.
    """
    return _xla_conv2d(x, kernel, padding)


def _xla_conv2d(x, kernel, padding):
    return jax.lax.conv_general_dilated(
        x, kernel, (1, 1), padding, dimension_numbers=_CONV_DIMENSIONS
    )


def _conv2d_forward(x, kernel, padding):
    return conv2d(x, kernel, padding), (x, kernel)


def _conv2d_backward(padding, residuals, grad):
    """grad: [B, H, W, Cout] -> (dx [B, H, W, Cin], dkernel [kh, kw, Cin, Cout])."""
    x, kernel = residuals
    kh, kw, cin, cout = kernel.shape
    _, input_vjp = jax.vjp(lambda x: _xla_conv2d(x, kernel, padding), x)
    (dx,) = input_vjp(grad)
    # patches: [B, H, W, Cin * kh * kw], features ordered (Cin, kh, kw)
    patches = jax.lax.conv_general_dilated_patches(
        x, (kh, kw), (1, 1), padding, dimension_numbers=_CONV_DIMENSIONS
    )
    dkernel = jnp.einsum("bhwp,bhwo->po", patches, grad).reshape(cin, kh, kw, cout)
    return dx, dkernel.transpose(1, 2, 0, 3)


conv2d.defvjp(_conv2d_forward, _conv2d_backward)
