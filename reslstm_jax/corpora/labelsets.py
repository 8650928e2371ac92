"""Label sets: each corpus's own classes ("native"), or the four emotions every corpus has
("shared4"), so that a model trained on one corpus can be tested on another.

```python
from reslstm_jax.corpora import labelsets
manifest = labelsets.relabel(manifest, "shared4")   # neutral, happy, angry, sad; others left out
```

The mapping (each corpus module's `SHARED4`; docs/protocols.md, "Label sets"): the corpora
name the four emotions differently (EMO-DB's "anger", "happiness", "sadness"; SAVEE's alike;
CREMA-D's "anger"); IEMOCAP's loader has already merged "excited" into "happy" (the 4-class
practice); RAVDESS's "calm" is left out, not merged into neutral (it is acted as its own
emotion); TESS's "pleasant surprise" is left out, not merged into happy. Every other class
is left out: its utterances are listed as skipped with the reason.
"""

from __future__ import annotations

import dataclasses

from reslstm_jax.corpora.base import CorpusError, Manifest, Skipped

LABEL_SETS = ("native", "shared4")
SHARED4 = ("neutral", "happy", "angry", "sad")


def mapping(corpus: str, label_set: str, classes=()) -> dict[str, str] | None:
    """{corpus class: label-set class}, or None for "native" (the corpus's own classes). A
    corpus the project does not know (a manifest's) maps its `classes` named as the four."""
    if label_set not in LABEL_SETS:
        raise CorpusError(f"unknown label set {label_set!r}; label sets: {', '.join(LABEL_SETS)}")
    if label_set == "native":
        return None
    from reslstm_jax import corpora  # the package imports this module's neighbours first

    if corpus in corpora.KNOWN:
        mapped = corpora.module(corpus).SHARED4
    else:
        mapped = {c: c for c in classes if c in SHARED4} or None
    if mapped is None:
        raise CorpusError(f"label set {label_set}: no mapping for corpus {corpus} (its classes "
                          f"name none of {', '.join(SHARED4)})")  # fmt: skip
    return dict(mapped)


def relabel(manifest: Manifest, label_set: str) -> Manifest:
    """`manifest` with the classes of `label_set`: utterances of a class the set leaves out
    move to `skipped` ("not in label set shared4: calm"); the others get the set's label.
    "native" returns `manifest` itself."""
    to = mapping(manifest.corpus, label_set, manifest.classes)
    if to is None:
        return manifest
    kept, skipped = [], list(manifest.skipped)
    for u in manifest.utterances:
        if u.emotion in to:
            target = to[u.emotion]
            kept.append(dataclasses.replace(u, label=SHARED4.index(target), emotion=target))
        else:
            skipped.append(Skipped(u.path, f"not in label set {label_set}: {u.emotion}"))
    return dataclasses.replace(manifest, classes=SHARED4, utterances=kept, skipped=skipped)
