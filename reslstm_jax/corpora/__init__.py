"""Corpus loaders: a directory in, a `Manifest` (one record per utterance) out.

```python
manifest = reslstm_jax.corpora.load("ravdess", "~/data/RAVDESS")
```
One module per corpus, declaring all it knows: `CLASSES` (the fixed label map), `EXPECTED` (the
published counts), `DEFAULT_PROTOCOL` (the name of the protocol a run uses unless told),
`SHARED4` (its classes in the four-emotion set every corpus shares) and `load(root) ->
Manifest`, and a generated corpus its `LAYOUT` (`synthetic`, in `synthetic_speech.py`:
RAVDESS's). A loader that takes options names them in `OPTIONS` (a manifest's `name` and
`classes`, EmoBox's `audio_root`); one whose `CLASSES` are a selection of the corpus's labels
offers all of them as `RAW_CLASSES` (`load(root, raw=True)`: IEMOCAP's ten). `CORPORA` is the
only list of them the command lines read: adding a corpus is a module and a line there
(docs/architecture.md). Conventions and counts: docs/data.md.
"""

from __future__ import annotations

import importlib
import os

from reslstm_jax.corpora.base import (
    CorpusCountWarning,
    CorpusError,
    ExpectedCounts,
    Manifest,
    Skipped,
    Utterance,
)

CORPORA = ("ravdess", "emodb", "iemocap", "cremad", "tess", "savee", "synthetic", "manifest",
           "emobox")  # fmt: skip
# The corpora whose classes are fixed and published (a manifest's and an EmoBox dataset's are
# their own).
KNOWN = CORPORA[:-2]
# The loader module of each corpus, where it is not the corpus's name (`corpora.synthetic` is
# the generator; its corpus loader is `synthetic_speech`).
_MODULES = {"synthetic": "synthetic_speech"}


def names() -> list[str]:
    return list(CORPORA)


def module(name: str):
    """The loader module of corpus `name`."""
    if name not in CORPORA:
        raise CorpusError(f"unknown corpus {name!r}; known corpora: {', '.join(CORPORA)}")
    return importlib.import_module(f"reslstm_jax.corpora.{_MODULES.get(name, name)}")


def layout(name: str) -> str:
    """The corpus whose file names, classes and protocols corpus `name` follows (itself for a
    recorded corpus; `ravdess` for the synthetic one)."""
    return getattr(module(name), "LAYOUT", name)


def default_protocol(name: str, manifest: Manifest | None = None) -> str:
    """The name of the protocol a run on corpus `name` uses unless told (the module's; a
    manifest's depends on its rows: `corpora.manifest.default_for`)."""
    found = module(name)
    if manifest is not None and hasattr(found, "default_for"):
        return found.default_for(manifest)
    return found.DEFAULT_PROTOCOL


def shared4(name: str) -> dict[str, str]:
    """{class of corpus `name`: its class in the shared four-emotion set} (the module's)."""
    return dict(module(name).SHARED4)


# The command-line flag of each loader option, for the one-line errors.
OPTION_FLAGS = {"name": "--corpus-name", "classes": "--classes", "audio_root": "--audio-root",
                "raw": "--raw-labels"}  # fmt: skip


def load(corpus: str, root: str | os.PathLike, **options) -> Manifest:
    """Scan `root` for `corpus` and return its manifest (warns on count differences).

    `options` (None or empty: not given): those the loader names in `OPTIONS` (a manifest's
    `name` and `classes`, EmoBox's `audio_root`), CorpusError naming the flag for another;
    `raw=True`: every label of the corpus (`RAW_CLASSES`) rather than its class set, where the
    loader selects one (IEMOCAP); a corpus whose classes are all its labels is read as is.
    """
    found = module(corpus)
    options = {k: v for k, v in options.items() if v}
    raw = options.pop("raw", False)
    wrong = sorted(set(options) - set(getattr(found, "OPTIONS", ())))
    if wrong:
        takers = [n for n in CORPORA if set(wrong) <= set(getattr(module(n), "OPTIONS", ()))]
        flags = " and ".join(OPTION_FLAGS.get(k, k) for k in wrong)
        raise CorpusError(f"{flags} appl{'ies' if len(wrong) == 1 else 'y'} to "
                          f"{' or '.join(takers) or 'no one corpus'}, not {corpus}")  # fmt: skip
    if raw and hasattr(found, "RAW_CLASSES"):
        options["raw"] = True
    return found.load(root, **options)


def raw_classes(name: str) -> tuple[str, ...]:
    """Every label of corpus `name` (`load(..., raw=True)`'s classes): its `RAW_CLASSES`, or its
    `CLASSES` where those are all of them."""
    found = module(name)
    return tuple(getattr(found, "RAW_CLASSES", found.CLASSES))


__all__ = [
    "CORPORA",
    "CorpusCountWarning",
    "CorpusError",
    "ExpectedCounts",
    "Manifest",
    "Skipped",
    "Utterance",
    "layout",
    "load",
    "module",
    "names",
    "raw_classes",
]
