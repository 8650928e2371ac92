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

# The ONNX export's figures that tables, sweeps and W&B carry next to the JAX ones (when the
# `export` extra is installed): graph file sizes fp32 / int8 (KiB) and onnxruntime's
# features + fp32 model time per second of audio (batch 1, one thread).
ONNX_KEYS = ("onnx_kib", "onnx_int8_kib", "ort_ms_per_s")


def size_kib(n_params: int) -> dict:
    """{"fp32_kib", "fp16_kib"} of `n_params` trainable parameters."""
    return {"fp32_kib": n_params * 4 / 1024, "fp16_kib": n_params * 2 / 1024}


def test_signal(seconds: float, sample_rate: int) -> np.ndarray:
    """A deterministic speech-band chirp with noise, float32 in [-0.5, 0.5]."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    chirp = np.sin(2 * np.pi * (120 + 400 * t / max(seconds, 1e-9)) * t)
    noise = np.random.default_rng(0).standard_normal(t.shape)
    return (0.4 * chirp + 0.05 * noise).astype(np.float32)


def signal_rate(sample_rates: dict | None) -> int:
    """The latency signal's sample rate: the training audio's most common one (`sample_rates`,
    {rate: files} as the protocol card records it), or 16 kHz when none is known."""
    if not sample_rates:
        return 16000
    return int(max(sample_rates, key=sample_rates.get))


def batch_of_one(features) -> tuple:
    """Model input of one utterance: x [1, T, D] (or each array of a dict) and lengths [1]
    int32 (the MFCC frames of a dict that has them, as the DS-LSTM recipe counts), NumPy."""
    if isinstance(features, dict):
        x = {k: np.asarray(v, np.float32)[None] for k, v in features.items()}
        frames = len(features.get("mfcc", next(iter(features.values()))))
    else:
        x, frames = np.asarray(features, np.float32)[None], len(features)
    return x, np.asarray([frames], np.int32)


def time_per_second(runners: dict, extractor, *, seconds: float = 3.0,
                    sample_rate: int = 16000, repeats: int = 5) -> dict:  # fmt: skip
    """Median milliseconds per second of audio of the feature extraction ("features") and of
    each of `runners` ({name: run(x, lengths)}, returning once the result is ready), batch 1,
    over `repeats` runs after one warm-up run, on `test_signal` written to a temporary WAV."""
    import soundfile

    fd, name = tempfile.mkstemp(suffix=".wav")
    os.close(fd)
    path = pathlib.Path(name)
    times: dict = {"features": [], **{key: [] for key in runners}}
    try:
        soundfile.write(path, test_signal(seconds, sample_rate), sample_rate, subtype="PCM_16")
        for i in range(repeats + 1):  # the first run compiles and warms caches
            start = time.perf_counter()
            x, lengths = batch_of_one(extractor(path))
            elapsed = {"features": time.perf_counter() - start}
            for key, run in runners.items():
                start = time.perf_counter()
                run(x, lengths)
                elapsed[key] = time.perf_counter() - start
            if i:
                for key, value in elapsed.items():
                    times[key].append(value)
    finally:
        path.unlink(missing_ok=True)
    return {key: float(np.median(v)) * 1000 / seconds for key, v in times.items()}


def fresh_variables(model) -> dict:
    """`model`'s variables from a fresh initialisation (key 0): the weights whose speed is
    measured (any weights time the same). Compiled: an eager init runs each initialiser op
    by op (~0.5 s)."""
    import jax

    return jax.jit(model.init)(jax.random.key(0))


def latency(model, extractor, *, seconds: float = 3.0, sample_rate: int = 16000,
            repeats: int = 5, variables: dict | None = None) -> dict:  # fmt: skip
    """Median features + model time per second of audio (ms), batch 1, after one warm-up
    (`variables`: default `fresh_variables`)."""
    import jax

    variables = fresh_variables(model) if variables is None else variables
    forward = jax.jit(lambda v, x, n: model.apply(v, x, n)[0])
    ms = time_per_second(
        {"model": lambda x, n: forward(variables, x, n).block_until_ready()}, extractor,
        seconds=seconds, sample_rate=sample_rate, repeats=repeats,
    )  # fmt: skip
    return {
        "latency_ms_per_s": ms["features"] + ms["model"],
        "features_ms_per_s": ms["features"],
        "model_ms_per_s": ms["model"],
        "latency_backend": jax.default_backend(),
        "latency_signal": f"{seconds:g} s at {sample_rate} Hz, batch 1, median of {repeats}",
    }


def metrics(model, extractor=None, *, onnx: bool = True, **latency_kwargs) -> dict:
    """Parameters, sizes and (with an extractor) latency of `model`; with `onnx` also the
    figures of its ONNX export where the `export` extra is installed and the family exports
    (`reslstm_jax.export.measure.architecture_metrics`: `ONNX_KEYS` and more)."""
    n = param_count(model)
    out = {"trainable_params": n, **size_kib(n)}
    if extractor is not None:
        variables = fresh_variables(model)  # one initialisation for both runtimes
        out.update(latency(model, extractor, variables=variables, **latency_kwargs))
        if onnx:
            from reslstm_jax.export import measure

            out.update(measure.architecture_metrics(model, extractor, variables=variables,
                                                    **latency_kwargs))  # fmt: skip
    return out


def summary(edge: dict) -> str:
    """One line for logs."""
    text = (f"{edge['trainable_params']:,} parameters, {edge['fp32_kib']:.1f} KiB fp32 / "
            f"{edge['fp16_kib']:.1f} KiB fp16")  # fmt: skip
    if "latency_ms_per_s" in edge:
        text += (f", {edge['latency_ms_per_s']:.2f} ms per second of audio on "
                 f"{edge['latency_backend']} (features {edge['features_ms_per_s']:.2f} + model "
                 f"{edge['model_ms_per_s']:.2f}; {edge['latency_signal']})")  # fmt: skip
    if "onnx_kib" in edge:
        text += f"; ONNX {edge['onnx_kib']:.1f} KiB fp32"
        if edge.get("onnx_int8_kib") is not None:
            text += f" / {edge['onnx_int8_kib']:.1f} KiB int8"
        if edge.get("ort_ms_per_s") is not None:
            int8 = edge.get("ort_int8_model_ms_per_s")
            text += (f", onnxruntime {edge['ort_ms_per_s']:.2f} ms per second of audio "
                     f"(features {edge['ort_features_ms_per_s']:.2f} + model "
                     f"{edge['ort_model_ms_per_s']:.2f}"
                     + ("" if int8 is None else f"; int8 model {int8:.2f}") + ")")  # fmt: skip
    return text
