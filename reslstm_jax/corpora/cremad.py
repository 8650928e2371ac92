"""CREMA-D (Crowd-sourced Emotional Multimodal Actors Dataset): 91 actors, 6 emotions, 7442 clips.

Source: https://github.com/CheyneyComputerScience/CREMA-D (stored with git-lfs).

Layout: `AudioWAV/AAAA_SSS_EEE_LL.wav`: actor 1001-1091, sentence code (IEO, TIE, ...),
emotion code (ANG, DIS, FEA, HAP, NEU, SAD) and level (LO, MD, HI, or XX = unspecified).
Levels LO/MD/HI occur only with sentence IEO. Only the wav files are read: `AudioMP3/` (some of
its MP3s are blank) and `VideoFlash/` are skipped. A clone without `git lfs pull` (or a zip
download) holds LFS pointer text files instead of audio; `check_wav` reports them.

Gender (and age) come from `VideoDemographics.csv` (ActorID, Age, Sex, Race, Ethnicity) when
it is anywhere under the root; otherwise they are None.

Published counts (docs/data.md): 7442 = anger, disgust, fear, happy, sad 1271 each +
neutral 1087. 91 actors (48 male, 43 female); no per-actor counts are published.
"""

from __future__ import annotations

import csv
import os
import pathlib
import re
from collections.abc import Mapping

from reslstm_jax.corpora.base import (
    ExpectedCounts,
    Manifest,
    Skipped,
    Utterance,
    collect,
    require_root,
    walk_files,
)

NAME = "cremad"

# The order of the emotion codes (ANG DIS FEA HAP NEU SAD).
CLASSES: tuple[str, ...] = ("anger", "disgust", "fear", "happy", "neutral", "sad")

EMOTION_CODES = {
    "ANG": "anger",
    "DIS": "disgust",
    "FEA": "fear",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}

SENTENCES = (
    "IEO",
    "TIE",
    "IOM",
    "IWW",
    "TAI",
    "MTI",
    "IWL",
    "ITH",
    "DFA",
    "ITS",
    "TSI",
    "WSI",
)

LEVELS = ("LO", "MD", "HI", "XX")

DEMOGRAPHICS_FILE = "VideoDemographics.csv"

# The protocol a run on this corpus uses unless told (by name: corpora never import protocols).
DEFAULT_PROTOCOL = "cremad_actor5"
# Its classes in the four-emotion set every corpus shares (`labelsets`, "shared4"); the others
# are left out.
SHARED4 = {"neutral": "neutral", "happy": "happy", "anger": "angry", "sad": "sad"}

EXPECTED = ExpectedCounts(
    total=7442,
    per_class={name: 1087 if name == "neutral" else 1271 for name in CLASSES},
)

PATTERN = re.compile(
    r"^(10\d\d)_(IEO|TIE|IOM|IWW|TAI|MTI|IWL|ITH|DFA|ITS|TSI|WSI)_"
    r"(ANG|DIS|FEA|HAP|NEU|SAD)_(LO|MD|HI|XX)\.wav$"
)
# A looser shape first, so that a near miss gets a specific reason.
_SHAPE = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})\.wav$")

_SEXES = {"male": "m", "female": "f"}


def read_demographics(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """Actor id -> {"gender", "age"} from `VideoDemographics.csv`.

    Args:
      path: the CSV file (columns ActorID, Age, Sex, Race, Ethnicity).

    Returns:
      One entry per actor row; {} when the file is not such a table (e.g. an LFS pointer).
    """
    actors: dict[str, dict[str, str]] = {}
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        for row in csv.DictReader(f):
            actor = (row.get("ActorID") or "").strip()
            if not actor:
                continue
            sex = (row.get("Sex") or "").strip().lower()
            actors[actor] = {"gender": _SEXES.get(sex, ""), "age": (row.get("Age") or "").strip()}
    return actors


def parse(
    path: str | os.PathLike,
    demographics: Mapping[str, Mapping[str, str]] | None = None,
) -> Utterance | str:
    """One file: its `Utterance`, or the reason it is not used.

    Args:
      path: a file under the corpus root.
      demographics: actor id -> {"gender", "age"}; None or missing actors give gender None.

    Returns:
      The utterance, or a short reason phrase (`collect` then checks the audio header).
    """
    path = pathlib.Path(path)
    if path.suffix.lower() == ".mp3":
        return "mp3 (use AudioWAV)"
    if path.suffix.lower() != ".wav":
        return "not a wav file"
    shape = _SHAPE.match(path.name)
    if shape is None:
        return "name does not match the CREMA-D pattern"
    actor, sentence, emotion_code, level = shape.groups()
    if not 1001 <= int(actor) <= 1091:
        return f"unknown actor {actor}"
    if sentence not in SENTENCES:
        return f"unknown sentence code {sentence}"
    if emotion_code not in EMOTION_CODES:
        return f"unknown emotion code {emotion_code}"
    if level not in LEVELS:
        return f"unknown level code {level}"
    if level != "XX" and sentence != "IEO":
        return "level LO/MD/HI with a sentence other than IEO"
    if PATTERN.match(path.name) is None:  # pragma: no cover - the checks above cover the regex
        return "name does not match the CREMA-D pattern"
    emotion = EMOTION_CODES[emotion_code]
    person = (demographics or {}).get(actor, {})
    extra = {"sentence": sentence, "level": level}
    if person.get("age"):
        extra["age"] = person["age"]
    return Utterance(
        id=path.stem,
        path=str(path),
        corpus=NAME,
        speaker=actor,
        label=CLASSES.index(emotion),
        emotion=emotion,
        gender=person.get("gender") or None,
        extra=extra,
    )


def load(root: str | os.PathLike) -> Manifest:
    """Scan a CREMA-D directory.

    Args:
      root: the directory holding `AudioWAV` (and optionally `VideoDemographics.csv`), at any
        depth.

    Returns:
      The manifest; a `CorpusCountWarning` is emitted if it differs from the 7442 clips.

    Raises:
      CorpusError: the root is missing, holds no usable file, or holds two different files
        with the same name.
    """
    base = require_root(NAME, root)
    paths = list(walk_files(base))
    tables = [p for p in paths if p.name == DEMOGRAPHICS_FILE]
    demographics: dict[str, dict[str, str]] = {}
    skipped: list[Skipped] = []
    # The first readable table wins (walk order is sorted, so this is deterministic).
    for table in tables:
        if demographics:
            skipped.append(Skipped(str(table), "second demographics table (first one used)"))
            continue
        demographics = read_demographics(table)
        if not demographics:
            skipped.append(Skipped(str(table), "demographics table without ActorID rows"))

    return collect(
        NAME, base, CLASSES, EXPECTED, lambda path: parse(path, demographics),
        paths=[p for p in paths if p.name != DEMOGRAPHICS_FILE], skipped=skipped,
    )  # fmt: skip
