"""EMO-DB (Berlin Database of Emotional Speech): 10 speakers, 7 emotions, 535 files.

Source: http://emodb.bilderbar.info/docu/ (the download's `wav/` folder), or the audformat
copy on Zenodo. Only the wav files are read; the label folders of the download (`lablaut/`,
`labsilb/`, `silb/`) are skipped as "not a wav file".

File name: `SS TTT E V .wav`, e.g. `03a01Fa.wav`: speaker, text code, emotion letter (the
German initial: W Ärger, L Langeweile, E Ekel, A Angst, F Freude, T Trauer, N neutral) and
version letter.

Published counts (docs/data.md): 535 = anger 127, boredom 81, disgust 46, fear 69,
happiness 71, sadness 62, neutral 79. Per speaker: 03 49, 08 58, 09 43, 10 38, 11 55, 12 35,
13 61, 14 69, 15 56, 16 71. Five male speakers (03 10 11 12 15), five female.
"""

from __future__ import annotations

import os
import pathlib
import re

from reslstm_jax.corpora.base import (
    ExpectedCounts,
    Manifest,
    Utterance,
    collect,
    require_root,
)

NAME = "emodb"

# The order of the spec's table (W L E A F T N); fixed, never derived from the files.
CLASSES: tuple[str, ...] = (
    "anger",
    "boredom",
    "disgust",
    "fear",
    "happiness",
    "sadness",
    "neutral",
)

EMOTION_LETTERS = {
    "W": "anger",
    "L": "boredom",
    "E": "disgust",
    "A": "fear",
    "F": "happiness",
    "T": "sadness",
    "N": "neutral",
}

# Speaker code -> (gender, age), from the EMO-DB documentation.
SPEAKERS: dict[str, tuple[str, int]] = {
    "03": ("m", 31),
    "08": ("f", 34),
    "09": ("f", 21),
    "10": ("m", 32),
    "11": ("m", 26),
    "12": ("m", 30),
    "13": ("f", 32),
    "14": ("f", 35),
    "15": ("m", 25),
    "16": ("f", 31),
}

TEXTS = ("a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10")

# The protocol a run on this corpus uses unless told (by name: corpora never import protocols).
DEFAULT_PROTOCOL = "emodb_loso"
# Its classes in the four-emotion set every corpus shares (`labelsets`, "shared4"); the others
# are left out.
SHARED4 = {"neutral": "neutral", "happiness": "happy", "anger": "angry", "sadness": "sad"}

EXPECTED = ExpectedCounts(
    total=535,
    per_class={
        "anger": 127,
        "boredom": 81,
        "disgust": 46,
        "fear": 69,
        "happiness": 71,
        "sadness": 62,
        "neutral": 79,
    },
    per_speaker={
        "03": 49,
        "08": 58,
        "09": 43,
        "10": 38,
        "11": 55,
        "12": 35,
        "13": 61,
        "14": 69,
        "15": 56,
        "16": 71,
    },
)

PATTERN = re.compile(r"^(03|08|09|10|11|12|13|14|15|16)([ab]\d{2})([WLEAFTN])([a-f])\.wav$")
# A looser shape first, so that a near miss gets a specific reason.
_SHAPE = re.compile(r"^(\d\d)([a-z]\d\d)([A-Z])([a-z])\.wav$")


def parse(path: str | os.PathLike) -> Utterance | str:
    """One file: its `Utterance`, or the reason it is not used.

    Args:
      path: a file under the corpus root.

    Returns:
      The utterance, or a short reason phrase (`collect` then checks the audio header).
    """
    path = pathlib.Path(path)
    if path.suffix.lower() != ".wav":
        return "not a wav file"
    shape = _SHAPE.match(path.name)
    if shape is None:
        return "name does not match the EMO-DB pattern"
    speaker, text, letter, version = shape.groups()
    if speaker not in SPEAKERS:
        return f"unknown speaker code {speaker}"
    if text not in TEXTS:
        return f"unknown text code {text}"
    if letter not in EMOTION_LETTERS:
        return f"unknown emotion letter {letter}"
    if version not in "abcdef":
        return f"unknown version letter {version}"
    if PATTERN.match(path.name) is None:
        return "name does not match the EMO-DB pattern"
    emotion = EMOTION_LETTERS[letter]
    gender, age = SPEAKERS[speaker]
    return Utterance(
        id=path.stem,
        path=str(path),
        corpus=NAME,
        speaker=speaker,
        label=CLASSES.index(emotion),
        emotion=emotion,
        gender=gender,
        extra={"text": text, "version": version, "age": str(age)},
    )


def load(root: str | os.PathLike) -> Manifest:
    """Scan an EMO-DB directory.

    Args:
      root: the directory holding the wav files, at any depth.

    Returns:
      The manifest; a `CorpusCountWarning` is emitted if it differs from the 535 files.

    Raises:
      CorpusError: the root is missing, holds no usable file, or holds two different files
        with the same name.
    """
    return collect(NAME, require_root(NAME, root), CLASSES, EXPECTED, parse)
