"""RAVDESS, speech, audio-only: 24 actors, 8 emotions, 1440 files.

Source: Zenodo 1188976 (`Audio_Speech_Actors_01-24.zip`), or the Kaggle mirror
`uwrfkaggler/ravdess-emotional-speech-audio`.

Layout: `Actor_XX/MM-VV-EE-II-SS-RR-AA.wav` (Zenodo). The Kaggle zip holds every actor twice,
as `Actor_XX/...` and `audio_speech_actors_01-24/Actor_XX/...`; the tree is walked recursively
and identical copies are dropped by `finish`. The fields are modality (03 = audio-only),
vocal channel (01 = speech), emotion, intensity, statement, repetition and actor.

Only audio-only speech is kept: song files (channel 02), video-modality files (01, 02) and
`.mp4` takes are skipped, since mixing in audio from the video takes inflates results (the
same takes appear twice).

Published counts (docs/data.md): 1440 files; neutral 96, every other class 192; 60 per
actor (neutral has no strong intensity, so 4 neutral and 8 of every other class per actor).
Actors 01-24: odd = male, even = female.
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

NAME = "ravdess"

# Label = emotion code - 1, as in the paper.
CLASSES: tuple[str, ...] = (
    "neutral",
    "calm",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgust",
    "surprised",
)

ACTORS = tuple(f"{a:02d}" for a in range(1, 25))

# The protocol a run on this corpus uses unless told (by name: corpora never import protocols).
DEFAULT_PROTOCOL = "ravdess_paper"
# Its classes in the four-emotion set every corpus shares (`labelsets`, "shared4"); the others
# are left out: calm is acted as its own emotion: left out, not merged into neutral.
SHARED4 = {"neutral": "neutral", "happy": "happy", "angry": "angry", "sad": "sad"}

EXPECTED = ExpectedCounts(
    total=1440,
    per_class={name: 96 if name == "neutral" else 192 for name in CLASSES},
    per_speaker=dict.fromkeys(ACTORS, 60),
)

# The spec's regex, checked last so that nothing it rejects is ever kept.
PATTERN = re.compile(
    r"^(0[1-3])-(0[12])-(0[1-8])-(0[12])-(0[12])-(0[12])-(0[1-9]|1\d|2[0-4])\.wav$"
)
# A looser shape first, so that a file that is nearly right gets a specific reason.
_SHAPE = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)\.wav$")

INTENSITIES = {"01": "normal", "02": "strong"}


def parse(path: str | os.PathLike) -> Utterance | str:
    """One file: its `Utterance`, or the reason it is not used.

    Args:
      path: a file under the corpus root.

    Returns:
      The utterance, or a short reason phrase (`collect` then checks the audio header).
    """
    path = pathlib.Path(path)
    name = path.name
    if path.suffix.lower() == ".mp4":
        return "video file (.mp4)"
    if path.suffix.lower() != ".wav":
        return "not a wav file"
    shape = _SHAPE.match(name)
    if shape is None:
        return "name does not match the RAVDESS pattern"
    modality, channel, emotion, intensity, statement, repetition, actor = shape.groups()
    # Field by field, most telling first: a song or video file is that, whatever else it has.
    if modality in ("01", "02"):
        return f"video (modality {modality})"
    if modality != "03":
        return f"unknown modality code {modality}"
    if channel == "02":
        return "song (vocal channel 02)"
    if channel != "01":
        return f"unknown vocal channel code {channel}"
    if not "01" <= emotion <= "08":
        return f"unknown emotion code {emotion}"
    if intensity not in INTENSITIES:
        return f"unknown intensity code {intensity}"
    if emotion == "01" and intensity == "02":
        return "strong neutral (RAVDESS neutral has normal intensity only)"
    if statement not in ("01", "02"):
        return f"unknown statement code {statement}"
    if repetition not in ("01", "02"):
        return f"unknown repetition code {repetition}"
    if actor not in ACTORS:
        return f"unknown actor {actor}"
    if PATTERN.match(name) is None:  # pragma: no cover - the checks above cover the regex
        return "name does not match the RAVDESS pattern"
    label = int(emotion) - 1
    return Utterance(
        id=path.stem,
        path=str(path),
        corpus=NAME,
        speaker=actor,
        label=label,
        emotion=CLASSES[label],
        gender="m" if int(actor) % 2 else "f",
        extra={
            "intensity": INTENSITIES[intensity],
            "statement": statement,
            "repetition": repetition,
            "modality": modality,
            "channel": channel,
        },
    )


def load(root: str | os.PathLike) -> Manifest:
    """Scan a RAVDESS speech directory (Zenodo or Kaggle nesting).

    Args:
      root: the directory holding the `Actor_XX` folders, at any depth.

    Returns:
      The manifest; a `CorpusCountWarning` is emitted if it differs from the 1440 files.

    Raises:
      CorpusError: the root is missing, holds no usable file, or holds two different files
        with the same name.
    """
    return collect(NAME, require_root(NAME, root), CLASSES, EXPECTED, parse)
