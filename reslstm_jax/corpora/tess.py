"""TESS (Toronto Emotional Speech Set): 2 female speakers, 7 emotions, 2800 files.

Source: University of Toronto TSpace, or the Kaggle copy (which nests the folders twice; the
identical copies are dropped by `finish`).

Layout: `<SPEAKER>_<emotion>/<SPEAKER>_<word>_<emotion>.wav`, e.g. `OAF_angry/OAF_back_angry.wav`.
The case of the names varies between copies, so names are lower-cased before matching and the
utterance id is the lower-cased stem. `ps` = pleasant surprise.

Speakers: OAF (aged 64) and YAF (aged 26), both female.

Published counts (docs/data.md): 200 words x 7 emotions x 2 speakers = 2800; 400 per class,
1400 per speaker. Sample rate 24414 Hz (one file at 96 kHz), so features must resample.
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

NAME = "tess"

# The order of the emotion codes in the file names (angry disgust fear happy neutral ps sad).
CLASSES: tuple[str, ...] = (
    "angry",
    "disgust",
    "fear",
    "happy",
    "neutral",
    "pleasant_surprise",
    "sad",
)

EMOTION_CODES = {
    "angry": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happy",
    "neutral": "neutral",
    "ps": "pleasant_surprise",
    "sad": "sad",
}

# Speaker -> age; both speakers are female.
SPEAKERS = {"OAF": 64, "YAF": 26}

# The protocol a run on this corpus uses unless told (by name: corpora never import protocols).
DEFAULT_PROTOCOL = "tess_cross_speaker"
# Its classes in the four-emotion set every corpus shares (`labelsets`, "shared4"); the others
# are left out: pleasant surprise is left out, not merged into happy.
SHARED4 = {"neutral": "neutral", "happy": "happy", "angry": "angry", "sad": "sad"}

EXPECTED = ExpectedCounts(
    total=2800,
    per_class=dict.fromkeys(CLASSES, 400),
    per_speaker=dict.fromkeys(SPEAKERS, 1400),
)

# The spec's regex, applied to the lower-cased name (hence the lower-case speaker codes).
PATTERN = re.compile(r"^(oaf|yaf)_([a-z]+)_(angry|disgust|fear|happy|neutral|ps|sad)\.wav$")
# A looser shape first, so that a near miss gets a specific reason.
_SHAPE = re.compile(r"^([a-z]+)_([a-z]+)_([a-z]+)\.wav$")


def parse(path: str | os.PathLike) -> Utterance | str:
    """One file: its `Utterance`, or the reason it is not used.

    Args:
      path: a file under the corpus root.

    Returns:
      The utterance, or a short reason phrase (`collect` then checks the audio header).
    """
    path = pathlib.Path(path)
    name = path.name.lower()
    if not name.endswith(".wav"):
        return "not a wav file"
    shape = _SHAPE.match(name)
    if shape is None:
        return "name does not match the TESS pattern"
    speaker, word, code = shape.groups()
    if speaker.upper() not in SPEAKERS:
        return f"unknown speaker {speaker.upper()}"
    if code not in EMOTION_CODES:
        return f"unknown emotion code {code}"
    if PATTERN.match(name) is None:  # pragma: no cover - the checks above cover the regex
        return "name does not match the TESS pattern"
    emotion = EMOTION_CODES[code]
    return Utterance(
        id=name[: -len(".wav")],
        path=str(path),
        corpus=NAME,
        speaker=speaker.upper(),
        label=CLASSES.index(emotion),
        emotion=emotion,
        gender="f",
        extra={"word": word, "age": str(SPEAKERS[speaker.upper()])},
    )


def load(root: str | os.PathLike) -> Manifest:
    """Scan a TESS directory (TSpace or Kaggle nesting).

    Args:
      root: the directory holding the `<SPEAKER>_<emotion>` folders, at any depth.

    Returns:
      The manifest; a `CorpusCountWarning` is emitted if it differs from the 2800 files.

    Raises:
      CorpusError: the root is missing, holds no usable file, or holds two different files
        with the same (lower-cased) name.
    """
    return collect(NAME, require_root(NAME, root), CLASSES, EXPECTED, parse)
