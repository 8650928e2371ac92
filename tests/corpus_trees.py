"""Tiny fake corpus trees for the loader tests.

Every builder writes small but valid 16-bit PCM mono wav files (a few hundred samples) under
the real naming conventions of its corpus (docs/data.md), and returns what it
wrote, so that the tests can compare the loader's manifest with it. `NASTY` lists, per corpus,
files that a loader must skip, with the reason it must give. `tone_rows` and `write` make a
user's manifest (CSV, TSV, JSON Lines) of the tone corpus.
"""

from __future__ import annotations

import csv
import json
import pathlib
import struct
from collections.abc import Callable, Iterable

LFS_POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    "size 123456\n"
)


# ----------------------------------------------------------------------------- files


def wav_bytes(n_samples: int = 200, seed: int = 0, sample_rate: int = 16000) -> bytes:
    """A 16-bit PCM mono wav; `seed` changes the samples, so two seeds differ in content."""
    samples = struct.pack(
        f"<{n_samples}h", *(((i * 37 + seed * 101) % 2000) - 1000 for i in range(n_samples))
    )
    fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(samples)) + samples
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _prepare(path: str | pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_wav(path: str | pathlib.Path, seed: int = 0, n_samples: int = 200) -> pathlib.Path:
    """A valid tiny wav file at `path` (parents created)."""
    path = _prepare(path)
    path.write_bytes(wav_bytes(n_samples, seed))
    return path


def write_truncated_wav(path: str | pathlib.Path) -> pathlib.Path:
    """A wav whose header declares more audio than the file holds (a cut-off download)."""
    path = _prepare(path)
    path.write_bytes(wav_bytes(400)[:-300])
    return path


def write_empty(path: str | pathlib.Path) -> pathlib.Path:
    """A zero-byte file."""
    path = _prepare(path)
    path.write_bytes(b"")
    return path


def write_lfs_pointer(path: str | pathlib.Path) -> pathlib.Path:
    """A Git LFS pointer text file (what a clone without `git lfs pull` holds)."""
    path = _prepare(path)
    path.write_text(LFS_POINTER)
    return path


def write_text(path: str | pathlib.Path, text: str = "not audio\n") -> pathlib.Path:
    """A text file (README, label file, macOS litter)."""
    path = _prepare(path)
    path.write_text(text)
    return path


def write_many(root: pathlib.Path, relpaths: Iterable[str], seed: int = 0) -> list[str]:
    """A valid wav at each relative path; returns the paths."""
    relpaths = list(relpaths)
    for rel in relpaths:
        write_wav(root / rel, seed=seed)
    return relpaths


# ----------------------------------------------------------------------------- RAVDESS


def ravdess_name(
    emotion: int,
    intensity: int,
    statement: int,
    repetition: int,
    actor: int,
    modality: int = 3,
    channel: int = 1,
    ext: str = "wav",
) -> str:
    """`MM-VV-EE-II-SS-RR-AA.ext`."""
    fields = (modality, channel, emotion, intensity, statement, repetition, actor)
    return "-".join(f"{f:02d}" for f in fields) + f".{ext}"


def ravdess_speech_names(actors: Iterable[int] = range(1, 25)) -> list[str]:
    """Every audio-only speech file name of the given actors: 60 per actor."""
    names = []
    for actor in actors:
        for emotion in range(1, 9):
            # Neutral has normal intensity only.
            for intensity in (1,) if emotion == 1 else (1, 2):
                for statement in (1, 2):
                    for repetition in (1, 2):
                        names.append(ravdess_name(emotion, intensity, statement, repetition, actor))
    return names


def build_ravdess(
    root: pathlib.Path, actors: Iterable[int] = range(1, 25), layout: str = "zenodo"
) -> list[str]:
    """A RAVDESS speech tree; returns the utterance ids (file stems).

    Args:
      root: where to write.
      actors: which actors (1-24); all of them give the full 1440 files.
      layout: "zenodo" (`Actor_XX/...`) or "kaggle" (`Actor_XX/...` plus the identical mirror
        `audio_speech_actors_01-24/Actor_XX/...`).
    """
    ids = []
    for name in ravdess_speech_names(actors):
        actor = name[-6:-4]
        write_wav(root / f"Actor_{actor}" / name)
        if layout == "kaggle":
            write_wav(root / "audio_speech_actors_01-24" / f"Actor_{actor}" / name)
        ids.append(name[:-4])
    return ids


# ----------------------------------------------------------------------------- IEMOCAP


def iemocap_label_file(lines: Iterable[tuple[str, str]], tabs: bool = True) -> str:
    """The text of an EmoEvaluation file for (utterance id, label) pairs.

    With `tabs=False` the fields are separated by runs of spaces, and the time stamps have
    extra spaces, to check that the parser is whitespace tolerant.
    """
    out = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    for i, (utt, lab) in enumerate(lines):
        start, end = f"{i * 3.5 + 1.25:.4f}", f"{i * 3.5 + 3.0:.4f}"
        if tabs:
            out.append(f"[{start} - {end}]\t{utt}\t{lab}\t[2.5000, 3.0000, 2.5000]")
        else:
            out.append(f"[ {start}  -  {end} ]   {utt}  {lab}    [2.5000, 3.0000, 2.5000]  ")
        # The evaluators' lines that follow every turn (not starting with `[`).
        out += ["C-E1:\tNeutral;\t()", "A-E2:\tval 3; act 3; dom  3;\t()", ""]
    return "\n".join(out) + "\n"


def build_iemocap(
    root: pathlib.Path,
    dialogs: dict[str, list[tuple[str, str]]],
    tabs: bool = True,
    skip_wavs: Iterable[str] = (),
    extra_wavs: Iterable[str] = (),
) -> None:
    """An IEMOCAP tree: per dialog an EmoEvaluation file and one sentence wav per turn.

    Args:
      root: where to write (the `SessionN` folders go directly under it).
      dialogs: dialog name -> [(utterance id, label)].
      tabs: tab-separated label lines (else runs of spaces).
      skip_wavs: utterance ids whose wav is not written (labelled but no audio).
      extra_wavs: utterance ids that get a wav without a label line.
    """
    skip = set(skip_wavs)
    for dialog, turns in dialogs.items():
        session = root / f"Session{int(dialog[4])}"
        write_text(
            session / "dialog" / "EmoEvaluation" / f"{dialog}.txt",
            iemocap_label_file(turns, tabs=tabs),
        )
        for utt, _ in turns:
            if utt not in skip:
                write_wav(session / "sentences" / "wav" / dialog / f"{utt}.wav")
    for utt in extra_wavs:
        dialog = utt.rsplit("_", 1)[0]
        write_wav(root / f"Session{int(utt[4])}" / "sentences" / "wav" / dialog / f"{utt}.wav")


# ----------------------------------------------------------------------------- CREMA-D

CREMAD_DEMOGRAPHICS = (
    "ActorID,Age,Sex,Race,Ethnicity\n"
    "1001,51,Male,Caucasian,Not Hispanic\n"
    "1002,21,Female,Caucasian,Not Hispanic\n"
    "1003,21,Female,Caucasian,Not Hispanic\n"
    "1091,29,Female,Asian,Not Hispanic\n"
)


# ----------------------------------------------------------------------------- nasty files

# Writer name -> writer; the NASTY rows name their writer so the table stays data.
WRITERS: dict[str, Callable[[pathlib.Path], pathlib.Path]] = {
    "wav": write_wav,
    "text": write_text,
    "empty": write_empty,
    "lfs": write_lfs_pointer,
    "truncated": write_truncated_wav,
}

_LFS_REASON = "Git LFS pointer"
_TRUNCATED = "truncated: the header declares more audio than the file holds"

# corpus -> [(relative path, writer, expected reason or its start)]. Every row is a file the
# loader must skip; the names are otherwise valid unless the row tests the name.
NASTY: dict[str, list[tuple[str, str, str]]] = {
    "ravdess": [
        ("Actor_01/.DS_Store", "text", "hidden file"),
        ("Actor_01/._03-01-05-01-01-01-01.wav", "wav", "hidden file"),
        ("Actor_01/03-02-05-01-01-01-01.wav", "wav", "song (vocal channel 02)"),
        ("Actor_01/01-01-05-01-01-01-01.wav", "wav", "video (modality 01)"),
        ("Actor_01/02-01-05-01-01-01-01.wav", "wav", "video (modality 02)"),
        ("Video_Speech_Actor_01/Actor_01/01-01-05-01-01-01-01.mp4", "empty", "video file (.mp4)"),
        ("Actor_01/03-01-09-01-01-01-01.wav", "wav", "unknown emotion code 09"),
        ("Actor_01/03-01-01-02-01-01-01.wav", "wav", "strong neutral"),
        ("Actor_01/03-01-05-01-01-01-25.wav", "wav", "unknown actor 25"),
        ("Actor_01/03-01-05-01-01-01.wav", "wav", "name does not match the RAVDESS pattern"),
        ("Actor_01/notes.txt", "text", "not a wav file"),
        ("Actor_03/03-01-05-01-01-01-03.wav", "lfs", _LFS_REASON),
        ("Actor_03/03-01-05-01-01-02-03.wav", "truncated", _TRUNCATED),
        ("Actor_03/03-01-05-01-02-01-03.wav", "empty", "empty file"),
        ("Actor_03/03-01-05-01-02-02-03.wav", "text", "not a RIFF/WAVE file"),
    ],
    "emodb": [
        (".DS_Store", "text", "hidden file"),
        ("wav/._03a01Fa.wav", "wav", "hidden file"),
        ("lablaut/03a01Fa.lab", "text", "not a wav file"),
        ("wav/03a01Xa.wav", "wav", "unknown emotion letter X"),
        ("wav/04a01Fa.wav", "wav", "unknown speaker code 04"),
        ("wav/03a03Fa.wav", "wav", "unknown text code a03"),
        ("wav/03a01Fg.wav", "wav", "unknown version letter g"),
        ("wav/03a01Fa_copy.wav", "wav", "name does not match the EMO-DB pattern"),
        ("wav/09a02Ld.wav", "lfs", _LFS_REASON),
        ("wav/10a04Ea.wav", "truncated", _TRUNCATED),
        ("wav/11b01Ta.wav", "empty", "empty file"),
    ],
    "iemocap": [
        ("Session1/.DS_Store", "text", "hidden file"),
        ("Session1/sentences/wav/Ses01F_impro01/._Ses01F_impro01_F000.wav", "wav", "hidden file"),
        ("Session1/dialog/wav/Ses01F_impro01.wav", "wav", "not a sentence wav"),
        (
            "Session1/dialog/EmoEvaluation/Categorical/Ses01F_impro01_e1_cat.txt",
            "text",
            "not a wav file",
        ),
        (
            "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F009.wav",
            "wav",
            "no label in EmoEvaluation",
        ),
        (
            "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M003.wav",
            "wav",
            "label fru outside the 4 classes",
        ),
        (
            "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M004.wav",
            "wav",
            "label xxx outside the 4 classes",
        ),
        ("Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F005.wav", "lfs", _LFS_REASON),
        ("Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F006.wav", "truncated", _TRUNCATED),
        ("Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F007.wav", "empty", "empty file"),
        (
            "Session1/sentences/wav/Ses01F_impro01/notes.wav",
            "wav",
            "name is not an IEMOCAP utterance id",
        ),
    ],
    "cremad": [
        ("AudioWAV/.DS_Store", "text", "hidden file"),
        ("AudioMP3/1001_DFA_ANG_XX.mp3", "text", "mp3 (use AudioWAV)"),
        ("VideoFlash/1001_DFA_ANG_XX.flv", "text", "not a wav file"),
        ("AudioWAV/1001_DFA_XYZ_XX.wav", "wav", "unknown emotion code XYZ"),
        ("AudioWAV/1001_ABC_ANG_XX.wav", "wav", "unknown sentence code ABC"),
        ("AudioWAV/1092_DFA_ANG_XX.wav", "wav", "unknown actor 1092"),
        ("AudioWAV/1001_DFA_ANG_HI.wav", "wav", "level LO/MD/HI with a sentence other than IEO"),
        ("AudioWAV/1001-DFA-ANG-XX.wav", "wav", "name does not match the CREMA-D pattern"),
        ("AudioWAV/1004_TIE_FEA_XX.wav", "lfs", _LFS_REASON),
        ("AudioWAV/1005_TIE_FEA_XX.wav", "truncated", _TRUNCATED),
        ("AudioWAV/1006_TIE_FEA_XX.wav", "empty", "empty file"),
    ],
    "tess": [
        ("TESS/.DS_Store", "text", "hidden file"),
        ("TESS/OAF_angry/._OAF_back_angry.wav", "wav", "hidden file"),
        ("TESS/OAF_calm/OAF_back_calm.wav", "wav", "unknown emotion code calm"),
        ("TESS/XAF_angry/XAF_back_angry.wav", "wav", "unknown speaker XAF"),
        ("TESS/OAF_angry/OAF_back_angry_2.wav", "wav", "name does not match the TESS pattern"),
        ("TESS/README.md", "text", "not a wav file"),
        ("TESS/YAF_sad/YAF_lot_sad.wav", "lfs", _LFS_REASON),
        ("TESS/YAF_sad/YAF_mob_sad.wav", "truncated", _TRUNCATED),
        ("TESS/YAF_sad/YAF_pad_sad.wav", "empty", "empty file"),
    ],
    "savee": [
        ("AudioData/.DS_Store", "text", "hidden file"),
        ("AudioData/DC/._a01.wav", "wav", "hidden file"),
        ("AudioData/Info.txt", "text", "not a wav file"),
        ("AudioData/DC/x01.wav", "wav", "unknown emotion code x"),
        ("AudioData/DC/a16.wav", "wav", "sentence number 16 out of range for a"),
        ("AudioData/DC/n31.wav", "wav", "sentence number 31 out of range for n"),
        ("ALL/XY_a01.wav", "wav", "unknown speaker XY"),
        ("stray/a01.wav", "wav", "no speaker"),
        ("AudioData/JE/DC_a02.wav", "wav", "speaker prefix differs from the speaker folder"),
        ("AudioData/KL/a1.wav", "wav", "name does not match the SAVEE pattern"),
        ("AudioData/KL/d05.wav", "lfs", _LFS_REASON),
        ("AudioData/KL/d06.wav", "truncated", _TRUNCATED),
        ("AudioData/KL/d07.wav", "empty", "empty file"),
    ],
}


def add_nasty(root: pathlib.Path, corpus: str) -> dict[str, str]:
    """Write the corpus's NASTY files under `root`; returns absolute path -> expected reason."""
    expected = {}
    for rel, writer, reason in NASTY[corpus]:
        path = WRITERS[writer](root / rel)
        expected[str(path)] = reason
    return expected


# ----------------------------------------------------------------------------- valid trees

# corpus -> [(relative path, id, speaker, emotion, gender, extra fields to check)]. The small
# valid tree of each corpus; IEMOCAP's is built by `build_valid` from its label files instead.
VALID: dict[str, list[tuple[str, str, str, str, str | None, dict[str, str]]]] = {
    "ravdess": [
        (
            "Actor_01/03-01-01-01-01-01-01.wav",
            "03-01-01-01-01-01-01",
            "01",
            "neutral",
            "m",
            {
                "intensity": "normal",
                "statement": "01",
                "repetition": "01",
                "modality": "03",
                "channel": "01",
            },
        ),
        (
            "Actor_02/03-01-08-02-02-01-02.wav",
            "03-01-08-02-02-01-02",
            "02",
            "surprised",
            "f",
            {"intensity": "strong", "statement": "02", "repetition": "01"},
        ),
        (
            "Actor_24/03-01-05-02-01-02-24.wav",
            "03-01-05-02-01-02-24",
            "24",
            "angry",
            "f",
            {"intensity": "strong", "statement": "01", "repetition": "02"},
        ),
        (
            "Actor_17/03-01-02-01-02-02-17.wav",
            "03-01-02-01-02-02-17",
            "17",
            "calm",
            "m",
            {"intensity": "normal", "statement": "02", "repetition": "02"},
        ),
    ],
    "emodb": [
        (
            "wav/03a01Fa.wav",
            "03a01Fa",
            "03",
            "happiness",
            "m",
            {"text": "a01", "version": "a", "age": "31"},
        ),
        ("wav/08b10Wb.wav", "08b10Wb", "08", "anger", "f", {"text": "b10", "version": "b"}),
        ("wav/16a05Nc.wav", "16a05Nc", "16", "neutral", "f", {"text": "a05", "age": "31"}),
        ("wav/12b09Lf.wav", "12b09Lf", "12", "boredom", "m", {"version": "f", "age": "30"}),
        ("wav/13a07Ed.wav", "13a07Ed", "13", "disgust", "f", {}),
        ("wav/14b03Ae.wav", "14b03Ae", "14", "fear", "f", {}),
        ("wav/15b02Ta.wav", "15b02Ta", "15", "sadness", "m", {}),
    ],
    "cremad": [
        (
            "AudioWAV/1001_DFA_ANG_XX.wav",
            "1001_DFA_ANG_XX",
            "1001",
            "anger",
            "m",
            {"sentence": "DFA", "level": "XX", "age": "51"},
        ),
        (
            "AudioWAV/1002_IEO_HAP_HI.wav",
            "1002_IEO_HAP_HI",
            "1002",
            "happy",
            "f",
            {"sentence": "IEO", "level": "HI"},
        ),
        (
            "AudioWAV/1003_IEO_NEU_XX.wav",
            "1003_IEO_NEU_XX",
            "1003",
            "neutral",
            "f",
            {"sentence": "IEO", "level": "XX"},
        ),
        (
            "AudioWAV/1091_WSI_SAD_XX.wav",
            "1091_WSI_SAD_XX",
            "1091",
            "sad",
            "f",
            {"sentence": "WSI"},
        ),
        (
            "AudioWAV/1001_IEO_DIS_LO.wav",
            "1001_IEO_DIS_LO",
            "1001",
            "disgust",
            "m",
            {"level": "LO"},
        ),
        ("AudioWAV/1002_TIE_FEA_XX.wav", "1002_TIE_FEA_XX", "1002", "fear", "f", {}),
    ],
    "tess": [
        (
            "TESS/OAF_angry/OAF_back_angry.wav",
            "oaf_back_angry",
            "OAF",
            "angry",
            "f",
            {"word": "back", "age": "64"},
        ),
        (
            "TESS/YAF_pleasant_surprised/YAF_bath_ps.wav",
            "yaf_bath_ps",
            "YAF",
            "pleasant_surprise",
            "f",
            {"word": "bath", "age": "26"},
        ),
        # Case varies between copies: the id is the lower-cased stem.
        ("TESS/OAF_Fear/OAF_Bite_Fear.wav", "oaf_bite_fear", "OAF", "fear", "f", {"word": "bite"}),
        ("TESS/YAF_neutral/YAF_youth_neutral.wav", "yaf_youth_neutral", "YAF", "neutral", "f", {}),
        ("TESS/YAF_disgust/YAF_chalk_disgust.wav", "yaf_chalk_disgust", "YAF", "disgust", "f", {}),
        ("TESS/OAF_happy/OAF_dog_happy.wav", "oaf_dog_happy", "OAF", "happy", "f", {}),
        ("TESS/OAF_Sad/OAF_dog_sad.wav", "oaf_dog_sad", "OAF", "sad", "f", {}),
    ],
    "savee": [
        ("AudioData/DC/a01.wav", "DC_a01", "DC", "anger", "m", {"sentence": "01"}),
        # `sa`/`su` are sadness/surprise, never anger.
        ("AudioData/JE/sa01.wav", "JE_sa01", "JE", "sadness", "m", {"sentence": "01"}),
        ("AudioData/JK/su15.wav", "JK_su15", "JK", "surprise", "m", {"sentence": "15"}),
        ("AudioData/KL/n30.wav", "KL_n30", "KL", "neutral", "m", {"sentence": "30"}),
        # The Kaggle flat layout, next to the original one.
        ("ALL/DC_h02.wav", "DC_h02", "DC", "happiness", "m", {"sentence": "02"}),
        ("ALL/KL_sa15.wav", "KL_sa15", "KL", "sadness", "m", {}),
        ("ALL/JE_d03.wav", "JE_d03", "JE", "disgust", "m", {}),
        ("ALL/JK_f04.wav", "JK_f04", "JK", "fear", "m", {}),
    ],
}

# The IEMOCAP dialogs of the valid tree: the speaker is the last token's letter, so
# Ses01F_impro01_M000 is Ses01M, and exc merges into happy.
IEMOCAP_DIALOGS: dict[str, list[tuple[str, str]]] = {
    "Ses01F_impro01": [
        ("Ses01F_impro01_F000", "neu"),
        ("Ses01F_impro01_M000", "exc"),
        ("Ses01F_impro01_F001", "hap"),
        ("Ses01F_impro01_M001", "ang"),
        ("Ses01F_impro01_M002", "sad"),
        ("Ses01F_impro01_M003", "fru"),
        ("Ses01F_impro01_M004", "xxx"),
        ("Ses01F_impro01_F005", "neu"),
        ("Ses01F_impro01_F006", "neu"),
        ("Ses01F_impro01_F007", "neu"),
        ("Ses01F_impro01_F008", "ang"),  # labelled, but its wav is missing
    ],
    "Ses02M_script01_1": [
        ("Ses02M_script01_1_F000", "sad"),
        ("Ses02M_script01_1_M000", "exc"),
        ("Ses02M_script01_1_M001", "sur"),
    ],
    "Ses05F_impro03b": [
        ("Ses05F_impro03b_M010", "ang"),
    ],
}

# (id, speaker, emotion, gender, extra) of the IEMOCAP utterances that must be kept.
IEMOCAP_VALID: list[tuple[str, str, str, str, dict[str, str]]] = [
    (
        "Ses01F_impro01_F000",
        "Ses01F",
        "neutral",
        "f",
        {"session": "1", "dialog": "Ses01F_impro01", "type": "improvised", "original_label": "neu"},
    ),
    ("Ses01F_impro01_M000", "Ses01M", "happy", "m", {"original_label": "exc"}),
    ("Ses01F_impro01_F001", "Ses01F", "happy", "f", {"original_label": "hap"}),
    ("Ses01F_impro01_M001", "Ses01M", "angry", "m", {"original_label": "ang"}),
    ("Ses01F_impro01_M002", "Ses01M", "sad", "m", {}),
    (
        "Ses02M_script01_1_F000",
        "Ses02F",
        "sad",
        "f",
        {"session": "2", "dialog": "Ses02M_script01_1", "type": "scripted"},
    ),
    ("Ses02M_script01_1_M000", "Ses02M", "happy", "m", {"original_label": "exc"}),
    ("Ses05F_impro03b_M010", "Ses05M", "angry", "m", {"session": "5", "type": "improvised"}),
]

IEMOCAP_MISSING_WAV = "Ses01F_impro01_F008"


def build_valid(root: pathlib.Path, corpus: str, tabs: bool = True) -> None:
    """The small valid tree of `corpus` (VALID, or IEMOCAP_DIALOGS) under `root`.

    IEMOCAP's dialogs include the labels that must be skipped (fru, xxx, sur) and one
    labelled turn without a wav; the NASTY rows overwrite some of its wavs with bad files.
    """
    if corpus == "iemocap":
        build_iemocap(root, IEMOCAP_DIALOGS, tabs=tabs, skip_wavs=[IEMOCAP_MISSING_WAV])
        return
    for rel, *_ in VALID[corpus]:
        write_wav(root / rel)
    if corpus == "cremad":
        write_text(root / "VideoDemographics.csv", CREMAD_DEMOGRAPHICS)


# ----------------------------------------------------------------------------- manifests


def tone_rows(tone_corpus: pathlib.Path, folder: pathlib.Path) -> list[dict]:
    """One row per file of the tone corpus, with our own labels and speaker names (paths
    relative to `folder`, where the manifest goes)."""
    rows = []
    for path in sorted(tone_corpus.rglob("*.wav")):
        parts = path.stem.split("-")
        actor = int(parts[6])
        rows.append({"file": str(path.relative_to(folder)) if folder in path.parents
                     else str(path),
                     "emotion": {"01": "neutral", "03": "happy", "04": "sad",
                                 "05": "angry"}[parts[2]],
                     "speaker": f"spk{actor:02d}", "gender": "male" if actor % 2 else "F",
                     "fold": str(actor % 3)})  # fmt: skip
    return rows


def write(path: pathlib.Path, rows: list[dict], columns=None) -> pathlib.Path:
    """`rows` as a manifest at `path`: CSV, TSV (by suffix) or JSON Lines (`.jsonl`)."""
    columns = columns or list(rows[0])
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps({c: r.get(c) for c in columns}) + "\n" for r in rows))
    else:
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, delimiter="\t" if path.suffix ==
                                    ".tsv" else ",", extrasaction="ignore")  # fmt: skip
            writer.writeheader()
            writer.writerows(rows)
    return path
