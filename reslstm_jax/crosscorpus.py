"""Cross-corpus testing: every fold x seed model of a finished run labels the whole of another
corpus, on a label set both share.

```python
target = crosscorpus.load_target("emodb", "~/data/emodb", run_card, cache_dir=...)
result = crosscorpus.evaluate("runs/h64", target, norm="train")
print("\n".join(crosscorpus.summary_lines([result])))
```

The target corpus is read with the run's feature extractor and label set (`--label-set
shared4` for corpora with different classes); all its utterances are test utterances (no
protocol: no speaker of it was seen in training). Each model normalises the target's features
with its own training fold's statistics (`norm="train"`, the default: nothing of the target is
used), or with statistics of the whole target corpus (`norm="target"`: unlabelled target
audio is used, and the result says so). Reported per model (seed, fold), as the mean and
population std over them, and per seed for the fold ensemble (the mean of the folds' class
probabilities, as `reslstm_jax.predict` votes).
"""

from __future__ import annotations

import dataclasses
import math
import pathlib

import numpy as np

NORMS = ("train", "target")
BATCH = 64  # target rows per forward pass (a fixed shape: one compile)


class CrossCorpusError(ValueError):
    """A target corpus the run cannot be tested on (one line)."""


def parse_target(text: str) -> tuple[str, str | None]:
    """(corpus, data dir or None) of a `--cross-test CORPUS[=DIR]` value (the older
    `CORPUS:DIR` too); CrossCorpusError naming the flag (the synthetic corpus alone needs no
    directory)."""
    from reslstm_jax import corpora

    corpus, sep, where = text.partition("=")
    if not sep:
        corpus, _, where = text.partition(":")
    if corpus not in corpora.CORPORA:
        raise CrossCorpusError(f"--cross-test {text}: unknown corpus {corpus!r}; known corpora: "
                               f"{', '.join(corpora.CORPORA)}")  # fmt: skip
    if not where and corpus != "synthetic":
        raise CrossCorpusError(f"--cross-test {text}: give the corpus's directory, {corpus}=DIR")
    return corpus, where or None


@dataclasses.dataclass
class Target:
    """A whole corpus as test data: raw features x [N, T, D] (or {key: array}), lengths [N],
    labels [N] in the run's classes, its card (corpus, utterances, speakers, hash), and its
    manifest (the utterances, aligned with the rows: files and speakers of the predictions)."""

    x: object
    lengths: np.ndarray
    labels: np.ndarray
    card: dict
    manifest: object = None

    @property
    def predictions_file(self) -> str:
        """The name of its predictions CSV beside a run's results (`evaluate`)."""
        return f"cross_{self.card['corpus']}_predictions.csv"


def load_target(corpus: str, data_dir, run_card: dict, *, cache_dir=None, workers=None,
                progress: bool = True) -> Target:  # fmt: skip
    """Read `corpus` at `data_dir` as the run (its card `run_card`) read its training corpus:
    the same features and label set. Raises CrossCorpusError when the classes differ."""
    from reslstm_jax import corpora, data, features, protocols
    from reslstm_jax.corpora import labelsets, synthetic

    label_set = (run_card.get("label_set") or {}).get("name", "native")
    if corpus == "synthetic" and data_dir is None:
        data_dir = synthetic.ensure_corpus(synthetic.default_dir(), progress=progress)
    manifest = labelsets.relabel(corpora.load(corpus, data_dir), label_set)
    if list(manifest.classes) != list(run_card["classes"]):
        raise CrossCorpusError(
            f"--cross-test {corpus}: its classes ({', '.join(manifest.classes)}) are not the "
            f"run's ({', '.join(run_card['classes'])}); train with --label-set shared4"
        )
    info = run_card["features"]
    manifest, feats, report = data.extract(manifest, features.get(info["name"], **info["params"]),
                                           cache_dir=cache_dir, workers=workers,
                                           progress=progress)  # fmt: skip
    x, lengths, _, _ = data.stack_features(feats)
    card = {"corpus": manifest.corpus, "data_dir": str(data_dir), "label_set": label_set,
            "n_utterances": len(manifest), "n_speakers": len(set(manifest.speakers)),
            "utterance_ids_sha256": protocols.utterance_hash(manifest),
            "failed": len(report.failed)}  # fmt: skip
    return Target(x, lengths, np.asarray(manifest.labels, np.int32), card, manifest)


def _probabilities(predictor, target: Target) -> np.ndarray:
    """[M, N, C] class probabilities of the run's members on every target row."""
    from reslstm_jax import data

    n = len(target.lengths)
    out = []
    for start in range(0, n, BATCH):
        rows = np.arange(start, start + BATCH) % n  # the last batch repeats rows: one shape
        probs, _ = predictor.forward(data.take_rows(target.x, rows), target.lengths[rows])
        out.append(probs[:, : min(BATCH, n - start)])
    return np.concatenate(out, axis=1)


def target_statistics(target: Target) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std [D] over the target's valid frames (`norm="target"`)."""
    frames = np.arange(target.x.shape[1])[None, :] < target.lengths[:, None]
    values = target.x[frames]
    return values.mean(0), np.maximum(values.std(0), 1e-8)


def evaluate(run_dir, target: Target, norm: str = "train", configuration: int = 0,
             predictions=None) -> dict:  # fmt: skip
    """Test every member of the run at `run_dir` (of its `configuration`: a sweep's group of
    trials holds several) on the whole `target`. `predictions`: where to write every
    member's prediction of every target utterance (a CSV as `predictions.csv`; its fold is the
    fold the model trained for)."""
    from reslstm_jax import artifacts, metrics, predict

    if norm not in NORMS:
        raise CrossCorpusError(f"--cross-norm must be one of {', '.join(NORMS)}, got {norm!r}")
    predictor = predict.load(run_dir, configuration=configuration)
    if norm == "target":  # every member normalises with the target's statistics instead
        if isinstance(target.x, dict):
            raise CrossCorpusError("--cross-norm target: the run's features are not normalised")
        mean, std = target_statistics(target)
        predictor.mean = np.broadcast_to(mean, predictor.mean.shape).astype(np.float32)
        predictor.std = np.broadcast_to(std, predictor.std.shape).astype(np.float32)
    probs = _probabilities(predictor, target)
    classes = len(predictor.classes)
    per_model = []
    for m, (seed, fold) in enumerate(predictor.members):
        scores = metrics.classification(target.labels, probs[m].argmax(-1), classes)
        per_model.append({"seed": seed, "fold": fold, "uar": scores["uar"], "wa": scores["wa"]})
    seeds = sorted({s for s, _ in predictor.members})
    ensemble = []
    for seed in seeds:
        rows = [m for m, (s, _) in enumerate(predictor.members) if s == seed]
        votes = probs[rows].mean(0).argmax(-1)
        ensemble.append({"seed": seed, **{k: metrics.classification(
            target.labels, votes, classes)[k] for k in ("uar", "wa")}})  # fmt: skip
    if predictions is not None and target.manifest is not None:
        ids = target.manifest.ids
        rows = [(uid, fold, seed, int(label), int(p.argmax()), np.round(p, 6).tolist())
                for m, (seed, fold) in enumerate(predictor.members)
                for uid, label, p in zip(ids, target.labels, probs[m], strict=True)]  # fmt: skip
        artifacts.write_prediction_rows(predictions, target.manifest, predictor.classes, rows)
    uars = [r["uar"] for r in per_model]
    return {"target": target.card, "normalisation": norm,
            "uses_target_audio": norm == "target", "per_model": per_model,
            "uar_mean": float(np.mean(uars)), "uar_std_population": float(np.std(uars)),
            "ensemble": ensemble,
            "ensemble_uar_mean": float(np.mean([e["uar"] for e in ensemble]))}  # fmt: skip


def fit_and_test(dataset, settings, out_dir, targets: list[Target], norm: str = "train",
                 **run_kwargs) -> dict:  # fmt: skip
    """`train.fit.run` on `dataset` with the `targets` named in its card first (corpora and
    hashes, before training), then every model tested on each target: the results with
    `cross_test`, also written to `out_dir/results.json`, and each target's UAR in the W&B
    run's summary (`cross_<corpus>_uar`, `cross_<corpus>_ensemble_uar`). `run_kwargs` go to
    `fit.run`."""
    from reslstm_jax.train.fit import run

    if norm not in NORMS:
        raise CrossCorpusError(f"--cross-norm must be one of {', '.join(NORMS)}, got {norm!r}")
    if not targets:
        return run(dataset, settings, out_dir, **run_kwargs)
    dataset.card["cross_test"] = [{**t.card, "normalisation": norm} for t in targets]

    def cross_tests(_results) -> dict:  # on the written run, before its W&B run closes
        return {"cross_test": [
            evaluate(out_dir, t, norm, predictions=pathlib.Path(out_dir) / t.predictions_file)
            for t in targets
        ]}  # fmt: skip

    return run(dataset, settings, out_dir, then=cross_tests, **run_kwargs)


def summary_lines(cross: list[dict]) -> list[str]:
    """One line per target corpus."""
    lines = []
    for c in cross:
        t = c["target"]
        norm = (
            "normalised with the TARGET's statistics (unlabelled target audio)"
            if c["uses_target_audio"]
            else "normalised with each training fold's statistics"
        )
        lines.append(
            f"cross-corpus test on {t['corpus']} ({t['n_utterances']} utterances, "
            f"{t['n_speakers']} speakers, label set {t['label_set']}; {norm}): UAR "
            f"{c['uar_mean']:.4f} +- {c['uar_std_population']:.4f} over "
            f"{len(c['per_model'])} fold x seed models; fold ensemble "
            f"{c['ensemble_uar_mean']:.4f}"
            + ("" if math.isfinite(c["uar_mean"]) else " (not finite: a model diverged)")
        )  # fmt: skip
    return lines


# ----------------------------------------------------------------------------- the matrix


def matrix(results_list: list[dict]) -> dict:
    """The train x test matrix of runs with cross-corpus tests: rows are the runs (training
    corpus / model), columns every corpus seen; the diagonal is the run's in-corpus pooled
    out-of-fold test UAR (mean and population std over seeds), the other cells the mean (and
    population std) over fold x seed models of the cross-corpus UAR. Cells never measured
    are None."""
    rows, columns, cells = [], [], {}
    for r in results_list:
        corpus = r["card"]["corpus"]
        label = f"{corpus} / {r['model']['name']}"
        rows.append(label)
        for name in [corpus, *(c["target"]["corpus"] for c in r.get("cross_test", []))]:
            if name not in columns:
                columns.append(name)
        agg = r["aggregate"]["pooled_oof_uar"]
        cells[(label, corpus)] = (agg["mean"], agg["std_population"])
        for c in r.get("cross_test", []):
            cells[(label, c["target"]["corpus"])] = (c["uar_mean"], c["uar_std_population"])
    norms = sorted({c["normalisation"] for r in results_list for c in r.get("cross_test", [])})
    label_sets = sorted({(r["card"].get("label_set") or {}).get("name", "native")
                         for r in results_list})  # fmt: skip
    return {"rows": rows, "columns": columns, "label_sets": label_sets, "normalisations": norms,
            "uar": [[cells.get((row, col)) for col in columns] for row in rows]}  # fmt: skip


def matrix_caption(m: dict) -> str:
    norm = " and ".join({"train": "each training fold's statistics",
                         "target": "the target corpus's statistics (unlabelled target audio)"}[n]
                        for n in m["normalisations"]) or "-"  # fmt: skip
    return (
        f"Cross-corpus UAR, label set {', '.join(m['label_sets'])}: rows train, columns "
        "test. Diagonal: in-corpus pooled out-of-fold test UAR under the run's protocol "
        "(the corpus's default, speaker-independent one in experiments.cross_corpus), mean "
        "+- population std over seeds; elsewhere: every fold x seed model on the whole test "
        f"corpus, mean +- population std over models; targets normalised with {norm}."
    )


def format_matrix(m: dict, fmt: str = "md") -> str:
    """The matrix as markdown, LaTeX (booktabs) or CSV."""

    def cell(value, pm: str) -> str:
        return "-" if value is None else f"{value[0]:.4f} {pm} {value[1]:.4f}"

    if fmt == "csv":
        lines = ["train,test,uar_mean,uar_std_population,in_corpus"]
        for row, values in zip(m["rows"], m["uar"], strict=True):
            for col, value in zip(m["columns"], values, strict=True):
                if value is not None:
                    lines.append(f"{row},{col},{value[0]},{value[1]},{row.split(' / ')[0] == col}")
        return "\n".join(lines) + "\n"
    if fmt == "latex":
        from reslstm_jax.report import latex_escape

        head = " & ".join(["train \\textbackslash{} test", *map(latex_escape, m["columns"])])
        body = [" & ".join([latex_escape(row), *(cell(v, "$\\pm$") for v in values)]) + r" \\"
                for row, values in zip(m["rows"], m["uar"], strict=True)]  # fmt: skip
        return "\n".join([r"\begin{table}[t]", r"\centering", r"\scriptsize",
                          r"\caption{" + latex_escape(matrix_caption(m)) + "}",
                          r"\begin{tabular}{l" + "r" * len(m["columns"]) + "}", r"\toprule",
                          head + r" \\", r"\midrule", *body, r"\bottomrule", r"\end{tabular}",
                          r"\end{table}", ""])  # fmt: skip
    lines = [f"Table: {matrix_caption(m)}", "", "| train \\ test | " + " | ".join(m["columns"])
             + " |", "|---|" + "---:|" * len(m["columns"])]  # fmt: skip
    for row, values in zip(m["rows"], m["uar"], strict=True):
        lines.append(f"| {row} | " + " | ".join(cell(v, "±") for v in values) + " |")
    return "\n".join(lines) + "\n"
