"""EmoBox's folds: exactly its test utterances per fold, speakers by the corpus's rule, LEAKY
where its split shares speakers or names none."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from reslstm_jax import corpora, protocols
from reslstm_jax.corpora import emobox
from reslstm_jax.corpora.base import CorpusError


def emobox_tree(root: pathlib.Path, tone_corpus: pathlib.Path, dataset: str, fold_of,
                spelling: str = "_fold_") -> pathlib.Path:  # fmt: skip
    """EMOBOX/data/<dataset>/fold_<k>/<dataset>_{train,test}<spelling><k>.jsonl over the tone
    files (linked under EMOBOX/downloads), each file tested in fold `fold_of(index, path)`."""
    files = sorted(tone_corpus.rglob("*.wav"))
    for path in files:
        link = root / "downloads" / dataset / path.parent.name / path.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(path)
    folds = sorted({fold_of(i, p) for i, p in enumerate(files)})
    for k in folds:
        folder = root / "data" / dataset / f"fold_{k}"
        folder.mkdir(parents=True)
        for split in ("train", "test"):
            lines = [json.dumps({"key": p.stem, "dataset": dataset, "type": "raw",
                                 "wav": f"downloads/{dataset}/{p.parent.name}/{p.name}",
                                 "emo": {"01": "neu", "05": "ang"}[p.stem.split("-")[2]]})
                     for i, p in enumerate(files)
                     if (fold_of(i, p) == k) == (split == "test")]  # fmt: skip
            (folder / f"{dataset}_{split}{spelling}{k}.jsonl").write_text("\n".join(lines) + "\n")
    return root / "data" / dataset


def actor(path: pathlib.Path) -> int:
    return int(path.stem.split("-")[6])


def test_speaker_independent_folds_are_used_exactly_as_published(tone_corpus, tmp_path):
    root = emobox_tree(tmp_path / "EmoBox", tone_corpus, "ravdess",
                       lambda i, p: 1 + actor(p) % 4)  # fmt: skip
    m = corpora.load("emobox", root)
    assert (m.corpus, m.classes, len(m)) == ("ravdess", ("ang", "neu"), 48)
    assert m.utterances[0].speaker == "01"  # RAVDESS's rule: the actor of the file name
    assert corpora.default_protocol("emobox", m) == "given"
    folds = protocols.make_folds("given", m)  # audited: speaker-independent
    for fold in folds:
        test_file = root / f"fold_{fold.name[4:]}" / f"ravdess_test_fold_{fold.name[4:]}.jsonl"
        published = {json.loads(line)["key"] for line in test_file.read_text().splitlines()}
        assert {m.ids[i] for i in fold.test} == published  # EmoBox's test utterances, exactly
        assert fold.val_speakers and not set(fold.val_speakers) & set(fold.test_speakers)


@pytest.mark.parametrize(("dataset", "spelling"), [("ravdess", "_fold"), ("mycorpus", "_fold_")])
def test_folds_that_share_speakers_or_name_none_are_leaky(tone_corpus, tmp_path, dataset,
                                                          spelling):  # fmt: skip
    """EmoBox's EMO-DB style: every speaker in every test fold; and a dataset the project does
    not know (speaker unknown). Both train as published, marked LEAKY in the card."""
    root = emobox_tree(tmp_path / "EmoBox", tone_corpus, dataset, lambda i, p: 1 + i % 3,
                       spelling)  # fmt: skip
    m = corpora.load("emobox", root)
    assert corpora.default_protocol("emobox", m) == "given_leaky"
    if dataset == "mycorpus":
        assert {u.speaker for u in m.utterances} == {emobox.UNKNOWN}
    with pytest.raises(protocols.LeakageError):
        protocols.make_folds("given", m)
    folds = protocols.make_folds("given_leaky", m)
    card = protocols.card("given_leaky", m, folds)
    assert card["leaky"] and "speaker-dependent" in card["leaky"]
    tested = np.sort(np.concatenate([f.test for f in folds]))
    assert tested.tolist() == list(range(len(m)))
    for fold in folds:
        assert len(fold.val) and not set(fold.val) & set(fold.test)


def test_missing_audio_is_named_and_a_folder_without_folds_refused(tone_corpus, tmp_path):
    root = emobox_tree(tmp_path / "EmoBox", tone_corpus, "ravdess", lambda i, p: 1 + i % 2)
    next((tmp_path / "EmoBox" / "downloads").rglob("*.wav")).unlink()
    m = corpora.load("emobox", root)
    assert len(m) == 47 and [s.reason for s in m.skipped] == ["no such file"]
    with pytest.raises(CorpusError, match="no fold_<k>/<dataset>_test_fold_<k>.jsonl"):
        corpora.load("emobox", tmp_path)


def test_label_map_json_audio_root_and_segments_are_emoboxs(tone_corpus, tmp_path):
    """The dataset's label_map.json names the classes (a code it lacks is a named row), the
    audio may lie under --audio-root, and start_time/end_time read a segment of the file."""
    import soundfile

    root = emobox_tree(tmp_path / "EmoBox", tone_corpus, "cafe", lambda i, p: 1 + actor(p) % 2)
    (root / "label_map.json").write_text(json.dumps({"neu": "Neutral", "ang": "Angry"}))
    test_file = root / "fold_1" / "cafe_test_fold_1.jsonl"
    lines = [json.loads(line) for line in test_file.read_text().splitlines()]
    duration = soundfile.info(tone_corpus.rglob(lines[0]["key"] + ".wav").__next__()).duration
    lines[0].update(start_time=0.0, end_time=duration / 2)
    lines[1]["emo"] = "sur"  # not in label_map.json
    lines[2].update(start_time=1.0, end_time=0.5)
    test_file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    m = corpora.load("emobox", root)
    assert m.classes == ("Angry", "Neutral") and len(m) == 46
    assert {s.reason for s in m.skipped} == {"emo sur is not in label_map.json",
                                             "segment is not 0 <= start < end"}  # fmt: skip
    first = next(u for u in m.utterances if u.id == lines[0]["key"])
    assert first.segment == (0.0, duration / 2)
    # the audio moved elsewhere: found under --audio-root, not under the EmoBox root
    (tmp_path / "EmoBox" / "downloads").rename(tmp_path / "downloads")
    assert len(corpora.load("emobox", root, audio_root=tmp_path)) == 46
    with pytest.raises(CorpusError, match="--audio-root .*: no such folder"):
        corpora.load("emobox", root, audio_root=tmp_path / "nowhere")
    with pytest.raises(CorpusError, match="--audio-root applies to emobox, not ravdess"):
        corpora.load("ravdess", tone_corpus, audio_root=tmp_path)
