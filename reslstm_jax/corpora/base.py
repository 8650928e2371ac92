"""What every corpus loader shares: the manifest record, file checks, count comparison.

A loader turns a directory into a `Manifest`: one `Utterance` per usable file, sorted by
utterance id (never by directory-listing order), plus every file it did not use with the
reason (`skipped`), and a comparison of what it found with the corpus's expected counts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import pathlib
import struct
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping

LFS_POINTER_PREFIX = b"version https://git-lfs"


class CorpusError(ValueError):
    """A corpus cannot be loaded at all (missing root, no usable file, conflicting copies)."""


class CorpusCountWarning(UserWarning):
    """What a loader found differs from the corpus's expected counts."""


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One utterance of a corpus.

    Attributes:
      id: corpus-unique utterance id (the file stem, or IEMOCAP's utterance id).
      path: absolute path of the audio file.
      corpus: corpus name ("ravdess", ...).
      speaker: speaker id as a string, unique within the corpus ("01", "Ses01F", "DC", ...).
      label: class index into `Manifest.classes`.
      emotion: class name (`Manifest.classes[label]`).
      gender: "m", "f", or None when the corpus does not say.
      extra: corpus fields (intensity, statement, repetition, session, text, ...), as strings.
      segment: (start, end) in seconds when the utterance is a segment of a longer recording
        (a manifest's `start`/`end`, EmoBox's `start_time`/`end_time`); None: the whole file.
        What is read is `audio_source(u)`.
    """

    id: str
    path: str
    corpus: str
    speaker: str
    label: int
    emotion: str
    gender: str | None = None
    extra: Mapping[str, str] = dataclasses.field(default_factory=dict)
    segment: tuple[float, float] | None = None


# A segment of a file is named as Media Fragments URIs name a time range (`#t=start,end`, in
# seconds): one string travels through the feature workers, the cache and the reports.
SEGMENT = "#t="


def seconds(value: float) -> str:
    """Seconds as written in a source name: to the microsecond, no trailing zeros."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


def audio_source(u: Utterance) -> str:
    """What is read for `u`: its file's path, or `PATH#t=START,END` for a segment."""
    if u.segment is None:
        return u.path
    start, end = u.segment
    return f"{u.path}{SEGMENT}{seconds(start)},{seconds(end)}"


def parse_segment(start, end, names: str = "start and end") -> tuple[float, float] | str | None:
    """A listed segment's (start, end) in seconds (strings or numbers, as a manifest or EmoBox
    lists them); None when both are empty or absent (the whole file); else the reason it is
    not one (`names`: how the listing calls the two)."""
    if start in (None, "") and end in (None, ""):
        return None
    try:
        times = float(start), float(end)
    except (TypeError, ValueError):
        return f"{names} are not both seconds"
    if not (math.isfinite(times[1]) and 0 <= times[0] < times[1]):
        return "segment is not 0 <= start < end"
    return times


def split_source(source: str | os.PathLike) -> tuple[str, tuple[float, float] | None]:
    """(the file's path, its (start, end) segment or None) of an `audio_source` string."""
    text = str(source)
    head, sep, tail = text.rpartition(SEGMENT)
    if sep:
        start, _, end = tail.partition(",")
        try:
            return head, (float(start), float(end))
        except ValueError:
            pass
    return text, None


def source_sha256(source: str | os.PathLike) -> str:
    """Hex SHA-256 naming what `source` reads: the file's content, and the segment if any."""
    path, segment = split_source(source)
    digest = file_sha256(path)
    if segment is None:
        return digest
    return hashlib.sha256(f"{digest}{SEGMENT}{seconds(segment[0])},{seconds(segment[1])}"
                          .encode()).hexdigest()  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A file the loader did not use, and why (one short phrase)."""

    path: str
    reason: str


@dataclasses.dataclass(frozen=True)
class ExpectedCounts:
    """A corpus's published counts (its paper and distribution; docs/data.md lists them).
    None = not checked."""

    total: int
    per_class: Mapping[str, int]
    per_speaker: Mapping[str, int] | None = None


@dataclasses.dataclass
class Manifest:
    """The utterances of one corpus, as found on disk.

    Attributes:
      corpus: corpus name.
      root: the directory that was scanned.
      classes: class names; `Utterance.label` indexes this tuple. Fixed per corpus.
      utterances: sorted by id.
      skipped: files not used, with reasons (song/video files, stray files, bad audio, ...).
      count_differences: how the utterances differ from the expected counts ([] = exact).
      source: where a generated corpus came from (generator, version, seed; `synthetic`),
        empty for a recorded one. It enters the protocol card and its utterance hash.
    """

    corpus: str
    root: str
    classes: tuple[str, ...]
    utterances: list[Utterance]
    skipped: list[Skipped] = dataclasses.field(default_factory=list)
    count_differences: list[str] = dataclasses.field(default_factory=list)
    source: dict = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.utterances)

    @property
    def ids(self) -> list[str]:
        return [u.id for u in self.utterances]

    @property
    def speakers(self) -> list[str]:
        """Distinct speakers, sorted."""
        return sorted({u.speaker for u in self.utterances})

    @property
    def labels(self) -> list[int]:
        return [u.label for u in self.utterances]

    def skipped_by_reason(self) -> dict[str, int]:
        """How many files were skipped for each reason."""
        return dict(sorted(Counter(s.reason for s in self.skipped).items()))

    def skipped_line(self, where) -> str | None:
        """One log line: how many files were not used, by kind of reason (the phrase before a
        ":"), and `where` the full list is; None when every file was used."""
        if not self.skipped:
            return None
        kinds = Counter(s.reason.split(":")[0] for s in self.skipped)
        by_kind = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        return (f"{len(self.skipped)} file(s) under {self.root} not used ({by_kind}); each "
                f"file and its reason: {where}")  # fmt: skip

    def summary(self) -> str:
        """A few human-readable lines: counts per class and speaker, skipped files."""
        per_class = Counter(u.emotion for u in self.utterances)
        lines = [
            f"{self.corpus}: {len(self)} utterances, {len(self.speakers)} speakers, "
            f"{len(self.classes)} classes ({self.root})",
            "  per class: " + ", ".join(f"{c} {per_class.get(c, 0)}" for c in self.classes),
        ]
        if self.skipped:
            lines.append(
                "  skipped: "
                + ", ".join(f"{n} {reason}" for reason, n in self.skipped_by_reason().items())
            )
        lines += [f"  differs from expected: {d}" for d in self.count_differences]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- files


def walk_files(root: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Every regular file under `root`, recursively, in sorted order (symlinks followed).

    Hidden directories (`.git`, whose LFS store mirrors a CREMA-D clone) and macOS's
    `__MACOSX` zip litter are not entered.
    """
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
        for name in sorted(filenames):
            yield pathlib.Path(dirpath) / name


def is_hidden(path: pathlib.Path) -> bool:
    """macOS litter and hidden files: `.DS_Store`, `._*` AppleDouble, dotfiles."""
    return path.name.startswith(".")


def check_wav(path: str | os.PathLike) -> str | None:
    """A cheap structural check of a WAV file; returns why it is unusable, or None.

    Reads only the RIFF chunk headers: empty files, Git LFS pointers (a clone without
    `git lfs pull`), files that are not RIFF/WAVE, and files shorter than their `data` chunk
    declares (truncated downloads). Decoding problems are found by feature extraction.
    """
    path = pathlib.Path(path)
    size = path.stat().st_size
    if size == 0:
        return "empty file"
    with open(path, "rb") as f:
        head = f.read(12)
        if head.startswith(LFS_POINTER_PREFIX[:12]):
            return "Git LFS pointer, not audio (fetch it with `git lfs pull`)"
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return "not a RIFF/WAVE file"
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return "truncated: no data chunk"
            chunk_id, chunk_size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if chunk_id == b"data":
                available = size - f.tell()
                if available < chunk_size:
                    # A fixed phrase, so that skipped files group by reason.
                    return "truncated: the header declares more audio than the file holds"
                if chunk_size == 0:
                    return "no audio samples"
                return None
            f.seek(chunk_size + (chunk_size & 1), os.SEEK_CUR)


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def labelled(u: Utterance, classes: tuple[str, ...]) -> Utterance:
    """`u` with its label: the index of its emotion in `classes` (corpora whose classes are
    the labels found: a manifest, an EmoBox dataset)."""
    return dataclasses.replace(u, label=classes.index(u.emotion))


def drop_duplicates(
    utterances: Iterable[Utterance],
) -> tuple[list[Utterance], list[Skipped]]:
    """One utterance per id, sorted by id.

    Mirrors (the Kaggle RAVDESS zip holds every actor twice, under two nestings) are dropped
    when their content is identical; two *different* files with the same id are an error,
    since either could be the real one.
    """
    by_id: dict[str, Utterance] = {}
    skipped = []
    for utt in sorted(utterances, key=lambda u: (u.id, u.path)):
        kept = by_id.get(utt.id)
        if kept is None:
            by_id[utt.id] = utt
        elif source_sha256(audio_source(kept)) == source_sha256(audio_source(utt)):
            skipped.append(Skipped(audio_source(utt), "duplicate copy"))
        else:
            raise CorpusError(
                f"{utt.corpus}: two different files for utterance {utt.id}: "
                f"{audio_source(kept)} and {audio_source(utt)}; remove one"
            )
    return list(by_id.values()), skipped


# ----------------------------------------------------------------------------- counts


def compare_counts(utterances: list[Utterance], expected: ExpectedCounts) -> tuple[list[str], bool]:
    """Differences between found and expected counts, and whether the found set is a subset.

    Returns:
      (differences, subset): one line per differing count (total, each class, each speaker),
      and True when nothing exceeds its expected count (a partial copy of the corpus).
    """
    differences = []
    subset = True

    def check(what: str, found: int, wanted: int) -> None:
        nonlocal subset
        if found != wanted:
            differences.append(f"{what}: found {found}, expected {wanted}")
            subset = subset and found < wanted

    check("total", len(utterances), expected.total)
    per_class = Counter(u.emotion for u in utterances)
    for name in sorted(set(expected.per_class) | set(per_class)):
        check(f"class {name}", per_class.get(name, 0), expected.per_class.get(name, 0))
    if expected.per_speaker is not None:
        per_speaker = Counter(u.speaker for u in utterances)
        for name in sorted(set(expected.per_speaker) | set(per_speaker)):
            check(f"speaker {name}", per_speaker.get(name, 0), expected.per_speaker.get(name, 0))
    return differences, subset


def finish(
    corpus: str,
    root: str | os.PathLike,
    classes: tuple[str, ...],
    utterances: Iterable[Utterance],
    skipped: list[Skipped],
    expected: ExpectedCounts | None,
) -> Manifest:
    """Deduplicate, sort, compare with the expected counts (warning on any difference; None:
    no published counts for this selection)."""
    kept, duplicates = drop_duplicates(utterances)
    if not kept:
        reasons = Counter(s.reason for s in skipped)
        detail = f" (skipped: {dict(reasons)})" if reasons else ""
        raise CorpusError(f"{corpus}: no usable utterance under {root}{detail}")
    differences, subset = compare_counts(kept, expected) if expected else ([], True)
    manifest = Manifest(
        corpus=corpus,
        root=str(root),
        classes=classes,
        utterances=kept,
        skipped=sorted([*skipped, *duplicates], key=lambda s: s.path),
        count_differences=differences,
    )
    if differences:
        kind = "is a subset of" if subset else "does not match"
        shown = "; ".join(differences[:8]) + ("; ..." if len(differences) > 8 else "")
        warnings.warn(
            f"{corpus} under {root} {kind} the published corpus "
            f"({len(differences)} counts differ): {shown}",
            CorpusCountWarning,
            stacklevel=3,
        )
    return manifest


def collect(
    corpus: str,
    root: pathlib.Path,
    classes: tuple[str, ...],
    expected: ExpectedCounts,
    parse: Callable[[pathlib.Path], Utterance | str],
    *,
    paths: Iterable[pathlib.Path] | None = None,
    skipped: Iterable[Skipped] = (),
) -> Manifest:
    """`parse` every file under `root` (or `paths`) into an utterance or a skip reason, then
    `finish`. The loop every file-per-utterance corpus loader shares; hidden files are
    skipped here, before `parse`, and the WAV header of every parsed file is checked after."""
    utterances: list[Utterance] = []
    skips = list(skipped)
    for path in walk_files(root) if paths is None else paths:
        # macOS litter is skipped the same way in every corpus, before its name is parsed;
        # a file whose name parses still needs a sound WAV header.
        result = "hidden file" if is_hidden(path) else parse(path)
        if isinstance(result, Utterance):
            result = check_wav(path) or result
        if isinstance(result, Utterance):
            utterances.append(result)
        else:
            skips.append(Skipped(str(path), result))
    return finish(corpus, root, classes, utterances, skips, expected)


def require_root(corpus: str, root: str | os.PathLike) -> pathlib.Path:
    """The corpus root as a Path, or a CorpusError naming it."""
    path = pathlib.Path(root).expanduser()
    if not path.is_dir():
        raise CorpusError(f"{corpus}: data directory {root} does not exist or is not a directory")
    return path.resolve()
