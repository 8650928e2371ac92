"""The embedded synthetic corpus as a corpus of its own: `synthetic`.

```python
manifest = reslstm_jax.corpora.load("synthetic", synthetic.default_dir())
manifest.corpus      # "synthetic", never "ravdess"
manifest.source      # generator, its version, seed and speakers (from the completion marker)
```

Its files follow RAVDESS's names, classes and actors (`reslstm_jax.corpora.synthetic` renders
them with eSpeak NG), so RAVDESS's protocols apply to it (`LAYOUT`). Everything a run writes
names it `synthetic`: a table made from synthetic speech can never be read, grouped or cited as
a RAVDESS result. Its protocol card's utterance hash covers the generator version and seed as
well as the file names, so it differs from the hash of a real RAVDESS tree with the same names.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections import Counter

from reslstm_jax.corpora import ravdess, synthetic
from reslstm_jax.corpora.base import (
    CorpusError,
    ExpectedCounts,
    Manifest,
    Utterance,
    collect,
    require_root,
    walk_files,
)

NAME = "synthetic"
LAYOUT = "ravdess"  # file names, classes, actors and protocols
DESCRIPTION = "synthetic speech (RAVDESS layout, eSpeak NG)"
CLASSES = ravdess.CLASSES
DEFAULT_PROTOCOL = ravdess.DEFAULT_PROTOCOL  # RAVDESS's actors, so its protocols
SHARED4 = ravdess.SHARED4


def expected_counts(speakers: int) -> ExpectedCounts:
    """The counts of a corpus generated with its first `speakers` actors."""
    files = synthetic.corpus_files(speakers)
    per_class = Counter(CLASSES[emotion - 1] for _, emotion, *_ in files)
    per_speaker = Counter(f"{actor:02d}" for *_, actor in files)
    return ExpectedCounts(total=len(files), per_class=dict(per_class),
                          per_speaker=dict(per_speaker))  # fmt: skip


# The full corpus (24 speakers): RAVDESS's published counts, file for file (tested).
EXPECTED = expected_counts(synthetic.MAX_SPEAKERS)


def _parse(path: pathlib.Path) -> Utterance | str:
    parsed = ravdess.parse(path)
    return dataclasses.replace(parsed, corpus=NAME) if isinstance(parsed, Utterance) else parsed


def load(root: str | os.PathLike) -> Manifest:
    """Scan a generated synthetic corpus (its completion marker names version, seed, speakers).

    Raises:
      CorpusError: the root is missing, or holds no completed synthetic corpus.
    """
    path = require_root(NAME, root)
    marker = synthetic.read_marker(path)
    if marker is None:
        raise CorpusError(
            f"{NAME}: {path} holds no completed synthetic corpus (no {synthetic.MARKER_NAME}); "
            f"generate one with `python -m reslstm_jax.corpora.synthetic --out {path}`"
        )
    speakers = int(marker.get("speakers", synthetic.MAX_SPEAKERS))
    # The generator's own bookkeeping files are not corpus files (nor skipped ones).
    own = {synthetic.MARKER_NAME, synthetic.PENDING_NAME}
    paths = [p for p in walk_files(path) if p.name not in own]
    manifest = collect(NAME, path, CLASSES, expected_counts(speakers), _parse, paths=paths)
    manifest.source = {
        "description": DESCRIPTION,
        "layout": LAYOUT,
        "generator": "reslstm_jax.corpora.synthetic",
        "generator_version": marker.get("generator_version"),
        "seed": marker.get("seed"),
        "speakers": speakers,
    }
    return manifest
