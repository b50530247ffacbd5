"""The eval-set builder's extractors' shared parts (:mod:`codesearch.eval.sets.builder`): the records
(:class:`DocItem`, :class:`FileResult`), blanking doc comments out of a corpus copy without
changing its line count, the query of a doc (the text rules live in
:mod:`codesearch.trainer.doc_queries`, shared with the pair miner) and a few lexing helpers.

The extractors (``extract_rust``, ``extract_python``, ``extract_coq``, ``extract_lean``,
``extract_tlaplus``, ``extract_verus``) stay their own: they define the committed eval data, and
their docs are found independently of the miner's. What they share with the rest of codesearch
comes from the language registry (:mod:`codesearch.languages`): file extensions and each
language's doc markup (:func:`doc_markup`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from codesearch import languages
from codesearch.trainer.doc_queries import (
    first_paragraph,
    query_from_paragraph,
    simplify_coqdoc,
    simplify_markdown,
    simplify_rest,
)

# Targets longer than this are not used as queries: under the hit rule any small chunk
# inside a huge target (a 1,000-line class or trait) would count as a hit.
MAX_TARGET_LINES = 200


# ---------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------


@dataclass
class DocItem:
    """One documented declaration of a file."""

    path: str  # relative to the corpus root, '/' separators
    name: str
    kind: str
    start_line: int  # 1-based, inclusive: the declaration without its doc
    end_line: int
    doc_start: int  # 1-based, inclusive: the doc comment's lines (blanked in the corpus)
    doc_end: int
    doc: str  # the doc text without comment markers
    query: str | None = None  # set by make_query(); None when unusable
    skip: str | None = None  # why there is no query


@dataclass
class FileResult:
    text: str  # the corpus copy: every doc comment blanked, same number of lines
    declarations: int  # all declarations of the kinds this language indexes
    items: list[DocItem] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# Blanking: remove character ranges, turning lines that are left blank into empty lines.
# Works on str lines (Coq) or bytes lines (Rust, Python: tree-sitter and ast columns are
# UTF-8 byte offsets). The number of lines never changes.
# ---------------------------------------------------------------------------------------


def split_lines(data):
    """Split on '\\n' only (not on form feeds etc.), so that line i is line i+1 of editors."""
    return data.split(b"\n" if isinstance(data, bytes) else "\n")


def join_lines(lines):
    sep = b"\n" if lines and isinstance(lines[0], bytes) else "\n"
    return sep.join(lines)


def trailing_cr(line):
    return line[-1:] if line[-1:] in ("\r", b"\r") else line[:0]


def blank_ranges(lines: list, ranges: Sequence[tuple[int, int, int, int]]) -> None:
    """Remove each (row0, col0, row1, col1) range (0-based rows, end exclusive) in place.

    Lines left with only whitespace become empty (a CRLF line keeps its '\\r').
    """
    touched: set[int] = set()
    for r0, c0, r1, c1 in sorted(ranges, reverse=True):
        if r0 == r1:
            lines[r0] = lines[r0][:c0] + lines[r0][c1:]
        else:
            lines[r0] = lines[r0][:c0] + trailing_cr(lines[r0])
            for r in range(r0 + 1, r1):
                lines[r] = trailing_cr(lines[r])
            lines[r1] = lines[r1][c1:]
        touched.update(range(r0, r1 + 1))
    for r in touched:
        if not lines[r].strip():
            lines[r] = trailing_cr(lines[r])


# ---------------------------------------------------------------------------------------
# Queries: the first sentence of a doc, with markup simplified. The text rules live in
# codesearch.trainer.doc_queries, shared with the trainer's pair miner.
# ---------------------------------------------------------------------------------------


def _squeeze_spaces(text: str) -> str:
    return " ".join(text.split())


def _is_heading_md(s: str) -> bool:
    return s.startswith("#")


# How the builder reads each ``doc_format`` of the registry: (simplify, is_heading) for
# first_paragraph. Its own on purpose (see the module doc): Coq docs skip no headings here, and
# plain docs (TLA+) are only whitespace-squeezed.
DOC_MARKUP: dict[str, tuple[Callable[[str], str], Callable[[str], bool] | None]] = {
    "markdown": (simplify_markdown, _is_heading_md),
    "rest": (simplify_rest, None),
    "coqdoc": (simplify_coqdoc, None),
    "plain": (_squeeze_spaces, None),
}


def doc_markup(language: str) -> tuple[Callable[[str], str], Callable[[str], bool] | None]:
    """(simplify, is_heading) for the docs of a registered language, by its registry ``doc_format``."""
    lang = languages.get(language)
    assert lang is not None and lang.doc_format in DOC_MARKUP, language
    return DOC_MARKUP[lang.doc_format]


def make_query(item: DocItem, simplify: Callable[[str], str], para: str) -> None:
    """Set item.query (or item.skip) from the first paragraph of its doc."""
    item.query, item.skip = query_from_paragraph(para, item.name, simplify)


def set_doc_query(item: DocItem, language: str) -> None:
    """Set item.query (or item.skip) from the first paragraph of its doc, read as the language's
    registry ``doc_format`` says (:func:`doc_markup`)."""
    simplify, is_heading = doc_markup(language)
    make_query(item, simplify, first_paragraph(item.doc, is_heading=is_heading))



def finish_items(items: list[DocItem], corpus_lines: list) -> None:
    """Trim blank edge lines off the spans (as the corpus copy reads) and drop huge targets."""
    for it in items:
        while it.end_line > it.start_line and not corpus_lines[it.end_line - 1].strip():
            it.end_line -= 1
        while it.start_line < it.end_line and not corpus_lines[it.start_line - 1].strip():
            it.start_line += 1
        if it.query is not None and it.end_line - it.start_line + 1 > MAX_TARGET_LINES:
            it.query, it.skip = None, f"target over {MAX_TARGET_LINES} lines"


# ---------------------------------------------------------------------------------------
# Lexing helpers (Coq, Lean, Verus) and the miner's declarations (Lean, TLA+)
# ---------------------------------------------------------------------------------------


def offset_to_pos(lines: list[str]) -> Callable[[int], tuple[int, int]]:
    line_starts = [0]
    for line in lines[:-1]:
        line_starts.append(line_starts[-1] + len(line) + 1)

    def pos(offset: int) -> tuple[int, int]:
        import bisect

        row = bisect.bisect_right(line_starts, offset) - 1
        return row, offset - line_starts[row]

    return pos


def mined_declarations(text: str, relpath: str, language: str):
    """The pair miner's declarations of a file (the indexer's chunker, windows merged)."""
    from codesearch.trainer.mining.decls import declarations, file_chunks

    return [d for d in declarations(file_chunks(relpath, text, language)) if ", " not in d.name]


def star_block_text(body: str) -> str:
    """The text of a ``/** ... */`` doc comment's body (markers cut off): each line stripped,
    and a leading ``*`` (with one space after it) removed."""
    out = []
    for line in body.splitlines():
        line = line.strip()
        if line.startswith("*"):
            line = line[1:]
            line = line[1:] if line.startswith(" ") else line
        out.append(line)
    return "\n".join(out)
