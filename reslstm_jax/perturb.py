"""Audio-level augmentation: speed perturbation and additive noise at a signal-to-noise ratio.

```python
extractor = features.get("perturbed", base="mfcc_chroma", speed=0.9)   # or snr_db=20.0
extractor(path)           # mfcc_chroma's features of the file played 0.9 times as fast
```

`Perturbed` is a feature extractor like the others (registered in `features.EXTRACTORS`), so
its features go through the same cache, keyed by its parameters (base extractor, its
parameters, speed, SNR): each variant of a corpus is extracted once per machine.
`reslstm_jax.data.prepare(audio_variants=...)` adds them as extra training rows, only of the
utterances a fold trains on (`data.build`): never of validation or test utterances.

* Speed perturbation (Ko et al. 2015, Kaldi's `sox speed`): the samples are read as if
  recorded at `speed` x the file's rate, then resampled back to it (soxr, as `load_audio`):
  duration / speed, pitch and tempo x speed.
* Additive white Gaussian noise at `snr_db`: noise power = mean signal power / 10^(SNR / 10),
  drawn from a generator seeded by the file's content hash and the variant, so the same file
  gets the same noise on every machine and in every run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import pathlib
import tempfile
from typing import ClassVar

import numpy as np

from reslstm_jax.extractors import one_blas_thread

SPEED_RANGE = (0.5, 2.0)  # beyond it speech is no longer speech; 1.0 is no perturbation


def variant_name(speed: float = 1.0, snr_db: float | None = None) -> str:
    """A variant's short name: "speed0.9", "snr20", "speed1.1+snr10"."""
    parts = [f"speed{speed:g}"] if speed != 1.0 else []
    if snr_db is not None:
        parts.append(f"snr{snr_db:g}")
    return "+".join(parts) or "original"


def speed_problem(speed) -> str | None:
    """Why `speed` cannot be a speed perturbation factor, or None."""
    low, high = SPEED_RANGE
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not math.isfinite(speed):
        return f"must be a number, got {speed!r}"
    if not low <= speed <= high or speed == 1.0:
        return f"must be in [{low}, {high}] and not 1, got {speed:g}"
    return None


# SNRs a float32 signal can carry: float32 audio holds 24 bits (about 144 dB), so noise more
# than 140 dB below the speech rounds away (the copy is the original), and speech 140 dB below
# the noise likewise (the copy is noise). Beyond +-3083 dB the power ratio overflows float64.
SNR_RANGE = (-140.0, 140.0)


def snr_problem(snr_db) -> str | None:
    """Why `snr_db` cannot be a noise SNR in dB, or None."""
    if isinstance(snr_db, bool) or not isinstance(snr_db, int | float) or not math.isfinite(snr_db):
        return f"must be a finite number of dB, got {snr_db!r}"
    low, high = SNR_RANGE
    if not low <= snr_db <= high:
        return (f"must be in [{low:g}, {high:g}] dB (float32 audio's range), "
                f"got {snr_db:g}")  # fmt: skip
    return None


class VariantError(ValueError):
    """A bad speed or SNR: `key` ("speed" or "snr_db") and the `problem`."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"{key} {problem}")
        self.key, self.problem = key, problem


def variants(speeds=(), snrs_db=()) -> list[dict]:
    """The audio variants of `data.prepare(audio_variants=...)`: one per speed, one per SNR
    (`[{"speed": 0.9}, {"snr_db": 20.0}]`); `VariantError` for a bad or repeated value."""
    out = []
    for key, values, problem in (("speed", speeds, speed_problem), ("snr_db", snrs_db,
                                                                     snr_problem)):  # fmt: skip
        for value in values:
            if message := problem(value):
                raise VariantError(key, message)
            if {key: float(value)} in out:
                raise VariantError(key, f"{value:g} is given twice")
            out.append({key: float(value)})
    return out


def speed_perturb(y: np.ndarray, rate: int, speed: float) -> np.ndarray:
    """y [n] float32 played `speed` times as fast: [round(n / speed)] at the same rate."""
    from reslstm_jax.audio import import_librosa

    if speed == 1.0:
        return y
    return import_librosa().resample(y, orig_sr=rate * speed, target_sr=rate, res_type="soxr_hq")


def add_noise(y: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    """y [n] plus white Gaussian noise at `snr_db` dB below its mean power (float32).
    Digital silence (zero power) gets no noise: its SNR is undefined."""
    power = float(np.mean(np.square(y, dtype=np.float64)))
    noise = np.random.default_rng(seed).standard_normal(y.size)
    return (y + math.sqrt(power / 10 ** (snr_db / 10)) * noise).astype(np.float32)


def noise_seed(content_sha256: str, speed: float, snr_db: float) -> int:
    """The noise generator's seed: the file's content hash and the variant."""
    blob = f"{content_sha256}|{speed!r}|{snr_db!r}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little")


@dataclasses.dataclass(frozen=True)
class Perturbed:
    """Features of extractor `base` (with `base_params`, a JSON object) on the perturbed audio.

    The perturbed signal is written to a temporary float WAV at the file's rate and read by
    the base extractor as any file: its resampling, checks and failures apply unchanged.
    """

    name: str = "perturbed"
    base: str = "mfcc_chroma"
    base_params: str = "{}"
    speed: float = 1.0
    snr_db: float | None = None

    # `features.get` leaves these to `__post_init__` (an SNR may be 0 or negative)
    SELF_CHECKED: ClassVar[frozenset] = frozenset({"base", "base_params", "speed", "snr_db"})

    def __post_init__(self):
        from reslstm_jax import features

        if self.base == self.name or self.base not in features.EXTRACTORS:
            raise ValueError(f"perturbed: unknown base extractor {self.base!r}")
        params = json.loads(self.base_params)
        if not isinstance(params, dict):
            raise ValueError(f"perturbed: base_params must be a JSON object, got {params!r}")
        features.get(self.base, **params)  # the base's own parameter checks
        if self.speed == 1.0 and self.snr_db is None:
            raise ValueError("perturbed: give a speed other than 1 or an snr_db")
        if self.speed != 1.0 and (problem := speed_problem(self.speed)):
            raise ValueError(f"perturbed: speed {problem}")
        if self.snr_db is not None and (problem := snr_problem(self.snr_db)):
            raise ValueError(f"perturbed: snr_db {problem}")

    @classmethod
    def of(cls, extractor, speed: float = 1.0, snr_db: float | None = None) -> Perturbed:
        """The variant (`speed`, `snr_db`) of an extractor object."""
        from reslstm_jax import features

        params = json.dumps(features.describe(extractor)["params"], sort_keys=True)
        snr_db = None if snr_db is None else float(snr_db)
        return cls(base=extractor.name, base_params=params, speed=float(speed), snr_db=snr_db)

    @property
    def variant(self) -> str:
        return variant_name(self.speed, self.snr_db)

    @one_blas_thread
    def __call__(self, path):
        import soundfile

        from reslstm_jax import features
        from reslstm_jax.audio import load_audio
        from reslstm_jax.corpora.base import source_sha256

        base = features.get(self.base, **json.loads(self.base_params))
        y, rate = load_audio(path, None, 1)  # `path`: a file, or a segment of one
        y = speed_perturb(y, rate, self.speed)
        if self.snr_db is not None:
            seed = noise_seed(source_sha256(path), self.speed, self.snr_db)
            y = add_noise(y, self.snr_db, seed)
        with tempfile.TemporaryDirectory() as scratch:
            perturbed = pathlib.Path(scratch) / "perturbed.wav"
            soundfile.write(perturbed, y, rate, subtype="FLOAT")
            return base(perturbed)


# ----------------------------------------------------------------------------- variants of a corpus


@dataclasses.dataclass
class AudioVariant:
    """One audio perturbation's features (`reslstm_jax.perturb`) of some utterances.

    Attributes:
      name: "speed0.9", "snr20", ... (`perturb.variant_name`).
      origins: [n] int, the utterances (rows of the manifest) perturbed.
      feats: their features, aligned with `origins`.
      extraction: the extraction report (failed variants are left out, listed there).
    """

    name: str
    origins: np.ndarray
    feats: list
    extraction: object  # features.ExtractionReport


def extract_variants(manifest, protocol: str, extractor, variants: list[dict],
                     **options) -> list[AudioVariant]:  # fmt: skip
    """The audio variants (`{"speed": 0.9}`, `{"snr_db": 20}`, or both in one) of the
    utterances some fold of `protocol` trains on (`manifest`: a corpora Manifest), through
    the feature cache (`features.extract_all`'s `options`). Utterances that only ever
    validate or test are never perturbed."""
    from reslstm_jax import features, protocols
    from reslstm_jax.corpora.base import audio_source

    if not variants:  # every preparation comes here: no folds made again for nothing
        return []
    folds = protocols.make_folds(protocol, manifest)
    trained = np.unique(np.concatenate([f.train for f in folds]))
    out = []
    for variant in variants:
        perturbed = Perturbed.of(extractor, **variant)
        sources = [audio_source(manifest.utterances[i]) for i in trained]
        extraction = features.extract_all(sources, perturbed, **options)
        kept = [i for i, f in enumerate(extraction.features) if f is not None]
        feats = [extraction.features[i] for i in kept]
        out.append(AudioVariant(perturbed.variant, trained[kept].astype(np.int32), feats,
                                extraction.report))  # fmt: skip
    return out
