"""Latency of models, measured apart from training: each model's own time (the jitted JAX
forward pass; onnxruntime fp32 and int8 with the `export` extra) and the feature front-end's,
each the median and interquartile range of many timed calls, in a process of its own.

```python
figures = latency.measure([latency.Architecture("reslstm_sa", {"hidden_size": 64},
                                                "mfcc_chroma", {}, 48000)])
figures["architectures"][0]["model"]   # {"median": 0.41, "q1": 0.40, "q3": 0.43} ms/s audio
figures["machine"]                     # {"cpu": "Intel(R) Xeon(R) ...", "threads": 1, ...}
```

Why a process of its own (`python -m reslstm_jax.latency`, the job on its standard input):
the figures must not depend on what else this process did or does. It runs on one core it
pins itself to (`os.sched_setaffinity`), with one XLA and one onnxruntime thread, JAX on the
CPU; nothing of this project trains while it runs (the callers measure before or after
training, never during: `docs/reports.md`, "How latencies are measured").

What is timed, per second of a `seconds`-long test signal (`edge.test_signal`) at the
training audio's sample rate, batch 1:

* `model`: the jitted forward pass on the features of that signal;
* `features`: the feature extraction from the WAV file, once per feature set and sample rate
  (every model that reads those features pays it alike);
* `ort_fp32`, `ort_int8`: onnxruntime's model time for the exported graphs (fresh weights:
  the time depends on the shapes, not the values), where the extra is installed and the family
  exports, with the graphs' file sizes (`onnx_kib`, `onnx_int8_kib`);
* the reference: the model time of `REFERENCE` (the paper's ResLSTM-SA h64 on its features at
  `REFERENCE_RATE`, RAVDESS's 48 kHz), timed in the same process, so that `relative` (model /
  reference) compares machines.

How (`interleaved`): every call is built and compiled first and called `WARMUP` times
untimed; then `BLOCKS` rounds time every call in turn, `CALLS_PER_BLOCK` model calls in a row
(the features once); the figures are the median and quartiles of the blocks' mean call time.
Round robin, so that a drift of the machine touches every model alike. Chosen by measurement
on a quiet 2-core Xeon (docs/performance.md, "Latency"): over four processes, 30 blocks of
20 calls held every model's median within 8% and its ratio to the reference within 5%;
30 blocks of 5 calls moved medians by up to 21%, and single calls (200 of them, one model
after the other) by up to 14%.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

WARMUP = 10
BLOCKS = 30  # timed rounds: the median and quartiles are over these
CALLS_PER_BLOCK = 20  # model calls in a row per round (the features: one)
SECONDS = 3.0  # the test signal's length (figures are per second of it)
REFERENCE = ("reslstm_sa", {"hidden_size": 64})  # the paper's model
REFERENCE_RATE = 48000  # on the paper's corpus, RAVDESS, at its native rate


class LatencyError(RuntimeError):
    """The measuring process failed (its last lines)."""


@dataclasses.dataclass(frozen=True)
class Architecture:
    """What is timed: a model family and configuration, and the features it reads (its dict
    fields make it unhashable: `key()` identifies it)."""

    family: str
    config: dict
    features: str
    feature_params: dict
    sample_rate: int = 16000

    def key(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def recipe_architecture(family: str, config: dict) -> Architecture:
    """`family` with `config` on its recipe's features (`families`), at the extractor's own
    sample rate where it works at one, else RAVDESS's 48 kHz (`features.signal_rate`): what
    the model zoo and the ONNX benchmark time, where no corpus gives features and a rate."""
    from reslstm_jax import families, features

    name = families.get(family).recipe.features
    return Architecture(family, dict(config), name, {}, features.signal_rate(features.get(name)))


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo; elsewhere what `platform` knows)."""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def spread(times_s: list[float], seconds: float) -> dict:
    """{"median", "q1", "q3"} of `times_s` (seconds a call) in ms per second of audio."""
    ms = np.asarray(times_s, np.float64) * 1000.0 / seconds
    q1, median, q3 = np.percentile(ms, [25, 50, 75])
    return {"median": float(median), "q1": float(q1), "q3": float(q3)}


def measure(architectures: list[Architecture], *, seconds: float = SECONDS,
            blocks: int = BLOCKS, calls_per_block: int = CALLS_PER_BLOCK, onnx: bool = True,
            timeout: float = 1800) -> dict:  # fmt: skip
    """Time `architectures` in a process of its own (see the module docstring).

    Returns:
      {"machine": {"cpu", "threads", "core", "backend", "python"}, "signal": "...",
       "repeats": {"blocks", "calls_per_block", "warmup"}, "reference": {"name", "model",
       "ort_fp32"},
       "architectures": [{"model", "features", "feature_set", "frames", "ort_fp32",
                          "ort_int8", "relative", "ort_relative"}, ...]} in the order given;
      each timing a `spread` dict, the ONNX ones None where not measured, `relative` = model
      median / reference's; `frames` the model input's frames for the signal.

    Raises:
      LatencyError: the measuring process failed.
    """
    job = {"architectures": [dataclasses.asdict(a) for a in architectures],
           "seconds": seconds, "blocks": blocks, "calls_per_block": calls_per_block,
           "onnx": onnx}  # fmt: skip
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "OMP_NUM_THREADS": "1",
        "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    }
    proc = subprocess.run([sys.executable, "-m", "reslstm_jax.latency"], input=json.dumps(job),
                          capture_output=True, text=True, env=env, timeout=timeout)  # fmt: skip
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise LatencyError(f"the latency measurement failed (exit {proc.returncode}): {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def edge_fields(figures: dict, index: int = 0) -> dict:
    """The results' edge keys of architecture `index` of `measure`'s figures: the model's own
    latency first (`model_ms_per_s` and its quartiles, `model_rel`), the feature front-end's
    (`features_ms_per_s`, quartiles), their sum `latency_ms_per_s` (derived), onnxruntime's
    model figures where measured, and where they were measured."""
    one = figures["architectures"][index]
    out = {
        "model_ms_per_s": one["model"]["median"],
        "model_ms_q1": one["model"]["q1"], "model_ms_q3": one["model"]["q3"],
        "model_rel": one["relative"],
        "features_ms_per_s": one["features"]["median"],
        "features_ms_q1": one["features"]["q1"], "features_ms_q3": one["features"]["q3"],
        "latency_features": one["feature_set"],
        "latency_ms_per_s": one["features"]["median"] + one["model"]["median"],
        "latency_backend": figures["machine"]["backend"],
        "latency_cpu": figures["machine"]["cpu"],
        "latency_threads": figures["machine"]["threads"],
        "latency_signal": figures["signal"],
        "latency_reference": figures["reference"]["name"],
        "reference_model_ms_per_s": figures["reference"]["model"]["median"],
    }  # fmt: skip
    for kind in ("fp32", "int8"):
        timing = one.get(f"ort_{kind}")
        if timing is not None:
            out[f"ort_{'' if kind == 'fp32' else 'int8_'}model_ms_per_s"] = timing["median"]
            out[f"ort_{kind}_ms_q1"], out[f"ort_{kind}_ms_q3"] = timing["q1"], timing["q3"]
    if one.get("ort_fp32") is not None:
        out["ort_model_rel"] = one["ort_relative"]
        out["ort_ms_per_s"] = one["features"]["median"] + one["ort_fp32"]["median"]
        out["onnx_kib"], out["onnx_int8_kib"] = one["onnx_kib"], one["onnx_int8_kib"]
    return out


# ----------------------------------------------------------------------------- the process


def _pin_to_one_core() -> int | None:
    """Run on the last core this process may use (the first is where the OS and shells
    tend to run); None where affinity cannot be set."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    core = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def _run(job: dict) -> dict:
    import jax

    from reslstm_jax import edge, features, models

    core = _pin_to_one_core()
    seconds = float(job["seconds"])
    reference = {"family": REFERENCE[0], "config": REFERENCE[1],
                 "features": _reference_features(), "feature_params": {},
                 "sample_rate": REFERENCE_RATE}  # fmt: skip
    archs = [reference, *job["architectures"]]
    calls: dict = {}  # (what, index or feature set) -> a call that returns when done
    found: list[dict] = [{} for _ in archs]  # per architecture: its feature set, graph sizes
    with tempfile.TemporaryDirectory(prefix="reslstm-latency-") as tmp:
        for i, arch in enumerate(archs):  # every call built and compiled before any is timed
            model = models.get(arch["family"], **arch["config"])
            extractor = features.get(arch["features"], **arch["feature_params"])
            rate = int(arch["sample_rate"])
            wav = pathlib.Path(tmp) / f"signal-{rate}.wav"
            if not wav.exists():
                edge.write_test_signal(wav, seconds, rate)
            x, lengths = edge.batch_of_one(extractor(wav))
            # timed once per extractor and parameters; named by extractor and rate
            feature_key = json.dumps([arch["features"], arch["feature_params"], rate],
                                     sort_keys=True)  # fmt: skip
            found[i]["feature_set"] = f"{arch['features']} at {rate} Hz"
            found[i]["frames"] = int(lengths[0])  # the model's input frames for the signal
            found[i]["feature_key"] = feature_key
            calls.setdefault(("features", feature_key), lambda e=extractor, w=wav: e(w))
            variables = edge.fresh_variables(model)
            forward = jax.jit(lambda v, a, n, m=model: m.apply(v, a, n)[0])
            calls[("model", i)] = (lambda f=forward, v=variables, a=x, n=lengths:
                                   f(v, a, n).block_until_ready())  # fmt: skip
            if job["onnx"]:
                sessions, sizes = _onnx_sessions(model, variables, tmp)
                found[i].update(sizes)
                for kind, (session, feed) in _fed(sessions, x, lengths).items():
                    calls[(f"ort_{kind}", i)] = (lambda s=session, f=feed:
                                                 s.run(["logits"], f))  # fmt: skip
        times = interleaved(calls, job["blocks"], job["calls_per_block"])
    timing = {key: spread(t, seconds) for key, t in times.items()}
    out = []
    for i in range(len(archs)):
        one = {
            "features": timing[("features", found[i].pop("feature_key"))],
            **found[i],
            "model": timing[("model", i)],
            "ort_fp32": timing.get(("ort_fp32", i)),
            "ort_int8": timing.get(("ort_int8", i)),
        }
        out.append(one)
    ref = out[0]
    for one in out[1:]:
        one["relative"] = one["model"]["median"] / ref["model"]["median"]
        one["ort_relative"] = (
            None
            if one["ort_fp32"] is None or ref["ort_fp32"] is None
            else one["ort_fp32"]["median"] / ref["ort_fp32"]["median"]
        )
    return {
        "machine": {"cpu": cpu_model(), "threads": 1, "core": core,
                    "backend": jax.default_backend(), "python": platform.python_version()},
        "signal": f"{seconds:g} s test signal, batch 1, one thread on one core",
        "repeats": {"blocks": job["blocks"], "calls_per_block": job["calls_per_block"],
                    "warmup": WARMUP},
        "reference": {"name": f"{REFERENCE[0]} h{REFERENCE[1]['hidden_size']}",
                      "model": ref["model"], "ort_fp32": ref["ort_fp32"]},
        "architectures": out[1:],
    }  # fmt: skip


def interleaved(calls: dict, blocks: int = BLOCKS, calls_per_block: int = CALLS_PER_BLOCK
                ) -> dict:  # fmt: skip
    """{key: [seconds a call, one per block]} of `calls` ({key: call}, a key a tuple whose
    first item is "features" for the feature extraction): after `WARMUP` untimed calls of
    each, `blocks` rounds in which every call is timed in turn, `calls_per_block` times in a
    row (the feature extraction once: it takes milliseconds). Round robin, so that a slow
    drift of the machine (its clock, another process) touches every model alike, and the
    ratios to the reference hold where the absolute figures move; the mean of a block smooths
    the jitter of a sub-millisecond call."""
    for call in calls.values():
        for _ in range(WARMUP):
            call()
    times: dict = {key: [] for key in calls}
    for _ in range(blocks):
        for key, call in calls.items():
            n = 1 if key[0] == "features" else calls_per_block
            start = time.perf_counter()
            for _ in range(n):
                call()
            times[key].append((time.perf_counter() - start) / n)
    return times


def _reference_features() -> str:
    from reslstm_jax import families

    return families.get(REFERENCE[0]).recipe.features


def _onnx_sessions(model, variables, tmp: str) -> tuple[dict, dict]:
    """({"fp32": session, "int8": session}, {"onnx_kib", "onnx_int8_kib"}) of `model`'s graphs
    (onnxruntime, one thread); empty where the extra is not installed or the model does not
    export."""
    from reslstm_jax.export import graphs, measure

    if not measure.available() or model.name not in graphs.BUILDERS:
        return {}, {}
    folder = pathlib.Path(tempfile.mkdtemp(dir=tmp))
    try:
        written = measure.write_graphs(model, variables, folder)
    except graphs.Unsupported:
        return {}, {}
    sizes = {"onnx_kib": written["fp32"].stat().st_size / 1024,
             "onnx_int8_kib": written["int8"].stat().st_size / 1024 if "int8" in written
             else None}  # fmt: skip
    return {kind: measure.session(path) for kind, path in written.items()}, sizes


def _fed(sessions: dict, x, lengths) -> dict:
    from reslstm_jax.export import measure

    return {kind: (s, measure.feed(s, x, lengths)) for kind, s in sessions.items()}


def main() -> int:
    """The measuring process: the job (JSON) on standard input, the figures (one JSON line)
    on standard output."""
    job = json.loads(sys.stdin.read())
    print(json.dumps(_run(job)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
