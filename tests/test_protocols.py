"""Protocols: exact folds, speaker independence, the leakage audit, the card."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from reslstm_jax import protocols
from reslstm_jax.corpora.base import Manifest, Utterance


def manifest(corpus: str, speakers: dict[str, int], gender=None, extra=None) -> Manifest:
    """An in-memory manifest: `n` utterances per speaker, labels cycling over 4 classes."""
    utterances = []
    for speaker, n in speakers.items():
        for i in range(n):
            utterances.append(
                Utterance(
                    id=f"{speaker}-{i:03d}",
                    path=f"/nowhere/{speaker}-{i:03d}.wav",
                    corpus=corpus,
                    speaker=speaker,
                    label=i % 4,
                    emotion=("a", "b", "c", "d")[i % 4],
                    gender=(gender or {}).get(speaker),
                    extra=(extra or (lambda s, i: {}))(speaker, i),
                )
            )
    return Manifest(
        corpus, "/nowhere", ("a", "b", "c", "d"), sorted(utterances, key=lambda u: u.id)
    )


RAVDESS = manifest("ravdess", {f"{a:02d}": 60 for a in range(1, 25)})


def test_ravdess_paper_folds_are_the_papers():
    """The paper's folds (docs/protocols.md): speakers and 1020/120/300 (1080/120/240) files."""
    folds = protocols.make_folds("ravdess_paper", RAVDESS)
    expected = [
        (("02", "05", "14", "15", "16"), ("03", "06"), (1020, 120, 300)),
        (("03", "06", "07", "13", "18"), ("10", "11"), (1020, 120, 300)),
        (("10", "11", "12", "19", "20"), ("08", "17"), (1020, 120, 300)),
        (("08", "17", "21", "23", "24"), ("01", "14"), (1020, 120, 300)),
        (("01", "04", "09", "22"), ("02", "05"), (1080, 120, 240)),
    ]
    for fold, (test, val, sizes) in zip(folds, expected, strict=True):
        assert fold.test_speakers == test and fold.val_speakers == val
        assert (len(fold.train), len(fold.val), len(fold.test)) == sizes
        assert len(fold.train_speakers) == 24 - len(test) - 2
        # one male (odd id) and one female (even id) validation actor
        assert sorted(int(s) % 2 for s in val) == [0, 1]


@pytest.mark.parametrize(
    "name,corpus,speakers,n_folds,n_val_speakers",
    [
        ("ravdess_loso", "ravdess", [f"{a:02d}" for a in range(1, 25)], 24, 2),
        (
            "emodb_loso",
            "emodb",
            ["03", "08", "09", "10", "11", "12", "13", "14", "15", "16"],
            10,
            1,
        ),
        ("iemocap_session", "iemocap", [f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"], 5, 2),
        ("iemocap_speaker", "iemocap", [f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"], 10, 1),
        ("savee_loso", "savee", ["DC", "JE", "JK", "KL"], 4, 1),
        ("cremad_actor5", "cremad", [str(a) for a in range(1001, 1092)], 5, None),
        # the protocols for any corpus with speakers
        ("speaker_kfold", "emodb", ["03", "08", "09", "10", "11", "12", "13", "14", "15", "16"],
         5, 1),
        ("speaker_kfold", "savee", ["DC", "JE", "JK", "KL", "XX"], 5, 1),
        ("speaker_kfold3", "iemocap", [f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"], 3, 1),
        ("speaker_kfold10", "cremad", [str(a) for a in range(1001, 1092)], 10, 9),
        ("speaker_kfold", "ravdess", [f"{a:02d}" for a in range(1, 25)], 5, 2),
        ("loso", "tess", ["OAF", "YAF", "ZZZ"], 3, 1),
        ("loso", "emodb", ["03", "08", "09", "10"], 4, 1),
    ],
)  # fmt: skip
def test_protocols_are_speaker_independent_and_test_everything_once(
    name, corpus, speakers, n_folds, n_val_speakers
):
    gender = {s: "mf"[i % 2] for i, s in enumerate(speakers)}
    m = manifest(corpus, {s: 7 for s in speakers}, gender=gender)
    folds = protocols.make_folds(name, m)
    assert len(folds) == n_folds
    tested = np.concatenate([f.test for f in folds])
    assert sorted(tested.tolist()) == list(range(len(m)))
    for fold in folds:
        train, val, test = (
            set(fold.train_speakers),
            set(fold.val_speakers),
            set(fold.test_speakers),
        )
        assert not (train & val) and not (train & test) and not (val & test)
        assert train | val | test == set(speakers)
        if n_val_speakers is not None:
            assert len(val) == n_val_speakers


def test_speaker_kfold_balances_classes_and_genders_by_whole_speakers():
    """Speakers of unequal sizes and class mixes: each test fold's class shares come close to
    the corpus's (the card says how close), validation alternates genders, and the folds are
    the same every time (a recorded seed)."""
    from reslstm_jax import speaker_folds

    utterances = []
    rng = np.random.default_rng(5)
    for s in range(20):
        speaker, n = f"s{s:02d}", int(rng.integers(8, 40))
        for i in range(n):
            label = int(rng.choice(4, p=[0.4, 0.3, 0.2, 0.1] if s % 2 else [0.1, 0.2, 0.3, 0.4]))
            utterances.append(Utterance(id=f"{speaker}-{i:03d}", path="/x", corpus="mine",
                                        speaker=speaker, label=label, emotion="abcd"[label],
                                        gender="mf"[s % 3 == 0]))  # fmt: skip
    m = Manifest("mine", "/x", ("a", "b", "c", "d"), sorted(utterances, key=lambda u: u.id))
    folds = protocols.make_folds("speaker_kfold", m)
    assert [f.test_speakers for f in folds] == [
        f.test_speakers for f in protocols.make_folds("speaker_kfold", m)
    ]
    card = protocols.card("speaker_kfold", m, folds)
    assert card["balance"]["seed"] == speaker_folds.SEED
    # whole speakers of 8-40 utterances: within a few points of the corpus's class shares
    # (4.7 here), closer than folds of every fifth speaker by name (7.3)
    found = card["balance"]["max_class_share_difference_points"]
    naive = speaker_folds.balance(m, [m.speakers[i::5] for i in range(5)])
    assert found < 6 and found < naive["max_class_share_difference_points"] - 2
    gender = {u.speaker: u.gender for u in utterances}
    for fold in folds:
        assert {gender[s] for s in fold.val_speakers} == {"f", "m"}  # 2 validation speakers


@pytest.mark.parametrize(
    "protocol, folds, expected",
    [(None, None, None), ("emodb_loso", None, "emodb_loso"), (None, 5, "speaker_kfold"),
     ("speaker_kfold", 7, "speaker_kfold7"), ("speaker_kfold7", 7, "speaker_kfold7"),
     ("emodb_loso", 3, "--folds applies to --protocol speaker_kfold, not emodb_loso"),
     (None, 1, "--folds must be in 2..50, got 1")],
)  # fmt: skip
def test_the_folds_flag_names_the_protocol(protocol, folds, expected):
    from reslstm_jax.speaker_folds import with_folds

    if expected is not None and expected.startswith("--"):
        with pytest.raises(ValueError, match=expected):
            with_folds(protocol, folds)
    else:
        assert with_folds(protocol, folds) == expected


def test_a_protocol_for_any_corpus_needs_enough_speakers():
    m = manifest("emodb", {"03": 5, "08": 5})
    with pytest.raises(protocols.ProtocolError, match="needs at least 5 speakers"):
        protocols.make_folds("speaker_kfold", m)
    assert protocols.applies_to("loso", "savee") and "loso" in protocols.for_corpus("cremad")


def test_iemocap_rotations():
    speakers = [f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"]
    m = manifest("iemocap", {s: 3 for s in speakers})
    session = protocols.make_folds("iemocap_session", m)
    assert [(f.test_speakers, f.val_speakers) for f in session[:2]] == [
        (("Ses01F", "Ses01M"), ("Ses02F", "Ses02M")),
        (("Ses02F", "Ses02M"), ("Ses03F", "Ses03M")),
    ]
    assert session[4].val_speakers == ("Ses01F", "Ses01M")  # rotating
    speaker = protocols.make_folds("iemocap_speaker", m)
    assert (speaker[0].test_speakers, speaker[0].val_speakers) == (("Ses01F",), ("Ses01M",))
    assert len(speaker[0].train_speakers) == 8


def test_cremad_groups_are_sex_stratified():
    actors = [str(a) for a in range(1001, 1092)]
    gender = {a: ("m" if i < 48 else "f") for i, a in enumerate(actors)}
    m = manifest("cremad", {a: 2 for a in actors}, gender=gender)
    for fold in protocols.make_folds("cremad_actor5", m):
        males = sum(gender[a] == "m" for a in fold.test_speakers)
        assert 8 <= males <= 11 and 16 <= len(fold.test_speakers) <= 20
        assert 8 <= len(fold.val_speakers) <= 10


def test_tess_validation_is_word_disjoint_from_training():
    words = [f"w{i:03d}" for i in range(20)]
    m = manifest("tess", {"oaf": 20, "yaf": 20}, extra=lambda s, i: {"word": words[i]})
    folds = protocols.make_folds("tess_cross_speaker", m)
    for fold in folds:
        assert fold.val_from_train_speakers
        assert fold.val_speakers == fold.train_speakers != fold.test_speakers
        word = np.array([u.extra["word"] for u in m.utterances])
        assert not set(word[fold.val]) & set(word[fold.train])
        assert len(fold.val) == 4 and len(fold.train) == 16 and len(fold.test) == 20


def leaky(fold: protocols.Fold, **changes) -> protocols.Fold:
    return dataclasses.replace(fold, **changes)


@pytest.mark.parametrize(
    "tamper,message",
    [
        # a validation actor who is also a training actor
        (
            lambda f, m: [leaky(f[0], val=np.concatenate([f[0].val, f[0].train[:1]]))] + f[1:],
            "utterances in both train and val",
        ),
        # a training speaker put into test: the audit names the speaker
        (
            lambda f, m: (
                [
                    leaky(
                        f[0],
                        test=np.concatenate(
                            [
                                f[0].test,
                                np.flatnonzero([u.speaker == "01" for u in m.utterances])[:5],
                            ]
                        ),
                    )
                ]
                + f[1:]
            ),
            "utterances in both train and test",
        ),
        # a speaker split across folds' train and test by utterance, not by speaker
        (
            lambda f, m: (
                [leaky(f[0], train=f[0].train[f[0].train != 0])]
                + [
                    leaky(
                        f[1],
                        test=np.concatenate([f[1].test, [0]]),
                        train=f[1].train[f[1].train != 0],
                    )
                ]
                + f[2:]
            ),
            "speakers 01 are in both test and train",
        ),
        (lambda f, m: f[:-1], r"240 utterances are never tested \(speakers 01, 04, 09, 22\)"),
        (
            lambda f, m: f + [f[0]],
            r"300 utterances are tested more than once \(speakers 02, 05, 14, 15, 16\)",
        ),
        (lambda f, m: [leaky(f[0], val=f[0].val[:0])] + f[1:], "fold0: no val utterance"),
    ],
)
def test_audit_catches_leaky_folds(tamper, message):
    folds = protocols.make_folds("ravdess_paper", RAVDESS)
    with pytest.raises(protocols.LeakageError, match=message):
        protocols.audit(RAVDESS, tamper(folds, RAVDESS), "ravdess_paper")


def test_a_deliberately_leaky_registered_protocol_is_refused():
    """A registered protocol is audited every time it is used."""

    @protocols.register("leaky_random_split", "ravdess", "random utterance split (leaky)")
    def _random(m):
        order = np.random.default_rng(0).permutation(len(m))
        parts = np.array_split(order, 5)
        return [
            protocols.Fold(
                f"fold{i}",
                np.concatenate(parts[:i] + parts[i + 2 :]),
                parts[(i + 1) % 5],
                parts[i],
                (),
                (),
                (),
            )
            for i in range(5)
        ]

    try:
        with pytest.raises(protocols.LeakageError, match=r"leaky_random_split fold0: speakers"):
            protocols.make_folds("leaky_random_split", RAVDESS)
    finally:
        protocols._REGISTRY.pop("leaky_random_split")


@pytest.mark.parametrize(
    "name,m,message",
    [
        ("nope", RAVDESS, "unknown protocol 'nope'; known protocols: cremad_actor5"),
        (
            "emodb_loso",
            RAVDESS,
            "protocol emodb_loso is for emodb, not ravdess; protocols for "
            "ravdess: ravdess_paper, ravdess_loso",
        ),
        (
            "ravdess_paper",
            manifest("ravdess", {"01": 5, "02": 5}),
            r"fold0: no val utterance \(speakers 03, 06 are not in the manifest\)",
        ),
    ],
)
def test_protocol_misuse(name, m, message):
    with pytest.raises(ValueError, match=message):
        protocols.make_folds(name, m)


def test_card_names_exactly_what_was_run():
    folds = protocols.make_folds("ravdess_paper", RAVDESS)
    card = protocols.card("ravdess_paper", RAVDESS, folds)
    json.dumps(card)  # storable as is
    assert card["n_utterances"] == 1440 and card["n_speakers"] == 24
    assert card["folds"][4]["test_speakers"] == ["01", "04", "09", "22"]
    assert (card["folds"][0]["n_train"], card["folds"][0]["n_val"]) == (1020, 120)
    # the hash depends on the utterance set only, not its order
    shuffled = Manifest("ravdess", "/x", RAVDESS.classes, RAVDESS.utterances[::-1])
    assert protocols.utterance_hash(shuffled) == card["utterance_ids_sha256"]
    fewer = Manifest("ravdess", "/x", RAVDESS.classes, RAVDESS.utterances[1:])
    assert protocols.utterance_hash(fewer) != card["utterance_ids_sha256"]
    text = protocols.format_card(card)
    assert "fold4: test 01,04,09,22 | val 02,05 | train 18 speakers | 1080/120/240" in text


def test_a_sweep_takes_folds_as_the_train_cli_does(run_main):
    import yaml

    from sweeps.run import main as sweep_main

    done = run_main(sweep_main, ["--space", "hidden_sizes", "--folds", "7", "--print-config"])
    printed = yaml.safe_load(done.stdout)
    assert done.returncode == 0 and printed["protocol"] == "speaker_kfold7"
    assert printed["study"] == "hidden_sizes-synthetic-speaker_kfold7-quick"
    refused = run_main(sweep_main, ["--space", "hidden_sizes", "--protocol", "ravdess_paper",
                                    "--folds", "3"])  # fmt: skip
    assert refused.returncode == 2 and "--folds applies to --protocol speaker_kfold" in (
        refused.stderr)  # fmt: skip


def test_derived_kfold_protocols_exist_but_are_not_listed():
    """`speaker_kfold<K>` is made on first use: it is a protocol (an experiment file may name
    it), and the listings (--help, docs/cli.md) stay the same whatever the process used."""
    before = protocols.names()
    assert protocols.exists("speaker_kfold3") and protocols.get("speaker_kfold3")
    assert protocols.names() == before and "speaker_kfold" in before
    assert not protocols.exists("speaker_kfold1") and not protocols.exists("nope")
