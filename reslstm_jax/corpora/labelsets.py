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
import pathlib

from reslstm_jax import configfile
from reslstm_jax.corpora.base import CorpusError, Manifest, Skipped

LABEL_SETS = ("native", "shared4")
SHARED4 = ("neutral", "happy", "angry", "sad")


def mapping(corpus: str, label_set: str, classes=()) -> dict[str, str] | None:
    """{corpus class: label-set class}, or None for "native" (the corpus's own classes). A
    corpus the project does not know (a manifest's), or a known one whose `classes` a label
    map changed, maps its classes named as the four."""
    if label_set not in LABEL_SETS:
        raise CorpusError(f"unknown label set {label_set!r}; label sets: {', '.join(LABEL_SETS)}")
    if label_set == "native":
        return None
    from reslstm_jax import corpora  # the package imports this module's neighbours first

    known = corpora.module(corpus) if corpus in corpora.KNOWN else None
    if known is not None and (not classes or tuple(classes) == known.CLASSES):
        mapped = known.SHARED4
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


# ----------------------------------------------------------------------------- label maps


def parse_map(text: str) -> dict[str, str | None]:
    """A label map, `old=new` pairs (None: drop the class, written `old=-`), from inline text
    (`excited=happy,calm=neutral,surprised=-`) or a file of such lines or a YAML mapping.
    CorpusError (one line) for text that is neither."""
    path = pathlib.Path(text).expanduser()
    if "=" not in text and path.is_file():
        raw = path.read_text(encoding="utf-8")
        if ":" in raw and "=" not in raw:
            try:
                tree = configfile.read_yaml(raw)
            except configfile.yaml.YAMLError:
                raise CorpusError(f"--label-map {text}: not YAML") from None
            if not isinstance(tree, dict):
                raise CorpusError(f"--label-map {text}: a mapping of old: new labels")
            pairs = [(str(k), "-" if v in (None, "-") else str(v)) for k, v in tree.items()]
        else:
            pairs = [line.split("=", 1) for line in raw.replace(",", "\n").splitlines()
                     if line.strip() and not line.strip().startswith("#")]  # fmt: skip
    else:
        pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    out: dict[str, str | None] = {}
    for pair in pairs:
        if len(pair) != 2 or not pair[0].strip() or not pair[1].strip():
            raise CorpusError(f"--label-map: {'='.join(pair)!r} is not old=new (or old=-)")
        old, new = pair[0].strip(), pair[1].strip()
        if old in out:
            raise CorpusError(f"--label-map: {old} is mapped twice")
        out[old] = None if new == "-" else new
    if not out:
        raise CorpusError(f"--label-map {text!r}: no old=new pair")
    return out


def apply_map(manifest: Manifest, label_map: dict[str, str | None]) -> Manifest:
    """`manifest` with its classes renamed, merged and dropped by `label_map` (classes it does
    not name are kept). Dropped utterances move to `skipped` ("dropped by the label map:
    surprised"). The classes keep the corpus's order (a merged class where its first member
    stood). CorpusError for a map that names a class the corpus does not have."""
    unknown = sorted(set(label_map) - set(manifest.classes))
    if unknown:
        raise CorpusError(f"--label-map: {manifest.corpus} has no class {', '.join(unknown)} "
                          f"(its classes: {', '.join(manifest.classes)})")  # fmt: skip
    renamed = {c: label_map.get(c, c) for c in manifest.classes}
    renamed = {c: None if new in (None, "-") else new for c, new in renamed.items()}
    classes = tuple(dict.fromkeys(n for n in renamed.values() if n is not None))
    if not classes:
        raise CorpusError("--label-map drops every class")
    kept, skipped = [], list(manifest.skipped)
    for u in manifest.utterances:
        target = renamed[u.emotion]
        if target is None:
            skipped.append(Skipped(u.path, f"dropped by the label map: {u.emotion}"))
        else:
            kept.append(dataclasses.replace(u, label=classes.index(target), emotion=target))
    return dataclasses.replace(manifest, classes=classes, utterances=kept, skipped=skipped)
