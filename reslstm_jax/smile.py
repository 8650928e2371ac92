"""openSMILE feature sets as extractors: eGeMAPS and ComParE, low-level descriptors or
functionals (the `opensmile` extra).

```python
features.get("egemaps")                        # [T, 25] eGeMAPSv02 LLDs, 10 ms frames
features.get("egemaps", level="functionals")   # [1, 88] per utterance (a one-frame sequence)
features.get("compare", level="functionals")   # [1, 6373] ComParE 2016
```

Licence: the `opensmile` wheel bundles audEERING's openSMILE binary under the audEERING
Research License (private, research and educational use; no commercial use without a
licence from audEERING). The project does not depend on it: `pip install -e '.[opensmile]'`
opts in (docs/data.md), as the GPL eSpeak NG of the synthetic corpus.

The audio is read as every extractor reads it (`audio.load_audio`: checks, mono,
resampling to `sample_rate`), then given to openSMILE as a signal. The cache key holds the
opensmile version (`versions`).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

LEVELS = ("lld", "functionals")
INSTALL_HINT = (
    "openSMILE features need the opensmile extra: pip install -e '.[opensmile]' "
    "(audEERING Research License: non-commercial use only; docs/data.md)"
)


def available() -> bool:
    """Whether the opensmile package can be imported."""
    import importlib.util

    return importlib.util.find_spec("opensmile") is not None


@dataclasses.dataclass(frozen=True)
class _Smile:
    """An openSMILE feature set (`FEATURE_SET`, an `opensmile.FeatureSet` name) at `level`."""

    name: str = ""
    level: str = "lld"
    sample_rate: int = 16000

    FEATURE_SET: ClassVar[str] = ""
    SELF_CHECKED: ClassVar[frozenset] = frozenset({"level"})

    def __post_init__(self):
        if self.level not in LEVELS:
            raise ValueError(f"{self.name}: level must be one of {', '.join(LEVELS)}, "
                             f"got {self.level!r}")  # fmt: skip
        if not available():
            raise ValueError(f"{self.name}: {INSTALL_HINT}")

    def versions(self) -> dict:
        import opensmile

        return {"opensmile": opensmile.__version__}

    def _smile(self):
        import opensmile

        level = {"lld": opensmile.FeatureLevel.LowLevelDescriptors,
                 "functionals": opensmile.FeatureLevel.Functionals}[self.level]  # fmt: skip
        return opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, self.FEATURE_SET),
                               feature_level=level)  # fmt: skip

    def names(self) -> list[str]:
        """The feature names, in column order."""
        return list(self._smile().feature_names)

    def __call__(self, path) -> np.ndarray:
        from reslstm_jax.audio import load_audio

        # openSMILE's frames are 60 ms (eGeMAPS pitch) at most: shorter audio has no frame
        y, rate = load_audio(path, self.sample_rate, int(0.06 * self.sample_rate))
        return self._smile().process_signal(y, rate).to_numpy(np.float32)


@dataclasses.dataclass(frozen=True)
class Egemaps(_Smile):
    """eGeMAPSv02 (Eyben et al. 2016): 25 LLDs per 10 ms frame, or 88 functionals."""

    name: str = "egemaps"
    FEATURE_SET: ClassVar[str] = "eGeMAPSv02"


@dataclasses.dataclass(frozen=True)
class Compare(_Smile):
    """ComParE 2016: 65 LLDs per 10 ms frame, or 6373 functionals."""

    name: str = "compare"
    FEATURE_SET: ClassVar[str] = "ComParE_2016"
