"""An embedded synthetic emotional-speech corpus in the RAVDESS layout, spoken by eSpeak NG.

(Over 500 lines on purpose: one self-contained generator, from speaker table and utterance
plans through the eSpeak NG binding to resumable parallel writing and its CLI; nothing else
imports its parts.)

Purpose: the project's demos, smoke tests and CI need a corpus that anyone can generate in well
under a minute (about 15 s for 1440 files on two cores, ~490 MB) without downloading or licensing
real recordings. This module writes one that looks, on disk, exactly like RAVDESS speech
audio-only, so the RAVDESS loader, the protocols and the training code run unchanged on it::

    python -m reslstm_jax.corpora.synthetic --out DIR [--seed N] [--speakers N] [--small]
                                                     [--workers N] [--no-progress]

``--out`` defaults to `default_dir()`; ``--small`` is 4 speakers (actors 01-04), ``--speakers N``
the first N actors; ``--workers`` defaults to all cores. From Python: `generate`,
`ensure_corpus`, `default_dir`.

Layout: ``DIR/Actor_XX/03-01-EE-II-SS-RR-AA.wav`` (48 kHz, 16-bit PCM, mono); 24 speakers by
default (odd actor ids male voices, even ids female voices), 60 files per speaker: both RAVDESS
statements, two repetitions, eight emotions, two intensities (neutral has the normal intensity
only). ``DIR/synthetic_corpus.json`` is written last and marks a complete corpus.

The emotions are rendered through prosody only (speaking rate, pitch, pitch range, loudness,
pauses, sentence intonation), relative to each speaker's own voice settings and with random
per-utterance variation, so a classifier learns them well above chance but far from perfectly.
This is SYNTHETIC speech: it is for checking that code runs and learns something. Accuracy numbers
measured on it say nothing about real emotion recognition; report real numbers on real corpora.

Generation is deterministic: the same seed gives byte-identical files whatever the number of
worker processes, because every file's random parameters derive from (seed, file name) alone and
every utterance is rendered by a freshly loaded eSpeak NG library (see `_ESpeak`).

Licence: eSpeak NG is GPL-3.0. It comes from the optional ``synthetic`` extra (the
``espeakng-loader`` wheel, which bundles the library and its data), is loaded at run time through
``ctypes`` only, and is never imported by the rest of the package, which stays MIT-licensed:
``pip install -e '.[synthetic]'`` from a checkout.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import hashlib
import io
import json
import math
import os
import pathlib
import re
import sys
import wave
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from reslstm_jax import artifacts
from reslstm_jax.workers import WorkerError
from reslstm_jax.workers import run as run_workers

# Bump whenever a change alters the generated audio: it names the default directory and is
# checked against the completion marker, so an old corpus is never mistaken for a current one.
GENERATOR_VERSION = 1

SAMPLE_RATE = 48_000  # RAVDESS's rate.
ESPEAK_SAMPLE_RATE = 22_050  # What eSpeak NG renders; 22050 * 320 / 147 == 48000 exactly.
MAX_SPEAKERS = 24
SMALL_SPEAKERS = 4
MARKER_NAME = "synthetic_corpus.json"
# Written when a generation starts and removed when the marker is written: lets a resumed run
# refuse to mix files of two seeds in one directory before the corpus is complete.
PENDING_NAME = ".synthetic_corpus.pending.json"
DATA_ENV = "RESLSTM_JAX_DATA"

EMOTIONS: dict[int, str] = {
    1: "neutral",
    2: "calm",
    3: "happy",
    4: "sad",
    5: "angry",
    6: "fearful",
    7: "disgust",
    8: "surprised",
}
STATEMENTS: dict[int, str] = {
    1: "Kids are talking by the door",
    2: "Dogs are sitting by the door",
}
INSTALL_HINT = (
    "the synthetic corpus needs eSpeak NG, the optional `synthetic` extra (GPL-3.0): from a "
    "checkout, pip install -e '.[synthetic]'"
)

# Voice variants of <espeak-ng-data>/voices/!v that sound like plain adult speakers at the
# default volume (no robots, whispers or clipping voices). 12 of each pool are drawn per seed,
# so every speaker of a corpus has a voice variant of its own.
MALE_VOICES = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8",
    "michel", "travis", "victor", "Denis", "sandro", "Henrique", "Andy", "quincy",
)  # fmt: skip
FEMALE_VOICES = (
    "f1", "f2", "f3", "f4", "f5",
    "Alicia", "Andrea", "Annie", "anika", "belinda", "linda", "steph", "aunty", "shelby",
)  # fmt: skip

# An atomic write's temporary file (`artifacts.write_bytes_atomic`) of a clip.
_PART_RE = re.compile(r"^\.03-01-[0-9-]+\.wav\.[^.]+\.part$")


class SyntheticUnavailable(RuntimeError):
    """eSpeak NG (the optional ``espeakng-loader`` package) is not installed."""


@dataclasses.dataclass(frozen=True)
class Prosody:
    """An emotion's prosody, as a deviation from the speaker's neutral speech.

    Attributes:
      rate: log factor on the speaking rate (words per minute).
      pitch: offset of eSpeak's base pitch parameter (0-100 scale).
      range: offset of eSpeak's pitch-range parameter (0-100 scale).
      volume: log factor on eSpeak's volume.
      wordgap: extra pause between words, in eSpeak's units of 10 ms.
      exclaim: probability that the sentence ends with "!" (exclamative intonation).
      question: probability that it ends with "?" (rising intonation).
      hesitate: probability of a comma (a short pause) after the sentence's subject.
    """

    rate: float = 0.0
    pitch: float = 0.0
    range: float = 0.0
    volume: float = 0.0
    wordgap: float = 0.0
    exclaim: float = 0.0
    question: float = 0.0
    hesitate: float = 0.05


# The prototypes overlap on purpose (calm ~ neutral, happy ~ surprised, fearful ~ sad, angry ~
# happy in loudness), and the per-speaker style and per-utterance jitter below blur them further,
# so that speaker-independent recognition lands well above chance yet far from 100 %.
EMOTION_PROSODY: dict[str, Prosody] = {
    "neutral": Prosody(),
    "calm": Prosody(rate=-0.08, pitch=-4, range=-10, volume=-0.10, wordgap=0.8),
    "happy": Prosody(rate=0.08, pitch=11, range=18, volume=0.15, exclaim=0.3),
    "sad": Prosody(rate=-0.22, pitch=-9, range=-18, volume=-0.28, wordgap=2.5, hesitate=0.3),
    "angry": Prosody(rate=0.08, pitch=4, range=11, volume=0.38, wordgap=1.0, exclaim=0.5),
    "fearful": Prosody(rate=-0.10, pitch=11, range=-12, volume=-0.18, wordgap=2.5, hesitate=0.4),
    "disgust": Prosody(rate=-0.17, pitch=-6, range=6, volume=0.03, wordgap=1.8, hesitate=0.2),
    "surprised": Prosody(rate=0.06, pitch=15, range=23, volume=0.12, question=0.5),
}
# Strong intensity = the same deviation from neutral, larger.
STRONG_FACTOR = 1.7
# Per-utterance jitter (standard deviations), so that repetitions differ and classes overlap.
JITTER = Prosody(rate=0.07, pitch=4.0, range=8.0, volume=0.10, wordgap=0.8)
# Per-speaker style: each speaker's own offset to each emotion's prototype (standard deviations).
STYLE = Prosody(rate=0.04, pitch=3.0, range=5.0, volume=0.06, wordgap=0.5)
_PROSODY_FIELDS = ("rate", "pitch", "range", "volume", "wordgap")


@dataclasses.dataclass(frozen=True)
class Speaker:
    """One synthetic actor: an eSpeak voice variant and the speaker's own settings.

    Attributes:
      actor: RAVDESS actor id, 1..24.
      gender: "male" (odd ids) or "female" (even ids).
      voice: eSpeak voice, e.g. "en-us+m3" (language + variant of voices/!v).
      pitch: base pitch parameter (0-100; eSpeak's default is 50).
      rate: base speaking rate in words per minute (eSpeak's default is 175).
      range: base pitch-range parameter (0-100; eSpeak's default is 50).
      expressiveness: factor on every emotion's deviation (some actors act more than others).
      gain_db: recording level applied to the rendered speech.
      noise_db: RMS level of the background noise floor, dBFS.
      style: per emotion, this speaker's offsets to the prototype (`Prosody` field -> offset).
    """

    actor: int
    gender: str
    voice: str
    pitch: float
    rate: float
    range: float
    expressiveness: float
    gain_db: float
    noise_db: float
    style: Mapping[str, Mapping[str, float]]


def _rng(seed: int, key: str) -> np.random.Generator:
    """A generator that depends on (seed, key) only.

    Uses a SHA-256 of the key (never Python's salted `hash()`), so that every file's random
    parameters are the same in any process, on any run, in any order.
    """
    digest = hashlib.sha256(f"reslstm_jax.synthetic/{key}".encode()).digest()
    return np.random.default_rng(np.random.SeedSequence([seed, int.from_bytes(digest, "little")]))


def speaker_table(seed: int = 0) -> list[Speaker]:
    """The 24 speakers of the corpus for `seed` (a corpus with N speakers uses the first N).

    Args:
      seed: corpus seed (non-negative).

    Returns:
      list of 24 `Speaker`, actor 1 first; odd actors male, even actors female, each with its own
      voice variant.
    """
    rng = _rng(seed, "speakers")
    male = rng.permutation(len(MALE_VOICES))[: MAX_SPEAKERS // 2]
    female = rng.permutation(len(FEMALE_VOICES))[: MAX_SPEAKERS // 2]
    speakers = []
    for actor in range(1, MAX_SPEAKERS + 1):
        is_male = actor % 2 == 1
        index = (actor - 1) // 2
        variant = MALE_VOICES[male[index]] if is_male else FEMALE_VOICES[female[index]]
        style = {
            emotion: {
                field: round(float(rng.normal(0.0, getattr(STYLE, field))), 4)
                for field in _PROSODY_FIELDS
            }
            for emotion in EMOTIONS.values()
            if emotion != "neutral"
        }
        speakers.append(
            Speaker(
                actor=actor,
                gender="male" if is_male else "female",
                voice=f"en-us+{variant}",
                pitch=round(float(rng.uniform(32, 68)), 2),
                rate=round(float(rng.uniform(145, 200)), 2),
                range=round(float(rng.uniform(35, 70)), 2),
                expressiveness=round(float(rng.uniform(0.7, 1.3)), 3),
                gain_db=round(float(rng.uniform(-9.0, -3.0)), 2),
                noise_db=round(float(rng.uniform(-72.0, -62.0)), 2),
                style=style,
            )
        )
    return speakers


def file_name(emotion: int, intensity: int, statement: int, repetition: int, actor: int) -> str:
    """The RAVDESS file name of one utterance (modality 03 audio-only, vocal channel 01 speech)."""
    return f"03-01-{emotion:02d}-{intensity:02d}-{statement:02d}-{repetition:02d}-{actor:02d}.wav"


def corpus_files(speakers: int = MAX_SPEAKERS) -> list[tuple[str, int, int, int, int, int]]:
    """Every utterance of a corpus of the first `speakers` actors.

    Args:
      speakers: number of actors, 1..24.

    Returns:
      (relative path, emotion, intensity, statement, repetition, actor) per file, 60 per actor;
      the relative path is ``Actor_XX/<name>``.
    """
    _check_speakers(speakers)
    files = []
    for actor in range(1, speakers + 1):
        for emotion in EMOTIONS:
            # RAVDESS has no strong neutral.
            for intensity in (1,) if emotion == 1 else (1, 2):
                for statement in STATEMENTS:
                    for repetition in (1, 2):
                        name = file_name(emotion, intensity, statement, repetition, actor)
                        relative = f"Actor_{actor:02d}/{name}"
                        files.append((relative, emotion, intensity, statement, repetition, actor))
    return files


def utterance_plan(
    seed: int, speaker: Speaker, emotion: int, intensity: int, statement: int, repetition: int
) -> dict[str, Any]:
    """Everything needed to render one file: text, eSpeak parameters, levels and silences.

    Args:
      seed: corpus seed.
      speaker: the actor's `Speaker`.
      emotion, intensity, statement, repetition: RAVDESS codes (emotion 1..8, the rest 1..2).

    Returns:
      a plain dict (it crosses process boundaries) with keys text, voice, rate, pitch, range,
      volume, wordgap (eSpeak parameters), gain_db, noise_db, lead_s, trail_s, seed.
    """
    name = file_name(emotion, intensity, statement, repetition, speaker.actor)
    rng = _rng(seed, name)
    label = EMOTIONS[emotion]
    proto = EMOTION_PROSODY[label]
    style = speaker.style.get(label, {})
    strength = (STRONG_FACTOR if intensity == 2 else 1.0) * speaker.expressiveness

    def deviation(field: str) -> float:
        # Neutral stays the speaker's own baseline (plus jitter); other emotions get the
        # prototype, scaled by intensity and the speaker's expressiveness, plus the speaker's
        # personal style and a fresh per-utterance jitter.
        base = getattr(proto, field) + style.get(field, 0.0)
        return strength * base + float(rng.normal(0.0, getattr(JITTER, field)))

    rate = speaker.rate * math.exp(deviation("rate"))
    pitch = speaker.pitch + deviation("pitch")
    pitch_range = speaker.range + deviation("range")
    volume = 100.0 * math.exp(deviation("volume"))
    wordgap = deviation("wordgap")

    words = STATEMENTS[statement].split()
    if rng.random() < proto.hesitate:
        words[2] += ","  # "Kids are talking, by the door": a hesitation pause mid-sentence
    end = "."
    ending = rng.random()
    if ending < proto.exclaim:
        end = "!"
    elif ending < proto.exclaim + proto.question:
        end = "?"
    return {
        "text": " ".join(words) + end,
        "voice": speaker.voice,
        # eSpeak's documented ranges: rate 80-450 wpm, pitch and range 0-100, volume 0-200
        # (above ~170 it clips), word gap >= 0.
        "rate": int(round(min(max(rate, 90.0), 330.0))),
        "pitch": int(round(min(max(pitch, 0.0), 100.0))),
        "range": int(round(min(max(pitch_range, 0.0), 100.0))),
        "volume": int(round(min(max(volume, 30.0), 170.0))),
        "wordgap": int(round(min(max(wordgap, 0.0), 10.0))),
        "gain_db": speaker.gain_db + float(rng.normal(0.0, 1.5)),
        "noise_db": speaker.noise_db + float(rng.normal(0.0, 1.0)),
        # RAVDESS files hold roughly 0.5-1.3 s of near-silence before and after the speech.
        "lead_s": float(rng.uniform(0.5, 1.3)),
        "trail_s": float(rng.uniform(0.5, 1.3)),
        "seed": int(rng.integers(1, 2**31 - 1)),
    }


# --------------------------------------------------------------------------------------------
# eSpeak NG through ctypes (speak_lib.h)

_AUDIO_OUTPUT_SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT: PLAYBACK 0, RETRIEVAL 1, SYNCHRONOUS 2
_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of exit() when the data is missing
_EE_OK = 0
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
# espeak_PARAMETER
_RATE, _VOLUME, _PITCH, _RANGE, _WORDGAP = 1, 2, 3, 4, 7
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


def _espeakng_loader() -> Any:
    """The `espeakng_loader` module, or `SyntheticUnavailable` with the install hint."""
    try:
        import espeakng_loader
    except ImportError as error:
        raise SyntheticUnavailable(INSTALL_HINT) from error
    return espeakng_loader


def _dlclose(handle: int) -> None:
    import _ctypes

    close = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary", None)
    if close is not None:
        close(handle)


class _ESpeak:
    """Renders one utterance with a freshly loaded eSpeak NG library.

    eSpeak keeps synthesis state in static variables that neither `espeak_Terminate` nor
    `espeak_Initialize` resets (the voice-source phase, flutter, the random generators), so the
    same call sequence gives different samples depending on what was rendered before in the
    process. Reproducible files whatever the order and the worker count need a clean library
    per utterance: it is loaded, used once and unloaded (`dlclose`), which costs ~5 ms. That is
    also why rendering runs in worker processes of our own, where nothing else holds the library.
    """

    def __init__(self) -> None:
        loader = _espeakng_loader()
        self.library_path = loader.get_library_path()
        self.data_path = loader.get_data_path()
        self._chunks: list[np.ndarray] = []
        # Kept alive on the instance: eSpeak calls it, and a collected callback would crash.
        self._callback = _SYNTH_CALLBACK(self._collect)

    def _collect(self, wav: Any, count: int, events: Any) -> int:
        if wav and count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0  # 0 = continue synthesis

    def variant_exists(self, voice: str) -> bool:
        """Whether the variant of `voice` ("en-us+m3") is in the data (eSpeak ignores unknown
        variants silently)."""
        _, _, variant = voice.partition("+")
        return not variant or os.path.isfile(os.path.join(self.data_path, "voices", "!v", variant))

    def version(self) -> str:
        """eSpeak NG's version string."""
        lib = ctypes.CDLL(self.library_path)
        try:
            lib.espeak_Info.restype = ctypes.c_char_p
            lib.espeak_Info.argtypes = [ctypes.c_void_p]
            return lib.espeak_Info(None).decode()
        finally:
            handle = lib._handle
            del lib
            _dlclose(handle)

    def render(self, plan: Mapping[str, Any]) -> np.ndarray:
        """Speak `plan` (see `utterance_plan`); int16 samples at 22050 Hz."""
        if not self.variant_exists(plan["voice"]):
            raise RuntimeError(f"eSpeak NG voice variant {plan['voice']!r} not found")
        lib = ctypes.CDLL(self.library_path)
        try:
            return self._render(lib, plan)
        finally:
            handle = lib._handle
            del lib
            _dlclose(handle)

    def _render(self, lib: ctypes.CDLL, plan: Mapping[str, Any]) -> np.ndarray:
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, self.data_path.encode(), _INITIALIZE_DONT_EXIT
        )
        if rate != ESPEAK_SAMPLE_RATE:
            raise RuntimeError(f"espeak_Initialize failed or gave {rate} Hz")
        try:
            lib.espeak_SetSynthCallback(self._callback)
            if lib.espeak_SetVoiceByName(plan["voice"].encode()) != _EE_OK:
                raise RuntimeError(f"eSpeak NG has no voice {plan['voice']!r}")
            for parameter, key in (
                (_RATE, "rate"),
                (_VOLUME, "volume"),
                (_PITCH, "pitch"),
                (_RANGE, "range"),
                (_WORDGAP, "wordgap"),
            ):
                if lib.espeak_SetParameter(parameter, int(plan[key]), 0) != _EE_OK:
                    raise RuntimeError(f"espeak_SetParameter({key}={plan[key]}) failed")
            _seed_random(lib, int(plan["seed"]))
            text = plan["text"].encode()
            self._chunks = []
            # size counts the terminating zero; position 0 and end 0 = the whole text.
            status = lib.espeak_Synth(
                text, len(text) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
            )
            if status != _EE_OK or lib.espeak_Synchronize() != _EE_OK:
                raise RuntimeError(f"espeak_Synth failed ({status}) for {plan['text']!r}")
        finally:
            lib.espeak_Terminate()
        samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        self._chunks = []
        if samples.size == 0:
            raise RuntimeError(f"eSpeak NG produced no audio for {plan['text']!r}")
        return samples


def _seed_random(lib: ctypes.CDLL, seed: int) -> None:
    """Seed eSpeak's own generator and libc's rand() (voices with breath noise use both)."""
    set_seed = getattr(lib, "espeak_ng_SetRandSeed", None)
    if set_seed is not None:
        set_seed.argtypes = [ctypes.c_long]
        set_seed(seed)
    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(None).srand(ctypes.c_uint(seed))


# --------------------------------------------------------------------------------------------
# From eSpeak's output to a recording-like 48 kHz file


def _finish(speech: np.ndarray, plan: Mapping[str, Any]) -> np.ndarray:
    """Resample to 48 kHz, set the level, pad with silence and add a noise floor.

    Args:
      speech: eSpeak's int16 samples at 22050 Hz.
      plan: the utterance's plan (gain_db, noise_db, lead_s, trail_s, seed).

    Returns:
      int16 samples at 48 kHz.
    """
    from scipy.signal import lfilter, resample_poly

    rng = np.random.default_rng(int(plan["seed"]))
    x = resample_poly(speech.astype(np.float64) / 32768.0, 320, 147)
    x *= 10.0 ** (plan["gain_db"] / 20.0)
    lead = int(round(plan["lead_s"] * SAMPLE_RATE))
    trail = int(round(plan["trail_s"] * SAMPLE_RATE))
    # Keep the file durations within RAVDESS's 2.94-5.27 s: lengthen the end silence of short
    # utterances, shorten both silences of long ones (never below 0.35 s).
    low, high = int(2.94 * SAMPLE_RATE), int(5.27 * SAMPLE_RATE)
    total = lead + x.size + trail
    if total < low:
        trail += low - total
    elif total > high:
        floor = int(0.35 * SAMPLE_RATE)
        excess = total - high
        cut_lead = min(excess // 2, max(lead - floor, 0))
        cut_trail = min(excess - cut_lead, max(trail - floor, 0))
        lead, trail = lead - cut_lead, trail - cut_trail
    y = np.concatenate([np.zeros(lead), x, np.zeros(trail)])
    # A room/microphone noise floor: mostly low-frequency (one-pole low-pass) with some white
    # noise, at a low level, so the silences are not digital zeros.
    white = rng.standard_normal(y.size)
    noise = lfilter([1.0], [1.0, -0.9], white) * math.sqrt(1 - 0.9**2) + 0.5 * white
    noise *= 10.0 ** (plan["noise_db"] / 20.0) / np.sqrt(np.mean(noise**2))
    y = np.clip((y + noise) * 32768.0, -32768, 32767)
    return np.round(y).astype(np.int16)


def _write_wav(path: pathlib.Path, samples: np.ndarray) -> None:
    """Write a 16-bit mono WAV atomically (`artifacts.write_bytes_atomic`).

    The `wave` module writes a plain RIFF header with no timestamps, so equal samples give
    byte-identical files. The rename makes a file appear under its final name only when
    complete, which is what lets an interrupted run resume by skipping existing files.
    """
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples.astype("<i2").tobytes())
    artifacts.write_bytes_atomic(path, buffer.getvalue())


def _render_file(engine: _ESpeak, path: str, plan: Mapping[str, Any]) -> None:
    """Render one utterance and write it to `path`."""
    _write_wav(pathlib.Path(path), _finish(engine.render(plan), plan))


_ENGINE: _ESpeak | None = None


def _render_job(job: Mapping[str, Any]) -> str:
    """Worker handler (`reslstm_jax.workers`): render one {"path", "plan"} job."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _ESpeak()
    _render_file(_ENGINE, job["path"], job["plan"])
    return job["path"]


def _run_workers(jobs: Sequence[tuple[str, dict[str, Any]]], workers: int, progress: bool) -> None:
    """Render `jobs` ((path, plan) pairs) in `workers` clean worker processes.

    Plain subprocesses (`reslstm_jax.workers`): an eSpeak library loaded by the caller must not
    be shared (see `_ESpeak`), JAX's threads make fork unsafe, and spawn would re-import the
    caller's main script.
    """
    try:
        run_workers(
            "reslstm_jax.corpora.synthetic:_render_job",
            [{"path": path, "plan": plan} for path, plan in jobs],
            workers=workers,
            progress=progress,
            desc="synthetic corpus",
        )
    except WorkerError as error:
        raise RuntimeError(f"synthetic corpus generation failed: {error}") from None


# --------------------------------------------------------------------------------------------
# Public API


def default_dir() -> pathlib.Path:
    """Where the default corpus (seed 0, 24 speakers) lives.

    Returns:
      ``$RESLSTM_JAX_DATA/synthetic-v<version>-seed0``, or
      ``~/.cache/reslstm_jax/synthetic-v<version>-seed0`` when the variable is unset or empty.
    """
    name = f"synthetic-v{GENERATOR_VERSION}-seed0"
    root = os.environ.get(DATA_ENV)
    if root:
        return pathlib.Path(root).expanduser() / name
    return pathlib.Path.home() / ".cache" / "reslstm_jax" / name


def read_marker(out_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The completion marker of `out_dir` as a dict, or None when there is none (or unreadable)."""
    path = pathlib.Path(out_dir) / MARKER_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def _check_speakers(speakers: int) -> None:
    if isinstance(speakers, bool) or not isinstance(speakers, int):
        raise ValueError(f"speakers must be an int, got {speakers!r}")
    if not 1 <= speakers <= MAX_SPEAKERS:
        raise ValueError(f"speakers must be between 1 and {MAX_SPEAKERS}, got {speakers}")


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")


def _is_this_corpus(marker: dict[str, Any], *, seed: int, speakers: int) -> bool:
    """Whether a completion marker is that of this generator version, seed and speaker count."""
    return (marker.get("generator_version"), marker.get("seed"), marker.get("speakers")) == (
        GENERATOR_VERSION, seed, speakers)  # fmt: skip


def _check_compatible(out_dir: pathlib.Path, *, seed: int, speakers: int) -> None:
    """Refuse to touch a directory that holds (part of) another corpus."""
    marker = read_marker(out_dir)
    if marker is not None and not _is_this_corpus(marker, seed=seed, speakers=speakers):
        raise ValueError(
            f"{out_dir} holds a completed synthetic corpus with generator version "
            f"{marker.get('generator_version')}, seed {marker.get('seed')} and "
            f"{marker.get('speakers')} speakers, not version {GENERATOR_VERSION}, seed {seed} and "
            f"{speakers} speakers; use another directory or delete it"
        )
    try:
        pending = json.loads((out_dir / PENDING_NAME).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return
    # Same seed and version: the files of the first N actors do not depend on N, so an
    # interrupted run with another speaker count can be completed.
    if pending.get("generator_version") != GENERATOR_VERSION or pending.get("seed") != seed:
        raise ValueError(
            f"{out_dir} holds an unfinished synthetic corpus of generator version "
            f"{pending.get('generator_version')} with seed {pending.get('seed')}, not version "
            f"{GENERATOR_VERSION} with seed {seed}; use another directory or delete it"
        )


def _write_json(path: pathlib.Path, content: Mapping[str, Any]) -> None:
    text = json.dumps(content, indent=2, sort_keys=True) + "\n"
    artifacts.write_text_atomic(path, text)


def _remove_leftovers(out_dir: pathlib.Path) -> None:
    """Delete temporary files that an interrupted run left behind."""
    for actor_dir in out_dir.glob("Actor_[0-9][0-9]"):
        for path in actor_dir.iterdir():
            if _PART_RE.match(path.name):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


def _marker(
    seed: int, speakers: int, table: Sequence[Speaker], count: int, espeak: str
) -> dict[str, Any]:
    """The completion marker's content (deterministic: no timestamps)."""
    return {
        "generator": "reslstm_jax.corpora.synthetic",
        "generator_version": GENERATOR_VERSION,
        "synthetic": True,
        "description": (
            "SYNTHETIC emotional speech in the RAVDESS speech audio-only layout, created by "
            "eSpeak NG (GPL-3.0) with emotions rendered through prosody only. For smoke tests and "
            "demos; results on it say nothing about real emotion recognition."
        ),
        "synthesizer": f"eSpeak NG {espeak}",
        "seed": seed,
        "speakers": speakers,
        "actors": [f"{speaker.actor:02d}" for speaker in table],
        "file_count": count,
        "sample_rate": SAMPLE_RATE,
        "format": "WAV, 16-bit PCM, mono",
        "emotions": {f"{code:02d}": name for code, name in EMOTIONS.items()},
        "statements": {f"{code:02d}": text for code, text in STATEMENTS.items()},
        "voice_settings": [dataclasses.asdict(speaker) for speaker in table],
        "prosody": {
            "emotions": {name: dataclasses.asdict(p) for name, p in EMOTION_PROSODY.items()},
            "strong_factor": STRONG_FACTOR,
            "jitter": dataclasses.asdict(JITTER),
            "style": dataclasses.asdict(STYLE),
        },
    }


def generate(
    out_dir: str | os.PathLike,
    *,
    speakers: int = MAX_SPEAKERS,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> pathlib.Path:
    """Generate the synthetic corpus in `out_dir`, or complete an interrupted generation.

    Files already present are kept (each file appears only once complete); the completion
    marker ``synthetic_corpus.json`` is written when every file exists.

    Args:
      out_dir: corpus directory (created if needed).
      speakers: number of actors, 1..24 (the first N actors; 4 for quick tests).
      seed: corpus seed; equal seeds give byte-identical files.
      workers: worker processes (default: os.cpu_count()); never changes the output.
      progress: show a tqdm progress bar on stderr.

    Returns:
      the corpus directory.

    Raises:
      SyntheticUnavailable: espeakng-loader (eSpeak NG) is not installed.
      ValueError: bad arguments, or `out_dir` holds a corpus with another seed, speaker count
        or generator version.
      RuntimeError: eSpeak NG failed.
    """
    _check_speakers(speakers)
    _check_seed(seed)
    if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
        raise ValueError(f"workers must be >= 1, got {workers!r}")
    out = pathlib.Path(out_dir).expanduser()
    _check_compatible(out, seed=seed, speakers=speakers)
    engine = _ESpeak()  # fails early, in the caller's process, when eSpeak NG is missing
    table = speaker_table(seed)[:speakers]
    for speaker in table:
        if not engine.variant_exists(speaker.voice):
            raise SyntheticUnavailable(f"eSpeak NG data lacks the voice variant {speaker.voice}")

    out.mkdir(parents=True, exist_ok=True)
    if not (out / MARKER_NAME).exists():
        pending = {"generator_version": GENERATOR_VERSION, "seed": seed, "speakers": speakers}
        _write_json(out / PENDING_NAME, pending)
    _remove_leftovers(out)
    files = corpus_files(speakers)
    jobs = []
    for relative, emotion, intensity, statement, repetition, actor in files:
        path = out / relative
        if path.exists():
            continue
        path.parent.mkdir(exist_ok=True)
        plan = utterance_plan(seed, table[actor - 1], emotion, intensity, statement, repetition)
        jobs.append((str(path), plan))
    if jobs:
        count = min(workers or os.cpu_count() or 1, len(jobs))
        _run_workers(jobs, count, progress)
    missing = [relative for relative, *_ in files if not (out / relative).exists()]
    if missing:
        raise RuntimeError(f"{len(missing)} files were not generated, e.g. {missing[0]}")
    _write_json(out / MARKER_NAME, _marker(seed, speakers, table, len(files), engine.version()))
    with contextlib.suppress(FileNotFoundError):
        (out / PENDING_NAME).unlink()
    return out


def require_available(out_dir: str | os.PathLike, *, speakers: int = MAX_SPEAKERS,
                      seed: int = 0) -> None:  # fmt: skip
    """Nothing when `out_dir` holds this corpus complete or eSpeak NG can generate it; else
    `SyntheticUnavailable` with the install hint. Lets a command refuse before it writes."""
    marker = read_marker(pathlib.Path(out_dir).expanduser())
    if marker is None or not _is_this_corpus(marker, seed=seed, speakers=speakers):
        _espeakng_loader()


def ensure_corpus(
    out_dir: str | os.PathLike,
    *,
    speakers: int = MAX_SPEAKERS,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> pathlib.Path:
    """The corpus directory, generated or completed first unless it is already complete.

    Returns at once (without needing eSpeak NG) when the completion marker exists with the same
    seed, speaker count and generator version.

    Args:
      out_dir: corpus directory.
      speakers: number of actors, 1..24.
      seed: corpus seed.
      workers: worker processes for a generation (default: os.cpu_count()).
      progress: show a progress bar while generating.

    Returns:
      the corpus directory.

    Raises:
      ValueError: `out_dir` holds a completed corpus with another seed, speaker count or
        generator version (or bad arguments).
      SyntheticUnavailable: a generation is needed and eSpeak NG is not installed.
    """
    _check_speakers(speakers)
    _check_seed(seed)
    out = pathlib.Path(out_dir).expanduser()
    marker = read_marker(out)
    if marker is not None and _is_this_corpus(marker, seed=seed, speakers=speakers):
        return out
    _check_compatible(out, seed=seed, speakers=speakers)  # a different corpus: ValueError
    return generate(out, speakers=speakers, seed=seed, workers=workers, progress=progress)


# --------------------------------------------------------------------------------------------
# Command line


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _speaker_count(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_SPEAKERS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_SPEAKERS}, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reslstm_jax.corpora.synthetic",
        description=(
            "Generate the synthetic emotional-speech corpus (RAVDESS layout, spoken by eSpeak NG; "
            "synthetic speech: for smoke tests and demos, not for real results)."
        ),
    )
    parser.add_argument(
        "--out",
        type=pathlib.Path,
        default=None,
        help=f"output directory (default: {default_dir()})",
    )
    parser.add_argument("--seed", type=_non_negative, default=0, help="corpus seed (default 0)")
    count = parser.add_mutually_exclusive_group()
    count.add_argument(
        "--speakers",
        type=_speaker_count,
        default=MAX_SPEAKERS,
        help=f"number of actors, the first N of {MAX_SPEAKERS} (default {MAX_SPEAKERS})",
    )
    count.add_argument(
        "--small",
        action="store_const",
        dest="speakers",
        const=SMALL_SPEAKERS,
        help=f"{SMALL_SPEAKERS} speakers (actors 01-{SMALL_SPEAKERS:02d}), for tests",
    )
    parser.add_argument(
        "--workers",
        type=_positive,
        default=None,
        help="worker processes (default: all cores)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 when eSpeak NG is missing).

    Args:
      argv: arguments (default: sys.argv[1:]).
    """
    args = _parser().parse_args(argv)
    out = args.out if args.out is not None else default_dir()
    try:
        path = generate(
            out,
            speakers=args.speakers,
            seed=args.seed,
            workers=args.workers,
            progress=not args.no_progress,
        )
    except (SyntheticUnavailable, ValueError) as error:
        # Missing optional dependency or a directory holding another corpus: a usage problem.
        print(f"error: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
