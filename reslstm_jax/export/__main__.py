"""`python -m reslstm_jax.export --run RUN_DIR --out DIR`: a trained run as ONNX.

Default: the member (fold x seed) with the best validation UAR; `--fold F --seed S` picks one,
`--all` exports every member (one folder each). Each export folder holds `model.onnx`
(inputs `features` [B, T, D] float32 raw features and `lengths` [B] int32; outputs `logits`
[B, C] and, for the attention LSTMs, `attention` [B, T]; the normalisation is inside the
graph), `model.int8.onnx` with `--quantize int8`, and `export.json` (the model, classes,
feature extractor and its parameters, the member, its validation UAR, sizes, sha256s and
onnxruntime latency). `--evaluate` adds `export_report.json` (test UAR: JAX, fp32, int8). The
output folder must not exist; it appears whole or not at all (docs/export.md).
"""

from __future__ import annotations

import argparse
import hashlib
import pathlib
import shutil
import sys

import numpy as np

from reslstm_jax import artifacts, configfile, flags
from reslstm_jax.export.runtime import EXPORT_FILE, MODEL_FILE

INT8_FILE = "model.int8.onnx"
REPORT_FILE = "export_report.json"


class ExportError(ValueError):
    """A run, member or output the export cannot use (one line)."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m reslstm_jax.export", description=__doc__,
                                formatter_class=flags.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--run", metavar="DIR",  # required: flags.require (--checkpoint counts)
                   help="a finished run (the --out of `python -m reslstm_jax.train`)")  # fmt: skip
    flags.deprecated(p, "--checkpoint", "--run", metavar="DIR")
    p.add_argument("--out", required=True, help="the export folder (must not exist)")
    p.add_argument("--configuration", type=int, default=0,
                   help="which configuration of a multi-configuration run (default 0)")  # fmt: skip
    p.add_argument("--fold", help="with --seed: this member (default: the best validation UAR)")
    p.add_argument("--seed", type=int)
    p.add_argument("--all", action="store_true", help="every member, one folder each")
    p.add_argument("--evaluate", action="store_true",
                   help="also: test UAR of each exported member as the JAX model, the fp32 and "
                   "the int8 graph, on its fold's test speakers (export_report.json); needs the "
                   "corpus (--data-dir, --cache-dir)")  # fmt: skip
    p.add_argument("--data-dir", help="the run's corpus, for --evaluate (not for synthetic)")
    p.add_argument("--cache-dir", help="feature cache for --evaluate")
    p.add_argument("--quantize", choices=["int8"],
                   help="also write model.int8.onnx: int8 weights, activations quantised "
                   "at run time (onnxruntime's dynamic quantisation)")  # fmt: skip
    configfile.add_flags(p)
    return flags.ranged(p)


def val_uars(run: pathlib.Path, info: dict) -> dict:
    """{(seed, fold): best validation UAR} from the run's results.json; empty for a run of
    several configurations (a sweep group: its results are per trial) or without results."""
    path = run / "results.json"
    if info["configurations"] != 1 or not path.is_file():
        return {}
    return {(r["seed"], r["fold"]): r["best_val_uar"] for r in artifacts.read_json(path)["runs"]}


def member_record(predictor, index: int, run: pathlib.Path) -> dict:
    """export.json of one member (without the graph's hash)."""
    seed, fold = predictor.members[index]
    info = predictor.info
    return {
        "model": info["model"], "model_config": info["model_config"],
        "classes": info["classes"], "features": info["features"],
        "sample_rates": info.get("sample_rates"), "corpus": info.get("corpus"),
        "protocol": info.get("protocol"), "run": str(run.resolve()),
        "member": {"seed": seed, "fold": fold}, "opset": None,
        "inputs": {"features": "[batch, frames, D] float32, raw (normalised in the graph)",
                   "lengths": "[batch] int32, valid frames per row"},
        "outputs": {"logits": "[batch, classes] float32",
                    **({"attention": "[batch, frames] float32"}
                       if info["model"] in ("lstm_sa", "reslstm_sa") else {})},
    }  # fmt: skip


def export_member(predictor, index: int, folder: pathlib.Path, run: pathlib.Path,
                  val_uar: float | None, quantize: bool = False) -> dict:  # fmt: skip
    """Write `folder/model.onnx` and `folder/export.json` for member `index`."""
    import jax

    from reslstm_jax import edge
    from reslstm_jax.export import graphs, measure

    variables = jax.tree_util.tree_map(lambda a: np.asarray(a)[index], predictor.variables)
    seed, fold = predictor.members[index]
    name = f"{predictor.model.name}-{fold}-seed{seed}"
    build = graphs.BUILDERS[predictor.info["model"]]
    proto = build(predictor.model, variables, predictor.mean[index], predictor.std[index],
                  name=name)  # fmt: skip
    data = proto.SerializeToString()
    folder.mkdir(parents=True)
    (folder / MODEL_FILE).write_bytes(data)
    record = member_record(predictor, index, run)
    record.update(opset=graphs.OPSET, val_uar=val_uar, bytes=len(data),
                  sha256=hashlib.sha256(data).hexdigest())  # fmt: skip
    models = {"fp32": folder / MODEL_FILE}
    if quantize:
        int8 = measure.quantize_int8(folder / MODEL_FILE, folder / INT8_FILE)
        record["int8"] = {"file": INT8_FILE, "bytes": len(int8),
                          "sha256": hashlib.sha256(int8).hexdigest()}  # fmt: skip
        models["int8"] = folder / INT8_FILE
    rate = edge.signal_rate(record.get("sample_rates"))
    record["onnxruntime_latency"] = measure.ort_latency(models, predictor.extractor,
                                                        sample_rate=rate)  # fmt: skip
    artifacts.write_json(folder / EXPORT_FILE, record)
    return record


def export(args) -> list[pathlib.Path]:
    """Export what the flags select; the folders written. Raises ExportError."""
    from reslstm_jax import predict
    from reslstm_jax.export import graphs, measure, runtime

    out = pathlib.Path(args.out).expanduser()
    if runtime.is_export(args.run):
        raise ExportError(f"--run {args.run} is an export already, not a "
                          "training run")  # fmt: skip
    if out.exists():
        raise ExportError(f"--out {out} exists; choose a new folder (nothing is overwritten)")
    if (args.fold is None) != (args.seed is None):
        raise ExportError("--fold and --seed go together (one member), or use --all")
    if args.all and args.fold is not None:
        raise ExportError("--all exports every member: leave out --fold and --seed")
    try:
        artifacts.check_output_dir(out.parent if str(out.parent) else pathlib.Path("."))
        predictor = predict.load(args.run, configuration=args.configuration,
                                 fold=args.fold, seed=args.seed)  # fmt: skip
    except (predict.PredictError, predict.RunDamaged, artifacts.OutputError) as exc:
        raise ExportError(str(exc)) from None  # a damaged run: the one line predict gives
    family = predictor.info["model"]
    if family not in graphs.BUILDERS:
        raise ExportError(f"{family}: ONNX export is implemented for "
                          f"{', '.join(sorted(graphs.BUILDERS))} only so far")  # fmt: skip
    if args.quantize == "int8" and measure.int8_refusal(family):
        raise ExportError(f"--quantize int8: {measure.int8_refusal(family)}")
    run = predict.run_dir(args.run)
    members = [tuple(m) for m in predictor.members]
    scores = val_uars(run, predictor.info)
    chosen = members  # --all, or the one member --fold/--seed selected
    if not args.all and args.fold is None:  # the best validation UAR (the first on ties)
        chosen = [max(members, key=lambda m: (scores.get(m, -1.0), -members.index(m)))]
    part = out.with_name(out.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    try:
        written = []
        for seed, fold in chosen:
            folder = part / f"seed{seed}-{fold}" if args.all else part
            export_member(predictor, members.index((seed, fold)), folder, run,
                          scores.get((seed, fold)), quantize=args.quantize == "int8")  # fmt: skip
            written.append(out / folder.relative_to(part))
        if args.evaluate:  # before the folder appears: a failed evaluation leaves nothing
            folders = [part / f.relative_to(out) for f in written]
            artifacts.write_json(part / REPORT_FILE,
                                 evaluate(run, folders, args.data_dir, args.cache_dir))  # fmt: skip
        part.rename(out)
    except BaseException as exc:
        shutil.rmtree(part, ignore_errors=True)
        if isinstance(exc, OSError) and (reason := artifacts.write_error_reason(exc)):
            raise ExportError(f"cannot write {out}: {reason}") from None  # a full disk
        raise
    return written


def evaluate(run: pathlib.Path, folders: list[pathlib.Path], data_dir, cache_dir) -> dict:
    """Test UAR of every exported member (`folders`) as the JAX model (results.json), the fp32
    graph and, where written, the int8 graph, on the same test utterances of its fold."""
    from reslstm_jax import data, metrics
    from reslstm_jax.corpora.base import CorpusError
    from reslstm_jax.export import measure

    if not (run / "results.json").is_file():
        raise ExportError(f"--evaluate: {run} has no results.json (a run of several "
                          "configurations, or one that did not finish)")  # fmt: skip
    results = artifacts.read_json(run / "results.json")
    card = results["card"]
    synthetic = card["corpus"] == "synthetic"
    if data_dir is None and not synthetic:
        raise ExportError(f"--evaluate needs --data-dir: the {card['corpus']} copy the run "
                          "was trained on")  # fmt: skip
    try:
        dataset = data.prepare(
            None if synthetic else card["corpus"], data_dir,
            protocol=card["protocol"], extractor=card["features"]["name"],
            extractor_params=card["features"]["params"], normalisation=card["normalisation"],
            cache_dir=cache_dir, progress=False,
        )  # fmt: skip
    except (CorpusError, ValueError) as exc:
        raise ExportError(f"--evaluate: {exc}") from None
    if dataset.card["utterance_ids_sha256"] != card["utterance_ids_sha256"]:
        raise ExportError(f"--data-dir {data_dir}: not the utterances the run was trained on "
                          "(its protocol card's utterance hash differs)")  # fmt: skip
    row_of = {u: i for i, u in enumerate(dataset.ids)}
    runs = {(r["seed"], r["fold"]): r for r in results["runs"]}
    # the run's JAX edge figures, beside each graph's size and onnxruntime time below
    jax_edge = {k: v for k, v in (results.get("edge") or {}).items()
                if k in ("trainable_params", "fp32_kib", "latency_ms_per_s", "features_ms_per_s",
                         "model_ms_per_s", "latency_backend", "latency_signal")}  # fmt: skip
    report = {"run": str(run.resolve()), "jax_edge": jax_edge, "members": []}
    for folder in folders:
        record = artifacts.read_json(folder / EXPORT_FILE)
        member = runs[(record["member"]["seed"], record["member"]["fold"])]
        rows = np.asarray([row_of[u] for u in member["test_predictions"]["ids"]])
        labels = dataset.labels[rows]
        entry = {**record["member"], "n_test": len(rows), "jax_uar": member["test"]["uar"],
                 "onnx_kib": record["bytes"] / 1024,
                 "onnx_int8_kib": record["int8"]["bytes"] / 1024 if "int8" in record else None,
                 "onnxruntime_latency": record["onnxruntime_latency"]}  # fmt: skip
        graphs = {"fp32": MODEL_FILE, **({"int8": INT8_FILE} if "int8" in record else {})}
        for key, file in graphs.items():
            session = measure.session(folder / file)
            x = data.take_rows(dataset.x, rows)
            logits = session.run(["logits"], measure.feed(session, x, dataset.lengths[rows]))[0]
            scores = metrics.classification(labels, logits.argmax(1), len(dataset.classes))
            entry[f"{key}_uar"] = scores["uar"]
        report["members"].append(entry)
    return report


def main(argv=None) -> int:
    from reslstm_jax import hardware
    from reslstm_jax.export import graphs

    parser = build_parser()
    args = configfile.parse_args(parser, argv)
    flags.require(parser, args, "--run")
    if configfile.print_if_asked(parser, args):
        return 0
    hardware.single_threaded_xla()
    from reslstm_jax import runlock

    out = pathlib.Path(args.out).expanduser()
    try:
        # one process per export folder (the lock lives elsewhere: "--out exists" still holds,
        # and `export` checks the place under the lock)
        with runlock.hold(out):
            written = export(args)
    except runlock.FolderBusy as exc:
        parser.error(f"--out {exc}")
    except graphs.Unsupported as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ExportError as exc:
        parser.error(str(exc))
    for folder in written:
        record = artifacts.read_json(folder / EXPORT_FILE)
        member = record["member"]
        uar = "" if record["val_uar"] is None else f", val UAR {record['val_uar']:.4f}"
        int8 = record.get("int8")
        also = f", {folder / INT8_FILE} ({int8['bytes'] / 1024:.1f} KiB)" if int8 else ""
        print(f"wrote {folder / MODEL_FILE} ({record['bytes'] / 1024:.1f} KiB){also}; seed "
              f"{member['seed']}, {member['fold']}{uar}")  # fmt: skip
        speed = record["onnxruntime_latency"]
        timed = ", ".join(f"{k[:-9]} {v:.3f} (IQR {speed[k[:-9] + '_ms_q1']:.3f}-"
                          f"{speed[k[:-9] + '_ms_q3']:.3f})"
                          for k, v in speed.items() if k.endswith("_ms_per_s"))  # fmt: skip
        print(f"  onnxruntime ms per second of audio: {timed} ({speed['signal']})")
    report = pathlib.Path(args.out).expanduser() / REPORT_FILE
    for m in artifacts.read_json(report)["members"] if args.evaluate else []:
        int8 = f", int8 {m['int8_uar']:.4f}" if "int8_uar" in m else ""
        print(f"test UAR, seed {m['seed']} {m['fold']} ({m['n_test']} utterances): JAX "
              f"{m['jax_uar']:.4f}, fp32 {m['fp32_uar']:.4f}{int8}")  # fmt: skip
    if args.evaluate:
        print(f"wrote {report}")
    return 0


def console() -> int:
    """The console script's entry point (pyproject.toml): `main` with Ctrl-C and SIGTERM
    turned into one line and a resumable state (`reslstm_jax.interrupts`)."""
    from reslstm_jax import interrupts

    return interrupts.run(main)


if __name__ == "__main__":
    sys.exit(console())
