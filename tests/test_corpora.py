"""The six corpus loaders on tiny fake trees (tests/corpus_trees.py).

Per corpus: labels, speakers, genders and extra fields; the fixed label map; sorting; the count
comparison; the files that must be skipped (song, video, hidden, LFS pointer, truncated, empty,
unknown codes); duplicates from double nesting; missing or unusable roots.
"""

from __future__ import annotations

import pathlib
import re
import shutil
import warnings

import corpus_trees as trees
import pytest

from reslstm_jax import corpora
from reslstm_jax.corpora import (
    CorpusCountWarning,
    CorpusError,
    Manifest,
    cremad,
    emodb,
    iemocap,
    ravdess,
    savee,
    tess,
)

MODULES = {
    "ravdess": ravdess,
    "emodb": emodb,
    "iemocap": iemocap,
    "cremad": cremad,
    "tess": tess,
    "savee": savee,
}

# The fixed label maps: a change here changes every trained model's output layer.
CLASSES = {
    "ravdess": (
        "neutral",
        "calm",
        "happy",
        "sad",
        "angry",
        "fearful",
        "disgust",
        "surprised",
    ),
    "emodb": ("anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"),
    "iemocap": ("neutral", "happy", "angry", "sad"),
    "cremad": ("anger", "disgust", "fear", "happy", "neutral", "sad"),
    "tess": ("angry", "disgust", "fear", "happy", "neutral", "pleasant_surprise", "sad"),
    "savee": ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"),
}

# The published totals (corpora.md), and the per-class counts summed.
TOTALS = {
    "ravdess": 1440,
    "emodb": 535,
    "iemocap": 5531,
    "cremad": 7442,
    "tess": 2800,
    "savee": 480,
}


def load_with_warnings(corpus: str, root: pathlib.Path) -> tuple[Manifest, list[str]]:
    """Load through the registry, collecting the CorpusCountWarning messages."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manifest = corpora.load(corpus, root)
    messages = [str(w.message) for w in caught if issubclass(w.category, CorpusCountWarning)]
    return manifest, messages


def expected_valid(corpus: str) -> list[tuple[str, str, str, str | None, dict[str, str]]]:
    """(id, speaker, emotion, gender, extra) of the utterances of the small valid tree."""
    if corpus == "iemocap":
        return trees.IEMOCAP_VALID
    return [
        (uid, spk, emo, gender, extra) for _, uid, spk, emo, gender, extra in trees.VALID[corpus]
    ]


@pytest.fixture(params=list(MODULES))
def small_tree(request, tmp_path):
    """(corpus, root, nasty files -> reason): the valid tree plus the NASTY files."""
    corpus = request.param
    trees.build_valid(tmp_path, corpus)
    nasty = trees.add_nasty(tmp_path, corpus)
    return corpus, tmp_path, nasty


# ----------------------------------------------------------------------------- constants


@pytest.mark.parametrize("corpus", list(MODULES))
def test_label_map_and_expected_counts_are_consistent(corpus):
    module = MODULES[corpus]
    assert CLASSES[corpus] == module.CLASSES
    assert set(module.EXPECTED.per_class) == set(module.CLASSES)
    assert module.EXPECTED.total == TOTALS[corpus]
    assert sum(module.EXPECTED.per_class.values()) == module.EXPECTED.total
    if module.EXPECTED.per_speaker is not None:
        assert sum(module.EXPECTED.per_speaker.values()) == module.EXPECTED.total


@pytest.mark.parametrize("corpus", corpora.KNOWN)
def test_every_corpus_module_declares_what_it_knows(corpus):
    """One home per corpus: its classes, its default protocol (registered, and one that splits
    it) and its shared-4 mapping come from its module, read through `corpora`."""
    from reslstm_jax import protocols
    from reslstm_jax.corpora import labelsets

    module = corpora.module(corpus)
    assert corpus == module.NAME and module.CLASSES
    assert corpora.default_protocol(corpus) in protocols.names()
    assert protocols.applies_to(corpora.default_protocol(corpus), corpus)
    shared = corpora.shared4(corpus)
    assert set(shared) <= set(module.CLASSES) and set(shared.values()) == set(labelsets.SHARED4)
    assert labelsets.mapping(corpus, "shared4") == shared


def test_expected_speaker_tables():
    assert ravdess.EXPECTED.per_speaker == {f"{a:02d}": 60 for a in range(1, 25)}
    assert emodb.EXPECTED.per_speaker["14"] == 69 and len(emodb.EXPECTED.per_speaker) == 10
    assert iemocap.EXPECTED.per_speaker["Ses03M"] == 629
    assert iemocap.EXPECTED.per_speaker["Ses01F"] + iemocap.EXPECTED.per_speaker["Ses01M"] == 1085
    assert cremad.EXPECTED.per_speaker is None  # no per-actor counts are published
    assert tess.EXPECTED.per_speaker == {"OAF": 1400, "YAF": 1400}
    assert savee.EXPECTED.per_speaker == {"DC": 120, "JE": 120, "JK": 120, "KL": 120}


# ----------------------------------------------------------------------------- small trees


def test_fields_are_parsed(small_tree):
    corpus, root, _ = small_tree
    manifest, _ = load_with_warnings(corpus, root)
    found = {u.id: u for u in manifest.utterances}
    wanted = expected_valid(corpus)
    assert sorted(found) == sorted(uid for uid, *_ in wanted)
    for uid, speaker, emotion, gender, extra in wanted:
        utt = found[uid]
        assert (utt.speaker, utt.emotion, utt.gender) == (speaker, emotion, gender), uid
        assert {k: utt.extra[k] for k in extra} == extra, uid
        assert utt.corpus == corpus
        assert pathlib.Path(utt.path).is_absolute() and pathlib.Path(utt.path).is_file()


def test_labels_index_the_fixed_label_map(small_tree):
    corpus, root, _ = small_tree
    manifest, _ = load_with_warnings(corpus, root)
    assert manifest.classes == CLASSES[corpus]
    for utt in manifest.utterances:
        assert manifest.classes[utt.label] == utt.emotion


def test_utterances_are_sorted_by_unique_id(small_tree):
    corpus, root, _ = small_tree
    manifest, _ = load_with_warnings(corpus, root)
    assert manifest.ids == sorted(manifest.ids)
    assert len(set(manifest.ids)) == len(manifest.ids)


def test_nasty_files_are_skipped_with_their_reason(small_tree):
    corpus, root, nasty = small_tree
    manifest, _ = load_with_warnings(corpus, root)
    reasons = {s.path: s.reason for s in manifest.skipped}
    used = {u.path for u in manifest.utterances}
    for path, reason in nasty.items():
        assert path not in used, path
        assert path in reasons, path
        assert reasons[path].startswith(reason), (path, reasons[path])
    # Nothing under the root is silently ignored, except the files a loader reads as metadata.
    metadata = {"VideoDemographics.csv"} if corpus == "cremad" else set()
    every_file = {str(p) for p in root.rglob("*") if p.is_file()}
    unaccounted = every_file - used - set(reasons)
    if corpus == "iemocap":
        unaccounted = {p for p in unaccounted if "EmoEvaluation" not in p}
    assert {pathlib.Path(p).name for p in unaccounted} <= metadata


def test_subset_gives_a_warning_naming_the_differences(small_tree):
    corpus, root, _ = small_tree
    manifest, messages = load_with_warnings(corpus, root)
    assert len(messages) == 1
    message = messages[0]
    assert "is a subset of the published corpus" in message
    assert f"total: found {len(manifest)}, expected {TOTALS[corpus]}" in message
    assert (
        manifest.count_differences[0] == f"total: found {len(manifest)}, expected {TOTALS[corpus]}"
    )
    first_class = CLASSES[corpus][0]
    assert any(d.startswith(f"class {first_class}: found") for d in manifest.count_differences)


def test_subset_warning_is_a_corpus_count_warning(tmp_path):
    trees.build_ravdess(tmp_path, actors=[5])
    with pytest.warns(CorpusCountWarning, match=r"is a subset of .*total: found 60, expected 1440"):
        manifest = ravdess.load(tmp_path)
    assert "speaker 01: found 0, expected 60" in manifest.count_differences
    assert "class neutral: found 4, expected 96" in manifest.count_differences


# ----------------------------------------------------------------------------- roots


@pytest.mark.parametrize("corpus", list(MODULES))
def test_missing_root_names_the_path(corpus, tmp_path):
    missing = tmp_path / "no" / "such" / corpus
    with pytest.raises(CorpusError, match=re.escape(str(missing))):
        corpora.load(corpus, missing)


@pytest.mark.parametrize("corpus", list(MODULES))
def test_root_without_usable_file_is_an_error(corpus, tmp_path):
    trees.write_text(tmp_path / ".DS_Store")
    trees.write_text(tmp_path / "README.txt")
    trees.write_lfs_pointer(tmp_path / "sub" / "x.wav")
    with pytest.raises(CorpusError, match="no usable utterance"):
        corpora.load(corpus, tmp_path)


@pytest.mark.parametrize("corpus", list(MODULES))
def test_only_bad_audio_is_an_error_that_lists_the_reasons(corpus, tmp_path):
    for rel, writer, _ in trees.NASTY[corpus]:
        trees.WRITERS[writer](tmp_path / rel)
    with pytest.raises(CorpusError, match="skipped: .*hidden file"):
        corpora.load(corpus, tmp_path)


# ----------------------------------------------------------------------------- RAVDESS


@pytest.mark.parametrize("layout", ["zenodo", "kaggle"])
def test_ravdess_full_tree_matches_the_published_counts(layout, tmp_path):
    ids = trees.build_ravdess(tmp_path, layout=layout)
    # Song files of the separate zip sit next to the speech folders in some copies.
    trees.write_wav(tmp_path / "Actor_01" / trees.ravdess_name(3, 1, 1, 1, 1, channel=2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorpusCountWarning)
        manifest = ravdess.load(tmp_path)
    assert len(manifest) == 1440
    assert manifest.count_differences == []
    assert manifest.ids == sorted(ids)
    assert manifest.speakers == [f"{a:02d}" for a in range(1, 25)]
    by_reason = manifest.skipped_by_reason()
    assert by_reason.get("song (vocal channel 02)") == 1
    if layout == "kaggle":
        # The mirror is kept once: the first path in sort order, the other listed as skipped.
        assert by_reason.get("duplicate copy") == 1440
        kept = {pathlib.Path(u.path).relative_to(tmp_path).parts[0] for u in manifest.utterances}
        assert kept == {f"Actor_{a:02d}" for a in range(1, 25)}
    else:
        assert "duplicate copy" not in by_reason


def test_ravdess_conflicting_copies_are_an_error(tmp_path):
    name = trees.ravdess_name(5, 2, 1, 1, 7)
    trees.write_wav(tmp_path / "Actor_07" / name, seed=0)
    trees.write_wav(tmp_path / "audio_speech_actors_01-24" / "Actor_07" / name, seed=1)
    with pytest.raises(CorpusError, match="two different files for utterance 03-01-05-02-01-01-07"):
        ravdess.load(tmp_path)


@pytest.mark.parametrize(
    ("actor", "gender"), [(1, "m"), (2, "f"), (17, "m"), (18, "f"), (23, "m"), (24, "f")]
)
def test_ravdess_gender_from_actor_parity(actor, gender, tmp_path):
    path = trees.write_wav(tmp_path / trees.ravdess_name(3, 1, 1, 1, actor))
    utt = ravdess.parse(path)
    assert (utt.speaker, utt.gender, utt.label, utt.emotion) == (f"{actor:02d}", gender, 2, "happy")


@pytest.mark.parametrize("emotion", range(1, 9))
def test_ravdess_label_is_emotion_code_minus_one(emotion, tmp_path):
    path = trees.write_wav(tmp_path / trees.ravdess_name(emotion, 1, 1, 1, 1))
    assert ravdess.parse(path).label == emotion - 1


# ----------------------------------------------------------------------------- EMO-DB


@pytest.mark.parametrize(
    ("letter", "label"), [("W", 0), ("L", 1), ("E", 2), ("A", 3), ("F", 4), ("T", 5), ("N", 6)]
)
def test_emodb_emotion_letters(letter, label, tmp_path):
    path = trees.write_wav(tmp_path / f"09b02{letter}c.wav")
    utt = emodb.parse(path)
    assert utt.label == label and utt.emotion == emodb.CLASSES[label]
    assert (utt.speaker, utt.gender, utt.extra["age"]) == ("09", "f", "21")


def test_emodb_single_class_tree_keeps_the_fixed_labels(tmp_path):
    trees.write_wav(tmp_path / "wav" / "03a01Na.wav")
    trees.write_wav(tmp_path / "wav" / "08a01Na.wav")
    manifest, _ = load_with_warnings("emodb", tmp_path)
    # Neutral is class 6 whatever else is (not) on disk.
    assert manifest.labels == [6, 6]
    assert manifest.classes == CLASSES["emodb"]


# ----------------------------------------------------------------------------- IEMOCAP


@pytest.mark.parametrize(
    ("utt", "speaker", "gender"),
    [
        ("Ses01F_impro01_M000", "Ses01M", "m"),
        ("Ses01F_impro01_F000", "Ses01F", "f"),
        ("Ses03M_impro05a_F012", "Ses03F", "f"),
        ("Ses05M_script02_2_M042", "Ses05M", "m"),
        ("Ses04F_script01_1b_M007", "Ses04M", "m"),
    ],
)
def test_iemocap_speaker_is_the_last_tokens_letter(utt, speaker, gender, tmp_path):
    dialog = utt.rsplit("_", 1)[0]
    trees.build_iemocap(tmp_path, {dialog: [(utt, "neu")]})
    manifest, _ = load_with_warnings("iemocap", tmp_path)
    [found] = manifest.utterances
    assert (found.id, found.speaker, found.gender) == (utt, speaker, gender)
    assert found.extra["session"] == utt[4]


@pytest.mark.parametrize(
    ("lab", "emotion"),
    [("neu", "neutral"), ("hap", "happy"), ("exc", "happy"), ("ang", "angry"), ("sad", "sad")],
)
def test_iemocap_four_classes_with_exc_merged(lab, emotion, tmp_path):
    trees.build_iemocap(tmp_path, {"Ses02F_impro02": [("Ses02F_impro02_M001", lab)]})
    manifest, _ = load_with_warnings("iemocap", tmp_path)
    [utt] = manifest.utterances
    assert utt.emotion == emotion and utt.label == iemocap.CLASSES.index(emotion)
    assert utt.extra["original_label"] == lab


@pytest.mark.parametrize("lab", ["fru", "sur", "fea", "dis", "oth", "xxx"])
def test_iemocap_other_labels_are_skipped(lab, tmp_path):
    turns = [("Ses02F_impro02_M001", lab), ("Ses02F_impro02_F001", "neu")]
    trees.build_iemocap(tmp_path, {"Ses02F_impro02": turns})
    manifest, _ = load_with_warnings("iemocap", tmp_path)
    assert manifest.ids == ["Ses02F_impro02_F001"]
    assert manifest.skipped_by_reason() == {f"label {lab} outside the 4 classes": 1}


def test_iemocap_raw_labels_keep_every_agreed_category_for_a_label_map(tmp_path):
    """`raw=True` (--raw-labels): the ten agreed categories, excited apart from happy; xxx (no
    agreement) is still skipped; a label map then builds another class set from them, and a
    corpus whose classes are all its labels reads the same either way."""
    from reslstm_jax.corpora import labelsets

    labs = ["neu", "hap", "exc", "ang", "sad", "fru", "sur", "fea", "dis", "oth", "xxx"]
    turns = [(f"Ses02F_impro02_M{i:03d}", lab) for i, lab in enumerate(labs)]
    trees.build_iemocap(tmp_path, {"Ses02F_impro02": turns})
    raw = corpora.load("iemocap", tmp_path, raw=True)
    assert raw.classes == iemocap.RAW_CLASSES and len(raw.classes) == 10
    assert [u.emotion for u in raw.utterances] == [iemocap.RAW_LABELS[lab] for lab in labs[:-1]]
    assert raw.skipped_by_reason() == {"label xxx: the annotators did not agree": 1}
    assert raw.count_differences == []  # the published counts are the four classes'
    five = labelsets.apply_map(raw, labelsets.parse_map(
        "excited=happy,frustrated=angry,surprised=-,fearful=-,disgusted=-,other=-"))  # fmt: skip
    assert five.classes == ("neutral", "happy", "angry", "sad")
    assert [u.emotion for u in five.utterances] == ["neutral", "happy", "happy", "angry", "sad",
                                                    "angry"]  # fmt: skip
    assert corpora.raw_classes("iemocap") == iemocap.RAW_CLASSES
    assert corpora.raw_classes("emodb") == emodb.CLASSES  # all its labels already


@pytest.mark.parametrize("tabs", [True, False])
def test_iemocap_label_lines_tolerate_whitespace(tabs, tmp_path):
    trees.build_iemocap(tmp_path, trees.IEMOCAP_DIALOGS, tabs=tabs)
    manifest, _ = load_with_warnings("iemocap", tmp_path)
    # Every turn but fru, xxx and sur (the wavs of all turns are written here).
    labelled = [
        utt
        for turns in trees.IEMOCAP_DIALOGS.values()
        for utt, lab in turns
        if lab in iemocap.LABELS
    ]
    assert manifest.ids == sorted(labelled) and len(labelled) == 12
    utt = {u.id: u for u in manifest.utterances}["Ses01F_impro01_F000"]
    assert (utt.extra["start"], utt.extra["end"]) == ("1.2500", "3.0000")


def test_iemocap_labelled_turn_without_wav_is_reported(tmp_path):
    trees.build_valid(tmp_path, "iemocap")
    manifest, messages = load_with_warnings("iemocap", tmp_path)
    missing = [s for s in manifest.skipped if s.reason == "labelled but no wav file"]
    expected = (
        tmp_path.resolve()
        / "Session1/sentences/wav/Ses01F_impro01"
        / f"{trees.IEMOCAP_MISSING_WAV}.wav"
    )
    assert [s.path for s in missing] == [str(expected)]
    assert trees.IEMOCAP_MISSING_WAV not in manifest.ids
    assert "is a subset of" in messages[0]


def test_iemocap_nested_release_and_mirror(tmp_path):
    # Labels come from the same SessionN folder as the wav, so a nested copy works and an
    # identical mirror is dropped as a duplicate.
    for prefix in ("IEMOCAP_full_release", "copy/IEMOCAP_full_release"):
        trees.build_iemocap(tmp_path / prefix, {"Ses01F_impro01": [("Ses01F_impro01_M000", "exc")]})
    manifest, _ = load_with_warnings("iemocap", tmp_path)
    assert manifest.ids == ["Ses01F_impro01_M000"]
    assert manifest.skipped_by_reason() == {"duplicate copy": 1}


def test_iemocap_wav_in_the_wrong_session_is_skipped(tmp_path):
    trees.build_iemocap(tmp_path, {"Ses01F_impro01": [("Ses01F_impro01_M000", "neu")]})
    wrong = tmp_path / "Session2/sentences/wav/Ses01F_impro01/Ses01F_impro01_M000.wav"
    trees.write_wav(wrong)
    manifest, _ = load_with_warnings("iemocap", tmp_path)
    assert len(manifest) == 1
    assert {s.path: s.reason for s in manifest.skipped}[str(wrong.resolve())] == (
        "utterance of session 1 under Session2"
    )


# ----------------------------------------------------------------------------- CREMA-D


def test_cremad_without_demographics_has_no_gender(tmp_path):
    trees.build_valid(tmp_path, "cremad")
    (tmp_path / "VideoDemographics.csv").unlink()
    manifest, _ = load_with_warnings("cremad", tmp_path)
    assert {u.gender for u in manifest.utterances} == {None}
    assert all("age" not in u.extra for u in manifest.utterances)


def test_cremad_demographics_found_anywhere_under_root(tmp_path):
    trees.write_wav(tmp_path / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    trees.write_text(
        tmp_path / "meta" / "deep" / "VideoDemographics.csv", trees.CREMAD_DEMOGRAPHICS
    )
    manifest, _ = load_with_warnings("cremad", tmp_path)
    assert manifest.utterances[0].gender == "m"
    assert manifest.skipped == []


def test_cremad_lfs_pointer_clone(tmp_path):
    # A clone without `git lfs pull`: every wav is a pointer, so nothing is usable.
    for name in ("1001_DFA_ANG_XX.wav", "1002_IEO_HAP_HI.wav"):
        trees.write_lfs_pointer(tmp_path / "AudioWAV" / name)
    with pytest.raises(CorpusError, match="Git LFS pointer"):
        cremad.load(tmp_path)


# ----------------------------------------------------------------------------- TESS


@pytest.mark.parametrize(
    ("name", "uid", "emotion"),
    [
        ("OAF_back_ps.wav", "oaf_back_ps", "pleasant_surprise"),
        ("YAF_Back_PS.wav", "yaf_back_ps", "pleasant_surprise"),
        ("oaf_food_fear.wav", "oaf_food_fear", "fear"),
        ("YAF_GIN_ANGRY.WAV", "yaf_gin_angry", "angry"),
    ],
)
def test_tess_names_are_lower_cased(name, uid, emotion, tmp_path):
    utt = tess.parse(trees.write_wav(tmp_path / name))
    assert (utt.id, utt.emotion, utt.speaker, utt.gender) == (uid, emotion, uid[:3].upper(), "f")


def test_tess_kaggle_double_nesting(tmp_path):
    rel = "OAF_angry/OAF_back_angry.wav"
    trees.write_wav(tmp_path / "TESS Toronto emotional speech set data" / rel)
    trees.write_wav(
        tmp_path
        / "tess toronto emotional speech set data/TESS Toronto emotional speech set data"
        / rel
    )
    manifest, _ = load_with_warnings("tess", tmp_path)
    assert manifest.ids == ["oaf_back_angry"]
    assert manifest.skipped_by_reason() == {"duplicate copy": 1}


# ----------------------------------------------------------------------------- SAVEE


@pytest.mark.parametrize(
    ("rel", "uid", "emotion"),
    [
        ("AudioData/DC/sa03.wav", "DC_sa03", "sadness"),
        ("AudioData/DC/su03.wav", "DC_su03", "surprise"),
        ("AudioData/DC/a03.wav", "DC_a03", "anger"),
        ("KL_sa03.wav", "KL_sa03", "sadness"),
        ("KL_a03.wav", "KL_a03", "anger"),
        ("JK_n30.wav", "JK_n30", "neutral"),
    ],
)
def test_savee_codes_and_layouts(rel, uid, emotion, tmp_path):
    utt = savee.parse(trees.write_wav(tmp_path / rel))
    assert (utt.id, utt.emotion, utt.speaker, utt.gender) == (uid, emotion, uid[:2], "m")


@pytest.mark.parametrize(("seed", "conflict"), [(0, False), (1, True)])
def test_savee_both_layouts_give_the_same_id(seed, conflict, tmp_path):
    trees.write_wav(tmp_path / "AudioData" / "JE" / "h07.wav", seed=0)
    trees.write_wav(tmp_path / "ALL" / "JE_h07.wav", seed=seed)
    if conflict:
        with pytest.raises(CorpusError, match="two different files for utterance JE_h07"):
            savee.load(tmp_path)
    else:
        manifest, _ = load_with_warnings("savee", tmp_path)
        assert manifest.ids == ["JE_h07"]
        assert manifest.skipped_by_reason() == {"duplicate copy": 1}


def test_copy_of_tree_elsewhere_is_independent(tmp_path):
    # The manifest depends on the files only, never on where the tree lives.
    trees.build_valid(tmp_path / "a", "savee")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    first, _ = load_with_warnings("savee", tmp_path / "a")
    second, _ = load_with_warnings("savee", tmp_path / "b")
    assert first.ids == second.ids and first.labels == second.labels


# A corpus module of the form docs/architecture.md gives ("A corpus"), on the tone tree: two
# classes by the pitch code of the file name, the actor folder as the speaker.
THROWAWAY_CORPUS = """
import pathlib
from reslstm_jax.corpora.base import ExpectedCounts, Utterance, collect, require_root

NAME = "tones"
CLASSES = ("low", "high")
EXPECTED = ExpectedCounts(total=48, per_class={"low": 24, "high": 24})
DEFAULT_PROTOCOL = "speaker_kfold"
SHARED4 = {}


def parse(path):
    parts = path.stem.split("-")
    if path.suffix != ".wav" or len(parts) != 7:
        return "not a tone file"
    label = 0 if parts[2] == "01" else 1
    return Utterance(id=path.stem, path=str(path), corpus=NAME, speaker=parts[6],
                     label=label, emotion=CLASSES[label])


def load(root):
    return collect(NAME, require_root(NAME, root), CLASSES, EXPECTED, parse)
"""
REGISTER_AND_TRAIN = """
import sys, types
from reslstm_jax import corpora
module = types.ModuleType("reslstm_jax.corpora.tones")
exec(sys.argv.pop(1), module.__dict__)
sys.modules[module.__name__] = module
corpora.CORPORA = (*corpora.CORPORA, "tones")  # the one line a new corpus adds to the list
corpora.KNOWN = (*corpora.KNOWN, "tones")
from reslstm_jax.train.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_new_corpus_is_a_module_and_a_line_in_the_list(tone_corpus, feature_cache, tmp_path,
                                                         train_command, run_command):  # fmt: skip
    """Nothing else to edit: the train CLI offers it, its default protocol splits it, the
    card names it."""
    import json
    import sys

    argv = train_command(tone_corpus, tmp_path / "run", feature_cache, "--corpus", "tones",
                         "--epochs", "1", "--seeds", "1")  # fmt: skip
    assert argv[1:3] == ["-m", "reslstm_jax.train"]
    done = run_command([sys.executable, "-c", REGISTER_AND_TRAIN, THROWAWAY_CORPUS, *argv[3:]])
    assert done.returncode == 0, done.stderr[-2000:]
    card = json.loads((tmp_path / "run" / "card.json").read_text())
    assert (card["corpus"], card["protocol"], card["classes"]) == (
        "tones", "speaker_kfold", ["low", "high"])  # fmt: skip
