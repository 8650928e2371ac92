"""Every link of the docs leads somewhere, inside the repository: each relative link of
README.md, CHANGELOG.md and docs/*.md names a file of the checkout (never one outside it), and
each `#anchor` a heading of its file as GitHub names headings. Web links are not followed (no
network here). No tracked file refers to a folder beside the checkout, which a user of a clone
does not have."""

from __future__ import annotations

import functools
import pathlib
import re
import subprocess
import sys
import urllib.parse

import pytest
from doc_blocks import REPO, outside_fences

PAGES = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, code marks and punctuation dropped
    (hyphens and underscores kept), each space a hyphen."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())  # a link: its text
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@functools.cache
def anchors(page: pathlib.Path) -> frozenset[str]:
    """The anchors of a page's headings; a repeated heading's get -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for _, line in outside_fences(page.read_text(encoding="utf-8")):
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            found.add(base if count == 0 else f"{base}-{count}")
            seen[base] = count + 1
    return frozenset(found)


def links(page) -> list[tuple[int, str]]:
    """(line number, target) of each inline link of `page` outside code."""
    found = []
    for number, line in outside_fences(page.read_text(encoding="utf-8")):
        prose = re.sub(r"`[^`]*`", "``", line)  # a code span's brackets are code
        found += [(number, m.group(1)) for m in LINK.finditer(prose)]
    return found


def broken(page) -> list[str]:
    """What is wrong with `page`'s links, one line each (file:line: target: why)."""
    problems = []
    for number, target in links(page):
        where = f"{page.relative_to(REPO)}:{number}: {target}"
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not followed here
            continue
        path_part, _, anchor = target.partition("#")
        path = (page.parent / urllib.parse.unquote(path_part)).resolve() if path_part else page
        if not path.is_relative_to(REPO):
            problems.append(f"{where}: leads outside the repository")
        elif not path.exists():
            problems.append(f"{where}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            problems.append(f"{where}: no heading #{anchor} in {path.relative_to(REPO)}")
    return problems


@pytest.mark.parametrize(
    "heading, anchor",
    [
        ("## The test suite (`make test`)", "the-test-suite-make-test"),
        (
            "## Latency repeatability (`python -m experiments.bench --latency-repeatability`)",
            "latency-repeatability-python--m-experimentsbench---latency-repeatability",
        ),
        ("### GPU", "gpu"),
        ("## Weights & Biases", "weights--biases"),
        ("## Bring your own corpus: a manifest", "bring-your-own-corpus-a-manifest"),
        ("### `--row-block` and [packing](models.md)", "--row-block-and-packing"),
    ],
)
def test_anchors_are_githubs(heading, anchor):
    assert slug(heading.lstrip("#")) == anchor


def test_the_checker_finds_what_it_must(tmp_path, monkeypatch):
    """A page of each kind of broken link, and one of good ones that it must accept."""
    tmp_path = tmp_path.resolve()
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other\n## Same\n## Same\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# Page\n"
        "[ok](other.md) [ok](other.md#same-1) [ok](#page) [web](https://example.org/x#y)\n"
        "`[code](nowhere.md)`\n```\n[fenced](nowhere.md)\n```\n"
        "[gone](missing.md)\n[anchor](other.md#nothing)\n[self](#nothing)\n"
        "[out](../../elsewhere/spec.md)\n"
    )
    assert [line.split(": ", 2)[0::2] for line in broken(page)] == [
        ["docs/page.md:7", "no such file"],
        ["docs/page.md:8", "no heading #nothing in docs/other.md"],
        ["docs/page.md:9", "no heading #nothing in docs/page.md"],
        ["docs/page.md:10", "leads outside the repository"],
    ]


def test_the_docs_links_lead_somewhere():
    assert sum(len(links(page)) for page in PAGES) > 50
    problems = [line for page in PAGES for line in broken(page)]
    assert not problems, "\n".join(problems)


@functools.cache
def tracked_texts() -> list[tuple[str, str]]:
    """(name, text) of every tracked text file of the checkout."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    texts = []
    for name in filter(None, listed.stdout.decode().split("\0")):
        try:
            texts.append((name, (REPO / name).read_text(encoding="utf-8")))
        except (UnicodeDecodeError, FileNotFoundError):  # a binary file; one deleted, uncommitted
            continue
    return texts


def test_no_tracked_file_refers_to_a_folder_beside_the_checkout():
    """The specs and benchmarks the project was built from lived beside the checkout; users have
    only the checkout, so what they need is in its own docs and code."""
    beside = "../" + "shared"  # spelt apart, so that this file does not name it
    found = [f"{name}:{n}" for name, text in tracked_texts()
             for n, line in enumerate(text.splitlines(), 1) if beside in line]  # fmt: skip
    assert not found, found


def test_every_docs_page_the_code_names_exists():
    """Messages, docstrings and comments send readers to `docs/PAGE.md` (and `#section`): each
    page and section exists, so a renamed page or heading cannot leave them pointing nowhere."""
    here = pathlib.Path(__file__).name  # its own examples of broken links are not the code's
    named = [(f"{name}:{n}", m.group(1), m.group(2)) for name, text in tracked_texts()
             if not name.endswith(here)
             for n, line in enumerate(text.splitlines(), 1)
             for m in re.finditer(r"\bdocs/([a-z0-9_.-]+\.md)(?:#([\w-]+))?", line)]  # fmt: skip
    assert len(named) > 100
    missing = [f"{where}: docs/{page}{'#' + anchor if anchor else ''}"
               for where, page, anchor in named
               if not (REPO / "docs" / page).is_file()
               or (anchor and anchor not in anchors(REPO / "docs" / page))]  # fmt: skip
    assert not missing, missing


def test_every_test_the_docs_name_exists():
    """The docs cite tests as evidence (docs/reliability.md names one for each guarantee): each
    `test_...` name in them is a test function of tests/, so a renamed test cannot leave a
    guarantee citing nothing."""
    defined = {m.group(1) for path in (REPO / "tests").glob("test_*.py")
               for m in re.finditer(r"^def (test_\w+)", path.read_text("utf-8"), re.M)}  # fmt: skip
    # a test's name has three words or more after test_; the results keys (test_uar,
    # test_uar_per_fold, test_wa, test_macro_f1, test_absent_classes) are not tests
    cited = [(f"{page.relative_to(REPO)}:{n}", name) for page in PAGES
             for n, line in enumerate(page.read_text("utf-8").splitlines(), 1)
             for name in re.findall(r"`(test(?:_[a-z0-9]+){3,})`", line)]  # fmt: skip
    assert len(cited) > 30
    keys = re.compile(r"test_(uar|wa|macro_f1)(_|$)")
    missing = [f"{where}: {name}" for where, name in cited
               if name not in defined and not keys.match(name)]  # fmt: skip
    assert not missing, missing
