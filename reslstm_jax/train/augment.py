"""In-program augmentation of the training batches, per model (`engine.HParams`).

```python
x, lengths, partner, lam = augment(key, hp, x, lengths, labels, valid)   # inside train_epoch
```
SpecAugment-style time and feature masks, Gaussian noise on the valid frames, then mixup with
another row of the batch; each is off at its 0 value and absent from the program when no
model uses it (`HParams` field None). docs/training.md says what each costs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from reslstm_jax import nn
from reslstm_jax.settings import MAX_MASKS  # per utterance at most (`HParams.time_masks`, ...)

# the fields of HParams that augment the training batches (None when unused)
AUGMENTATION_FIELDS = ("time_mask", "feature_mask", "noise_std", "mixup_alpha")


def _masks(key, x, axis: int, width, count, extent):
    """SpecAugment masks on x [B, T, D] along `axis` (1: time, 2: features): up to `count`
    (<= MAX_MASKS) per row, each of a width drawn from 0..`width` and a start drawn so that
    it ends within `extent` ([B] valid frames, or D); masked cells become 0, the normalised
    features' mean."""
    batch, size = x.shape[0], x.shape[axis]
    key_width, key_start = jax.random.split(key)
    widths = jnp.floor(jax.random.uniform(key_width, (batch, MAX_MASKS)) * (width + 1))
    room = jnp.maximum(jnp.broadcast_to(extent, (batch,))[:, None] - widths + 1, 1)
    starts = jnp.floor(jax.random.uniform(key_start, (batch, MAX_MASKS)) * room)
    used = jnp.arange(MAX_MASKS)[None, :, None] < count
    pos = jnp.arange(size)[None, None, :]
    cover = (used & (pos >= starts[..., None]) & (pos < (starts + widths)[..., None])).any(1)
    return jnp.where(cover.reshape((batch, size, 1) if axis == 1 else (batch, 1, size)), 0.0, x)


def augment(key, hp, x, lengths, labels, valid):
    """The training batch's augmentations, each per model and off at its 0 value:
    SpecAugment time and feature masks, Gaussian noise on the valid frames, then mixup with a
    partner row of the same batch. x: [B, T, D] normalised features (0 on padded frames),
    lengths [B], labels [B], valid [B] (valid rows come first: `epoch_batches`).

    Returns (x, lengths, partner labels [B] or None, lam): mixup mixes the rows' features
    (lam ~ Beta(alpha, alpha) per batch) and keeps the longer row's length; the loss mixes
    the labels (`batch_loss`)."""
    key_time, key_feature, key_noise, key_mix = jax.random.split(key, 4)
    if hp.time_mask is not None:
        x = _masks(key_time, x, 1, hp.time_mask, hp.time_masks, lengths)
    if hp.feature_mask is not None:
        x = _masks(key_feature, x, 2, hp.feature_mask, hp.feature_masks, x.shape[2])
    if hp.noise_std is not None:
        frames = nn.length_mask(lengths, x.shape[1])[..., None]
        noisy = x + hp.noise_std * jax.random.normal(key_noise, x.shape, x.dtype)
        x = jnp.where(frames & (hp.noise_std > 0), noisy, x)
    if hp.mixup_alpha is None:
        return x, lengths, None, jnp.float32(1.0)
    key_lam, key_perm = jax.random.split(key_mix)
    alpha = jnp.maximum(hp.mixup_alpha, 1e-3)  # (Beta needs alpha > 0; off is gated below)
    lam = jnp.where(hp.mixup_alpha > 0, jax.random.beta(key_lam, alpha, alpha), 1.0)
    # a random permutation of the valid positions (the first ones); padding rows keep theirs
    order = jnp.argsort(jnp.where(valid, jax.random.uniform(key_perm, valid.shape), 2.0))
    n_valid = valid.sum()
    positions = jnp.arange(valid.shape[0])
    partner = jnp.where(positions < n_valid, order, positions)
    x = jnp.where(lam < 1, lam * x + (1 - lam) * x[partner], x)
    lengths = jnp.where(lam < 1, jnp.maximum(lengths, lengths[partner]), lengths)
    return x, lengths, labels[partner], lam.astype(jnp.float32)
