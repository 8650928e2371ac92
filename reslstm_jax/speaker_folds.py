"""Protocols for any corpus whose utterances name their speakers: `speaker_kfold`, `loso`,
and `given` / `given_leaky` for folds a manifest or EmoBox names.

```python
folds = protocols.make_folds("speaker_kfold", manifest)     # 5 folds of speakers
folds = protocols.make_folds("speaker_kfold10", manifest)   # 10 (`--folds 10`)
folds = protocols.make_folds("loso", manifest)              # one speaker per test fold
```
`speaker_kfold` puts every speaker in exactly one test fold, the speakers assigned so that each
test fold's classes (and genders, where the corpus gives them) are as close to the corpus's
own shares as whole speakers allow: a stratified group k-fold, greedy (the largest speakers
first, ties in an order fixed by `SEED`) and then improved by swapping speakers between folds,
so the folds are the same on every machine. The card says how close (`balance`). Validation
speakers are drawn from the training speakers, as the RAVDESS paper protocol does: about a
tenth of the speakers (at least one; alternating genders where known), from the other folds'
speakers starting with the next fold's, so no speaker is in two roles of a fold. `loso`
leaves one speaker out per fold, the next speaker validating. `given` takes the folds a
manifest names (`corpora.manifest`): its `fold` column (each fold tests its rows and trains on
the others; validation speakers drawn from the training part) or its `split` column (one
fixed train/val/test partition); folds that share a speaker between training and test are
refused. `given_leaky` (registered leaky) trains such folds as published, for EmoBox's
(`corpora.emobox`), with validation from the training part by a free speaker or a fixed tenth
of its rows. All are audited like every protocol (`protocols.make_folds`).
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from reslstm_jax.corpora.base import Manifest
from reslstm_jax.leakage import LeakageError
from reslstm_jax.protocols import (
    ANY_CORPUS,
    Fold,
    ProtocolError,
    _rotating,
    register,
    speaker_fold,
)

SEED = 0  # the tie-break order of equal speakers: recorded here, the same for every run
DEFAULT_FOLDS = 5
MAX_FOLDS = 50
# `speaker_kfold<K>`: the protocol with K folds (`--folds K`), made on first use
KFOLD_NAME = re.compile(r"^speaker_kfold(\d+)$")


def kfold_name(folds: int) -> str:
    """The protocol name of `speaker_kfold` with `folds` folds (`speaker_kfold` for 5)."""
    if not 2 <= folds <= MAX_FOLDS:
        raise ProtocolError(f"--folds must be in 2..{MAX_FOLDS}, got {folds}")
    return "speaker_kfold" if folds == DEFAULT_FOLDS else f"speaker_kfold{folds}"


def with_folds(protocol: str | None, folds: int | None) -> str | None:
    """`protocol` with `--folds` applied: `speaker_kfold<K>`; ProtocolError naming the flag
    for another protocol, or K out of range. One rule for the train CLI and the sweeps."""
    if folds is None:
        return protocol
    if protocol is not None and not protocol.startswith("speaker_kfold"):
        raise ProtocolError(f"--folds applies to --protocol speaker_kfold, not {protocol}")
    return kfold_name(folds)


def register_kfold(name: str) -> None:
    """Register `speaker_kfold<K>` (a name `protocols.get` was asked for); nothing for a name
    of another form (get then says it is unknown)."""
    match = KFOLD_NAME.match(name)
    if match is None or not 2 <= int(match.group(1)) <= MAX_FOLDS:
        return
    folds = int(match.group(1))
    register(name, ANY_CORPUS, _kfold_description(folds), describe=_describe)(
        lambda manifest: kfold(manifest, folds)
    )


def _kfold_description(folds: int) -> str:
    return (f"{folds} folds of whole speakers, class- (and gender-) balanced (stratified group "
            "k-fold); validation speakers from the training ones")  # fmt: skip


def _describe(manifest: Manifest, folds) -> dict:
    """The card's `balance`: how close the test folds' class shares are to the corpus's."""
    return {"balance": balance(manifest, [list(f.test_speakers) for f in folds])}


def speaker_groups(manifest: Manifest, folds: int, seed: int = SEED) -> list[list[str]]:
    """The speakers of `manifest` in `folds` groups, each group's class (and gender) counts as
    close to an equal share of the corpus's as whole speakers allow."""
    speakers = list(manifest.speakers)
    if len(speakers) < folds:
        raise ProtocolError(f"speaker_kfold with {folds} folds needs at least {folds} speakers, "
                            f"{manifest.corpus} has {len(speakers)}")  # fmt: skip
    counts = _profile(manifest, speakers)  # [S, classes (+ genders)]
    target = counts.sum(0) / folds
    order = np.random.default_rng(seed).permutation(len(speakers))
    order = sorted(order, key=lambda s: -counts[s].sum())  # the largest speakers first
    fold_of = np.zeros(len(speakers), int)
    totals = np.zeros((folds, counts.shape[1]))
    for s in order:  # greedy: the fold whose counts end closest to an equal share
        cost = (((totals + counts[s]) - target) ** 2).sum(1) - ((totals - target) ** 2).sum(1)
        best = min(range(folds), key=lambda f: (round(cost[f], 9), totals[f].sum(), f))
        totals[best] += counts[s]
        fold_of[s] = best
    fold_of = _improve(counts, fold_of, folds)
    groups = [[speakers[s] for s in np.flatnonzero(fold_of == f)] for f in range(folds)]
    return [sorted(g) for g in groups]


def _spread(counts: np.ndarray, fold_of: np.ndarray, folds: int) -> float:
    """How far the folds are from the corpus's shares (classes, genders) and from equal sizes:
    the sum of squared share differences, plus the squared relative size differences."""
    totals = np.stack([counts[fold_of == f].sum(0) for f in range(folds)])  # [K, C]
    sizes = totals[:, : counts.shape[1]].sum(1, keepdims=True)
    if (sizes == 0).any():
        return np.inf
    shares, overall = totals / sizes, counts.sum(0) / counts.sum()
    return float(((shares - overall) ** 2).sum() + ((sizes / sizes.mean() - 1) ** 2).sum() / 10)


def _improve(counts: np.ndarray, fold_of: np.ndarray, folds: int, passes: int = 20) -> np.ndarray:
    """Swap speakers between folds while a swap brings the folds closer (`_spread`); a fixed
    order, so the same every time."""
    fold_of = fold_of.copy()
    best = _spread(counts, fold_of, folds)
    for _ in range(passes):
        improved = False
        for a in range(len(fold_of)):
            for b in range(a + 1, len(fold_of)):
                if fold_of[a] == fold_of[b]:
                    continue
                fold_of[a], fold_of[b] = fold_of[b], fold_of[a]
                spread = _spread(counts, fold_of, folds)
                if spread < best - 1e-12:
                    best, improved = spread, True
                else:
                    fold_of[a], fold_of[b] = fold_of[b], fold_of[a]
        if not improved:
            break
    return fold_of


def balance(manifest: Manifest, groups: list[list[str]]) -> dict:
    """How close each test fold's class shares are to the corpus's: the largest difference,
    in percentage points, over folds and classes."""
    speakers = np.array([u.speaker for u in manifest.utterances])
    labels = np.array([u.label for u in manifest.utterances])
    n = len(manifest.classes)
    overall = np.bincount(labels, minlength=n) / len(labels)
    worst = 0.0
    for group in groups:
        rows = np.isin(speakers, group)
        shares = np.bincount(labels[rows], minlength=n) / max(1, rows.sum())
        worst = max(worst, float(np.abs(shares - overall).max()))
    return {"max_class_share_difference_points": round(100 * worst, 2), "seed": SEED}


def kfold(manifest: Manifest, folds: int) -> list[Fold]:
    """The `speaker_kfold` folds (see the module docstring)."""
    groups = speaker_groups(manifest, folds)
    n_val = max(1, len(manifest.speakers) // 10)
    result = []
    for i, test in enumerate(groups):
        pool = [s for j in range(1, folds) for s in groups[(i + j) % folds]]
        result.append(speaker_fold(manifest, f"fold{i}", test, _validation(manifest, pool, n_val)))
    if any(not len(f.train) for f in result):
        raise ProtocolError(f"speaker_kfold with {folds} folds leaves a fold no training speaker")
    return result


def _validation(manifest: Manifest, pool: list[str], n_val: int) -> list[str]:
    """`n_val` speakers from `pool` (in its order), alternating genders where they are known."""
    gender = {u.speaker: u.gender for u in manifest.utterances}
    by_gender = {g: [s for s in pool if gender[s] == g] for g in ("f", "m")}
    if not all(by_gender.values()) or any(gender[s] is None for s in pool):
        return pool[:n_val]
    picked = []
    for i in range(n_val):
        side = by_gender["fm"[i % 2]] or by_gender["mf"[i % 2]]
        picked.append(side.pop(0))
    return picked


def _profile(manifest: Manifest, speakers: list[str]) -> np.ndarray:
    """[S, C (+2)]: each speaker's utterances per class, and per gender where all are known."""
    index = {s: i for i, s in enumerate(speakers)}
    n = len(manifest.classes)
    genders = [u.gender for u in manifest.utterances]
    with_gender = all(g in ("f", "m") for g in genders)
    counts = np.zeros((len(speakers), n + (2 if with_gender else 0)))
    for u in manifest.utterances:
        counts[index[u.speaker], u.label] += 1
        if with_gender:
            counts[index[u.speaker], n + (u.gender == "m")] += 1
    return counts


@register("speaker_kfold", ANY_CORPUS, _kfold_description(DEFAULT_FOLDS), describe=_describe)
def _speaker_kfold(manifest: Manifest) -> list[Fold]:
    return kfold(manifest, DEFAULT_FOLDS)


@register("loso", ANY_CORPUS, "leave one speaker out; the next speaker validates")
def _loso(manifest: Manifest) -> list[Fold]:
    return _rotating(manifest, "loso", manifest.speakers, n_val=1)


@register("given", ANY_CORPUS,
          "the folds the manifest names: its fold column (each fold tests its rows; validation "
          "speakers from the training part) or its split column (train/val/test)")  # fmt: skip
def _given(manifest: Manifest) -> list[Fold]:
    return given_folds(manifest, leaky=False)


@register("given_leaky", ANY_CORPUS,
          "the folds as published (EmoBox's): each fold tests its rows; validation from the "
          "training part, by speaker where one is free, else a fixed tenth of its rows",
          leaky="the published folds put speakers in training and test alike, or name "
          "none: speaker-dependent")  # fmt: skip
def _given_leaky(manifest: Manifest) -> list[Fold]:
    return given_folds(manifest, leaky=True)


def given_folds(manifest: Manifest, *, leaky: bool) -> list[Fold]:
    """The folds a manifest's `fold` or `split` column names (`given`); with `leaky`, folds
    that share speakers are kept as published and marked speaker-dependent (`given_leaky`)."""
    column = next((c for c in ("fold", "split") if all(c in u.extra for u in manifest.utterances)),
                  None)  # fmt: skip
    if column is None:
        raise ProtocolError(f"protocol given needs a fold or split column on every row of "
                            f"{manifest.corpus}")  # fmt: skip
    values = np.array([u.extra[column] for u in manifest.utterances])
    speakers = np.array([u.speaker for u in manifest.utterances])
    if column == "split":
        fold = _given_fold(manifest, "given", speakers, values == "test", values == "val")
        return [dataclasses.replace(fold, fixed_split=True, speaker_dependent=leaky)]
    names = sorted(
        set(values.tolist()), key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v)
    )
    if len(names) < 2:
        raise ProtocolError(f"protocol given needs at least 2 folds, {manifest.corpus} names "
                            f"{len(names)}")  # fmt: skip
    folds = []
    for i, name in enumerate(names):
        test = values == name
        shared = set(speakers[test].tolist()) & set(speakers[~test].tolist())
        if shared and not leaky:  # the audit's finding, said before a validation part is drawn
            shown = ", ".join(sorted(shared)[:5]) + (" ..." if len(shared) > 5 else "")
            raise LeakageError(
                f"given fold{name}: speakers {shown} are in its test rows and "
                "in other folds' (given folds must be speaker-independent)"
            )
        pool = sorted(set(speakers[~test].tolist()) - set(speakers[test].tolist()))
        if pool:  # validation speakers from the training part
            n_val = max(1, len(pool) // 10)
            chosen = [pool[(i * n_val + j) % len(pool)] for j in range(n_val)]
            val = ~test & np.isin(speakers, chosen)
        else:  # every training speaker is tested too (leaky): a fixed tenth of the rows
            rows = np.flatnonzero(~test)
            picked = np.random.default_rng(SEED + i).permutation(rows)[: max(1, len(rows) // 10)]
            val = np.isin(np.arange(len(values)), picked)
        fold = _given_fold(manifest, f"fold{name}", speakers, test, val)
        folds.append(dataclasses.replace(fold, speaker_dependent=leaky))
    return folds


def _given_fold(manifest, name, speakers, is_test, is_val) -> Fold:
    is_train = ~is_test & ~is_val
    for part, rows in (("train", is_train), ("validation", is_val), ("test", is_test)):
        if not rows.any():
            raise ProtocolError(f"protocol given: {manifest.corpus}'s {name} has no {part} rows")
    return Fold(
        name=name, train=np.flatnonzero(is_train), val=np.flatnonzero(is_val),
        test=np.flatnonzero(is_test),
        train_speakers=tuple(sorted(set(speakers[is_train].tolist()))),
        val_speakers=tuple(sorted(set(speakers[is_val].tolist()))),
        test_speakers=tuple(sorted(set(speakers[is_test].tolist()))),
    )  # fmt: skip
