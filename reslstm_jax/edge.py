"""Edge metrics: what a model costs on a device, next to what it scores.

* trainable parameters (exact, from shapes);
* model size of the trainable parameters in KiB at fp32 and fp16 (4 and 2 bytes each;
  BatchNorm running statistics are not counted, as the papers count);
* latencies: measured apart from training by `reslstm_jax.latency` (the model's own time, the
  feature front-end's, each with its spread; relative to a reference model); this module
  holds what they share (the test signal, a batch of one), the one-line summary and the
  feature timings and machines that tables name once.
"""

from __future__ import annotations

import numpy as np

from reslstm_jax.params import param_count

# The ONNX export's figures that tables, sweeps and W&B carry next to the JAX ones (when the
# `export` extra is installed): graph file sizes fp32 / int8 (KiB), the int8 graphs' test UAR
# (beside their size: `export.measure.int8_test_uar`) and onnxruntime's features + fp32 model
# time per second of audio (batch 1, one thread).
ONNX_KEYS = ("onnx_kib", "onnx_int8_kib", "int8_uar", "ort_ms_per_s")
# The latency figures tables, sweeps and W&B carry (`reslstm_jax.latency.edge_fields`): the
# model's own time first (median and quartiles, relative to the reference model), the
# feature front-end's (the same for every model of a feature set), their sum, onnxruntime's
# model times, and where they were measured.
LATENCY_KEYS = ("model_ms_per_s", "model_ms_q1", "model_ms_q3", "model_rel",
                "features_ms_per_s", "features_ms_q1", "features_ms_q3", "latency_features",
                "latency_ms_per_s", "ort_model_ms_per_s", "ort_int8_model_ms_per_s",
                "latency_cpu", "latency_threads", "latency_reference")  # fmt: skip


def size_kib(n_params: int) -> dict:
    """{"fp32_kib", "fp16_kib"} of `n_params` trainable parameters."""
    return {"fp32_kib": n_params * 4 / 1024, "fp16_kib": n_params * 2 / 1024}


def feature_timings(rows: list[dict]) -> dict[str, str]:
    """The feature front-end's time of `rows` (result rows with `LATENCY_KEYS`) once per
    feature set, every model reading those features paying it alike: {feature set: "7.00 ms
    (IQR 6.90-7.20)"} per second of audio, from the first row of each set."""
    first: dict = {}
    for row in rows:
        if row.get("features_ms_per_s") is not None:
            first.setdefault(row.get("latency_features"), row)
    return {name: f"{r['features_ms_per_s']:.2f} ms (IQR {r['features_ms_q1']:.2f}-"
                  f"{r['features_ms_q3']:.2f})" for name, r in first.items()}  # fmt: skip


def latency_machines(rows: list[dict]) -> list[tuple]:
    """The machines `rows`' latencies were measured on, (CPU, threads) sorted: figures from
    two machines compare through the relative column only."""
    return sorted({(str(r.get("latency_cpu")), r.get("latency_threads")) for r in rows
                   if r.get("features_ms_per_s") is not None}, key=str)  # fmt: skip


def test_signal(seconds: float, sample_rate: int) -> np.ndarray:
    """A deterministic speech-band chirp with noise, float32 in [-0.5, 0.5]."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    chirp = np.sin(2 * np.pi * (120 + 400 * t / max(seconds, 1e-9)) * t)
    noise = np.random.default_rng(0).standard_normal(t.shape)
    return (0.4 * chirp + 0.05 * noise).astype(np.float32)


def write_test_signal(path, seconds: float, sample_rate: int):
    """`test_signal` written to `path` as a 16-bit WAV (what the feature extractors read, as
    they read a corpus's files); returns `path`."""
    import soundfile

    soundfile.write(path, test_signal(seconds, sample_rate), sample_rate, subtype="PCM_16")
    return path


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


def fresh_variables(model) -> dict:
    """`model`'s variables from a fresh initialisation (key 0): the weights whose speed is
    measured (any weights time the same). Compiled: an eager init runs each initialiser op
    by op (~0.5 s)."""
    import jax

    return jax.jit(model.init)(jax.random.key(0))


def metrics(model) -> dict:
    """Parameters and sizes of `model` (the latencies: `reslstm_jax.latency`)."""
    n = param_count(model)
    return {"trainable_params": n, **size_kib(n)}


def summary(edge: dict) -> str:
    """One line for logs."""
    text = (f"{edge['trainable_params']:,} parameters, {edge['fp32_kib']:.1f} KiB fp32 / "
            f"{edge['fp16_kib']:.1f} KiB fp16")  # fmt: skip
    if "latency_ms_per_s" in edge:
        text += (f", model {edge['model_ms_per_s']:.3f} ms per second of audio (IQR "
                 f"{edge['model_ms_q1']:.3f}-{edge['model_ms_q3']:.3f}; "
                 f"{edge['model_rel']:.2f} x {edge['latency_reference']}), features "
                 f"{edge['features_ms_per_s']:.2f} ms/s, on {edge['latency_cpu']} "
                 f"({edge['latency_signal']})")  # fmt: skip
    if "onnx_kib" in edge:
        text += f"; ONNX {edge['onnx_kib']:.1f} KiB fp32"
        if edge.get("onnx_int8_kib") is not None:
            text += f" / {edge['onnx_int8_kib']:.1f} KiB int8"
            if edge.get("int8_uar") is not None:
                text += f" (int8 test UAR {edge['int8_uar']:.4f})"
        if edge.get("ort_ms_per_s") is not None:
            int8 = edge.get("ort_int8_model_ms_per_s")
            text += (f", onnxruntime model {edge['ort_model_ms_per_s']:.3f} ms/s"
                     + ("" if int8 is None else f", int8 {int8:.3f} ms/s"))  # fmt: skip
    return text
