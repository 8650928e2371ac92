"""A corpus of your own: a CSV, TSV or JSON Lines file that lists its utterances.

```bash
python -m reslstm_jax.train --corpus manifest --data-dir ~/lab/my_lab.csv --out runs/lab
```
```text
file,emotion,speaker,gender
clips/s01_a.wav,happy,s01,f
/data/other/s02_b.flac,angry,s02,m
```
One row per utterance. Columns (the first name of each, or the others in brackets):
`file` (path, wav), `emotion` (label, emo) and `speaker` (spk, actor) are required; `fold`
(the fold in which the row is tested; every fold trains on the others) or `split`
(train/val/test: one fixed partition), `gender` (m/f, male/female), `id`, and `start` and
`end` (start_time, end_time: seconds, for a segment of a longer recording; a row without them
is its whole file) are optional.
Paths are relative to the manifest's folder, or absolute; labels are any strings (the classes
are the sorted set found). The corpus is named after the file's stem (`my_lab.csv` ->
`my_lab`) wherever a corpus name appears, and its utterance hash tells two manifests of one
name apart. Without `fold` or `split` the run uses `speaker_kfold` (5 folds of whole
speakers); with one of them, `given`.

A bad row is named and left out, the rest used: a missing file, an empty file, label or
speaker, a row repeating another's file (or segment), a segment that is not
0 <= start < end or ends after its file; each goes to skipped.csv with its row number and
file (`row 7: /data/x.wav,no such file`), and one line sums them up. A missing column, an
unknown suffix or no usable row stops the command in one line. A segment's utterance id,
without an `id` column, is its file's stem with its times (`dialog3_12.5-15.25`).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import pathlib
from collections import Counter

from reslstm_jax.corpora.base import (
    CorpusError,
    Manifest,
    Skipped,
    Utterance,
    check_wav,
    drop_duplicates,
    labelled,
    parse_segment,
    seconds,
)

NAME = "manifest"
CLASSES: tuple[str, ...] = ()  # each manifest's own: the sorted set of its labels
EXPECTED = None
OPTIONS = (
    "name",
    "classes",
)  # `corpora.load`'s options this loader takes  # no published counts to compare with
DEFAULT_PROTOCOL = "speaker_kfold"  # `given` when the rows name their folds (`default_for`)
SHARED4 = None  # the labels named neutral, happy, angry and sad are the shared four
SUFFIXES = {".csv": ",", ".tsv": "\t", ".jsonl": None, ".json": None}
COLUMNS = {
    "file": ("file", "path", "wav"),
    "emotion": ("emotion", "label", "emo"),
    "speaker": ("speaker", "spk", "actor"),
    "fold": ("fold",),
    "split": ("split",),
    "gender": ("gender",),
    "id": ("id",),
    "start": ("start", "start_time"),
    "end": ("end", "end_time"),
}
REQUIRED = ("file", "emotion", "speaker")
SPLITS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "dev": "val",
          "test": "test"}  # fmt: skip
GENDERS = {"m": "m", "male": "m", "f": "f", "female": "f"}


def default_for(manifest: Manifest) -> str:
    """The protocol a manifest's run uses unless told: `given` when its rows name their fold or
    split, else `speaker_kfold`."""
    given = any("fold" in u.extra or "split" in u.extra for u in manifest.utterances)
    return "given" if given else DEFAULT_PROTOCOL


def load(path: str | os.PathLike, *, name: str | None = None,
         classes: tuple[str, ...] | None = None) -> Manifest:  # fmt: skip
    """The utterances a manifest file lists (see the module docstring): the corpus named
    `name` (default: the file's stem), the classes in the order `classes` gives (default:
    the sorted labels found; a row of another label is left out). CorpusError (one line,
    naming the file) for a file that cannot be used at all."""
    path = pathlib.Path(path).expanduser()
    if path.is_dir():
        raise CorpusError(f"manifest: {path} is a folder; --data-dir names the manifest file "
                          f"(.csv, .tsv or .jsonl)")  # fmt: skip
    if path.suffix.lower() not in SUFFIXES:
        raise CorpusError(f"manifest: {path} must end in .csv, .tsv or .jsonl")
    if not path.is_file():
        raise CorpusError(f"manifest: {path} does not exist")
    path = path.resolve()
    rows = _rows(path)
    columns = _columns(path, rows)
    corpus = name or path.stem
    utterances, skipped, seen = [], [], {}
    for number, row in enumerate(rows, start=1):
        result = _utterance(path, corpus, number, row, columns, seen)
        if isinstance(result, Skipped):
            skipped.append(result)
        else:
            utterances.append(result)
    if not utterances:
        reasons = Counter(s.reason for s in skipped)
        raise CorpusError(f"manifest {path}: no usable row ({len(rows)} rows; "
                          f"{', '.join(f'{n} {r}' for r, n in reasons.items())})")  # fmt: skip
    if classes:
        skipped += [Skipped(u.path, "not one of --classes") for u in utterances
                    if u.emotion not in classes]  # fmt: skip
        utterances = [u for u in utterances if u.emotion in classes]
        if not utterances:
            raise CorpusError(
                f"manifest {path}: no row has one of the classes {', '.join(classes)}"
            )
    classes = tuple(classes) if classes else tuple(sorted({u.emotion for u in utterances}))
    utterances = [labelled(u, classes) for u in _unique_ids(utterances, path.parent)]
    kept, duplicates = drop_duplicates(utterances)
    return Manifest(corpus=corpus, root=str(path), classes=classes, utterances=kept,
                    skipped=sorted([*skipped, *duplicates], key=lambda s: s.path))  # fmt: skip


def _rows(path: pathlib.Path) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"manifest {path}: cannot be read ({exc})") from None
    delimiter = SUFFIXES[path.suffix.lower()]
    if delimiter is not None:
        return [dict(r) for r in csv.DictReader(text.splitlines(), delimiter=delimiter)]
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise CorpusError(f"manifest {path}: line {number} is not JSON") from None
        if not isinstance(row, dict):
            raise CorpusError(f"manifest {path}: line {number} is not a JSON object")
        rows.append({k: "" if v is None else str(v) for k, v in row.items()})
    return rows


def _columns(path: pathlib.Path, rows: list[dict]) -> dict[str, str]:
    """{our column: its name in the file}, the required ones checked."""
    present = {str(k).strip().lower(): k for row in rows[:1] for k in row if k is not None}
    found = {}
    for column, names in COLUMNS.items():
        for alias in names:
            if alias in present:
                found[column] = present[alias]
                break
    if ("start" in found) != ("end" in found):
        raise CorpusError(f"manifest {path}: a segment needs both start and end columns")
    missing = [c for c in REQUIRED if c not in found]
    if not rows or missing:
        what = (
            "no rows" if not rows else f"no {missing[0]} column ({', '.join(COLUMNS[missing[0]])})"
        )
        raise CorpusError(f"manifest {path}: {what}")
    return found


def _utterance(path, corpus, number, row, columns, seen) -> Utterance | Skipped:
    """A row as an utterance, or why it is left out (`row N: ...`)."""

    def value(column: str) -> str:
        return (row.get(columns[column]) or "").strip() if column in columns else ""

    where = value("file")
    if not where:
        return Skipped(f"row {number}", "no file")
    audio = (path.parent / where).resolve() if not os.path.isabs(where) else pathlib.Path(where)
    shown = f"row {number}: {audio}"  # skipped.csv names the row and its file
    segment = parse_segment(value("start"), value("end")) if "start" in columns else None
    if isinstance(segment, str):
        return Skipped(shown, segment)
    if segment is not None:
        shown += f" {seconds(segment[0])}-{seconds(segment[1])} s"
    key = (str(audio), segment)
    if key in seen:
        what = "segment" if segment else "file"
        return Skipped(f"{shown} (as row {seen[key]})", f"repeats an earlier row's {what}")
    seen[key] = number
    for column in ("emotion", "speaker"):
        if not value(column):
            return Skipped(shown, f"no {column}")
    if not audio.is_file():
        return Skipped(shown, "no such file")
    if audio.stat().st_size == 0 or (audio.suffix.lower() == ".wav" and check_wav(audio)):
        return Skipped(shown, check_wav(audio) or "empty file")
    if segment is not None and (problem := _outside(audio, segment)):
        return Skipped(shown, problem)
    extra = {c: value(c) for c in ("fold", "split") if value(c)}
    if "split" in extra:
        if extra["split"].lower() not in SPLITS:
            return Skipped(shown, "split is not train, val or test")
        extra["split"] = SPLITS[extra["split"].lower()]
    return Utterance(id=value("id"), path=str(audio), corpus=corpus, speaker=value("speaker"),
                     label=-1, emotion=value("emotion"),
                     gender=GENDERS.get(value("gender").lower()), extra=extra,
                     segment=segment)  # fmt: skip


def _outside(audio: pathlib.Path, segment: tuple[float, float]) -> str | None:
    """Why a segment cannot be read from its file (it ends after it), or None. The header
    only: the audio itself is read when features are extracted."""
    import soundfile

    try:
        duration = soundfile.info(audio).duration
    except Exception:  # soundfile raises several types for undecodable files
        return "unreadable audio"
    # an end written to the millisecond may round past the last sample (`audio.load_audio`)
    if segment[1] > duration + 1e-3:
        return f"segment ends after its file ({seconds(duration)} s)"
    return None


def _unique_ids(utterances: list[Utterance], folder: pathlib.Path) -> list[Utterance]:
    """Each utterance's id: its `id`, else its file's stem, else (stems of different files)
    its path relative to the manifest's folder; a segment's with its times appended."""
    stems = Counter(pathlib.Path(path).stem for path in {u.path for u in utterances if not u.id})
    out = []
    for u in utterances:
        if u.id:
            out.append(u)
            continue
        file = pathlib.Path(u.path)
        uid = file.stem
        if stems[uid] > 1:
            try:
                uid = file.relative_to(folder).with_suffix("").as_posix()
            except ValueError:
                uid = file.with_suffix("").as_posix()
        if u.segment is not None:
            uid += f"_{seconds(u.segment[0])}-{seconds(u.segment[1])}"
        out.append(dataclasses.replace(u, id=uid))
    return out
