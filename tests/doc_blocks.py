"""The fenced code blocks of README.md and docs/*.md, for the tests that check them
(tests/test_doc_commands.py: the shell blocks; tests/test_doc_snippets.py: the Python ones)."""

from __future__ import annotations

import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def fenced_blocks(fences: tuple[str, ...]) -> list[tuple[str, int, list[tuple[int, str]]]]:
    """Every block of the docs whose opening fence is one of `fences` ("```bash"), in order:
    (file relative to the repository, the fence's line number, [(line number, line)])."""
    blocks = []
    for path in DOCS:
        block = None
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip().startswith("```"):
                if block is None:
                    block = (number, []) if line.strip() in fences else (number, None)
                else:
                    if block[1] is not None:
                        blocks.append((str(path.relative_to(REPO)), *block))
                    block = None
            elif block is not None and block[1] is not None:
                block[1].append((number, line))
    return blocks


def outside_fences(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line of a Markdown `text`, with the fences and the lines
    between them blanked: what is prose and headings, not code."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith("```"):
            fenced = not fenced
            lines.append((number, ""))
        else:
            lines.append((number, "" if fenced else line))
    return lines
