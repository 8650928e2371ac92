"""From a corpus to the trainer's arrays: padded features, fold indices, per-fold statistics.

```python
dataset = data.prepare()                       # synthetic corpus, ravdess_paper, mfcc_chroma
dataset = data.prepare("ravdess", "~/data/RAVDESS", protocol="ravdess_loso")
```
```
dataset.x [N, T, D] float32      raw features, zero on padded frames (normalise per fold)
dataset.lengths [N], dataset.labels [N]
dataset.folds.train [K, n] int32 + dataset.folds.train_mask [K, n] bool (also val, test)
dataset.folds.mean / .std [K, D]  normalisation statistics of each fold
dataset.card                      protocol card + features + normalisation + T: store it
```

Normalisation statistics are frame-weighted means and standard deviations (as the reference
computes them: float64, var = E[x^2] - E[x]^2, std = sqrt(max(var, 1e-8))) over the valid
frames of the fold's *training* utterances by default. `normalisation="global"` uses every
utterance of the corpus, test speakers included: it reproduces the paper and leaks test
statistics into the inputs, so the card marks it leaky.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Sequence

import numpy as np

from reslstm_jax import corpora, features, perturb, protocols
from reslstm_jax.corpora import labelsets
from reslstm_jax.corpora.base import Manifest, Skipped, audio_source
from reslstm_jax.errors import ParameterError

NORMALISATIONS = ("fold", "global", "none")
# The key whose frames are a variable-length sequence in multi-array features (DS-LSTM's).
SEQUENCE_KEY = "mfcc"
VAR_FLOOR = 1e-8


def choose_frames(lengths: Sequence[int], multiple: int = 8, max_frames: int | None = None) -> int:
    """Static padded length: the longest sequence rounded up to `multiple`, capped at
    `max_frames` when given (longer sequences are then truncated)."""
    longest = int(max(lengths))
    frames = multiple * math.ceil(longest / multiple)
    return min(frames, max_frames) if max_frames else frames


def pad_sequences(sequences: Sequence[np.ndarray], frames: int) -> tuple[np.ndarray, np.ndarray]:
    """[T_i, D] arrays -> x [N, frames, D] float32 (zeros after each sequence), lengths [N].

    Sequences longer than `frames` are truncated to it.
    """
    dim = sequences[0].shape[1]
    x = np.zeros((len(sequences), frames, dim), np.float32)
    lengths = np.zeros(len(sequences), np.int32)
    for i, seq in enumerate(sequences):
        n = min(len(seq), frames)
        x[i, :n] = seq[:n]
        lengths[i] = n
    return x, lengths


def stack_multi(feats, multiple: int, max_frames: int | None):
    """Multi-array features ({key: [T_k, F_k]} per utterance) -> {key: [N, T_k, F_k]}.

    Fixed-size arrays (every utterance the same shape, e.g. resized spectrograms) are stacked;
    the `SEQUENCE_KEY` array is padded like `pad_sequences` and gives the lengths (without
    one, every row has the first array's length).
    """
    x, lengths, frames, truncated = {}, None, None, 0
    for key in feats[0]:
        arrays = [f[key] for f in feats]
        if key == SEQUENCE_KEY:
            frames = choose_frames([len(a) for a in arrays], multiple, max_frames)
            x[key], lengths = pad_sequences(arrays, frames)
            truncated = int(sum(len(a) > frames for a in arrays))
        elif len({a.shape for a in arrays}) == 1:
            x[key] = np.stack(arrays).astype(np.float32)
        else:
            raise ValueError(f"feature array {key!r} differs in shape between utterances")
    if lengths is None:
        first = next(iter(x.values()))
        frames = first.shape[1]
        lengths = np.full(len(feats), frames, np.int32)
    return x, lengths, frames, truncated


def frame_statistics(
    x: np.ndarray, lengths: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Frame-weighted mean and std [D] over the valid frames of `rows` (float64 sums)."""
    total = np.zeros(x.shape[2], np.float64)
    squares = np.zeros(x.shape[2], np.float64)
    count = 0
    for i in rows:
        frames = x[i, : lengths[i]].astype(np.float64)
        total += frames.sum(0)
        squares += np.square(frames).sum(0)
        count += len(frames)
    mean = total / count
    var = squares / count - np.square(mean)
    return mean, np.sqrt(np.maximum(var, VAR_FLOOR))


def normalise(x: np.ndarray, lengths: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(x - mean) / std on valid frames, 0 on padded frames. x: [N, T, D]; mean, std: [D]."""
    valid = np.arange(x.shape[1])[None, :] < lengths[:, None]
    return np.where(valid[..., None], (x - mean) / std, 0.0).astype(np.float32)


@dataclasses.dataclass
class FoldArrays:
    """Per-fold index arrays into the dataset's rows, padded to a common length with masks.

    Attributes:
      names: fold names, K of them.
      train, val, test: [K, n_max] int32 row indices (padding entries are 0, masked out).
      train_mask, val_mask, test_mask: [K, n_max] bool.
      mean, std: [K, D] float32 normalisation statistics of each fold.
    """

    names: list[str]
    train: np.ndarray
    train_mask: np.ndarray
    val: np.ndarray
    val_mask: np.ndarray
    test: np.ndarray
    test_mask: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def _stack(index_sets: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(s) for s in index_sets)
    idx = np.zeros((len(index_sets), width), np.int32)
    mask = np.zeros((len(index_sets), width), bool)
    for k, s in enumerate(index_sets):
        idx[k, : len(s)] = s
        mask[k, : len(s)] = True
    return idx, mask


def fold_arrays(
    folds: Sequence[protocols.Fold],
    x: np.ndarray,
    lengths: np.ndarray,
    normalisation: str = "fold",
    origin: np.ndarray | None = None,
) -> FoldArrays:
    """Index arrays and normalisation statistics for every fold.

    `origin` [N'] (None: every row is an utterance): the utterance each row holds, for rows
    past the utterances' (audio variants, `perturb.AudioVariant`). A fold trains on the
    variants of its training utterances too; its validation and test rows, and its
    statistics, are the utterances' alone (augmentation never moves the normalisation)."""
    if normalisation not in NORMALISATIONS:
        raise ValueError(
            f"normalisation must be one of {', '.join(NORMALISATIONS)}, got {normalisation!r}"
        )
    n = len(lengths) if origin is None else int(np.sum(origin == np.arange(len(origin))))
    if normalisation == "none":
        # The model reads raw features (Light-SERNet, DS-LSTM): identity statistics.
        dim = x.shape[2] if isinstance(x, np.ndarray) else 1
        stats = [(np.zeros(dim), np.ones(dim))] * len(folds)
    elif normalisation == "global":
        stats = [frame_statistics(x, lengths, np.arange(n))] * len(folds)
    else:
        stats = [frame_statistics(x, lengths, f.train) for f in folds]
    train_sets = [f.train for f in folds]
    if origin is not None and len(origin) > n:
        variant_origin = origin[n:]
        train_sets = [np.concatenate([t, n + np.flatnonzero(np.isin(variant_origin, t))])
                      for t in train_sets]  # fmt: skip
    train, train_mask = _stack(train_sets)
    val, val_mask = _stack([f.val for f in folds])
    test, test_mask = _stack([f.test for f in folds])
    return FoldArrays(
        names=[f.name for f in folds],
        train=train,
        train_mask=train_mask,
        val=val,
        val_mask=val_mask,
        test=test,
        test_mask=test_mask,
        mean=np.stack([m for m, _ in stats]).astype(np.float32),
        std=np.stack([s for _, s in stats]).astype(np.float32),
    )


@dataclasses.dataclass
class Dataset:
    """Everything the trainer needs for one corpus x protocol x extractor.

    Attributes:
      x: [N, T, D] float32 raw features, zero on padded frames; or, for multi-array features,
        {key: [N, T_k, F_k]} (see `stack_multi`).
      lengths: [N] int32 valid frames. labels: [N] int32.
      ids, speakers: per row. classes: class names.
      folds: `FoldArrays`.
      frames: T. truncated: how many utterances were longer than T and cut.
      card: protocol card + features + normalisation + T (JSON-ready; store with results).
      manifest: the manifest after dropping files whose features failed.
      extraction: the extraction report.
      origin: [N] int32, the utterance (manifest row) each row holds: the identity but for
        audio variants, which follow the utterances (`perturb.AudioVariant`; only ever
        training rows).
    """

    x: np.ndarray | dict
    lengths: np.ndarray
    labels: np.ndarray
    ids: list[str]
    speakers: list[str]
    classes: tuple[str, ...]
    folds: FoldArrays
    frames: int
    truncated: int
    card: dict
    manifest: Manifest
    extraction: features.ExtractionReport
    origin: np.ndarray | None = None

    def __post_init__(self):
        if self.origin is None:
            self.origin = np.arange(len(self.labels), dtype=np.int32)


def drop_failed(manifest: Manifest, failed: Sequence[tuple[str, str]]) -> Manifest:
    """The manifest without the utterances whose features failed (moved to `skipped`)."""
    reasons = dict(failed)  # keyed by what was read: a file, or a segment of one
    kept = [u for u in manifest.utterances if audio_source(u) not in reasons]
    skipped = [Skipped(p, f"feature extraction failed: {r}") for p, r in failed]
    return dataclasses.replace(
        manifest,
        utterances=kept,
        skipped=sorted([*manifest.skipped, *skipped], key=lambda s: s.path),
    )


def check_classes_trained(manifest: Manifest, folds, protocol: str) -> None:
    """ProtocolError (one line) when a class the corpus has is missing from some fold's
    training part: that fold's models could never learn it (a manifest whose only speaker of
    a class is tested there, say)."""
    labels = np.array(manifest.labels)
    present = set(labels.tolist())
    for fold in folds:
        missing = sorted(present - set(labels[fold.train].tolist()))
        if missing:
            names = ", ".join(manifest.classes[c] for c in missing)
            raise protocols.ProtocolError(
                f"{protocol} {fold.name}: no training utterance of class {names} (its "
                "speakers are all tested or validating there); drop or merge it with "
                "--label-map, or choose other folds"
            )


class ClassCoverageWarning(UserWarning):
    """A class of the class set with no utterance in the corpus, or none in a fold's test
    part: its UAR is over fewer classes than the model has outputs."""


def class_coverage(manifest: Manifest, folds) -> dict:
    """The classes the data cannot fill, by name: `absent_classes` (no utterance in the
    corpus: the model keeps an output for each that nothing teaches) and `test_absent_classes`
    ({fold: classes} with no utterance in that fold's test part); empty entries left out, so
    a corpus that fills every class adds nothing to its card."""
    labels = np.array(manifest.labels, np.int64)
    names = manifest.classes
    present = set(labels.tolist())
    coverage = {}
    if absent := [names[c] for c in range(len(names)) if c not in present]:
        coverage["absent_classes"] = absent
    by_fold = {f.name: [names[c] for c in sorted(present - set(labels[f.test].tolist()))]
               for f in folds}  # fmt: skip
    if by_fold := {name: missing for name, missing in by_fold.items() if missing}:
        coverage["test_absent_classes"] = by_fold
    return coverage


def coverage_warnings(coverage: dict, corpus: str, n_classes: int) -> list[str]:
    """The lines that name what `class_coverage` found (none when every class is filled): a
    corpus's own class absent from its copy (a subset of the published corpus), and test parts
    lacking a class. (A class of a chosen label set with no utterance is refused instead.)"""
    lines = []
    if absent := coverage.get("absent_classes"):
        drop = ",".join(f"{c}=-" for c in absent)
        lines.append(f"{corpus}: no utterance of class {', '.join(absent)}: the model keeps an "
                     f"output for each that nothing teaches, and every UAR is over the "
                     f"{n_classes - len(absent)} classes present, not {n_classes}; drop them "
                     f"with --label-map {drop}")  # fmt: skip
    for fold, missing in (coverage.get("test_absent_classes") or {}).items():
        lines.append(f"{corpus} {fold}: its test part has no utterance of class "
                     f"{', '.join(missing)}: that fold's UAR is over fewer classes")  # fmt: skip
    return lines


def check_classes(manifest: Manifest, folds, protocol: str, label_set: str) -> None:
    """The classes against the data, before extraction: a class some fold cannot train on
    (`check_classes_trained`) or a class of a chosen label set with no utterance is refused
    (one line); a corpus's own class missing from its copy, or from a fold's test part, is
    named in a `ClassCoverageWarning` (`coverage_warnings`)."""
    check_classes_trained(manifest, folds, protocol)
    coverage = class_coverage(manifest, folds)
    if label_set != "native" and coverage.get("absent_classes"):
        raise ParameterError(
            "{label_set} {value}: {corpus} has no utterance of class {missing}; its models "
            "would keep outputs nothing teaches and report UARs over fewer classes: train on "
            "a corpus that has them, or on this one's own classes ({label_set} native)",
            value=label_set, corpus=manifest.corpus,
            missing=", ".join(coverage["absent_classes"]),
        )  # fmt: skip
    for line in coverage_warnings(coverage, manifest.corpus, len(manifest.classes)):
        warnings.warn(ClassCoverageWarning(line), stacklevel=3)


def native_rates(manifest: Manifest) -> dict[str, int]:
    """{sample rate: files} of the corpus audio (from the headers; unreadable files skipped).

    Stored in the card so that inference can bring audio of any rate to the training rate.
    """
    import soundfile

    rates: dict[str, int] = {}
    for u in manifest.utterances:
        try:
            rate = str(soundfile.info(u.path).samplerate)
        except Exception:  # noqa: BLE001 - a header soundfile cannot read has no rate to report
            continue
        rates[rate] = rates.get(rate, 0) + 1
    return dict(sorted(rates.items(), key=lambda kv: int(kv[0])))


def take_rows(x, rows):
    """Rows `rows` of stacked features: x [N, T, D] -> [n, T, D], or each array of a dict."""
    return {k: v[rows] for k, v in x.items()} if isinstance(x, dict) else x[rows]


def stack_features(feats, multiple: int = 8, max_frames: int | None = None) -> tuple:
    """(x [N, T, D] or {key: [N, ...]}, lengths [N], frames T, truncated count) of per-utterance
    features: padded to a common frame count (`choose_frames`), or stacked (`stack_multi`)."""
    if isinstance(feats[0], dict):
        return stack_multi(feats, multiple, max_frames)
    frames = choose_frames([len(f) for f in feats], multiple, max_frames)
    x, lengths = pad_sequences(feats, frames)
    return x, lengths, frames, int(sum(len(f) > frames for f in feats))


def extract(manifest: Manifest, extractor, *, cache_dir=None, workers: int | None = None,
            progress: bool = True) -> tuple[Manifest, list, features.ExtractionReport]:  # fmt: skip
    """(manifest without the files whose features failed, the features of the others, the
    extraction report): every utterance through the feature cache (`cache_dir` None: the
    default one)."""
    extraction = features.extract_all(
        [audio_source(u) for u in manifest.utterances],
        extractor,
        cache_dir=cache_dir if cache_dir is not None else features.default_cache_dir(),
        workers=workers,
        progress=progress,
    )
    manifest = drop_failed(manifest, extraction.report.failed)
    return manifest, [f for f in extraction.features if f is not None], extraction.report


def build(
    manifest: Manifest,
    protocol: str,
    feats: Sequence[np.ndarray],
    *,
    extractor_info: dict,
    extraction: features.ExtractionReport,
    normalisation: str = "fold",
    multiple: int = 8,
    max_frames: int | None = None,
    variants: Sequence[perturb.AudioVariant] = (),
) -> Dataset:
    """Arrays for `manifest` (features aligned with `manifest.utterances`), followed by the
    rows of its audio `variants`, which only the folds training on their utterance read."""
    folds = protocols.make_folds(protocol, manifest)  # audited
    n = len(feats)
    origin = np.concatenate([np.arange(n), *[v.origins for v in variants]]).astype(np.int32)
    rows = [*feats, *(f for v in variants for f in v.feats)]
    x, lengths, frames, truncated = stack_features(rows, multiple, max_frames)
    if isinstance(x, dict) and normalisation != "none":
        raise ParameterError(
            "features {name} give several arrays per utterance ({arrays}); per-fold "
            "normalisation is not defined for them: use {normalisation} none",
            name=extractor_info.get("name"), arrays=", ".join(x),
        )  # fmt: skip
    if truncated:
        warnings.warn(
            f"{truncated} utterances are longer than {frames} frames and were truncated",
            stacklevel=2,
        )
    card = protocols.card(protocol, manifest, folds)
    card.update(class_coverage(manifest, folds))
    card.update(
        features=extractor_info,
        normalisation=normalisation,
        normalisation_leaky=normalisation == "global",
        frames=frames,
        truncated=truncated,
        skipped=manifest.skipped_by_reason(),
        sample_rates=native_rates(manifest),
    )
    if variants:
        card["audio_variants"] = [
            {"name": v.name, "rows": len(v.feats), "failed": len(v.extraction.failed),
             "features": v.extraction.extractor} for v in variants
        ]  # fmt: skip
    tags = [""] * n + [f"~{v.name}" for v in variants for _ in v.feats]
    return Dataset(
        x=x,
        lengths=lengths,
        labels=np.array(manifest.labels, np.int32)[origin],
        ids=[manifest.ids[o] + tag for o, tag in zip(origin, tags, strict=True)],
        speakers=[manifest.utterances[o].speaker for o in origin],
        classes=manifest.classes,
        folds=fold_arrays(folds, x, lengths, normalisation, origin),
        frames=frames,
        truncated=truncated,
        card=card,
        manifest=manifest,
        extraction=extraction,
        origin=origin,
    )


def prepare(
    corpus: str | None = None,
    data_dir: str | os.PathLike | None = None,
    *,
    protocol: str | None = None,
    extractor: str = "mfcc_chroma",
    extractor_params: dict | None = None,
    normalisation: str = "fold",
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    max_frames: int | None = None,
    progress: bool = True,
    label_set: str = "native",
    audio_variants: Sequence[dict] = (),
    label_map: dict | None = None,
    corpus_options: dict | None = None,
) -> Dataset:
    """Load a corpus, extract (cached) features, apply an audited protocol, build the arrays.

    Without `corpus`, the embedded synthetic corpus (`synthetic`: RAVDESS layout, eSpeak NG) is
    generated if needed and used with `ravdess_paper`. Files whose features fail are dropped
    and listed in `dataset.extraction.failed`; the protocol is applied to the rest.
    `label_set` "shared4" keeps the four emotions every corpus has (`corpora.labelsets`; the
    card records the set and its mapping). `audio_variants` (`{"speed": 0.9}`,
    `{"snr_db": 20}`, ...) add a perturbed copy of every utterance a fold trains on, as
    training rows of those folds only (`perturb.extract_variants`, `build`). `label_map`
    ({old: new, or None to drop}, `labelsets.parse_map`) renames, merges and drops classes
    before the folds are made; the card records it. `corpus_options`: the loader's own
    (`corpora.load`: a manifest's `name` and `classes`, EmoBox's `audio_root`, `raw` for
    every category of a corpus that selects a class set; the card records `raw_labels`).
    """
    if corpus is None:
        from reslstm_jax.corpora import synthetic

        if data_dir is not None:
            raise ParameterError("{data_dir} needs {corpus} (which corpus is in that directory?)")
        corpus = "synthetic"
        data_dir = synthetic.ensure_corpus(synthetic.default_dir(), progress=progress)
    else:
        corpora.module(corpus)  # unknown corpus: CorpusError listing the known ones
        if data_dir is None:
            raise ParameterError(
                "{corpus} {value} needs {data_dir} (where the corpus is)", value=corpus
            )
    if protocol is not None and not protocols.applies_to(protocol, corpus):
        raise ParameterError(
            "{protocol} {name} is for {its}, not {value}; protocols for {value}: {known}",
            name=protocol, its=protocols.get(protocol).corpus, value=corpus,
            known=", ".join(protocols.for_corpus(corpus)),
        )  # fmt: skip
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {', '.join(NORMALISATIONS)}")
    feature_extractor = features.get(extractor, **(extractor_params or {}))
    loaded = corpora.load(corpus, data_dir, **(corpus_options or {}))
    if label_map:  # renames, merges and drops before the folds are made
        loaded = labelsets.apply_map(loaded, label_map)
    label_mapping = labelsets.mapping(loaded.corpus, label_set, loaded.classes)
    manifest = labelsets.relabel(loaded, label_set)
    # a manifest's default depends on its rows (`given` when they name their folds)
    protocol = protocol or corpora.default_protocol(corpus, manifest)
    # the protocol on the files found, before minutes of extraction: a subset too small for it
    # (a missing actor, a class with no speaker left) is refused now, not afterwards
    check_classes(manifest, protocols.make_folds(protocol, manifest), protocol, label_set)
    manifest, feats, report = extract(manifest, feature_extractor, cache_dir=cache_dir,
                                      workers=workers, progress=progress)  # fmt: skip
    variants = perturb.extract_variants(
        manifest, protocol, feature_extractor, audio_variants, workers=workers,
        cache_dir=cache_dir if cache_dir is not None else features.default_cache_dir(),
        progress=progress,
    )  # fmt: skip
    dataset = build(
        manifest,
        protocol,
        feats,
        extractor_info=features.describe(feature_extractor),
        extraction=report,
        normalisation=normalisation,
        max_frames=max_frames,
        variants=variants,
    )
    if label_set != "native":
        dataset.card["label_set"] = {"name": label_set, "mapping": label_mapping}
    if (corpus_options or {}).get("raw"):
        dataset.card["raw_labels"] = True
    if label_map:
        dataset.card["label_map"] = {old: new or "-" for old, new in label_map.items()}
    return dataset


class DatasetCache:
    """The prepared datasets of one corpus, each prepared once, on first use.

    Families read different features and normalisations (`reslstm_jax.families`), and an
    experiment's setups different protocols: one `prepare` per distinct combination.

    ```python
    cache = DatasetCache("ravdess", DIR, cache_dir=..., progress=False)
    dataset = cache.get(extractor="mfcc_chroma", normalisation="fold")
    ```
    """

    def __init__(self, corpus: str | None = None, data_dir=None, *, cache_dir=None,
                 workers: int | None = None, progress: bool = True,
                 label_map: dict | None = None, corpus_options: dict | None = None):  # fmt: skip
        """`label_map`, `corpus_options`: `prepare`'s, the same for every dataset of the
        corpus."""
        self.corpus, self.data_dir = corpus, data_dir
        self.options = {"cache_dir": cache_dir, "workers": workers, "progress": progress,
                        "label_map": label_map, "corpus_options": corpus_options}  # fmt: skip
        self._prepared: dict[str, Dataset] = {}

    def get(
        self,
        *,
        protocol: str | None = None,
        extractor: str = "mfcc_chroma",
        extractor_params: dict | None = None,
        normalisation: str = "fold",
        label_set: str = "native",
        audio_variants: Sequence[dict] = (),
    ) -> Dataset:
        """`prepare(corpus, data_dir, ...)` with these arguments, cached."""
        params = dict(extractor_params or {})
        variants = [dict(v) for v in audio_variants]
        key = repr((protocol, extractor, sorted(params.items()), normalisation, label_set,
                    [sorted(v.items()) for v in variants]))  # fmt: skip
        if key not in self._prepared:
            self._prepared[key] = prepare(
                self.corpus, self.data_dir, protocol=protocol, extractor=extractor,
                extractor_params=params, normalisation=normalisation, label_set=label_set,
                audio_variants=variants, **self.options,
            )  # fmt: skip
        return self._prepared[key]
