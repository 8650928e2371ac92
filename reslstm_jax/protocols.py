"""Named speaker-independent fold protocols, the leakage audit, and the protocol card.

```python
folds = protocols.make_folds("ravdess_paper", manifest)   # audited every time
card = protocols.card("ravdess_paper", manifest, folds)    # stored with every result
print(protocols.format_card(card))
```

A protocol maps a manifest to folds; each fold holds train / val / test utterance indices
(positions in `manifest.utterances`). `make_folds` always runs `audit`, which raises
`LeakageError` naming the offending fold and speakers if a speaker appears in two of
train / val / test, or if an utterance is not tested exactly once over the folds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence

import numpy as np

from reslstm_jax.corpora.base import Manifest
from reslstm_jax.leakage import LeakageError, audit  # noqa: F401  (the protocols' API)


class ProtocolError(ValueError):
    """A protocol cannot be applied to this manifest (unknown name, wrong corpus, no data)."""


@dataclasses.dataclass(frozen=True)
class Fold:
    """One fold: utterance indices into the manifest, and the speakers behind them.

    `val_from_train_speakers` marks the one sanctioned exception to speaker-disjoint
    validation (TESS has only two speakers): validation utterances then come from the training
    speaker, on words never used for training, and the card says so.
    """

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    train_speakers: tuple[str, ...]
    val_speakers: tuple[str, ...]
    test_speakers: tuple[str, ...]
    val_from_train_speakers: bool = False
    # Reproduction protocols of other papers only (the protocol is then registered `leaky`):
    speaker_dependent: bool = False  # speakers may be in train, val and test alike
    val_is_test: bool = False  # checkpoint selection on the test fold itself
    # One fixed train/val/test partition (a manifest's split column): the only fold, and only
    # its test rows are tested (the audit's every-utterance-once check does not apply)
    fixed_split: bool = False


@dataclasses.dataclass(frozen=True)
class Protocol:
    name: str
    corpus: str
    description: str
    build: Callable[[Manifest], list[Fold]]
    leaky: str | None = None  # why its numbers are not speaker-independent test numbers
    # more fields of its card (`card`): describe(manifest, folds) -> dict
    describe: Callable[[Manifest, Sequence[Fold]], dict] | None = None


_REGISTRY: dict[str, Protocol] = {}
# The corpus of a protocol that splits any corpus whose utterances name their speakers
# (`reslstm_jax.speaker_folds`: speaker_kfold, loso).
ANY_CORPUS = "*"


def register(name: str, corpus: str, description: str, leaky: str | None = None,
             describe: Callable[[Manifest, Sequence[Fold]], dict] | None = None):  # fmt: skip
    """Decorator: register `build(manifest) -> list[Fold]` as protocol `name`.

    Only a protocol registered with a `leaky` reason may build speaker-dependent folds or
    folds that select on test; the audit refuses them otherwise, and the card carries the
    reason into every table.
    """

    def wrap(build: Callable[[Manifest], list[Fold]]):
        if name in _REGISTRY:
            raise ValueError(f"protocol {name!r} is already registered")
        _REGISTRY[name] = Protocol(name, corpus, description, build, leaky, describe)
        return build

    return wrap


def names() -> list[str]:
    """The protocols' names; `speaker_kfold<K>` (made on first use, `get`) not among them, so
    that a listing does not depend on what the process has used."""
    return sorted(n for n in _REGISTRY if not (n[13:].isdigit() and n.startswith("speaker_kfold")))


def exists(name: str) -> bool:
    """Whether `name` is a protocol (`speaker_kfold<K>` for K in range included)."""
    try:
        get(name)
    except ProtocolError:
        return False
    return True


def get(name: str) -> Protocol:
    if name not in _REGISTRY and name.startswith("speaker_kfold"):
        from reslstm_jax import speaker_folds  # `speaker_kfold<K>`, made on first use

        speaker_folds.register_kfold(name)
    if name not in _REGISTRY:
        raise ProtocolError(f"unknown protocol {name!r}; known protocols: {', '.join(names())}")
    return _REGISTRY[name]


def for_corpus(corpus: str) -> list[str]:
    """Protocols that apply to `corpus`: those of its layout (RAVDESS's for `synthetic`)."""
    target = _layout(corpus)
    return [p.name for p in _REGISTRY.values() if p.corpus in (target, ANY_CORPUS)]


def applies_to(name: str, corpus: str) -> bool:
    """Whether protocol `name` can split corpus `corpus` (its own or its layout's protocol)."""
    return get(name).corpus in (_layout(corpus), ANY_CORPUS)


def _layout(corpus: str) -> str:
    from reslstm_jax import corpora

    return corpora.layout(corpus) if corpus in corpora.names() else corpus


# ----------------------------------------------------------------------------- building


def speaker_fold(
    manifest: Manifest,
    name: str,
    test: Sequence[str],
    val: Sequence[str],
) -> Fold:
    """A fold from speaker lists: test and val speakers as given, every other speaker trains."""
    speakers = np.array([u.speaker for u in manifest.utterances])
    test_set, val_set = set(test), set(val)
    is_test = np.isin(speakers, list(test_set))
    is_val = np.isin(speakers, list(val_set)) & ~is_test
    is_train = ~is_test & ~is_val
    train_speakers = sorted(set(speakers[is_train].tolist()))
    return Fold(
        name=name,
        train=np.flatnonzero(is_train),
        val=np.flatnonzero(is_val),
        test=np.flatnonzero(is_test),
        train_speakers=tuple(train_speakers),
        val_speakers=tuple(sorted(val_set)),
        test_speakers=tuple(sorted(test_set)),
    )


def _rotating(manifest: Manifest, protocol: str, order: Sequence[str], n_val: int) -> list[Fold]:
    """Leave one speaker out; validation = the next `n_val` speakers in `order`, cyclically."""
    present = [s for s in order if s in set(manifest.speakers)]
    if len(present) < n_val + 2:
        raise ProtocolError(
            f"{protocol} needs at least {n_val + 2} speakers, {manifest.corpus} has {len(present)}"
        )
    return [
        speaker_fold(
            manifest,
            f"fold{i}",
            [speaker],
            [present[(i + j) % len(present)] for j in range(1, n_val + 1)],
        )
        for i, speaker in enumerate(present)
    ]


# ----------------------------------------------------------------------------- protocols

# The ResLSTM-SA paper's folds: the reference notebook's `get_kth_fold_inds` (Mak-Sim/ResLSTM-SER,
# train.ipynb at f2b7439); docs/data.md lists them.
RAVDESS_PAPER_FOLDS = (
    ((2, 5, 14, 15, 16), (3, 6)),
    ((3, 6, 7, 13, 18), (10, 11)),
    ((10, 11, 12, 19, 20), (8, 17)),
    ((8, 17, 21, 23, 24), (1, 14)),
    ((1, 4, 9, 22), (2, 5)),
)


@register(
    "ravdess_paper",
    "ravdess",
    "The ResLSTM-SA paper's 5 actor folds: 4-5 test actors and 2 validation actors "
    "(one male, one female) per fold, the remaining 17-18 actors train.",
)
def _ravdess_paper(manifest: Manifest) -> list[Fold]:
    return [
        speaker_fold(manifest, f"fold{i}", [f"{a:02d}" for a in test], [f"{a:02d}" for a in val])
        for i, (test, val) in enumerate(RAVDESS_PAPER_FOLDS)
    ]


@register(
    "ravdess_loso",
    "ravdess",
    "Leave one actor out (24 folds); validation = the next two actors in id order "
    "(one male, one female), cyclically.",
)
def _ravdess_loso(manifest: Manifest) -> list[Fold]:
    return _rotating(manifest, "ravdess_loso", manifest.speakers, n_val=2)


@register(
    "emodb_loso",
    "emodb",
    "Leave one speaker out (10 folds); validation = the next speaker in id order, cyclically.",
)
def _emodb_loso(manifest: Manifest) -> list[Fold]:
    return _rotating(manifest, "emodb_loso", manifest.speakers, n_val=1)


def _iemocap_sessions(manifest: Manifest) -> list[str]:
    return sorted({s[:5] for s in manifest.speakers})  # "Ses01M" -> "Ses01"


@register(
    "iemocap_session",
    "iemocap",
    "Leave one session out (5 folds); validation = the next session, rotating; "
    "the other 3 sessions train.",
)
def _iemocap_session(manifest: Manifest) -> list[Fold]:
    sessions = _iemocap_sessions(manifest)
    if len(sessions) < 3:
        raise ProtocolError(f"iemocap_session needs 3 sessions, found {sessions}")
    folds = []
    for i, session in enumerate(sessions):
        nxt = sessions[(i + 1) % len(sessions)]
        folds.append(
            speaker_fold(
                manifest,
                f"fold{i}",
                [s for s in manifest.speakers if s.startswith(session)],
                [s for s in manifest.speakers if s.startswith(nxt)],
            )
        )
    return folds


@register(
    "iemocap_speaker",
    "iemocap",
    "Leave one speaker out (10 folds); validation = the other speaker of the test session; "
    "the other 4 sessions train.",
)
def _iemocap_speaker(manifest: Manifest) -> list[Fold]:
    folds = []
    for i, speaker in enumerate(manifest.speakers):
        partner = [s for s in manifest.speakers if s[:5] == speaker[:5] and s != speaker]
        if not partner:
            raise ProtocolError(f"iemocap_speaker: session {speaker[:5]} has one speaker only")
        folds.append(speaker_fold(manifest, f"fold{i}", [speaker], partner))
    return folds


def random_folds(manifest: Manifest, n_folds: int, seed: int, *, n_val_chunks: int = 0,
                 val_is_test: bool = False) -> list[Fold]:  # fmt: skip
    """Speaker-dependent K-fold CV on one seeded permutation of the utterances (sorted by id
    first, so the split does not depend on the file system): fold k tests chunk k; validation
    is the test chunk itself (`val_is_test`, the reproduced papers' selection on test) or the
    next `n_val_chunks` chunks."""
    order = np.argsort(manifest.ids, kind="stable")
    order = order[np.random.default_rng(seed).permutation(len(order))]
    chunks = np.array_split(order, n_folds)
    speakers = np.array([u.speaker for u in manifest.utterances])
    folds = []
    for k in range(n_folds):
        test = np.sort(chunks[k])
        if val_is_test:
            val = test
        else:
            val = np.sort(np.concatenate([chunks[(k + j) % n_folds]
                                          for j in range(1, n_val_chunks + 1)]))  # fmt: skip
        train = np.setdiff1d(np.arange(len(order)), np.union1d(test, val))
        folds.append(Fold(
            name=f"fold{k}", train=train, val=val, test=test,
            train_speakers=tuple(sorted(set(speakers[train].tolist()))),
            val_speakers=tuple(sorted(set(speakers[val].tolist()))),
            test_speakers=tuple(sorted(set(speakers[test].tolist()))),
            speaker_dependent=True, val_is_test=val_is_test,
        ))  # fmt: skip
    return folds


@register(
    "emodb_random10",
    "emodb",
    "Light-SERNet's protocol: one seeded random permutation of the utterances cut into 10 "
    "chunks, fold k tests chunk k, the best epoch is picked on the test chunk. (The paper's "
    "runs tested random pairs of chunks, counting utterances twice; this tests each once.)",
    leaky="speaker-dependent random folds and checkpoint selection on the test fold",
)
def _emodb_random10(manifest: Manifest) -> list[Fold]:
    return random_folds(manifest, 10, seed=42, val_is_test=True)


@register(
    "iemocap_random5",
    "iemocap",
    "DS-LSTM's protocol: one seeded random permutation of the utterances cut into 5 folds "
    "(80/20), the best epoch is picked on the test fold.",
    leaky="speaker-dependent random folds and checkpoint selection on the test fold",
)
def _iemocap_random5(manifest: Manifest) -> list[Fold]:
    return random_folds(manifest, 5, seed=10, val_is_test=True)


@register(
    "cremad_actor5",
    "cremad",
    "5 actor folds: actors sorted by id are dealt round-robin, separately per sex, into 10 "
    "groups; fold k tests groups 2k and 2k+1 (20%) and validates on group 2k+2 (10%).",
)
def _cremad_actor5(manifest: Manifest) -> list[Fold]:
    gender = {u.speaker: u.gender or "?" for u in manifest.utterances}
    groups: list[list[str]] = [[] for _ in range(10)]
    dealt = 0
    for sex in sorted(set(gender.values())):
        for actor in sorted(a for a in gender if gender[a] == sex):
            groups[dealt % 10].append(actor)
            dealt += 1
    if dealt < 10:
        raise ProtocolError(f"cremad_actor5 needs at least 10 actors, found {dealt}")
    return [
        speaker_fold(
            manifest, f"fold{k}", groups[2 * k] + groups[2 * k + 1], groups[(2 * k + 2) % 10]
        )
        for k in range(5)
    ]


@register(
    "tess_cross_speaker",
    "tess",
    "Train on one speaker, test on the other (2 folds). With two speakers there is no "
    "validation speaker: validation = every 5th word (sorted) of the training speaker, words "
    "never used for training (speaker-dependent validation, word-disjoint).",
)
def _tess_cross_speaker(manifest: Manifest) -> list[Fold]:
    speakers = manifest.speakers
    if len(speakers) != 2:
        raise ProtocolError(f"tess_cross_speaker needs both speakers, found {speakers}")
    words = sorted({u.extra.get("word", u.id) for u in manifest.utterances})
    val_words = set(words[::5])
    folds = []
    for i, test_speaker in enumerate(speakers):
        train_speaker = speakers[1 - i]
        is_test = np.array([u.speaker == test_speaker for u in manifest.utterances])
        is_val = np.array(
            [
                u.speaker == train_speaker and u.extra.get("word", u.id) in val_words
                for u in manifest.utterances
            ]
        )
        folds.append(
            Fold(
                name=f"fold{i}",
                train=np.flatnonzero(~is_test & ~is_val),
                val=np.flatnonzero(is_val),
                test=np.flatnonzero(is_test),
                train_speakers=(train_speaker,),
                val_speakers=(train_speaker,),
                test_speakers=(test_speaker,),
                val_from_train_speakers=True,
            )
        )
    return folds


SAVEE_TEST_ORDER = ("JE", "KL", "DC", "JK")  # EmoBox's fold order


@register(
    "savee_loso",
    "savee",
    "Leave one speaker out (4 folds, test order JE, KL, DC, JK); validation = the next "
    "speaker in that order; the other 2 speakers train.",
)
def _savee_loso(manifest: Manifest) -> list[Fold]:
    return _rotating(manifest, "savee_loso", SAVEE_TEST_ORDER, n_val=1)


def make_folds(name: str, manifest: Manifest) -> list[Fold]:
    """The folds of protocol `name` on `manifest`, audited (raises `LeakageError`)."""
    protocol = get(name)
    if not applies_to(name, manifest.corpus):
        raise ProtocolError(
            f"protocol {name} is for {protocol.corpus}, not {manifest.corpus}; protocols for "
            f"{manifest.corpus}: {', '.join(for_corpus(manifest.corpus)) or 'none'}"
        )
    folds = protocol.build(manifest)
    audit(manifest, folds, name, leaky=protocol.leaky is not None)
    return folds


# ----------------------------------------------------------------------------- card


def utterance_hash(manifest: Manifest) -> str:
    """SHA-256 of the sorted utterance ids, one per line: names exactly which data was used.

    A generated corpus (`manifest.source`: generator, version, seed) hashes that record first,
    as one JSON line: the synthetic corpus shares RAVDESS's file names, never its hash.
    """
    lines = sorted(manifest.ids)
    if manifest.source:
        lines.insert(0, json.dumps(manifest.source, sort_keys=True))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def card(name: str, manifest: Manifest, folds: Sequence[Fold]) -> dict:
    """The protocol card: what a paper must cite to say exactly what was run (JSON-ready)."""
    protocol = get(name)
    return {
        "corpus": manifest.corpus,
        "protocol": name,
        "description": protocol.description,
        "leaky": protocol.leaky,
        "classes": list(manifest.classes),
        "n_utterances": len(manifest),
        "n_speakers": len(manifest.speakers),
        "utterance_ids_sha256": utterance_hash(manifest),
        **({"source": dict(manifest.source)} if manifest.source else {}),
        **(protocol.describe(manifest, folds) if protocol.describe else {}),
        "count_differences": list(manifest.count_differences),
        "folds": [
            {
                "name": f.name,
                "test_speakers": list(f.test_speakers),
                "val_speakers": list(f.val_speakers),
                "train_speakers": list(f.train_speakers),
                "n_train": int(len(f.train)),
                "n_val": int(len(f.val)),
                "n_test": int(len(f.test)),
                "val_from_train_speakers": f.val_from_train_speakers,
                "speaker_dependent": f.speaker_dependent,
                "val_is_test": f.val_is_test,
                **({"fixed_split": True} if f.fixed_split else {}),
            }
            for f in folds
        ],
    }


def format_card(card: dict) -> str:
    """The card as readable text."""
    lines = [
        f"protocol {card['protocol']} on {card['corpus']}: {card['n_utterances']} utterances, "
        f"{card['n_speakers']} speakers",
        f"  {card['description']}",
        *([f"  LEAKY: {card['leaky']}"] if card.get("leaky") else []),
        *(
            [
                f"  {card['source']['description']}: generator version "
                f"{card['source']['generator_version']}, seed {card['source']['seed']}"
            ]
            if card.get("source")
            else []
        ),
        f"  classes: {', '.join(card['classes'])}",
        *(
            [
                f"  label set {card['label_set']['name']}: "
                + ", ".join(f"{a} -> {b}" for a, b in card["label_set"]["mapping"].items())
                + "; other classes left out"
            ]
            if card.get("label_set")
            else []
        ),  # fmt: skip
        f"  utterance ids sha256: {card['utterance_ids_sha256']}",
    ]
    if card["count_differences"]:
        lines.append(
            f"  differs from the published corpus: {len(card['count_differences'])} counts"
        )
    if card.get("audio_variants"):  # `data.build`: counts below are of utterances
        lines.append("  audio variants: " + ", ".join(
            f"{v['name']} ({v['rows']} training rows)" for v in card["audio_variants"]
        ) + "; each fold trains on those of its training utterances only")  # fmt: skip
    for f in card["folds"]:
        note = (
            " (val from the training speaker's held-out words)"
            if (f["val_from_train_speakers"])
            else ""
        )
        lines.append(
            f"  {f['name']}: test {','.join(f['test_speakers'])} | val "
            f"{','.join(f['val_speakers'])}{note} | train {len(f['train_speakers'])} speakers | "
            f"{f['n_train']}/{f['n_val']}/{f['n_test']} utterances"
        )
    return "\n".join(lines)


# The protocols for any corpus with speakers register themselves (they build on the above).
from reslstm_jax import speaker_folds  # noqa: E402, F401
