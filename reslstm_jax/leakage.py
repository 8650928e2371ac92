"""The leakage audit: are a protocol's folds speaker-independent, and is every utterance
tested exactly once? `protocols.make_folds` runs it on every protocol, every time (and
re-exports `audit` and `LeakageError`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from reslstm_jax.corpora.base import Manifest

if TYPE_CHECKING:
    from reslstm_jax.protocols import Fold


class LeakageError(ValueError):
    """A protocol's folds are not speaker-independent or do not test every utterance once."""


def audit(
    manifest: Manifest, folds: Sequence[Fold], protocol: str = "protocol", *, leaky: bool = False
) -> None:
    """Raise `LeakageError` unless the folds are speaker-independent and test everything once.

    Checks, per fold: non-empty train, val and test; train / val / test utterance sets
    disjoint; no speaker in both test and train or val; no speaker in both val and train
    (except a fold that declares `val_from_train_speakers`); and over all folds: every
    utterance of the manifest is tested exactly once (unless the protocol is one fixed split,
    `Fold.fixed_split`: its only fold tests its test rows). A `leaky` (reproduction) protocol's
    folds may declare `speaker_dependent` (speaker checks skipped) and `val_is_test` (val must
    then equal test); any other protocol declaring them is refused.
    """
    speakers = np.array([u.speaker for u in manifest.utterances])
    n = len(manifest.utterances)

    def who(indices: np.ndarray) -> set[str]:
        return set(speakers[indices].tolist())

    tested = np.zeros(n, np.int64)
    for fold in folds:
        where = f"{protocol} {fold.name}"
        if (fold.speaker_dependent or fold.val_is_test) and not leaky:
            raise LeakageError(
                f"{where}: speaker-dependent or test-selected folds need a protocol "
                "registered as leaky"
            )
        if fold.val_is_test and not np.array_equal(fold.val, fold.test):
            raise LeakageError(f"{where}: val_is_test but val differs from test")
        for part in ("train", "val", "test"):
            if len(getattr(fold, part)) == 0:
                declared = ", ".join(getattr(fold, f"{part}_speakers"))
                detail = f" (speakers {declared} are not in the manifest)" if declared else ""
                raise LeakageError(f"{where}: no {part} utterance{detail}")
        parts = {"train": fold.train, "val": fold.val, "test": fold.test}
        disjoint = [("train", "val"), ("train", "test")]
        if not fold.val_is_test:
            disjoint.append(("val", "test"))
        for a, b in disjoint:
            shared = np.intersect1d(parts[a], parts[b])
            if len(shared):
                raise LeakageError(
                    f"{where}: {len(shared)} utterances in both {a} and {b} "
                    f"(speakers {', '.join(sorted(who(shared)))})"
                )
        pairs = [] if fold.speaker_dependent else [("test", "train"), ("test", "val")]
        if not fold.val_from_train_speakers and not fold.speaker_dependent:
            pairs.append(("val", "train"))
        for a, b in pairs:
            both = who(parts[a]) & who(parts[b])
            if both:
                raise LeakageError(
                    f"{where}: speakers {', '.join(sorted(both))} are in both {a} and {b}"
                )
        tested[fold.test] += 1
    if any(f.fixed_split for f in folds):
        if len(folds) != 1:
            raise LeakageError(f"{protocol}: a fixed split is the protocol's only fold")
        return  # one partition: its test rows are tested, the others train and validate
    never, twice = np.flatnonzero(tested == 0), np.flatnonzero(tested > 1)
    if len(never):
        raise LeakageError(
            f"{protocol}: {len(never)} utterances are never tested "
            f"(speakers {', '.join(sorted(who(never)))})"
        )
    if len(twice):
        raise LeakageError(
            f"{protocol}: {len(twice)} utterances are tested more than once "
            f"(speakers {', '.join(sorted(who(twice)))})"
        )
