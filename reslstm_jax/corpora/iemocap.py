"""IEMOCAP (USC SAIL, licence-gated), 4-class protocol: 10 speakers, 5531 utterances.

Source: the `IEMOCAP_full_release` download from USC SAIL.

Layout (under any prefix, so `IEMOCAP_full_release/Session1/...` works too):
  * audio: `SessionN/sentences/wav/<dialog>/<utt>.wav`;
  * labels: `SessionN/dialog/EmoEvaluation/<dialog>.txt`, on the lines that start with `[`:
    `[start - end]<TAB><utt><TAB><lab><TAB>[V, A, D]`.

Classes: neu, hap + exc (merged into happy), ang, sad. The other labels (fru, sur, fea, dis,
oth, xxx) are skipped with their label in the reason. `load(root, raw=True)` (`--raw-labels`)
keeps all ten categories the annotators agreed on instead (`RAW_CLASSES`: excited apart from
happy, frustrated, surprised, fearful, disgusted, other; xxx, no agreement, is still
skipped), for a label map to build another class set from (docs/data.md, "Label maps").

Speaker: `Ses0N` + the gender letter of the *last* token of the utterance id, so
`Ses01F_impro01_M000` is spoken by Ses01M. The letter after `Ses0N` names the actor wearing
the mocap markers (release README), not the speaker.

Published counts (docs/data.md): 5531 = neutral 1708, happy 1636 (hap 595 + exc 1041),
angry 1103, sad 1084. Per speaker (F / M): session 1 528 / 557, 2 481 / 542, 3 522 / 629,
4 528 / 503, 5 590 / 651. Improvised 2943, scripted 2588.
"""

from __future__ import annotations

import os
import pathlib
import re

from reslstm_jax.corpora.base import (
    ExpectedCounts,
    Manifest,
    Skipped,
    Utterance,
    check_wav,
    finish,
    is_hidden,
    require_root,
    walk_files,
)

NAME = "iemocap"

CLASSES: tuple[str, ...] = ("neutral", "happy", "angry", "sad")

# Original label -> class; exc is merged into happy (the 4-class protocol).
LABELS = {"neu": "neutral", "hap": "happy", "exc": "happy", "ang": "angry", "sad": "sad"}

# Every category of the release (`load(root, raw=True)`), in the order of its README.
RAW_LABELS = {"neu": "neutral", "hap": "happy", "exc": "excited", "ang": "angry", "sad": "sad",
              "fru": "frustrated", "sur": "surprised", "fea": "fearful", "dis": "disgusted",
              "oth": "other"}  # fmt: skip
RAW_CLASSES: tuple[str, ...] = tuple(RAW_LABELS.values())

# The protocol a run on this corpus uses unless told (by name: corpora never import protocols).
DEFAULT_PROTOCOL = "iemocap_session"
# Its classes in the four-emotion set every corpus shares (`labelsets`, "shared4"); the others
# are left out: excited is already merged into happy by `load`.
SHARED4 = {c: c for c in CLASSES}

EXPECTED = ExpectedCounts(
    total=5531,
    per_class={"neutral": 1708, "happy": 1636, "angry": 1103, "sad": 1084},
    per_speaker={
        "Ses01F": 528,
        "Ses01M": 557,
        "Ses02F": 481,
        "Ses02M": 542,
        "Ses03F": 522,
        "Ses03M": 629,
        "Ses04F": 528,
        "Ses04M": 503,
        "Ses05F": 590,
        "Ses05M": 651,
    },
)

_SESSION_DIR = re.compile(r"^Session([1-5])$")
# `[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]`; any
# whitespace is accepted between the fields, since hand-edited copies differ.
_LABEL_LINE = re.compile(r"^\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\s+(\S+)\s+(\S+)")
# Ses0N + mocap wearer, then the dialog tail, then the speaker's gender letter and turn number.
_UTTERANCE = re.compile(r"^Ses0([1-5])[FM]_(.+)_([FM])(\d{3})$")


def _session_of_label_file(path: pathlib.Path) -> pathlib.Path | None:
    """The `SessionN` directory when `path` is `SessionN/dialog/EmoEvaluation/<dialog>.txt`."""
    parts = path.parts
    if (
        len(parts) >= 4
        and path.suffix == ".txt"
        and parts[-2] == "EmoEvaluation"
        and parts[-3] == "dialog"
        and _SESSION_DIR.match(parts[-4])
    ):
        return path.parents[2]
    return None


def _session_of_wav(path: pathlib.Path) -> pathlib.Path | None:
    """The `SessionN` directory when `path` is `SessionN/sentences/wav/<dialog>/<utt>.wav`."""
    parts = path.parts
    if (
        len(parts) >= 5
        and path.suffix == ".wav"
        and parts[-3] == "wav"
        and parts[-4] == "sentences"
        and _SESSION_DIR.match(parts[-5])
    ):
        return path.parents[3]
    return None


def read_labels(path: str | os.PathLike) -> dict[str, tuple[str, str, str]]:
    """The labelled turns of one EmoEvaluation file.

    Args:
      path: `SessionN/dialog/EmoEvaluation/<dialog>.txt`.

    Returns:
      utterance id -> (label, start, end), from the lines that start with `[`; the first line
      of an utterance wins.
    """
    labels: dict[str, tuple[str, str, str]] = {}
    # The release is ASCII; `replace` keeps a stray byte from hiding the whole file.
    text = pathlib.Path(path).read_text(encoding="utf-8", errors="replace")
    for line in text.splitlines():
        match = _LABEL_LINE.match(line.strip())
        if match is not None:
            start, end, utt, lab = match.groups()
            labels.setdefault(utt, (lab, start, end))
    return labels


def load(root: str | os.PathLike, *, raw: bool = False) -> Manifest:
    """Scan an IEMOCAP release directory (4-class protocol).

    Args:
      root: the directory holding the `SessionN` folders, at any depth.
      raw: every agreed category (`RAW_CLASSES`) instead of the four classes; the published
        counts are those of the four, so no count is compared.

    Returns:
      The manifest; a `CorpusCountWarning` is emitted if it differs from the 5531 utterances.
      Labelled utterances without a wav file are listed in `skipped` under their expected
      path, with the reason "labelled but no wav file".

    Raises:
      CorpusError: the root is missing, holds no usable file, or holds two different files
        for the same utterance.
    """
    base = require_root(NAME, root)
    names, classes = (RAW_LABELS, RAW_CLASSES) if raw else (LABELS, CLASSES)
    label_files: list[pathlib.Path] = []
    wavs: list[tuple[pathlib.Path, pathlib.Path]] = []
    skipped: list[Skipped] = []
    for path in walk_files(base):
        if is_hidden(path):
            skipped.append(Skipped(str(path), "hidden file"))
        elif _session_of_label_file(path) is not None:
            label_files.append(path)
        elif (session_dir := _session_of_wav(path)) is not None:
            wavs.append((session_dir, path))
        elif path.suffix.lower() == ".wav":
            # Dialog-level recordings (`dialog/wav/`) and stray audio.
            skipped.append(Skipped(str(path), "not a sentence wav (SessionN/sentences/wav)"))
        else:
            skipped.append(Skipped(str(path), "not a wav file"))

    # Labels are looked up within the same SessionN directory, so two nested copies of the
    # release never lend each other labels.
    labels: dict[tuple[pathlib.Path, str], tuple[str, str, str, str]] = {}
    for path in label_files:
        session_dir = path.parents[2]
        for utt, (lab, start, end) in read_labels(path).items():
            labels.setdefault((session_dir, utt), (lab, start, end, path.stem))

    utterances: list[Utterance] = []
    seen: set[tuple[pathlib.Path, str]] = set()
    for session_dir, path in wavs:
        utt = path.stem
        seen.add((session_dir, utt))
        result = _utterance(session_dir, path, labels.get((session_dir, utt)), names, classes)
        if isinstance(result, Utterance):
            utterances.append(result)
        else:
            skipped.append(Skipped(str(path), result))

    for (session_dir, utt), (lab, _, _, dialog) in sorted(labels.items()):
        if lab in names and (session_dir, utt) not in seen:
            expected_wav = session_dir / "sentences" / "wav" / dialog / f"{utt}.wav"
            skipped.append(Skipped(str(expected_wav), "labelled but no wav file"))
    return finish(NAME, base, classes, utterances, skipped, None if raw else EXPECTED)


def _utterance(
    session_dir: pathlib.Path,
    path: pathlib.Path,
    label: tuple[str, str, str, str] | None,
    names: dict[str, str],
    classes: tuple[str, ...],
) -> Utterance | str:
    """One sentence wav with its label line: its `Utterance`, or the reason it is not used."""
    utt = path.stem
    match = _UTTERANCE.match(utt)
    if match is None:
        return "name is not an IEMOCAP utterance id"
    session, tail, gender_letter, _ = match.groups()
    dir_session = _SESSION_DIR.match(session_dir.name).group(1)
    if session != dir_session:
        return f"utterance of session {session} under Session{dir_session}"
    dialog = utt.rsplit("_", 1)[0]
    if tail.startswith("impro"):
        kind = "improvised"
    elif tail.startswith("script"):
        kind = "scripted"
    else:
        return "dialog is neither impro nor script"
    if label is None:
        return "no label in EmoEvaluation"
    lab, start, end, _ = label
    if lab not in names:
        return (f"label {lab} outside the 4 classes" if names is LABELS
                else f"label {lab}: the annotators did not agree")  # fmt: skip
    problem = check_wav(path)
    if problem is not None:
        return problem
    emotion = names[lab]
    # The speaker is the gender letter of the last token (`utt.rsplit("_", 1)[1][0]`), not the
    # letter after Ses0N (the mocap wearer); see the module docstring.
    speaker_letter = gender_letter
    return Utterance(
        id=utt,
        path=str(path),
        corpus=NAME,
        speaker=f"Ses0{session}{speaker_letter}",
        label=classes.index(emotion),
        emotion=emotion,
        gender=speaker_letter.lower(),
        extra={
            "session": session,
            "dialog": dialog,
            "type": kind,
            "original_label": lab,
            "start": start,
            "end": end,
        },
    )
