"""`python -m experiments.bench --onnx`: exported graphs' sizes and onnxruntime latency next to
the JAX forward pass, for the paper's six configurations and the seed models (the `export`
extra; the table of docs/export.md).
"""

from __future__ import annotations

import pathlib
import time

from experiments.bench import CLASSES, N_FEATURES, PAPER_CONFIGS

# `--onnx`: the paper's six configurations at RAVDESS's 8 classes, then the seed models at
# their published sizes (Light-SERNet: EMO-DB's 7 classes; DS-LSTM: IEMOCAP's 4, both branches)
ONNX_CONFIGS = [*((name, {"hidden_size": h, "input_size": N_FEATURES, "num_classes": CLASSES})
                  for name, h in PAPER_CONFIGS),
                ("light_sernet", {"num_classes": 7}), ("ds_lstm", {"num_classes": 4})]  # fmt: skip


def measure_onnx(seconds: float = 3.7, repeats: int = 50) -> list[dict]:
    """onnxruntime latency of one utterance of `seconds` of audio in each model's own features
    (`reslstm_jax.models.__main__.example_input`: 87 frames of mfcc_chroma, Light-SERNet's 3 s
    crop, DS-LSTM's fixed spectrograms and 370 MFCC frames; batch 1, one thread, median of
    `repeats` after a warm-up) and file sizes, fp32 and int8, for `ONNX_CONFIGS`, next to the
    JAX eval forward pass on the same input (the `export` extra; weights from a fresh
    initialisation: the cost does not depend on their values)."""
    import tempfile

    import jax
    import numpy as np

    import reslstm_jax as rj
    from reslstm_jax import edge
    from reslstm_jax.export import measure
    from reslstm_jax.models.__main__ import example_input

    def median_ms(fn, *args) -> float:
        fn(*args)  # warm-up (JAX: compile)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times.append(time.perf_counter() - start)
        return float(np.median(times)) * 1000

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, fields in ONNX_CONFIGS:
            model = rj.models.get(name, **fields)
            variables = edge.fresh_variables(model)
            folder = pathlib.Path(tmp) / f"{name}{fields.get('hidden_size', '')}"
            folder.mkdir()
            files = measure.write_graphs(model, variables, folder)  # Light-SERNet: no int8
            x, lengths, frames = example_input(model, seconds)
            x = jax.tree_util.tree_map(np.asarray, x)
            row = {"model": name, "hidden": getattr(model, "hidden_size", None), "frames": frames,
                   "params": rj.count_params(variables["params"]), "int8_kib": None,
                   "ort_int8_ms": None}  # fmt: skip
            for key, path in files.items():
                row[f"{key}_kib"] = path.stat().st_size / 1024
                session = measure.session(path)
                row[f"ort_{key}_ms"] = median_ms(session.run, ["logits"],
                                                 measure.feed(session, x, lengths))  # fmt: skip
            forward = jax.jit(lambda v, a, n, m=model: m.apply(v, a, n)[0])
            row["jax_ms"] = median_ms(forward, variables, x, np.asarray(lengths))
            rows.append(row)
    return rows


def print_onnx_table() -> None:
    """`--onnx`: `measure_onnx` as the markdown table of docs/export.md."""
    print("| model | H | params | frames | .onnx KiB fp32 | int8 | onnxruntime ms fp32 | int8 "
          "| JAX ms |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for r in measure_onnx():
        print(f"| {r['model']} | {r['hidden'] or '-'} | {r['params']:,} | {r['frames']} | "
              f"{r['fp32_kib']:.1f} | {_or_dash(r['int8_kib'], 1)} | {r['ort_fp32_ms']:.3f} | "
              f"{_or_dash(r['ort_int8_ms'], 3)} | {r['jax_ms']:.3f} |", flush=True)  # fmt: skip


def _or_dash(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    import sys

    from reslstm_jax import flags

    sys.exit(flags.not_a_command(__spec__.name))
