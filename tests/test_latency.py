"""Latency measured apart from training (`reslstm_jax.latency`): the model's own time and the
feature front-end's, each with its spread, relative to a reference model, in a process of its
own pinned to one core."""

from __future__ import annotations

import pytest

from reslstm_jax import latency


def test_the_measuring_process_times_each_model_and_each_feature_set_once():
    """One process for several architectures (few repeats: the figures' form, not their
    values, is tested; their stability is a benchmark: docs/performance.md)."""
    archs = [
        latency.Architecture("reslstm_sa", {"hidden_size": 8}, "mfcc_chroma", {}, 16000),
        latency.Architecture("light_sernet", {"num_classes": 4}, "tf_mfcc", {}, 16000),
        latency.Architecture(
            "reslstm_sa", {"hidden_size": 8, "paper_compat": True}, "mfcc_chroma", {}, 16000
        ),  # fmt: skip
    ]
    figures = latency.measure(archs, seconds=1.0, blocks=3, calls_per_block=2)
    assert figures["machine"]["threads"] == 1 and figures["machine"]["cpu"]
    assert figures["repeats"] == {"blocks": 3, "calls_per_block": 2, "warmup": latency.WARMUP}
    assert figures["reference"]["name"] == "reslstm_sa h64"
    res, light, compat = figures["architectures"]
    for one in (res, light, compat):
        for timing in (one["model"], one["features"]):
            assert 0 < timing["q1"] <= timing["median"] <= timing["q3"]
        assert one["relative"] == one["model"]["median"] / figures["reference"]["model"]["median"]
    assert res["features"] == compat["features"] != light["features"]  # once per feature set
    # onnxruntime: fp32 and int8 for the LSTMs, fp32 only for the convolutions, none for a
    # configuration that does not export (paper_compat), each with its graph's size
    assert res["ort_int8"]["median"] > 0 and res["onnx_int8_kib"] > 0
    assert light["ort_fp32"]["median"] > 0 and light["ort_int8"] is None
    assert light["onnx_int8_kib"] is None
    assert compat["ort_fp32"] is None and "onnx_kib" not in compat
    fields = latency.edge_fields(figures, 0)
    assert fields["model_ms_per_s"] == res["model"]["median"]
    assert fields["latency_ms_per_s"] == res["features"]["median"] + res["model"]["median"]
    assert fields["model_rel"] == res["relative"] and fields["latency_threads"] == 1
    assert fields["ort_int8_model_ms_per_s"] == res["ort_int8"]["median"]
    assert "onnx_kib" not in latency.edge_fields(figures, 2)


def test_a_failed_measurement_is_one_error_with_its_reason():
    with pytest.raises(latency.LatencyError, match="the latency measurement failed"):
        latency.measure([latency.Architecture("nope", {}, "mfcc_chroma", {}, 16000)],
                        blocks=1, calls_per_block=1)  # fmt: skip


@pytest.mark.parametrize(
    "times,median,q1,q3",
    [([0.001, 0.002, 0.003], 2 / 3, 0.5, 5 / 6),  # seconds a call, 3 s of audio -> ms/s
     ([0.003], 1.0, 1.0, 1.0)],
)  # fmt: skip
def test_spread_is_the_median_and_quartiles_per_second_of_audio(times, median, q1, q3):
    got = latency.spread(times, 3.0)
    assert got == pytest.approx({"median": median, "q1": q1, "q3": q3})


def _row(hidden, median, q1, q3, model="lstm_sa"):
    return {"model": model, "hidden_size": str(hidden), "model_ms_per_s": str(median),
            "model_ms_q1": str(q1), "model_ms_q3": str(q3), "model_rel": "1.0",
            "latency_cpu": "cpu"}  # fmt: skip


@pytest.mark.parametrize(
    "second,ordered_rows,passes",
    [([_row(16, 0.0105, 0.01, 0.011), _row(64, 0.021, 0.02, 0.022)], None, True),
     ([_row(16, 0.0120, 0.01, 0.011), _row(64, 0.021, 0.02, 0.022)], None, False),  # +20%
     ([_row(16, 0.030, 0.029, 0.031), _row(64, 0.02, 0.019, 0.021)],
      [_row(16, 0.030, 0.029, 0.031), _row(64, 0.02, 0.019, 0.021)], False)],  # h64 faster
)  # fmt: skip
def test_the_repeatability_benchmark_checks_both_runs(second, ordered_rows, passes):
    from experiments import bench_latency

    first = ordered_rows or [_row(16, 0.0100, 0.0095, 0.0105), _row(64, 0.0200, 0.019, 0.021)]
    lines, ok = bench_latency.compare(first, second)
    assert ok == passes and lines[0].startswith("model")
    assert lines[-1] == "machine: cpu"


def test_a_failed_measurement_leaves_the_results_without_latencies(monkeypatch):
    """After hours of training, a measuring process that fails costs the latencies only: a
    warning, the sizes kept (the sweep launcher's deferred phase warns the same way)."""
    import dataclasses
    import types

    from reslstm_jax import models, train

    def fail(*args, **kwargs):
        raise latency.LatencyError("the latency measurement failed (exit 1): boom")

    monkeypatch.setattr(latency, "measure", fail)
    model = models.get("lstm_sa", hidden_size=8)
    results = {"model": {"name": "lstm_sa", "config": dataclasses.asdict(model)}}
    card = {"features": {"name": "mfcc_chroma", "params": {}}, "sample_rates": {"16000": 3}}
    with pytest.warns(UserWarning, match="boom; the results are kept without latencies"):
        edge = train.edge_metrics(results, types.SimpleNamespace(card=card))
    assert edge["trainable_params"] > 0 and "model_ms_per_s" not in edge
