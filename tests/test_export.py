"""ONNX export: graphs equal to the JAX models (the `export` extra)."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from doc_blocks import REPO
from numerics import assert_rounding_close

import reslstm_jax as rj

ort = pytest.importorskip("onnxruntime")
graphs = pytest.importorskip("reslstm_jax.export.graphs")

# The graphs against the JAX models: onnxruntime's program and XLA's compute the same float32
# mathematics in their own orders and with their own exp / tanh / sigmoid kernels (a few ulps
# each), so they differ by rounding, bounded on the scale of each output. The longest sums that
# reach the outputs whole are the LSTM gate matmuls (at most 46 inputs + 8 hidden = 54 terms, in
# the trained run's model), carried through up to ~60 recurrent steps, and the softmax and
# context sums over the steps; a reordered n-term sum moves by at most about n * eps of its
# terms' size. The convolutions' longer sums (up to 3 * 3 * 128 terms) add rounding of random
# sign, which grows like sqrt(n) * eps (~34). 64 ulps covers these; measured on an Intel Xeon
# (AVX-512): <= 2.9 ulps, 22x under it. The atol of 1e-5 it replaces was 200 to 800 ulps of the
# DS-LSTM's logits (size 0.1 to 0.4); at a scale of 1, 64 ulps is 7.6e-6.
ONNX_ULPS = 64


def _trained_looking(model, seed: int = 1) -> dict:
    """Fresh variables with BatchNorm statistics away from their initial 0 / 1."""
    rng = np.random.default_rng(seed)
    variables = model.init(jax.random.key(seed))
    variables["batch_stats"] = jax.tree_util.tree_map(
        lambda a: a + jnp.asarray(rng.uniform(0.1, 0.5, a.shape), jnp.float32),
        variables["batch_stats"],
    )
    return variables


def _session(proto):
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(
    "name,fields",
    [("lstm_sa", {}),
     ("reslstm_sa", {}),
     ("reslstm_sa", {"res_blocks": 2, "num_att": 3, "att_combine": "linear"}),
     ("reslstm_sa", {"num_att": 2, "row_block": None})],
)  # fmt: skip
def test_attention_lstm_graphs_equal_the_jax_model(name, fields):
    rng = np.random.default_rng(0)
    model = rj.models.get(name, hidden_size=8, input_size=6, num_classes=4, **fields)
    variables = _trained_looking(model)
    mean = rng.standard_normal(6).astype(np.float32)
    std = rng.uniform(0.5, 2.0, 6).astype(np.float32)
    session = _session(graphs.attention_lstm(model, variables, mean, std))
    # one session, other batch sizes and lengths: the batch and time axes are dynamic
    for batch, steps, lengths in [(7, 13, [13, 5, 1, 9, 13, 2, 7]), (1, 4, [4])]:
        x = (rng.standard_normal((batch, steps, 6)) * 2 + 1).astype(np.float32)
        lengths = np.asarray(lengths, np.int32)
        valid = np.arange(steps)[None, :] < lengths[:, None]
        normed = np.where(valid[..., None], (x - mean) / std, 0.0).astype(np.float32)
        logits, extras = model.apply(variables, jnp.asarray(normed), jnp.asarray(lengths))
        # raw features in: the graph normalises; padded frames may hold anything
        x[~valid] = 1e3
        got_logits, got_attention = session.run(["logits", "attention"],
                                                {"features": x, "lengths": lengths})  # fmt: skip
        assert_rounding_close(
            {"logits": got_logits, "attention": got_attention},
            {"logits": logits, "attention": extras["attention"]},
            ulps=ONNX_ULPS,
            err_msg=f"{name} {fields} batch {batch}",
        )
        assert np.all(got_attention[~valid] == 0)  # masked, not computed: exactly 0


def test_parity_mode_models_are_not_exported():
    model = rj.models.get("reslstm_sa", hidden_size=8, input_size=6, paper_compat=True)
    with pytest.raises(graphs.Unsupported, match="paper_compat mode: its outputs depend on"):
        graphs.attention_lstm(model, model.init(jax.random.key(0)), np.zeros(6), np.ones(6))


# ----------------------------------------------------------------------------- the CLI


def test_export_cli_writes_the_best_member_equal_to_the_run_on_real_features(
    trained_run, tone_corpus, tmp_path, capsys
):
    import json

    from reslstm_jax import predict
    from reslstm_jax.export.__main__ import main

    run, _ = trained_run
    assert main(["--run", str(run), "--out", str(tmp_path / "onnx")]) == 0
    record = json.loads((tmp_path / "onnx" / "export.json").read_text())
    runs = json.loads((run / "results.json").read_text())["runs"]
    best = max(runs, key=lambda r: r["best_val_uar"])
    assert record["member"] == {"seed": best["seed"], "fold": best["fold"]}
    assert record["val_uar"] == best["best_val_uar"] and record["opset"] == 17
    assert f"wrote {tmp_path / 'onnx' / 'model.onnx'}" in capsys.readouterr().out
    # the graph against the JAX model on the tone corpus's real features, mixed lengths
    member = predict.load(run, fold=best["fold"], seed=best["seed"])
    files = sorted(tone_corpus.rglob("*.wav"))[:5]
    feats = [np.asarray(member.extractor(str(f)), np.float32) for f in files]
    lengths = np.array([len(f) for f in feats], np.int32)
    x = np.zeros((len(feats), lengths.max(), feats[0].shape[1]), np.float32)
    for row, f in enumerate(feats):
        x[row, : len(f)] = f
    assert len(set(lengths)) > 1
    valid = np.arange(x.shape[1])[None, :] < lengths[:, None]
    normed = np.where(valid[..., None], (x - member.mean[0]) / member.std[0], 0.0)
    variables = jax.tree_util.tree_map(lambda a: np.asarray(a)[0], member.variables)
    logits, _ = member.model.apply(variables, jnp.asarray(normed, jnp.float32),
                                   jnp.asarray(lengths))  # fmt: skip
    session = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"),
                                   providers=["CPUExecutionProvider"])  # fmt: skip
    got = session.run(["logits"], {"features": x, "lengths": lengths})[0]
    assert_rounding_close(got, logits, ulps=ONNX_ULPS)


def test_export_cli_all_members(trained_run, tmp_path):
    import json

    from reslstm_jax.export.__main__ import main

    run, _ = trained_run
    assert main(["--run", str(run), "--out", str(tmp_path / "all"), "--all"]) == 0
    info = json.loads((run / "inference.json").read_text())
    folders = sorted(p.name for p in (tmp_path / "all").iterdir())
    assert folders == sorted(f"seed{s}-{f}" for s in info["seeds"] for f in info["folds"])
    assert all((tmp_path / "all" / f / "model.onnx").stat().st_size > 0 for f in folders)


@pytest.mark.parametrize(
    "extra,message",
    [(["--fold", "fold0"], "--fold and --seed go together"),
     (["--fold", "fold9", "--seed", "0"], "--fold fold9: the run's folds are"),
     (["--all", "--fold", "fold0", "--seed", "0"], "--all exports every member"),
     ("exists", "exists; choose a new folder"),
     ("not a run", "not a finished training run"),
     ("an export", "is an export already, not a training run")],
)  # fmt: skip
def test_export_misuse_is_one_line_exit_2_and_writes_nothing(
    trained_run, tmp_path, capsys, extra, message
):
    from reslstm_jax.export.__main__ import main

    run, _ = trained_run
    out = tmp_path / "onnx"
    if extra == "exists":
        out.mkdir()
        extra = []
    elif extra == "not a run":
        run, extra = tmp_path, []
    elif extra == "an export":
        assert main(["--run", str(run), "--out", str(tmp_path / "e")]) == 0
        run, extra = tmp_path / "e", []
    with pytest.raises(SystemExit) as exited:
        main(["--run", str(run), "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and message in err and "Traceback" not in err
    assert not list(tmp_path.glob("onnx*/*"))


def outside_the_edge_runtime() -> list[str]:
    """The top-level modules a device lacks: those of every distribution that the project's own
    dependencies and the `export` extra bring (JAX, flax, Optuna, W&B, onnx, ...) but the `edge`
    extra's packages do not (the device installs these and the wheel with `--no-deps`,
    docs/export.md). Read from the installed packages' metadata."""
    import tomllib
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]

    def closure(requirements: list[str]) -> set[str]:
        names, todo = set(), [Requirement(r) for r in requirements]
        while todo:
            req = todo.pop()
            name = canonicalize_name(req.name)
            if name in names or (req.marker and not req.marker.evaluate({"extra": ""})):
                continue
            names.add(name)
            try:
                todo += [Requirement(r) for r in metadata.requires(req.name) or ()]
            except metadata.PackageNotFoundError:
                continue  # a dependency of another platform or Python
        return names

    extras = project["optional-dependencies"]
    device = closure(extras["edge"])
    lacking = closure(project["dependencies"] + extras["export"]) - device
    modules = metadata.packages_distributions()
    return sorted(
        module for module, dists in modules.items()
        if not module.startswith("_")
        and {canonicalize_name(d) for d in dists} <= lacking
    )  # fmt: skip


# The edge install has none of the training stack: importing any of it fails here.
PREDICT_WITHOUT_JAX = """
import contextlib, importlib.abc, io, json, os, sys
BLOCKED = set(json.loads(os.environ["BLOCKED_MODULES"]))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed on the device")
sys.meta_path.insert(0, Block())
from reslstm_jax.predict import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "jax": "jax" in sys.modules, "out": out.getvalue()}))
"""


def test_predicting_from_an_export_runs_without_jax_and_prints_what_the_run_prints(
    trained_run, tone_corpus, tmp_path, capsys
):
    import json
    import subprocess
    import sys

    from reslstm_jax.export.__main__ import main as export_main
    from reslstm_jax.predict import main as predict_main

    run, _ = trained_run
    export = tmp_path / "onnx"
    assert export_main(["--run", str(run), "--out", str(export)]) == 0
    member = json.loads((export / "export.json").read_text())["member"]
    files = [str(f) for f in sorted(tone_corpus.rglob("*.wav"))[:3]]
    blocked = outside_the_edge_runtime()
    assert {"jax", "flax", "optax", "orbax", "optuna", "wandb", "onnx", "tqdm"} <= set(blocked)
    assert not {"onnxruntime", "librosa", "numpy", "soundfile", "yaml"} & set(blocked)
    env = {**os.environ, "BLOCKED_MODULES": json.dumps(blocked)}
    proc = subprocess.run([sys.executable, "-c", PREDICT_WITHOUT_JAX, "--run",
                           str(export), "--format", "json", *files], capture_output=True, text=True,
                          timeout=300, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["code"] == 0 and got["jax"] is False
    from_export = json.loads(got["out"])
    capsys.readouterr()
    assert predict_main(["--run", str(run), "--fold", member["fold"], "--seed",
                         str(member["seed"]), "--format", "json", *files]) == 0  # fmt: skip
    from_run = json.loads(capsys.readouterr().out)
    assert from_export["members"] == from_run["members"] == [member]
    assert from_export["classes"] == from_run["classes"]
    for a, b in zip(from_export["results"], from_run["results"], strict=True):
        assert {k: a[k] for k in ("file", "label", "frames", "voiced")} == {
            k: b[k] for k in ("file", "label", "frames", "voiced")}  # fmt: skip
    # float32 probabilities of two programs (the graph, the JAX model) printed as JSON floats:
    # exact float32 values, compared in float32 units of rounding
    probabilities = [
        np.float32([r["probabilities"][c] for r in printed["results"] for c in from_run["classes"]])
        for printed in (from_export, from_run)
    ]
    assert_rounding_close(*probabilities, ulps=ONNX_ULPS)


def test_int8_export_runs_its_lstms_in_int8(trained_run, tmp_path):
    import json

    import onnx

    from reslstm_jax.export.__main__ import main

    run, _ = trained_run
    out = tmp_path / "q"
    assert main(["--run", str(run), "--out", str(out), "--quantize", "int8"]) == 0
    record = json.loads((out / "export.json").read_text())
    int8 = out / "model.int8.onnx"
    assert record["int8"]["bytes"] == int8.stat().st_size
    speed = record["onnxruntime_latency"]  # measured for both graphs, one thread
    assert {k for k in speed if k.endswith("_ms_per_s")} == {
        "features_ms_per_s", "fp32_ms_per_s", "int8_ms_per_s"}  # fmt: skip
    assert all(v > 0 for k, v in speed.items() if k.endswith("_ms_per_s"))
    for name in ("features", "fp32", "int8"):  # the latency module's median and quartiles
        assert 0 < speed[f"{name}_ms_q1"] <= speed[f"{name}_ms_per_s"] <= speed[f"{name}_ms_q3"]
    assert "median of 30 blocks of 20 calls" in speed["signal"]
    ops = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert "DynamicQuantizeLSTM" in ops and "LSTM" not in ops  # the LSTMs run in int8
    # both graphs at IR 8, the lowest opset 17 needs, not the onnx package's newest (14, which
    # onnxruntime before 1.32 refuses; 1.17 runs both graphs at IR 8 with equal outputs)
    for graph in (out / "model.onnx", int8):
        proto = onnx.load(str(graph))
        # (int8's com.microsoft domain: no IR version of its own)
        lowest = onnx.helper.find_min_ir_version_for(proto.opset_import, ignore_unknown=True)
        assert proto.ir_version == lowest == 8
    session = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 40, 46)).astype(np.float32)
    logits = session.run(["logits"], {"features": x, "lengths": np.array([40, 9, 25], np.int32)})
    assert logits[0].shape == (3, len(record["classes"])) and np.isfinite(logits[0]).all()


def test_a_run_with_an_export_inside_is_still_a_run(tmp_path):
    from reslstm_jax.export import runtime

    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "export.json").write_text("{}")
    assert runtime.is_export(tmp_path) and runtime.is_export(tmp_path / "onnx")
    (tmp_path / "inference.json").write_text("{}")  # a training run's file
    assert not runtime.is_export(tmp_path)


def test_light_sernet_graph_equals_the_jax_model():
    rng = np.random.default_rng(0)
    model = rj.models.get("light_sernet", num_classes=4)
    variables = model.init(jax.random.key(0))
    # Statistics away from 0 / 1 on the activations' scale: shifting every mean by 0.1 to 0.5
    # (as `_trained_looking` does) silences every unit from lflb2 on, and all logits are 0.
    variables["batch_stats"] = jax.tree_util.tree_map_with_path(
        lambda path, a: jnp.asarray(
            rng.uniform(*((0.6, 1.4) if "var" in jax.tree_util.keystr(path) else (-0.2, 0.2)),
                        a.shape),
            jnp.float32,
        ),
        variables["batch_stats"],
    )  # fmt: skip
    mean = rng.standard_normal(40).astype(np.float32)
    std = rng.uniform(0.5, 2.0, 40).astype(np.float32)
    session = _session(graphs.light_sernet(model, variables, mean, std))
    assert [out.name for out in session.get_outputs()] == ["logits"]
    # odd sizes: the "same" pools pad at the end, and the padded cells are not averaged
    x = rng.standard_normal((2, 37, 40)).astype(np.float32)
    lengths = np.array([37, 37], np.int32)
    logits, _ = model.apply(variables, jnp.asarray((x - mean) / std), jnp.asarray(lengths))
    got = session.run(["logits"], {"features": x, "lengths": lengths})[0]
    assert np.abs(np.asarray(logits)).max() > 0.1  # logits of live units, not 0 against 0
    assert_rounding_close(got, logits, ulps=ONNX_ULPS)


def test_evaluate_reports_test_uar_of_jax_fp32_and_int8(trained_run, tone_corpus, feature_cache,
                                                        tmp_path, capsys):  # fmt: skip
    import json

    from reslstm_jax.export.__main__ import main

    run, _ = trained_run
    out = tmp_path / "ev"
    assert main(["--run", str(run), "--out", str(out), "--quantize", "int8",
                 "--evaluate", "--data-dir", str(tone_corpus), "--cache-dir",
                 str(feature_cache)]) == 0  # fmt: skip
    report = json.loads((out / "export_report.json").read_text())
    (member,) = report["members"]
    runs = json.loads((run / "results.json").read_text())["runs"]
    same = next(r for r in runs if (r["seed"], r["fold"]) == (member["seed"], member["fold"]))
    assert member["jax_uar"] == same["test"]["uar"] and member["n_test"] == same["test"]["n"]
    # fp32 labels the test utterances as the run's own predictions (logits equal up to rounding,
    # the same argmax), and both UARs are the same float64 metrics.classification of the same
    # labels (JSON keeps a float exactly): equal
    assert member["fp32_uar"] == member["jax_uar"]
    assert 0.0 <= member["int8_uar"] <= 1.0
    # the edge figures side by side: the run's JAX ones, each graph's size and onnxruntime time
    record = json.loads((out / "export.json").read_text())
    assert report["jax_edge"]["latency_ms_per_s"] > 0
    assert member["onnx_kib"] == record["bytes"] / 1024
    assert member["onnx_int8_kib"] == record["int8"]["bytes"] / 1024
    assert member["onnxruntime_latency"]["int8_ms_per_s"] > 0
    assert "test UAR, seed" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # a real corpus needs its copy: one line, nothing written
        main(["--run", str(run), "--out", str(tmp_path / "no"), "--evaluate"])
    assert "--evaluate needs --data-dir" in capsys.readouterr().err
    assert not list(tmp_path.glob("no*"))


# a small DS-LSTM: 3 aligned steps after the CNNs (the defaults have 27)
_SMALL_DS = {"num_classes": 4, "hidden_size": 8, "cnn_channels": (4, 2), "n_mels_a": 16,
             "frames_a": 40, "n_mels_b": 24, "frames_b": 24, "mfcc_size": 5}  # fmt: skip


@pytest.mark.parametrize(
    "fields", [{}, {"gate_norm": "sigmoid", "head_weight": 0.3}, {"branches": "ds"},
               {"ds_layers": 1, "lstm_layers": 1}],
)  # fmt: skip
def test_ds_lstm_graph_equals_the_jax_model(fields):
    rng = np.random.default_rng(0)
    model = rj.models.get("ds_lstm", **_SMALL_DS, **fields)
    variables = _trained_looking(model)
    session = _session(graphs.ds_lstm(model, variables))
    lengths = np.array([11, 3, 7], np.int32)
    x = {"a": rng.standard_normal((3, 40, 16)) * 3, "b": rng.standard_normal((3, 24, 24)) * 3}
    if model.branches == "full":
        x["mfcc"] = rng.standard_normal((3, 11, 5))
    x = {k: v.astype(np.float32) for k, v in x.items()}
    logits, _ = model.apply(variables, {k: jnp.asarray(v) for k, v in x.items()},
                            jnp.asarray(lengths))  # fmt: skip
    if "mfcc" in x:  # padded MFCC frames may hold anything
        x["mfcc"][np.arange(11)[None, :] >= lengths[:, None]] = 1e3
    got = session.run(["logits"], {**x, "lengths": lengths})[0]
    assert_rounding_close(got, logits, ulps=ONNX_ULPS, err_msg=str(fields))


def test_ds_lstm_graph_on_real_features_runs_in_int8_and_predicts_as_jax(tone_corpus, tmp_path):
    """A small DS-LSTM on the tone corpus's ds_lstm_inputs (spectrograms of its sizes, MFCCs
    of mixed lengths): fp32 logits equal, the int8 graph runs, and the ONNX runtime's dict
    input path predicts as JAX."""
    from reslstm_jax import features
    from reslstm_jax.export import measure, runtime

    model = rj.models.get("ds_lstm", **{**_SMALL_DS, "num_classes": 2, "mfcc_size": 39})
    variables = _trained_looking(model)
    files = sorted(tone_corpus.rglob("*.wav"))[:3]
    sizes = {k: _SMALL_DS[k] for k in ("n_mels_a", "frames_a", "n_mels_b", "frames_b")}
    feats = [features.get("ds_lstm_inputs", **sizes)(f) for f in files]
    lengths = np.array([len(f["mfcc"]) for f in feats], np.int32)
    assert len(set(lengths)) > 1
    x = {k: np.stack([f[k] for f in feats]) for k in ("a", "b")}
    x["mfcc"] = np.zeros((3, lengths.max(), 39), np.float32)
    for row, f in enumerate(feats):
        x["mfcc"][row, : lengths[row]] = f["mfcc"]
    logits, _ = jax.jit(model.apply)(variables, x, jnp.asarray(lengths))
    fp32 = tmp_path / "model.onnx"
    fp32.write_bytes(graphs.ds_lstm(model, variables).SerializeToString())
    session = measure.session(fp32)
    got = session.run(["logits"], measure.feed(session, x, lengths))[0]
    assert_rounding_close(got, logits, ulps=ONNX_ULPS)
    measure.quantize_int8(fp32, tmp_path / "model.int8.onnx")
    int8 = measure.session(tmp_path / "model.int8.onnx")
    assert np.isfinite(int8.run(["logits"], measure.feed(int8, x, lengths))[0]).all()
    predictor = runtime.OnnxPredictor({"classes": ["a", "b"]}, [(0, "fold0")], None, [session])
    probs, attention = predictor.forward(x, lengths)
    assert attention is None
    assert_rounding_close(probs[0], jax.nn.softmax(logits), ulps=ONNX_ULPS)


def _cut(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _edit(key, change):
    def edit(path):
        import json

        record = json.loads((path.parent / "export.json").read_text())
        record[key] = change(record[key])
        (path.parent / "export.json").write_text(json.dumps(record))

    return edit


@pytest.mark.parametrize(
    "file, damage, message",
    [("model.onnx", _cut, "model.onnx is not the graph export.json records (SHA-256 differs"),
     ("export.json", _cut, "export.json is damaged ("),
     ("export.json", _edit("classes", lambda c: c[:-1]), "classes for a graph of"),
     ("export.json", _edit("features", lambda f: {**f, "name": "nope"}),
      "its features cannot be computed"),
     ("export.json", _edit("features", lambda f: {**f, "params": {**f["params"], "n_fft": 0}}),
      "its features cannot be computed"),
     ("export.json", _edit("member", lambda m: None), "no member (seed and fold)")],
)  # fmt: skip
def test_a_damaged_or_edited_export_is_refused_in_one_line(
    trained_run, tone_corpus, tmp_path, run_main, file, damage, message
):
    """predict checks an export before it trusts it: the graph's SHA-256 against export.json,
    export.json's form, its classes against the graph's outputs, its extractor."""
    from reslstm_jax.export.__main__ import main as export_main
    from reslstm_jax.predict import main as predict_main

    export = tmp_path / "onnx"
    assert export_main(["--run", str(trained_run[0]), "--out", str(export)]) == 0
    damage(export / file)
    clip = next(tone_corpus.rglob("*.wav"))
    done = run_main(predict_main, ["--run", export, clip])
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: export {export}") and message in line, line
