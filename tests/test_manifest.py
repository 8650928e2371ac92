"""A corpus of your own: CSV, TSV and JSON Lines manifests, their bad rows, the `given` folds."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from corpus_trees import tone_rows, write

from reslstm_jax import corpora, protocols
from reslstm_jax.corpora import labelsets
from reslstm_jax.corpora import manifest as manifest_mod
from reslstm_jax.corpora.base import CorpusError


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_every_bad_row_is_named_and_the_rest_used(tone_corpus, tmp_path, suffix):
    rows = tone_rows(tone_corpus, tmp_path)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "noise.wav").write_bytes(b"not a riff file at all")
    bad = [
        {**rows[0], "file": ""},                    # row 49: no file
        {**rows[0], "file": "nowhere/x.wav"},       # row 50: no such file
        {**rows[0], "file": "empty.wav"},           # row 51: empty
        {**rows[0], "file": "noise.wav"},           # row 52: not a WAV
        {**rows[1], "emotion": ""},                 # row 53: a repeat of row 2, no emotion
        {**rows[2]},                                # row 54: a repeat of row 3
    ]  # fmt: skip
    path = write(tmp_path / f"my_lab{suffix}", rows + bad)
    m = corpora.load("manifest", path)
    assert m.corpus == "my_lab" and m.classes == ("angry", "neutral") and len(m) == 48
    reasons = {s.path.split(":")[0].split(" (")[0]: s.reason for s in m.skipped}
    assert reasons == {"row 49": "no file", "row 50": "no such file", "row 51": "empty file",
                       "row 52": "not a RIFF/WAVE file",
                       "row 53": "repeats an earlier row's file",
                       "row 54": "repeats an earlier row's file"}  # fmt: skip
    u = m.utterances[0]
    assert u.speaker.startswith("spk") and u.gender in ("m", "f") and u.emotion in m.classes
    assert corpora.default_protocol("manifest", m) == "given"  # its rows name their folds
    assert m.ids == sorted(pathlib.Path(r["file"]).stem for r in rows)


@pytest.mark.parametrize(
    "columns, text, message",
    [
        (["path", "label"], None, "no speaker column (speaker, spk, actor)"),
        (["wav", "emo", "actor", "start"], None, "a segment needs both start and end columns"),
        (None, "file,emotion,speaker\n", "no rows"),
        (None, "file,emotion,speaker\nnone.wav,happy,s1\n",
         "no usable row (1 rows; 1 no such file)"),
    ],
)  # fmt: skip
def test_a_manifest_that_cannot_be_used_is_one_line(tmp_path, columns, text, message):
    path = tmp_path / "lab.csv"
    if text is None:
        row = {"path": "a.wav", "label": "x", "wav": "a.wav", "emo": "x", "actor": "s",
               "start": "0", "end": "1"}  # fmt: skip
        write(path, [row], columns)
    else:
        path.write_text(text)
    with pytest.raises(CorpusError, match=message.replace("(", r"\(").replace(")", r"\)")):
        corpora.load("manifest", path)
    for where, what in ((tmp_path, "is a folder"), (tmp_path / "lab.xlsx", "must end in")):
        with pytest.raises(CorpusError, match=what):
            corpora.load("manifest", where)


def test_segments_of_longer_recordings_are_read_as_their_own_samples(tone_corpus, tmp_path):
    """`start`/`end` rows: each segment is an utterance of its own (id: stem and times), read
    as exactly its samples (the features of the segment equal those of the same samples
    written to a file of their own), and a bad segment is a named row, not a failed run."""
    import soundfile

    from reslstm_jax import data, features

    rows = tone_rows(tone_corpus, tmp_path)[:2]
    duration = soundfile.info(tone_corpus / rows[0]["file"] if not
                              pathlib.Path(rows[0]["file"]).is_absolute()
                              else rows[0]["file"]).duration  # fmt: skip
    half = round(duration / 2, 3)
    table = [
        {**rows[0], "start": "0", "end": str(half)},                     # row 1
        {**rows[0], "start": str(half), "end": str(duration)},           # row 2
        {**rows[1]},                                                      # row 3: whole file
        {**rows[0], "start": "0", "end": str(half)},                     # row 4: repeat
        {**rows[0], "start": "0", "end": str(duration + 1)},             # row 5: past its end
        {**rows[0], "start": "2", "end": "1"},                           # row 6
        {**rows[0], "start": "a", "end": "1"},                           # row 7
    ]  # fmt: skip
    path = write(tmp_path / "dialogs.csv", table, ["file", "emotion", "speaker", "start", "end"])
    m = corpora.load("manifest", path)
    reasons = {s.path.split(":")[0]: s.reason for s in m.skipped}
    assert reasons == {"row 4": "repeats an earlier row's segment",
                       "row 5": f"segment ends after its file ({duration:g} s)",
                       "row 6": "segment is not 0 <= start < end",
                       "row 7": "start and end are not both seconds"}  # fmt: skip
    stem = pathlib.Path(rows[0]["file"]).stem
    by_id = {u.id: u for u in m.utterances}
    assert set(by_id) == {f"{stem}_0-{half:g}", f"{stem}_{half:g}-{duration:g}",
                          pathlib.Path(rows[1]["file"]).stem}  # fmt: skip
    first = by_id[f"{stem}_0-{half:g}"]
    assert first.segment == (0.0, half)
    extractor = features.get("mfcc_chroma")
    _, feats, report = data.extract(m, extractor, cache_dir=tmp_path / "cache", workers=1,
                                    progress=False)  # fmt: skip
    assert not report.failed and len(feats) == 3
    y, rate = soundfile.read(first.path, dtype="float32")
    cut = tmp_path / "cut.wav"
    soundfile.write(cut, y[: round(half * rate)], rate, subtype="FLOAT")
    np.testing.assert_array_equal(feats[m.utterances.index(first)], extractor(cut))
    # a segment is cached apart from its file and from the other segment of it
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 3


def test_the_given_folds_and_split_are_the_manifests(tone_corpus, tmp_path):
    rows = tone_rows(tone_corpus, tmp_path)
    m = manifest_mod.load(write(tmp_path / "lab.csv", rows))
    folds = protocols.make_folds("given", m)  # audited
    assert [f.name for f in folds] == ["fold0", "fold1", "fold2"]
    fold_of = {u.id: u.extra["fold"] for u in m.utterances}
    for fold in folds:
        assert {fold_of[m.ids[i]] for i in fold.test} == {fold.name[4:]}
        assert fold.val_speakers and not set(fold.val_speakers) & set(fold.train_speakers)
    tested = np.sort(np.concatenate([f.test for f in folds]))
    assert tested.tolist() == list(range(len(m)))
    # one fixed partition: by speaker number, 1-16 train, 17-20 validate, 21-24 test
    split = [{**r, "split": "train" if int(r["speaker"][3:]) <= 16
              else "dev" if int(r["speaker"][3:]) <= 20 else "test"} for r in rows]  # fmt: skip
    m = manifest_mod.load(write(tmp_path / "split.csv", split, ["file", "emotion", "speaker",
                                                                 "split"]))  # fmt: skip
    (fold,) = protocols.make_folds("given", m)
    assert (len(fold.train), len(fold.val), len(fold.test)) == (32, 8, 8)
    # a given fold that shares a speaker between training and test is refused, not trained on
    leaky = [{**r, "fold": str(i % 2)} for i, r in enumerate(rows)]
    m = manifest_mod.load(write(tmp_path / "leaky.csv", leaky))
    with pytest.raises(protocols.LeakageError):
        protocols.make_folds("given", m)


def test_a_manifest_without_folds_runs_speaker_kfold_and_joins_shared4(tone_corpus, tmp_path):
    rows = tone_rows(tone_corpus, tmp_path)
    m = manifest_mod.load(write(tmp_path / "lab.csv", rows, ["file", "emotion", "speaker"]))
    assert corpora.default_protocol("manifest", m) == "speaker_kfold"
    assert labelsets.mapping(m.corpus, "shared4", m.classes) == {"neutral": "neutral",
                                                                 "angry": "angry"}  # fmt: skip
    with pytest.raises(CorpusError, match="name none of neutral, happy, angry, sad"):
        labelsets.mapping("other", "shared4", ("joy", "rage"))


def test_the_train_cli_trains_on_a_manifest(tone_corpus, feature_cache, tmp_path, train_command,
                                            run_command):  # fmt: skip
    """A CSV of files: its name, utterance hash and `given` folds reach the card, and its bad
    rows skipped.csv; with a speed-perturbed copy of the training utterances."""
    rows = tone_rows(tone_corpus, tmp_path) + [{"file": "gone.wav", "emotion": "angry",
                                                "speaker": "spk01", "fold": "0"}]  # fmt: skip
    manifest = write(tmp_path / "my_lab.csv", rows, ["file", "emotion", "speaker", "fold"])
    out = tmp_path / "run"
    done = run_command(train_command(tone_corpus, out, feature_cache, "--corpus", "manifest",
                                     "--data-dir", str(manifest), "--epochs", "2",
                                     "--speed-perturb", "1.1"))  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    card = json.loads((out / "card.json").read_text())
    assert (card["corpus"], card["protocol"], card["n_utterances"]) == ("my_lab", "given", 48)
    assert [f["name"] for f in card["folds"]] == ["fold0", "fold1", "fold2"]
    assert "row 49: " in (out / "skipped.csv").read_text()
    assert "1 file(s) under" in done.stdout and "no such file" in done.stdout
    # the variant: 48 more training rows, none of them validated or tested
    assert [(v["name"], v["rows"]) for v in card["audio_variants"]] == [("speed1.1", 48)]
    assert "audio variants: speed1.1 (48 training rows)" in done.stdout
    for run in json.loads((out / "results.json").read_text())["runs"]:
        assert not any("~" in i for i in run["test_predictions"]["ids"])


def test_a_sweep_names_its_study_after_the_manifest(tone_corpus, tmp_path, run_main):
    """The study of a manifest is named after it, with the protocol its rows choose."""
    import yaml

    from sweeps.run import main as sweep_main

    manifest = write(tmp_path / "my_lab.csv", tone_rows(tone_corpus, tmp_path),
                     ["file", "emotion", "speaker", "fold"])  # fmt: skip
    done = run_main(sweep_main, ["--space", "hidden_sizes", "--corpus", "manifest",
                                 "--data-dir", manifest, "--out", tmp_path / "runs",
                                 "--print-config"])  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed = yaml.safe_load(done.stdout)
    assert printed["study"] == "hidden_sizes-my_lab-given-quick"
    assert printed["protocol"] == "given" and not (tmp_path / "runs").exists()
    folder = run_main(sweep_main, ["--space", "hidden_sizes", "--corpus", "manifest",
                                   "--data-dir", tmp_path, "--print-config"])  # fmt: skip
    assert folder.returncode == 2 and "is not a manifest file" in folder.stderr


# ----------------------------------------------------------------------------- label maps


@pytest.mark.parametrize(
    "text, file, expected",
    [
        ("excited=happy,calm=neutral,surprised=-", None,
         {"excited": "happy", "calm": "neutral", "surprised": None}),
        ("", "excited=happy\n# a comment\nsurprised=-\n", {"excited": "happy", "surprised": None}),
        ("", "excited: happy\nsurprised: '-'\n", {"excited": "happy", "surprised": None}),
        ("happy", None, "'happy' is not old=new"),
        ("a=b,a=c", None, "a is mapped twice"),
    ],
)  # fmt: skip
def test_a_label_map_is_inline_or_a_file(tmp_path, text, file, expected):
    if file is not None:
        text = str(tmp_path / "map.txt")
        (tmp_path / "map.txt").write_text(file)
    if isinstance(expected, str):
        with pytest.raises(CorpusError, match=expected):
            labelsets.parse_map(text)
    else:
        assert labelsets.parse_map(text) == expected


def test_a_label_map_renames_merges_and_drops_before_the_folds(tone_corpus, tmp_path):
    rows = tone_rows(tone_corpus, tmp_path)
    relabel = {"neutral": "calm", "angry": "hot"}  # half of each: angry, calm, hot, neutral
    rows = [{**r, "emotion": relabel[r["emotion"]]} if i % 4 in (1, 2) else r
            for i, r in enumerate(rows)]  # fmt: skip
    m = manifest_mod.load(write(tmp_path / "lab.csv", rows))
    assert m.classes == ("angry", "calm", "hot", "neutral")
    mapped = labelsets.apply_map(m, {"calm": "neutral", "hot": "-"})
    assert mapped.classes == ("angry", "neutral")  # calm merged where it stood, hot dropped
    assert len(mapped) == len(m) - sum(u.emotion == "hot" for u in m.utterances)
    assert all(mapped.classes[u.label] == u.emotion for u in mapped.utterances)
    dropped = [s for s in mapped.skipped if s.reason == "dropped by the label map: hot"]
    assert len(dropped) == sum(u.emotion == "hot" for u in m.utterances)
    with pytest.raises(CorpusError, match="has no class joy"):
        labelsets.apply_map(m, {"joy": "happy"})
    # a known corpus whose classes a map changed joins shared4 by its classes' names
    assert labelsets.mapping("emodb", "shared4", ("neutral", "happy", "bored")) == {
        "neutral": "neutral", "happy": "happy"}  # fmt: skip


def test_the_card_records_the_label_map(tone_corpus, feature_cache):
    """A known corpus through data.prepare: RAVDESS's calm merged into neutral, surprised
    dropped; the card says so and every table keeps such runs apart."""
    from reslstm_jax import data, report

    dataset = data.prepare("ravdess", tone_corpus, cache_dir=feature_cache, workers=1,
                           progress=False,
                           label_map={"calm": "neutral", "surprised": None})  # fmt: skip
    card = dataset.card
    assert card["label_map"] == {"calm": "neutral", "surprised": "-"}
    assert "calm" not in card["classes"] and "surprised" not in card["classes"]
    plain = {"card": {**card, "label_map": {}}}
    assert report.card_key({"card": card}) != report.card_key(plain)


def test_a_manifest_is_a_cross_corpus_target(tone_corpus, tmp_path, trained_run, feature_cache):
    """`--cross-test manifest=FILE`: read as the run read its corpus, named after the file."""
    from reslstm_jax import crosscorpus

    manifest = write(tmp_path / "my_lab.csv", tone_rows(tone_corpus, tmp_path),
                     ["file", "emotion", "speaker"])  # fmt: skip
    assert crosscorpus.parse_target(f"manifest={manifest}") == ("manifest", str(manifest))
    run_card = json.loads((trained_run[0] / "card.json").read_text())
    shared = {**run_card, "label_set": {"name": "shared4"}, "classes": list(labelsets.SHARED4)}
    target = crosscorpus.load_target("manifest", manifest, shared, cache_dir=feature_cache,
                                     workers=1, progress=False)  # fmt: skip
    assert target.card["corpus"] == "my_lab" and target.card["n_utterances"] == 48
    assert sorted(set(target.labels.tolist())) == [labelsets.SHARED4.index(c)
                                                   for c in ("neutral", "angry")]  # fmt: skip


def test_a_class_no_fold_can_train_on_is_refused_before_extraction(tone_corpus, tmp_path,
                                                                   run_main):  # fmt: skip
    """One speaker carries a class: the fold that tests that speaker has no training
    utterance of it, and the run stops in one line before any feature is extracted."""
    from reslstm_jax import data

    rows = tone_rows(tone_corpus, tmp_path)
    rows = [{**r, "emotion": "rare"} if r["speaker"] == "spk01" and r["emotion"] == "angry"
            else r for r in rows]  # fmt: skip
    manifest = write(tmp_path / "lab.csv", rows, ["file", "emotion", "speaker"])
    with pytest.raises(protocols.ProtocolError, match="no training utterance of class rare"):
        data.prepare("manifest", manifest, cache_dir=tmp_path / "empty-cache", workers=1,
                     progress=False)  # fmt: skip
    assert not (tmp_path / "empty-cache").exists()  # refused before any extraction
    # balanced class weights would divide by that fold's zero count: the CLI refuses the same
    # way, in one line, before any work (a class absent from the whole corpus gets weight 1:
    # test_training_options.py::test_class_weights)
    from reslstm_jax.train.__main__ import main as train_main

    done = run_main(train_main, ["--corpus", "manifest", "--data-dir", manifest,
                                 "--class-weights", "balanced", "--cache-dir",
                                 tmp_path / "empty-cache", "--out", tmp_path / "run"])  # fmt: skip
    assert done.returncode == 2 and "no training utterance of class rare" in done.stderr
    assert not (tmp_path / "empty-cache").exists() and not (tmp_path / "run").exists()


def test_a_manifests_name_and_class_order_can_be_given(tone_corpus, tmp_path, run_main):
    manifest = write(tmp_path / "lab.csv", tone_rows(tone_corpus, tmp_path),
                     ["file", "emotion", "speaker"])  # fmt: skip
    m = corpora.load("manifest", manifest, name="lab_2026", classes=("neutral", "angry"))
    assert (m.corpus, m.classes) == ("lab_2026", ("neutral", "angry"))
    assert all(m.classes[u.label] == u.emotion for u in m.utterances)
    only = corpora.load("manifest", manifest, classes=("angry",))  # the others left out
    assert len(only) == 24 and {s.reason for s in only.skipped} == {"not one of --classes"}
    with pytest.raises(
        CorpusError, match="--classes and --corpus-name apply to manifest, not ravdess"
    ):
        corpora.load("ravdess", tone_corpus, name="x", classes=("a",))
    from reslstm_jax.train.__main__ import main as train_main

    done = run_main(train_main, ["--corpus", "manifest", "--data-dir", manifest,
                                 "--corpus-name", "lab_2026", "--classes", "neutral", "angry",
                                 "--out", tmp_path / "o", "--print-config"])  # fmt: skip
    assert "corpus_name: lab_2026" in done.stdout and "- neutral\n- angry" in done.stdout
