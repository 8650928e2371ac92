"""EmoBox's folds of a dataset: `--corpus emobox --data-dir EMOBOX/data/<dataset>`.

EmoBox (Ma et al., Interspeech 2024) ships fixed folds for 32 corpora as JSON Lines:
`fold_<k>/<dataset>_{train,test}_fold_<k>.jsonl` (some datasets spell it `..._fold<k>.jsonl`),
one utterance a line (`{"key", "wav", "emo", ...}`, and `start_time`/`end_time` in seconds
where an utterance is a segment of a longer recording), `wav` relative to the EmoBox root (the
folder that holds `data/`) or to `--audio-root` where the audio lies elsewhere. The dataset's
`label_map.json`, where present, names the `emo` codes (CaFE's `"p": "Fear"`): the classes are
the names it gives, as in EmoBox's own data loader. The test utterances of each fold are
exactly EmoBox's, so a row of ours stands beside EmoBox's published ones; the run uses
protocol `given` on them (each fold tests its test file's rows and trains on the rest,
validation drawn from the training part by speaker where speakers are known, never from test;
EmoBox's own recipe draws validation at random from the training file).

EmoBox's lines carry no speaker. For a dataset the project knows (EMO-DB, RAVDESS, SAVEE,
TESS, CREMA-D, IEMOCAP) each speaker is taken from the file name by that corpus's rule, so the
leakage audit runs and a split that puts a speaker in training and test is marked LEAKY
(`given_leaky`: EmoBox's EMO-DB folds test all ten speakers in every fold). For other datasets
the speaker is "unknown", the folds are used as published and marked LEAKY for that reason.
Rows whose audio is missing are named in skipped.csv and left out.
"""

from __future__ import annotations

import json
import os
import pathlib
import re

from reslstm_jax.corpora.base import (
    CorpusError,
    Manifest,
    Skipped,
    Utterance,
    labelled,
    parse_segment,
)

NAME = "emobox"
CLASSES: tuple[str, ...] = ()  # each dataset's own: the sorted set of its `emo` labels
EXPECTED = None
OPTIONS = ("audio_root",)  # `corpora.load`'s options this loader takes
DEFAULT_PROTOCOL = "given"  # `given_leaky` where EmoBox's folds share speakers (`default_for`)
SHARED4 = None
UNKNOWN = "unknown"  # the speaker of a dataset the project does not know
FOLD_FILE = re.compile(r"^(?P<dataset>.+)_(?P<split>train|test)_fold_?(?P<fold>\d+)\.jsonl$")


def default_for(manifest: Manifest) -> str:
    """`given` when EmoBox's folds are speaker-independent, else `given_leaky`."""
    test_of = {}
    for u in manifest.utterances:
        test_of.setdefault(u.speaker, set()).add(u.extra["fold"])
    shared = UNKNOWN in test_of or any(len(folds) > 1 for folds in test_of.values())
    return "given_leaky" if shared else "given"


def load(root: str | os.PathLike, *, audio_root: str | os.PathLike | None = None) -> Manifest:
    """The utterances of EmoBox's folds under `root` (`data/<dataset>`), each with the fold in
    whose test file it stands (`extra["fold"]`); `wav` paths relative to `audio_root` (default:
    the EmoBox root, `root/../..`). CorpusError (one line) for a folder without EmoBox's fold
    files or with an unreadable label_map.json."""
    root = pathlib.Path(root).expanduser().resolve()
    if not root.is_dir():
        raise CorpusError(f"emobox: {root} is not a folder (give EMOBOX/data/<dataset>)")
    tests = sorted((int(m["fold"]), p) for p in root.glob("fold*/*.jsonl")
                   if (m := FOLD_FILE.match(p.name)) and m["split"] == "test")  # fmt: skip
    if not tests:
        raise CorpusError(f"emobox: no fold_<k>/<dataset>_test_fold_<k>.jsonl under {root}")
    dataset = FOLD_FILE.match(tests[0][1].name)["dataset"]
    if audio_root is None:
        audio_root = root.parent.parent  # the EmoBox root: the folder that holds data/
    else:
        audio_root = pathlib.Path(audio_root).expanduser().resolve()
        if not audio_root.is_dir():
            raise CorpusError(f"--audio-root {audio_root}: no such folder")
    names = _label_names(root / "label_map.json")
    speaker_of = _speaker_rule(dataset)
    utterances, skipped, seen = [], [], set()
    for fold, path in tests:
        for number, row in enumerate(_lines(path), start=1):
            wav = pathlib.Path(row.get("wav", ""))
            audio = wav if wav.is_absolute() else audio_root / wav
            segment = parse_segment(
                row.get("start_time"), row.get("end_time"), "start_time and end_time"
            )
            where = f"{path.name} line {number}: {audio}"
            if not row.get("key") or not row.get("emo"):
                skipped.append(Skipped(where, "no key or emo"))
            elif row["key"] in seen:
                skipped.append(Skipped(where, "tested in an earlier fold too"))
            elif names is not None and str(row["emo"]) not in names:
                skipped.append(Skipped(where, f"emo {row['emo']} is not in label_map.json"))
            elif not audio.is_file():
                skipped.append(Skipped(where, "no such file"))
            elif isinstance(segment, str):
                skipped.append(Skipped(where, segment))
            else:
                seen.add(row["key"])
                emotion = str(row["emo"]) if names is None else names[str(row["emo"])]
                utterances.append(Utterance(
                    id=str(row["key"]), path=str(audio), corpus=dataset,
                    speaker=speaker_of(str(row["key"]), audio), label=-1,
                    emotion=emotion, extra={"fold": str(fold)}, segment=segment,
                ))  # fmt: skip
    if not utterances:
        raise CorpusError(f"emobox {root}: no usable utterance ({len(skipped)} rows skipped)")
    classes = tuple(sorted({u.emotion for u in utterances}))
    kept = sorted((labelled(u, classes) for u in utterances), key=lambda u: u.id)
    return Manifest(corpus=dataset, root=str(root), classes=classes, utterances=kept,
                    skipped=sorted(skipped, key=lambda s: s.path))  # fmt: skip


def _label_names(path: pathlib.Path) -> dict[str, str] | None:
    """{emo code: class name} of a dataset's label_map.json, or None where it has none."""
    if not path.is_file():
        return None
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise CorpusError(f"emobox {path}: not a JSON file") from None
    if not isinstance(names, dict) or not all(isinstance(v, str) and v for v in names.values()):
        raise CorpusError(f"emobox {path}: not a mapping of emo codes to class names")
    return {str(k): v for k, v in names.items()}


def _lines(path: pathlib.Path) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise CorpusError(f"emobox {path}: line {number} is not JSON") from None
    return rows


def _speaker_rule(dataset: str):
    """speaker(key, audio path) by the rule of the corpus `dataset` is, or "unknown"."""
    from reslstm_jax import corpora

    name = {"crema-d": "cremad", "crema_d": "cremad"}.get(dataset.lower(), dataset.lower())
    if name == "iemocap":  # Ses01F_impro01_M000: session 1, the male speaker
        return lambda key, audio: (
            key[:5] + key.rsplit("_", 1)[-1][0] if key.startswith("Ses") else UNKNOWN
        )
    if name not in corpora.KNOWN or not hasattr(corpora.module(name), "parse"):
        return lambda key, audio: UNKNOWN
    parse = corpora.module(name).parse

    def speaker(key: str, audio: pathlib.Path) -> str:
        parsed = parse(audio)
        return parsed.speaker if isinstance(parsed, Utterance) else UNKNOWN

    return speaker
