"""What an export costs on a device: int8 quantisation, onnxruntime sessions and latency
(an export's own record, its graphs timed in the exporting process by `reslstm_jax.latency`'s
loop; the edge metrics of runs, sweep trials and reports are measured by `reslstm_jax.latency`
in a process of its own, which writes its graphs with `write_graphs`).

```python
from reslstm_jax.export import measure
measure.quantize_int8(path, int8_path)                     # onnxruntime dynamic quantisation
measure.ort_latency({"fp32": path}, extractor, sample_rate=16000)   # ms per second of audio
```
"""

from __future__ import annotations

import importlib.util
import logging
import pathlib
import tempfile

import numpy as np


def available() -> bool:
    """Whether the `export` extra (onnx, onnxruntime) is installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


# The operators dynamic quantisation turns into int8 ones. Not Conv: onnxruntime's dynamic
# ConvInteger has no fast kernel on CPUs (measured, docs/export.md: Light-SERNet 4x and DS-LSTM
# 3.4x slower than fp32 with it, DS-LSTM 1.4x faster without it), so convolutions stay fp32.
INT8_OPS = ("MatMul", "Gemm", "LSTM")

# Families whose weights are (nearly) all in convolutions: an int8 graph would be the fp32 one.
INT8_REFUSED = {
    "light_sernet": "light_sernet: no int8 graph: its weights are in convolutions, which "
    "dynamic quantisation leaves in fp32 (onnxruntime's dynamic ConvInteger runs about 4x "
    "slower than fp32), so int8 would change nothing; static quantisation with calibration "
    "data is not implemented",
}


def int8_refusal(family: str) -> str | None:
    """Why `family` has no int8 graph (one line), or None when it quantises."""
    return INT8_REFUSED.get(family)


def quantize_int8(source: pathlib.Path, target: pathlib.Path) -> bytes:
    """onnxruntime's dynamic quantisation of `source` (int8 weights of `INT8_OPS`; activations
    quantised at run time, so no calibration data is needed) written to `target`; its bytes."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to run a pre-processing step: not for LSTMs
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8,
                         op_types_to_quantize=list(INT8_OPS))  # fmt: skip
    finally:
        root.setLevel(level)
    return target.read_bytes()


def session(path):
    """An onnxruntime CPU session of the graph at `path` (or its bytes), one thread: batch 1
    on a device, and the figures comparable with the single-threaded JAX ones."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    model = path if isinstance(path, bytes) else str(path)
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def feed(session, x, lengths) -> dict:
    """The inputs of `session` from features x [B, T, D] (the graph's `features`) or
    {key: [B, ...]} (DS-LSTM's `a`, `b`, `mfcc`), and lengths [B]; keys the graph does not
    read (a DS-only model's `mfcc`) are left out."""
    arrays = x if isinstance(x, dict) else {"features": x}
    inputs = {k: np.asarray(v, np.float32) for k, v in arrays.items()}
    inputs["lengths"] = np.asarray(lengths, np.int32)
    names = {i.name for i in session.get_inputs()}
    return {k: v for k, v in inputs.items() if k in names}


def ort_latency(models: dict, extractor, *, sample_rate: int) -> dict:
    """onnxruntime's model time per second of audio (ms) for each of `models` ({name: path})
    and the feature extraction's, timed as `reslstm_jax.latency` times (its test signal, batch
    1, one thread; every call warmed up, then round robin over blocks, the median and
    interquartile range of the blocks' mean call), in this process:
    `{"features_ms_per_s", "features_ms_q1", "features_ms_q3", "<name>_ms_per_s",
    "<name>_ms_q1", "<name>_ms_q3", ..., "signal"}`."""
    from reslstm_jax import edge, latency

    sessions = {name: session(path) for name, path in models.items()}
    seconds = latency.SECONDS
    with tempfile.TemporaryDirectory(prefix="reslstm-export-latency-") as tmp:
        wav = edge.write_test_signal(pathlib.Path(tmp) / "signal.wav", seconds, sample_rate)
        x, lengths = edge.batch_of_one(extractor(wav))
        calls = {("features",): lambda: extractor(wav)}
        for name, s in sessions.items():
            inputs = feed(s, x, lengths)
            calls[(name,)] = lambda s=s, inputs=inputs: s.run(["logits"], inputs)
        times = latency.interleaved(calls)
    out: dict = {}
    for (name,), t in times.items():
        timing = latency.spread(t, seconds)
        out[f"{name}_ms_per_s"] = timing["median"]
        out[f"{name}_ms_q1"], out[f"{name}_ms_q3"] = timing["q1"], timing["q3"]
    out["signal"] = (f"{seconds:g} s at {sample_rate} Hz, batch 1, one thread, median of "
                     f"{latency.BLOCKS} blocks of {latency.CALLS_PER_BLOCK} calls "
                     "(features: 1)")  # fmt: skip
    return out


def write_graphs(model, variables: dict, folder: pathlib.Path) -> dict[str, pathlib.Path]:
    """`folder/model.onnx` of `model` with `variables` (`edge.fresh_variables` when only the
    shapes matter) and an identity normalisation, and
    `folder/model.int8.onnx` unless the family has no int8 graph (`int8_refusal`):
    {"fp32": path, "int8": path}. Raises `graphs.Unsupported`."""
    from reslstm_jax.export import graphs

    size = getattr(model, "input_size", 1)  # normalisation constants: shapes only matter here
    proto = graphs.BUILDERS[model.name](model, variables, np.zeros(size, np.float32),
                                        np.ones(size, np.float32))  # fmt: skip
    written = {"fp32": folder / "model.onnx"}
    written["fp32"].write_bytes(proto.SerializeToString())
    if int8_refusal(model.name) is None:
        written["int8"] = folder / "model.int8.onnx"
        quantize_int8(written["fp32"], written["int8"])
    return written


def int8_test_uar(run_dir, dataset, results: dict, configuration: int = 0) -> float | None:
    """The int8 graphs' test UAR of a trained run, as its `test_uar` is computed: every
    member (seed x fold) exported with its trained weights and its fold's normalisation,
    quantised (`quantize_int8`), run by onnxruntime on that fold's test utterances; the
    predictions pooled over folds per seed, UAR per seed, mean over seeds (`export --evaluate`
    measures the same per member). None where the extra is not installed or the family has no
    int8 graph.

    Args:
      run_dir: the run (or sweep group) directory with its best parameters.
      dataset: the data the run was trained on (its test features are read).
      results: the configuration's results (its runs' test utterance ids).
    """
    from reslstm_jax import data, metrics, predict
    from reslstm_jax.export import graphs

    if not available() or int8_refusal(results["model"]["name"]) is not None:
        return None
    predictor = predict.load(run_dir, configuration=configuration)
    if predictor.info["model"] not in graphs.BUILDERS:
        return None
    import jax

    row_of = {u: i for i, u in enumerate(dataset.ids)}
    runs = {(r["seed"], r["fold"]): r for r in results["runs"]}
    pooled: dict = {}  # seed -> ([labels], [predictions])
    with tempfile.TemporaryDirectory(prefix="reslstm-int8-") as tmp:
        for index, (seed, fold) in enumerate(predictor.members):
            variables = jax.tree_util.tree_map(lambda a, i=index: np.asarray(a)[i],
                                               predictor.variables)  # fmt: skip
            try:
                proto = graphs.BUILDERS[predictor.info["model"]](
                    predictor.model, variables, predictor.mean[index], predictor.std[index]
                )
            except graphs.Unsupported:
                return None
            fp32 = pathlib.Path(tmp) / f"{index}.onnx"
            fp32.write_bytes(proto.SerializeToString())
            int8 = quantize_int8(fp32, pathlib.Path(tmp) / f"{index}.int8.onnx")
            rows = np.asarray([row_of[u] for u in runs[(seed, fold)]["test_predictions"]["ids"]])
            s = session(int8)
            logits = s.run(["logits"], feed(s, data.take_rows(dataset.x, rows),
                                            dataset.lengths[rows]))[0]  # fmt: skip
            labels, preds = pooled.setdefault(seed, ([], []))
            labels.extend(dataset.labels[rows].tolist())
            preds.extend(logits.argmax(1).tolist())
    n_classes = len(dataset.classes)
    per_seed = [metrics.classification(np.asarray(y), np.asarray(p), n_classes)["uar"]
                for y, p in pooled.values()]  # fmt: skip
    return float(np.mean(per_seed))


def int8_uar_beside(edge: dict, run_dir, dataset, results: dict, configuration: int = 0) -> dict:
    """`{"int8_uar": ...}` where `edge` shows an int8 graph's size (`onnx_int8_kib`), so that
    the size is never shown without the UAR of that graph (`int8_test_uar`); else `{}`."""
    if edge.get("onnx_int8_kib") is None:
        return {}
    return {"int8_uar": int8_test_uar(run_dir, dataset, results, configuration=configuration)}
