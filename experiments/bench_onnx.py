"""`python -m experiments.bench --onnx`: exported graphs' sizes and onnxruntime latency next to
the JAX forward pass, for the paper's six configurations and the seed models (the `export`
extra; the table of docs/export.md), measured as every latency of the project is
(`reslstm_jax.latency`: a process of its own on one core, one thread, per second of audio).
"""

from __future__ import annotations

from experiments.bench import CLASSES, N_FEATURES, PAPER_CONFIGS

# `--onnx`: the paper's six configurations at RAVDESS's 8 classes, then the seed models at
# their published sizes (Light-SERNet: EMO-DB's 7 classes; DS-LSTM: IEMOCAP's 4, both branches)
ONNX_CONFIGS = [*((name, {"hidden_size": h, "input_size": N_FEATURES, "num_classes": CLASSES})
                  for name, h in PAPER_CONFIGS),
                ("light_sernet", {"num_classes": 7}), ("ds_lstm", {"num_classes": 4})]  # fmt: skip


def measure_onnx() -> tuple[list[dict], dict]:
    """For each of `ONNX_CONFIGS` on its family's features (`latency.recipe_architecture`: 71
    frames of mfcc_chroma for the 3 s test signal at 48 kHz, Light-SERNet's 184 and DS-LSTM's
    297 MFCC frames at 16 kHz): the .onnx file sizes, fp32 and int8, and the model's own time
    per second of audio (median of `latency.BLOCKS` rounds), onnxruntime fp32 and int8 and the
    jitted JAX forward pass, batch 1, one thread; weights freshly initialised (the cost does
    not depend on their values). Needs the `export` extra."""
    import reslstm_jax as rj
    from reslstm_jax import latency

    figures = latency.measure([latency.recipe_architecture(name, config)
                               for name, config in ONNX_CONFIGS], onnx=True)  # fmt: skip
    rows = []
    for i, ((name, config), one) in enumerate(zip(ONNX_CONFIGS, figures["architectures"],
                                                  strict=True)):  # fmt: skip
        model = rj.models.get(name, **config)
        fields = latency.edge_fields(figures, i)
        rows.append({"model": name, "hidden": getattr(model, "hidden_size", None),
                     "params": rj.param_count(model), "frames": one["frames"],
                     "fp32_kib": one.get("onnx_kib"), "int8_kib": one.get("onnx_int8_kib"),
                     "ort_fp32_ms": fields.get("ort_model_ms_per_s"),
                     "ort_int8_ms": fields.get("ort_int8_model_ms_per_s"),
                     "jax_ms": fields["model_ms_per_s"]})  # fmt: skip
    return rows, figures["machine"]


def print_onnx_table() -> None:
    """`--onnx`: `measure_onnx` as the markdown table of docs/export.md (ms per second of
    audio)."""
    rows, machine = measure_onnx()
    print(f"measured on {machine['cpu']}, {machine['threads']} thread")
    print("| model | H | params | frames | .onnx KiB fp32 | int8 | onnxruntime ms/s fp32 | int8 "
          "| JAX ms/s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['hidden'] or '-'} | {r['params']:,} | {r['frames']} | "
              f"{_or_dash(r['fp32_kib'], 1)} | {_or_dash(r['int8_kib'], 1)} | "
              f"{_or_dash(r['ort_fp32_ms'], 3)} | {_or_dash(r['ort_int8_ms'], 3)} | "
              f"{r['jax_ms']:.3f} |", flush=True)  # fmt: skip


def _or_dash(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    import sys

    from reslstm_jax import flags

    sys.exit(flags.not_a_command(__spec__.name))
