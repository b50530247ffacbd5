"""The eval sets' Lean 4 extractor (the indexer's Lean chunker, windows merged as in the pair
miner; a small lexer for the doc comments to blank): :func:`process_lean`."""

from __future__ import annotations

import re

from codesearch.eval.sets.extract import (
    DocItem,
    FileResult,
    blank_ranges,
    finish_items,
    join_lines,
    mined_declarations,
    offset_to_pos,
    set_doc_query,
    split_lines,
)
from codesearch.indexer.chunking import mlcomments

_LEAN_CHAR = re.compile(r"'(?:\\.|[^\\'\n])'")


def lean_doc_comments(src: str) -> list[tuple[int, int]]:
    """(start, end-exclusive) offsets of the ``/-- -/`` and ``/-! -/`` comments of a Lean
    file, outside strings, char literals, ``--`` comments and other ``/- -/`` comments
    (comments nested inside them are part of them)."""
    out: list[tuple[int, int]] = []
    i, n = 0, len(src)
    while i < n:
        if src.startswith("--", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/-", i):
            start, i = i, mlcomments.comment_end(src, i, strings=False, open_="/-", close="-/") or len(src)
            if src.startswith(("/--", "/-!"), start) and not src.startswith("/--/", start):
                out.append((start, i))
        elif src[i] == '"':
            i += 1
            while i < n and src[i] != '"':
                i += 2 if src[i] == "\\" else 1
            i += 1
        elif src[i] == "'" and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] in "_'.!?")):
            m = _LEAN_CHAR.match(src, i)
            i = m.end() if m else i + 1
        else:
            i += 1
    return out


def process_lean(text: str, relpath: str) -> FileResult:
    """Blank every ``/-- -/`` and ``/-! -/`` comment and find documented declarations.

    Doc = the ``/-- ... -/`` docstring(s) above a declaration (attributes and ``set_option
    ... in`` between are part of the declaration); a docstring above ``#guard_msgs in`` is
    the expected output of a test, not a doc. The span runs from the first line after the
    doc through the declaration's last line (the next command's start, less trailing blank
    and comment lines), as the indexer's Lean chunker delimits it.
    """
    from codesearch.trainer.doc_queries import leading_doc

    lines = split_lines(text)
    pos = offset_to_pos(lines)
    ranges = []
    for a, z in lean_doc_comments(text):
        r0, c0 = pos(a)
        r1, c1 = pos(z)
        ranges.append((r0, c0, r1, c1))
    chunk_lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    items: list[DocItem] = []
    decls = mined_declarations(text, relpath, "lean")
    for d in decls:
        doc = leading_doc("lean", chunk_lines, d.start, d.end)
        if doc is None or not doc.marked:
            continue
        item = DocItem(
            path=relpath,
            name=d.name,
            kind=d.kind,
            start_line=max(doc.lines) + 1,
            end_line=d.end,
            doc_start=min(doc.lines),
            doc_end=max(doc.lines),
            doc=doc.text,
        )
        set_doc_query(item, "lean")
        items.append(item)
    blank_ranges(lines, ranges)
    finish_items(items, lines)
    return FileResult(join_lines(lines), len(decls), items)
