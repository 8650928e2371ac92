"""Edge metrics: what a model costs on a device, next to what it scores.

* trainable parameters (exact, from shapes);
* model size of the trainable parameters in KiB at fp32 and fp16 (4 and 2 bytes each;
  BatchNorm running statistics are not counted, as the papers count);
* CPU latency per second of audio, batch 1, after warm-up: the median over `repeats` runs of
  feature extraction + the jitted eval forward pass on a `seconds`-long test signal (a
  deterministic chirp plus noise at `sample_rate`), divided by `seconds`. It is measured on
  the machine that calls it, with whatever threads JAX has; the result names the backend.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
import time

import numpy as np

from reslstm_jax.params import param_count


def size_kib(n_params: int) -> dict:
    """{"fp32_kib", "fp16_kib"} of `n_params` trainable parameters."""
    return {"fp32_kib": n_params * 4 / 1024, "fp16_kib": n_params * 2 / 1024}


def test_signal(seconds: float, sample_rate: int) -> np.ndarray:
    """A deterministic speech-band chirp with noise, float32 in [-0.5, 0.5]."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    chirp = np.sin(2 * np.pi * (120 + 400 * t / max(seconds, 1e-9)) * t)
    noise = np.random.default_rng(0).standard_normal(t.shape)
    return (0.4 * chirp + 0.05 * noise).astype(np.float32)


def batch_of_one(features):
    """Model input of one utterance: x [1, T, D] (or each array of a dict), lengths [1]."""
    import jax.numpy as jnp

    if isinstance(features, dict):
        x = {k: jnp.asarray(v)[None] for k, v in features.items()}
        frames = len(features.get("mfcc", next(iter(features.values()))))
    else:
        x, frames = jnp.asarray(features)[None], len(features)
    return x, jnp.asarray([frames], jnp.int32)


def latency(model, extractor, *, seconds: float = 3.0, sample_rate: int = 16000,
            repeats: int = 5) -> dict:  # fmt: skip
    """Median features + model time per second of audio (ms), batch 1, after one warm-up."""
    import jax
    import soundfile

    # Compiled: eager init runs each initialiser op by op (~0.5 s); any weights time the same.
    variables = jax.jit(model.init)(jax.random.key(0))
    forward = jax.jit(lambda v, x, n: model.apply(v, x, n)[0])
    fd, name = tempfile.mkstemp(suffix=".wav")
    os.close(fd)
    path = pathlib.Path(name)
    try:
        soundfile.write(path, test_signal(seconds, sample_rate), sample_rate, subtype="PCM_16")
        feature_times, model_times = [], []
        for i in range(repeats + 1):  # the first run compiles and warms caches
            start = time.perf_counter()
            features = extractor(path)
            middle = time.perf_counter()
            x, lengths = batch_of_one(features)
            forward(variables, x, lengths).block_until_ready()
            end = time.perf_counter()
            if i:
                feature_times.append(middle - start)
                model_times.append(end - middle)
    finally:
        path.unlink(missing_ok=True)
    features_ms = float(np.median(feature_times)) * 1000 / seconds
    model_ms = float(np.median(model_times)) * 1000 / seconds
    return {
        "latency_ms_per_s": features_ms + model_ms,
        "features_ms_per_s": features_ms,
        "model_ms_per_s": model_ms,
        "latency_backend": jax.default_backend(),
        "latency_signal": f"{seconds:g} s at {sample_rate} Hz, batch 1, median of {repeats}",
    }


def metrics(model, extractor=None, **latency_kwargs) -> dict:
    """Parameters, sizes and (with an extractor) latency of `model`."""
    n = param_count(model)
    out = {"trainable_params": n, **size_kib(n)}
    if extractor is not None:
        out.update(latency(model, extractor, **latency_kwargs))
    return out


def summary(edge: dict) -> str:
    """One line for logs."""
    text = (f"{edge['trainable_params']:,} parameters, {edge['fp32_kib']:.1f} KiB fp32 / "
            f"{edge['fp16_kib']:.1f} KiB fp16")  # fmt: skip
    if "latency_ms_per_s" in edge:
        text += (f", {edge['latency_ms_per_s']:.2f} ms per second of audio on "
                 f"{edge['latency_backend']} (features {edge['features_ms_per_s']:.2f} + model "
                 f"{edge['model_ms_per_s']:.2f}; {edge['latency_signal']})")  # fmt: skip
    return text
