"""Line-level machinery shared by every chunker.

Chunkers produce :class:`Span` records (declarations with their doc comments, "code"
regions); :func:`finish` turns them into :class:`Chunk` objects: it merges runs of tiny
items, splits large declarations into overlapping windows, caps text size and chunk count.
:func:`window_chunks` and :func:`markdown_chunks` are the fallbacks for plain text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from codesearch.indexer.chunking.base import Chunk

MAX_DECL_LINES = 60  # a declaration up to this size stays one chunk
MAX_CODE_LINES = 40  # uncovered top-level code is cut into windows of at most this size
WINDOW_LINES = 40  # size of the windows a large declaration / plain text is cut into
WINDOW_OVERLAP = 10
TINY_LINES = 3  # items this small may merge with like neighbours ...
MAX_MERGED_LINES = 15  # ... into a chunk of at most this many lines
MAX_CHUNK_CHARS = 8000  # chunk text is truncated beyond this (line numbers are kept)
MAX_CHUNKS = 4000  # per file
MAX_NAME_CHARS = 160

CODE = "code"
WINDOW = "window"


@dataclass
class Span:
    """A candidate chunk: 1-based inclusive lines plus what the chunk will say about itself."""

    start: int
    end: int
    kind: str
    name: str = ""
    context: str = ""
    mergeable: bool = False  # may merge with adjacent tiny spans of the same kind
    body_start: int | None = None  # first line after the doc comment / attributes, if known
    names: list[str] = field(default_factory=list, repr=False)  # names merged into this span


def split_lines(text: str) -> list[str]:
    """The file's lines as editors and ``git`` count them: split on "\\n" only.

    A final newline does not start another line; a trailing "\\r" (CRLF files) is dropped.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def is_blank(line: str) -> bool:
    return not line.strip()


def slice_text(lines: list[str], start: int, end: int) -> str:
    """Lines ``start..end`` (1-based, inclusive) joined with "\\n", cut at MAX_CHUNK_CHARS."""
    parts: list[str] = []
    size = 0
    for line in lines[start - 1 : end]:
        if size + len(line) >= MAX_CHUNK_CHARS:
            parts.append(line[: max(0, MAX_CHUNK_CHARS - size)])
            break
        parts.append(line)
        size += len(line) + 1
    return "\n".join(parts)[:MAX_CHUNK_CHARS]


def window_ranges(
    start: int, end: int, size: int = WINDOW_LINES, overlap: int = WINDOW_OVERLAP, max_size: int | None = None
) -> list[tuple[int, int]]:
    """Overlapping windows covering ``start..end``. With ``max_size``, a last window that
    adds at most ``overlap`` lines is folded into the previous one if that stays within it."""
    step = max(1, size - overlap)
    out: list[tuple[int, int]] = []
    s = start
    while True:
        e = min(s + size - 1, end)
        out.append((s, e))
        if e >= end:
            break
        s += step
    if max_size and len(out) >= 2 and out[-1][1] - out[-2][1] <= overlap and end - out[-2][0] < max_size:
        out[-2] = (out[-2][0], end)
        out.pop()
    return out


def _trim(span: Span, lines: list[str]) -> Span | None:
    """Clamp to the file and drop blank lines at both ends; None if nothing is left."""
    start = max(1, span.start)
    end = min(len(lines), span.end)
    while start <= end and is_blank(lines[start - 1]):
        start += 1
    while end >= start and is_blank(lines[end - 1]):
        end -= 1
    if start > end:
        return None
    span.start, span.end = start, end
    return span


def _join_names(names: list[str]) -> str:
    name = ", ".join(n for n in names if n)
    if len(name) > MAX_NAME_CHARS:
        name = name[: MAX_NAME_CHARS - 4].rsplit(", ", 1)[0] + ", ..."
    return name


def merge_tiny(spans: list[Span], lines: list[str]) -> list[Span]:
    """Merge runs of tiny like items (one-line consts, declare-funs, ...) separated by at
    most one blank line into chunks of at most MAX_MERGED_LINES lines."""
    out: list[Span] = []
    for sp in spans:
        tiny = sp.mergeable and sp.end - sp.start + 1 <= TINY_LINES
        prev = out[-1] if out else None
        if (
            tiny
            and prev is not None
            and prev.mergeable
            and prev.kind == sp.kind
            and prev.context == sp.context
            and prev.end < sp.start <= prev.end + 2
            and all(is_blank(x) for x in lines[prev.end : sp.start - 1])
            and sp.end - prev.start + 1 <= MAX_MERGED_LINES
        ):
            if not prev.names:
                prev.names = [prev.name]
            prev.names.append(sp.name)
            prev.end = sp.end
            prev.name = _join_names(prev.names)
            continue
        if not tiny:
            sp.mergeable = False
        out.append(sp)
    return out


def split_span(sp: Span) -> list[tuple[int, int]]:
    """Line ranges of the chunks for one span: itself, or overlapping windows if too large.

    When a long doc comment fills the first window, the windows over the code restart
    ``WINDOW_OVERLAP`` lines above the signature, so that one window shows the signature
    with the end of its doc comment."""
    limit = MAX_CODE_LINES if sp.kind == CODE else MAX_DECL_LINES
    if sp.end - sp.start + 1 <= limit:
        return [(sp.start, sp.end)]
    body = sp.body_start
    if body is None or not sp.start + WINDOW_LINES - WINDOW_OVERLAP <= body <= sp.end:
        return window_ranges(sp.start, sp.end, max_size=limit)
    docs = window_ranges(sp.start, body - 1, max_size=limit)
    return docs + window_ranges(body - WINDOW_OVERLAP, sp.end, max_size=limit)


def finish(path: str, language: str, lines: list[str], spans: list[Span]) -> list[Chunk]:
    """Turn a chunker's spans into the file's chunks, sorted by start line."""
    trimmed = [t for t in (_trim(sp, lines) for sp in spans) if t is not None]
    trimmed.sort(key=lambda sp: (sp.start, sp.end))
    merged = merge_tiny(trimmed, lines)

    pieces: list[tuple[int, int, str, str, str]] = []
    for sp in merged:
        for s, e in split_span(sp):
            pieces.append((s, e, sp.kind, sp.name, sp.context))

    seen: set[tuple[int, int, str, str, str]] = set()
    chunks: list[Chunk] = []
    for piece in sorted(pieces, key=lambda p: (p[0], p[1])):
        if piece in seen:
            continue
        seen.add(piece)
        s, e, kind, name, context = piece
        chunks.append(Chunk(path, s, e, language, kind, name, slice_text(lines, s, e), context))
        if len(chunks) >= MAX_CHUNKS:
            break
    return chunks


def window_chunks(path: str, language: str, lines: list[str], kind: str = WINDOW) -> list[Chunk]:
    """Fallback: overlapping line windows over the whole file, all-blank windows skipped."""
    if not lines:
        return []
    size, overlap = WINDOW_LINES, WINDOW_OVERLAP
    if len(lines) / (size - overlap) > MAX_CHUNKS:  # enormous file: coarser windows
        size = len(lines) // MAX_CHUNKS + overlap + 1
    chunks = []
    for s, e in window_ranges(1, len(lines), size, overlap):
        if all(is_blank(x) for x in lines[s - 1 : e]):
            continue
        chunks.append(Chunk(path, s, e, language, kind, "", slice_text(lines, s, e)))
    return chunks[:MAX_CHUNKS]


_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")


def markdown_chunks(path: str, language: str, lines: list[str]) -> list[Chunk]:
    """Markdown: one chunk per heading section (name = heading text); a section with
    fewer than 3 non-blank lines joins the next one; long sections are windowed."""
    starts: list[tuple[int, str]] = []
    fence = None
    for i, line in enumerate(lines, 1):
        m = _FENCE.match(line)
        if m:
            fence = None if fence == m.group(1) else (fence or m.group(1))
            continue
        if fence is None:
            h = _HEADING.match(line)
            if h:
                starts.append((i, h.group(2)))
    if not starts or starts[0][0] != 1:
        starts.insert(0, (1, ""))
    spans: list[Span] = []
    for k, (s, name) in enumerate(starts):
        e = starts[k + 1][0] - 1 if k + 1 < len(starts) else len(lines)
        prev = spans[-1] if spans else None
        if prev is not None and sum(1 for x in lines[prev.start - 1 : prev.end] if not is_blank(x)) < 3:
            prev.end = e
            prev.name = prev.name or name
            continue
        spans.append(Span(s, e, "section", name))
    return finish(path, language, lines, spans)
