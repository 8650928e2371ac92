"""Inference with a trained run: `python -m reslstm_jax.predict --run DIR FILE_OR_DIR...`

```bash
python -m reslstm_jax.predict --run runs/train/h64 clip.wav more_clips/
python -m reslstm_jax.predict --run runs/train/h64 --fold fold2 --seed 0 --format json clip.wav
```

`DIR` is the output directory of `python -m reslstm_jax.train` (or a sweep group directory):
`best/` (the best-validation parameters of every fold x seed model), `inference.json` (model,
features, classes, training sample rate) and `normalisation.npz` (each fold's statistics).
Features are computed with the training run's extractor; audio at another sample rate is
resampled to the training audio's rate when the extractor works at the native rate (as the
ResLSTM-SA features do), and any length works (the sequence models are length-agnostic).

By default every fold x seed model of the run votes: the prediction is the argmax of the mean
class probabilities, each model normalising the features with its own fold's statistics.
`--fold` / `--seed` restrict the ensemble (both: one model). Files that cannot be read get one
line on stderr and the others still run (exit status 1 if any failed).
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import sys

import numpy as np

from reslstm_jax import artifacts, configfile, flags, hardware
from reslstm_jax.artifacts import INFERENCE_FILE

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
FRAME_BUCKET = 32  # pad lengths to multiples of this: few compiles, any length


class RunDamaged(ValueError):
    """A file of the run cannot be read (one line naming the run and the file)."""


class PredictError(ValueError):
    """A checkpoint directory or selection that cannot be used (one line)."""


@dataclasses.dataclass
class Predictor:
    """A loaded run, ready to label audio."""

    info: dict
    model: object
    variables: dict  # stacked [n_members, ...]
    mean: np.ndarray  # [n_members, D]
    std: np.ndarray  # [n_members, D]
    members: list[tuple[int, str]]  # (seed, fold) of each member
    extractor: object
    _forward: object = None

    @property
    def classes(self) -> list[str]:
        return self.info["classes"]

    def forward(self, x, lengths: np.ndarray):
        """x [B, T, D] raw features (or {key: array}) and lengths [B] -> (probabilities
        [M, B, C], attention [M, B, T] or None) of the M members, each normalising with its
        own fold's statistics (`reslstm_jax.export.runtime.OnnxPredictor.forward` alike)."""
        import jax
        import jax.numpy as jnp

        if self._forward is None:
            self._forward = _forward(self)
        x = jax.tree_util.tree_map(jnp.asarray, x)
        probs, weights = self._forward(self.variables, jnp.asarray(self.mean)[:, None],
                                       jnp.asarray(self.std)[:, None], x,
                                       jnp.asarray(lengths, jnp.int32))  # fmt: skip
        return np.asarray(probs), None if weights is None else np.asarray(weights)


def extractor_of(info: dict):
    """The extractor a trained run or export recorded (`info["features"]`: name and
    parameters), bringing any input to the training sample rate when the recipe resamples
    (`sample_rate` None) and the training audio had one rate (`info["sample_rates"]`)."""
    params = dict(info["features"]["params"])
    rates = info.get("sample_rates") or {}
    if "sample_rate" in params and params["sample_rate"] is None and len(rates) == 1:
        params["sample_rate"] = int(next(iter(rates)))
    from reslstm_jax import features

    return features.get(info["features"]["name"], **params)


def checkpoint_dir(path) -> pathlib.Path:
    """The run directory of `path` (`run_dir`), or the export folder it is."""
    from reslstm_jax.export import runtime

    return pathlib.Path(path).expanduser() if runtime.is_export(path) else run_dir(path)


def run_dir(path) -> pathlib.Path:
    """The run directory of `path` (itself, or the parent of its `best/`)."""
    path = pathlib.Path(path).expanduser()
    if path.name == "best" and (path.parent / INFERENCE_FILE).is_file():
        path = path.parent
    if not path.is_dir():
        raise PredictError(f"--run {path}: no such directory")
    for name in artifacts.missing_run_files(path)[:1]:
        raise PredictError(
            f"--run {path}: not a finished training run (no {name}; "
            "`python -m reslstm_jax.train --out DIR` writes it at the end)"
        )
    return path


def load(checkpoint, *, configuration: int = 0, fold: str | None = None,
         seed: int | None = None) -> Predictor:  # fmt: skip
    """Load a run's best parameters and settings, or an ONNX export (`reslstm_jax.export`:
    then without JAX); select the ensemble members."""
    from reslstm_jax.export import runtime

    if runtime.is_export(checkpoint):
        return _load_export(checkpoint, fold, seed)
    import jax

    from reslstm_jax import checkpoint as ckpt
    from reslstm_jax import models
    from reslstm_jax.train.layout import ModelLayout

    path = run_dir(checkpoint)
    try:
        info = artifacts.read_inference_info(path)
    except ValueError as exc:  # JSONDecodeError: cut short or overwritten
        raise RunDamaged(f"run {path}: {INFERENCE_FILE} is damaged ({exc}); retrain the run or "
                         "restore the file") from None  # fmt: skip
    seeds, folds = info["seeds"], info["folds"]
    if not 0 <= configuration < info["configurations"]:
        raise PredictError(f"--configuration must be in 0..{info['configurations'] - 1}")
    if fold is not None and fold not in folds:
        raise PredictError(f"--fold {fold}: the run's folds are {', '.join(folds)}")
    if seed is not None and seed not in seeds:
        raise PredictError(f"--seed {seed}: the run's seeds are {', '.join(map(str, seeds))}")
    layout = ModelLayout(info["configurations"], tuple(seeds), tuple(folds))
    selected = layout.select(configuration, seed=seed, fold=fold)
    members = [(s, name) for _, s, name in selected]
    model = models.get(info["model"], **info["model_config"])
    try:
        stacked = ckpt.load_best(path / artifacts.BEST_DIR)
    except ckpt.CheckpointDamaged as exc:
        raise RunDamaged(f"run {path}: best parameters damaged: {exc}") from None
    variables = jax.tree_util.tree_map(lambda a: np.asarray(a)[[m for m, _, _ in selected]],
                                       stacked)  # fmt: skip
    fold_mean, fold_std = artifacts.read_normalisation(path)
    fold_of = [folds.index(name) for _, name in members]
    mean, std = fold_mean[fold_of], fold_std[fold_of]
    return Predictor(info, model, variables, mean, std, members, extractor_of(info))


def _load_export(path, fold: str | None, seed: int | None):
    """An export folder as a predictor (onnxruntime), its members narrowed by fold and seed."""
    import importlib.util

    from reslstm_jax.export import runtime

    if importlib.util.find_spec("onnxruntime") is None:
        raise PredictError(f"--run {path} is an ONNX export: predicting from it needs "
                           "onnxruntime (pip install -e '.[edge]')")  # fmt: skip
    try:
        predictor = runtime.load(path)
    except runtime.ExportDamaged as exc:  # predict's one line for a damaged run, too
        raise RunDamaged(str(exc)) from None
    keep = [i for i, (s, f) in enumerate(predictor.members)
            if (fold is None or f == fold) and (seed is None or s == seed)]  # fmt: skip
    if not keep:
        have = ", ".join(f"seed {s} {f}" for s, f in predictor.members)
        raise PredictError(f"--fold/--seed: the export's members are {have}")
    predictor.members = [predictor.members[i] for i in keep]
    predictor.sessions = [predictor.sessions[i] for i in keep]
    return predictor


def _forward(predictor: Predictor):
    import jax

    model = predictor.model

    def one(variables, mean, std, x, lengths):
        if not isinstance(x, dict):  # multi-array features (DS-LSTM) are never normalised
            steps = x.shape[1]
            valid = (np.arange(steps)[None, :] < lengths[:, None])[..., None]
            x = jax.numpy.where(valid, (x - mean) / std, 0.0)
        logits, extras = model.apply(variables, x, lengths)
        return jax.nn.softmax(logits, -1), extras.get("attention")  # None: the model has none

    return jax.jit(jax.vmap(one, in_axes=(0, 0, 0, None, None)))


def _pad_one(seq: np.ndarray) -> np.ndarray:
    """[T, D] -> [1, T rounded up to FRAME_BUCKET, D], zeros after T."""
    from reslstm_jax.data import pad_sequences

    return pad_sequences([seq], math.ceil(len(seq) / FRAME_BUCKET) * FRAME_BUCKET)[0]


def predict_features(predictor: Predictor, feats) -> dict:
    """Ensemble prediction of one utterance's features: [T, D], or {key: array} for
    multi-array features (the sequence key padded, fixed-size arrays as they are)."""
    from reslstm_jax.data import SEQUENCE_KEY

    if isinstance(feats, dict):
        frames = len(feats.get(SEQUENCE_KEY, next(iter(feats.values()))))
        x = {k: _pad_one(v) if k == SEQUENCE_KEY else np.asarray(v)[None]
             for k, v in feats.items()}  # fmt: skip
    else:
        frames = len(feats)
        x = _pad_one(feats)
    probs, weights = predictor.forward(x, np.asarray([frames], np.int32))
    mean_probs = probs[:, 0].mean(0)
    attention = None if weights is None else weights[:, 0, :frames].mean(0)
    return {
        "label": predictor.classes[int(np.argmax(mean_probs))],
        "probabilities": {c: float(p) for c, p in zip(predictor.classes, mean_probs, strict=True)},
        "attention": attention,
        "frames": frames,
    }


def model_label(info: dict) -> str:
    """ "reslstm_sa h64": the model and its size, from inference.json."""
    hidden = info.get("model_config", {}).get("hidden_size")
    return f"{info['model']} h{hidden}" if hidden else info["model"]


def display_spectrogram(extractor, path, feats: np.ndarray) -> tuple[np.ndarray, str, float]:
    """What to draw under the attention weights: a log-mel spectrogram on the model's frame
    grid when the extractor has one (same n_fft and hop, centred frames, as `mfcc_chroma`),
    otherwise the features z-scored per coefficient. Returns ([T, F], axis label, seconds per
    frame: the hop, or for other extractors the audio's duration over T)."""
    if hasattr(extractor, "n_fft") and hasattr(extractor, "hop_length"):
        from reslstm_jax import extractors
        from reslstm_jax.audio import import_librosa, load_audio

        y, sr = load_audio(path, extractor.sample_rate, extractor.n_fft)
        # the features' own STFT and cached mel filters (librosa's melspectrogram, bit for bit)
        power = extractors.power_spectrogram(y, extractor.n_fft, extractor.hop_length)
        mel = extractors.mel_spectrogram(power, sr, extractor.n_fft, n_mels=64)
        spec = import_librosa().power_to_db(mel, ref=np.max).T[: len(feats)]
        return spec, "mel band (log power)", extractor.hop_length / sr
    import soundfile

    z = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
    return z, "feature (z-scored per coefficient)", soundfile.info(str(path)).duration / len(feats)


def expand(paths) -> tuple[list[pathlib.Path], list[tuple[str, str]]]:
    """Audio files of the arguments (directories searched recursively, sorted) and errors."""
    files, errors = [], []
    for raw in paths:
        path = pathlib.Path(raw).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                errors.append((str(path), f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in it"))
            files += found
        elif path.is_file():
            files.append(path)
        else:
            errors.append((str(path), "no such file or directory"))
    return files, errors


def predict_files(predictor: Predictor, files, on_result=None) -> tuple[list[dict], list]:
    """Label every file; a file that fails is reported, the others still run. Each result says
    whether the input has any voiced frame (`voiced`: False for silence, which still gets a
    label: a warning is printed for it)."""
    from reslstm_jax.audio import VOICE_DBFS, AudioError, librosa_quiet, voiced_frames

    results, errors = [], []
    for path in files:
        try:
            with librosa_quiet():  # the voiced-frame warning below says what matters
                feats = predictor.extractor(path)
        except AudioError as exc:
            errors.append((str(path), str(exc)))
            continue
        feats = feats if isinstance(feats, dict) else np.asarray(feats)
        out = {"file": str(path), **predict_features(predictor, feats)}
        out["voiced"] = voiced_frames(path) > 0
        if not out["voiced"]:
            print(f"warning: {path}: no voiced frame (every 25 ms frame below {VOICE_DBFS:g} "
                  f"dBFS): its label '{out['label']}' says nothing", file=sys.stderr)  # fmt: skip
        out["features"] = feats
        results.append(out)
        if on_result is not None:
            on_result(out)
    return results, errors


def format_row(result: dict, classes: list[str], width: int) -> str:
    probs = " ".join(f"{result['probabilities'][c]:>{max(6, len(c))}.3f}" for c in classes)
    return f"{result['file']:<{width}}  {result['label']:<10} {probs}"


def build_parser():
    import argparse

    p = argparse.ArgumentParser(prog="python -m reslstm_jax.predict",
                                description="Label audio files with a trained run.",
                                formatter_class=flags.HelpFormatter)  # fmt: skip
    p.add_argument("paths", nargs="+", metavar="FILE_OR_DIR", help="audio files or directories")
    p.add_argument("--run", metavar="DIR",  # required: flags.require (--checkpoint counts)
                   help="a finished run (the --out of `python -m reslstm_jax.train`, an "
                   "experiment's run folder) or an export (`python -m "
                   "reslstm_jax.export`)")  # fmt: skip
    flags.deprecated(p, "--checkpoint", "--run", metavar="DIR")
    p.add_argument("--fold", help="only the models of this fold (default: every fold)")
    p.add_argument("--seed", type=int, help="only the models of this seed (default: every seed)")
    p.add_argument("--configuration", type=int, default=0,
                   help="configuration index in a sweep group directory (default 0)")  # fmt: skip
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="a table, or one JSON document")  # fmt: skip
    flags.deprecated_switch(p, "--json", "--format json", "format", "json")
    p.add_argument(
        "--plot-attention",
        metavar="DIR",
        help="write a figure of each file's attention over its spectrogram here",
    )
    p.add_argument("--plot-format", choices=("png", "pdf", "svg"), default="png",
                   help="figure format of --plot-attention (pdf, svg: vector)")  # fmt: skip
    configfile.add_flags(p)
    return flags.ranged(p)


def main(argv=None) -> int:
    parser = build_parser()
    args = configfile.parse_args(parser, argv)
    flags.require(parser, args, "--run")
    if configfile.print_if_asked(parser, args):
        return 0
    hardware.single_threaded_xla()  # the same bits as the run's own test predictions
    if args.plot_attention:
        try:  # before the model is loaded or a file read
            artifacts.check_output_dir(args.plot_attention)
        except artifacts.OutputError as exc:
            print(f"error: --plot-attention {exc}", file=sys.stderr)
            return 2
    try:
        predictor = load(args.run, configuration=args.configuration, fold=args.fold,
                         seed=args.seed)  # fmt: skip
    except PredictError as exc:
        parser.error(str(exc))
    except RunDamaged as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    files, errors = expand(args.paths)
    width = max([len(str(f)) for f in files] + [4])
    classes = predictor.classes
    if args.format != "json" and files:
        print(f"{len(predictor.members)} model(s): {predictor.info['model']} trained on "
              f"{predictor.info['corpus']} / {predictor.info['protocol']}")  # fmt: skip
        header = " ".join(f"{c:>{max(6, len(c))}}" for c in classes)
        print(f"{'file':<{width}}  {'label':<10} {header}")

    def show(result):
        if args.format != "json":
            print(format_row(result, classes, width), flush=True)

    results, failed = predict_files(predictor, files, on_result=show)
    errors += failed
    for path, reason in errors:
        print(f"error: {path}: {reason}", file=sys.stderr)
    if args.plot_attention:
        from reslstm_jax import plots

        out = pathlib.Path(args.plot_attention)
        out.mkdir(parents=True, exist_ok=True)
        for r in results:
            if r["attention"] is None:
                continue
            png = out / f"{plots.slug(pathlib.Path(r['file']).stem)}_attention.{args.plot_format}"
            image, axis, step = display_spectrogram(predictor.extractor, r["file"], r["features"])
            plots.attention(png, image, r["attention"][: len(image)],
                            title=f"{pathlib.Path(r['file']).name}: {r['label']} "
                                  f"({model_label(predictor.info)}, mean attention of "
                                  f"{len(predictor.members)} model(s))",
                            feature_label=axis, seconds_per_frame=step)  # fmt: skip
            print(f"wrote {png}", file=sys.stderr)
    if args.format == "json":
        doc = {
            "checkpoint": str(checkpoint_dir(args.run)),
            "members": [{"seed": s, "fold": f} for s, f in predictor.members],
            "classes": classes,
            "results": [{k: v for k, v in r.items() if k in ("file", "label", "probabilities",
                                                             "frames", "voiced")}
                        for r in results],
            "errors": [{"file": p, "error": e} for p, e in errors],
        }  # fmt: skip
        print(artifacts.dumps(doc))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
