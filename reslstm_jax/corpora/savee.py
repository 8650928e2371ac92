"""SAVEE (Surrey Audio-Visual Expressed Emotion): 4 male speakers, 7 emotions, 480 files.

Source: the University of Surrey release (registration), or the Kaggle copy.

Layouts (both accepted, at any depth):
  * original: `AudioData/{DC,JE,JK,KL}/{a,d,f,h,n,sa,su}NN.wav`, the speaker from the folder;
  * Kaggle: flat `DC_a01.wav`, the speaker from the prefix.
The emotion code is a (anger), d (disgust), f (fear), h (happiness), n (neutral), sa (sadness)
or su (surprise); `sa`/`su` are matched before `a`. The utterance id is always `DC_a01`, so
the two layouts give the same ids (and identical copies are dropped by `finish`).

Published counts (docs/data.md): per speaker 15 per emotion except neutral 30, so 120 per
speaker and 480 in total (neutral 120, every other class 60).
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

NAME = "savee"

# The order of the emotion codes (a d f h n sa su).
CLASSES: tuple[str, ...] = (
    "anger",
    "disgust",
    "fear",
    "happiness",
    "neutral",
    "sadness",
    "surprise",
)

EMOTION_CODES = {
    "a": "anger",
    "d": "disgust",
    "f": "fear",
    "h": "happiness",
    "n": "neutral",
    "sa": "sadness",
    "su": "surprise",
}

SPEAKERS = ("DC", "JE", "JK", "KL")

# The protocol a run on this corpus uses unless told (by name: corpora never import protocols).
DEFAULT_PROTOCOL = "savee_loso"
# Its classes in the four-emotion set every corpus shares (`labelsets`, "shared4"); the others
# are left out.
SHARED4 = {"neutral": "neutral", "happiness": "happy", "anger": "angry", "sadness": "sad"}

EXPECTED = ExpectedCounts(
    total=480,
    per_class={name: 120 if name == "neutral" else 60 for name in CLASSES},
    per_speaker=dict.fromkeys(SPEAKERS, 120),
)

# `sa`/`su` come before `a` (the spec's rule), so that even an unanchored search never reads
# `sa01` as `a01`.
PATTERN = re.compile(r"^(?:(DC|JE|JK|KL)_)?(sa|su|a|d|f|h|n)(\d{2})\.wav$")
# A looser shape first, so that a near miss gets a specific reason.
_SHAPE = re.compile(r"^(?:([A-Za-z]+)_)?([a-z]+)(\d{2})\.wav$")


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
        return "name does not match the SAVEE pattern"
    prefix, code, number = shape.groups()
    folder = path.parent.name
    if prefix is not None and prefix not in SPEAKERS:
        return f"unknown speaker {prefix}"
    if prefix is None and folder not in SPEAKERS:
        return "no speaker (no DC_/JE_/JK_/KL_ prefix and not in a speaker folder)"
    if prefix is not None and folder in SPEAKERS and folder != prefix:
        return "speaker prefix differs from the speaker folder"
    if code not in EMOTION_CODES:
        return f"unknown emotion code {code}"
    # Sentences are numbered 01-15 per emotion, 01-30 for neutral.
    if not 1 <= int(number) <= (30 if code == "n" else 15):
        return f"sentence number {number} out of range for {code}"
    if PATTERN.match(path.name) is None:  # pragma: no cover - the checks above cover the regex
        return "name does not match the SAVEE pattern"
    speaker = prefix or folder
    emotion = EMOTION_CODES[code]
    return Utterance(
        id=f"{speaker}_{code}{number}",
        path=str(path),
        corpus=NAME,
        speaker=speaker,
        label=CLASSES.index(emotion),
        emotion=emotion,
        gender="m",
        extra={"sentence": number},
    )


def load(root: str | os.PathLike) -> Manifest:
    """Scan a SAVEE directory (original `AudioData/<speaker>/` or Kaggle flat layout).

    Args:
      root: the directory holding the audio, at any depth.

    Returns:
      The manifest; a `CorpusCountWarning` is emitted if it differs from the 480 files.

    Raises:
      CorpusError: the root is missing, holds no usable file, or holds two different files
        for the same utterance.
    """
    return collect(NAME, require_root(NAME, root), CLASSES, EXPECTED, parse)
