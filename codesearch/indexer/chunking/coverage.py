"""Chunk coverage: how much of a corpus the chunker cuts into named declarations.

``codesearch bench --chunks DIR`` reports, per language:

* ``files`` and ``lines`` (non-blank lines);
* ``decl_files`` / ``decl_lines``: the *declaration-bearing* files, those with at least one
  named chunk or of a structured language (one the chunker parses), and their non-blank lines;
* ``fallback_share``: the share of ``decl_lines`` that end up only in unnamed fallback chunks
  (kind "window" or "code" with an empty name), i.e. lines a search result can only show as
  an anonymous window;
* ``uncovered_share``: the share of ``decl_lines`` in no chunk at all (``use`` lines, impl
  headers, stray punctuation: the chunker drops them);
* ``parse_errors``: the number of maximal ERROR nodes in the tree-sitter parse (see
  :func:`parse_error_regions`), summed over the files; ``None`` for languages chunked by a
  hand-written scanner or as plain text, which report no errors;
* ``chunks``, ``named_chunks`` and ``chunks_per_s`` (chunking time only: reading files and the
  extra parse for ``parse_errors`` are not counted).

No model is loaded. This module imports only ``chunk_text``/``language_for_path``, the
walker (when there is one) and tree-sitter, so that a copy of it runs against an older
``codesearch`` too: ``PYTHONPATH=/old/checkout python coverage.py --corpus NAME=DIR --json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from codesearch.indexer.chunking import chunk_text, language_for_path

__all__ = ["FileCoverage", "file_coverage", "format_table", "iter_texts", "measure", "parse_error_regions"]

FALLBACK_KINDS = frozenset({"window", "code"})

_PARSERS: dict[str, object] = {}


def _parser(language: str):
    """A tree-sitter parser of the grammar the language registry names for ``language``, or
    None where it has none (a hand-written scanner, or no grammar wheel installed)."""
    if language not in _PARSERS:
        import tree_sitter

        from codesearch.indexer.chunking.grammars import grammar_for

        try:
            grammar = grammar_for(language)
            _PARSERS[language] = tree_sitter.Parser(grammar().language()) if grammar is not None else None
        except (ImportError, AttributeError):
            _PARSERS[language] = None
    return _PARSERS[language]


def parse_error_regions(language: str, text: str) -> int | None:
    """Number of maximal ERROR nodes (ERROR nodes not inside another ERROR node) in the
    tree-sitter parse of ``text``; ``None`` when ``language`` has no tree-sitter grammar
    here (Lean, Coq, SMT-LIB scanners and plain text report no parse errors).

    MISSING nodes (tokens tree-sitter invented to recover) are not counted.
    """
    from codesearch import languages as registry

    if registry.get(language) is None:
        return None
    parser = _parser(language)
    if parser is None:
        return None
    root = parser.parse(text.encode("utf-8", "surrogatepass")).root_node
    if not root.has_error:
        return 0
    count, stack = 0, [root]
    while stack:
        node = stack.pop()
        if node.type == "ERROR":
            count += 1
        elif node.has_error:
            stack.extend(node.children)
    return count


@dataclass
class FileCoverage:
    """The figures of one file."""

    path: str
    language: str
    lines: int  # non-blank lines
    declaration_bearing: bool
    fallback_lines: int  # non-blank lines only in unnamed window/code chunks
    uncovered_lines: int  # non-blank lines in no chunk
    chunks: int
    named_chunks: int
    parse_errors: int | None
    seconds: float  # time in chunk_text


def _is_fallback(chunk) -> bool:
    return chunk.kind in FALLBACK_KINDS and not chunk.name


def file_coverage(rel_path: str, text: str, language: str | None = None,
                  structured: frozenset[str] | None = None) -> FileCoverage:
    """Cut one file with ``chunk_text`` and count where its non-blank lines end up."""
    lang = language or language_for_path(rel_path) or "text"
    t0 = time.perf_counter()
    chunks = chunk_text(rel_path, text, language=lang)
    seconds = time.perf_counter() - t0
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    n = len(lines)
    named_cover = bytearray(n + 2)
    fallback_cover = bytearray(n + 2)
    for c in chunks:
        target = fallback_cover if _is_fallback(c) else named_cover
        lo, hi = max(c.start_line, 1), min(c.end_line, n)
        if hi >= lo:
            target[lo:hi + 1] = b"\1" * (hi - lo + 1)
    nonblank = fallback = uncovered = 0
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        nonblank += 1
        if named_cover[i]:
            continue
        if fallback_cover[i]:
            fallback += 1
        else:
            uncovered += 1
    named = sum(1 for c in chunks if c.name)
    structured = _structured() if structured is None else structured
    return FileCoverage(
        path=rel_path,
        language=lang,
        lines=nonblank,
        declaration_bearing=named > 0 or lang in structured,
        fallback_lines=fallback,
        uncovered_lines=uncovered,
        chunks=len(chunks),
        named_chunks=named,
        parse_errors=parse_error_regions(lang, text),
        seconds=seconds,
    )


def _structured() -> frozenset[str]:
    from codesearch import languages as registry

    return registry.structured_names()


def iter_texts(root: str | Path, skipped: dict[str, int] | None = None,
               max_file_bytes: int | None = None) -> Iterator[tuple[str, str]]:
    """(path relative to ``root``, text) of every file ``codesearch index root`` would index,
    in walk order. Files the walker or the reader skips are counted by reason in ``skipped``."""
    from codesearch.indexer import walk as walker

    root_abs = os.path.abspath(root)
    for item in walker.walk([root_abs], max_file_bytes=max_file_bytes):
        if isinstance(item, walker.Skipped):
            if skipped is not None:
                skipped[item.reason] = skipped.get(item.reason, 0) + 1
            continue
        try:
            text = walker.read_text(item)
        except walker.SkipFile as exc:
            if skipped is not None:
                skipped[exc.reason] = skipped.get(exc.reason, 0) + 1
            continue
        rel = os.path.relpath(str(item.path), root_abs).replace(os.sep, "/")
        if rel == ".":  # root is a single file
            rel = os.path.basename(root_abs)
        yield rel, text


_SUMS = ("files", "lines", "decl_files", "decl_lines", "fallback_lines", "uncovered_lines", "chunks", "named_chunks")


def _new_row() -> dict:
    return {**{k: 0 for k in _SUMS}, "parse_errors": None, "files_with_parse_errors": 0, "chunk_seconds": 0.0}


def _add(row: dict, f: FileCoverage) -> None:
    row["files"] += 1
    row["lines"] += f.lines
    if f.declaration_bearing:
        row["decl_files"] += 1
        row["decl_lines"] += f.lines
        row["fallback_lines"] += f.fallback_lines
        row["uncovered_lines"] += f.uncovered_lines
    row["chunks"] += f.chunks
    row["named_chunks"] += f.named_chunks
    row["chunk_seconds"] += f.seconds
    if f.parse_errors is not None:
        row["parse_errors"] = (row["parse_errors"] or 0) + f.parse_errors
        row["files_with_parse_errors"] += f.parse_errors > 0


def _finish(row: dict) -> dict:
    d = row["decl_lines"]
    row["fallback_share"] = round(row["fallback_lines"] / d, 4) if d else None
    row["uncovered_share"] = round(row["uncovered_lines"] / d, 4) if d else None
    s = row.pop("chunk_seconds")
    row["chunk_seconds"] = round(s, 3)
    row["chunks_per_s"] = round(row["chunks"] / s, 1) if s > 0 else None
    return row


def measure(root: str | Path, language: str | None = None,
            texts: Iterable[tuple[str, str]] | None = None, worst: int = 5) -> dict:
    """Coverage figures of every indexable file under ``root`` (or of ``texts``), per language
    and in total. ``language`` forces one language for every file. ``worst``: how many files
    with the most fallback lines to list."""
    skipped: dict[str, int] = {}
    if texts is None:
        texts = iter_texts(root, skipped)
    structured = _structured()
    rows: dict[str, dict] = {}
    total = _new_row()
    worst_files: list[tuple[int, str, str]] = []
    t0 = time.perf_counter()
    for rel, text in texts:
        f = file_coverage(rel, text, language, structured)
        _add(rows.setdefault(f.language, _new_row()), f)
        _add(total, f)
        if f.declaration_bearing and f.fallback_lines:
            worst_files.append((f.fallback_lines, f.path, f.language))
    worst_files.sort(key=lambda w: (-w[0], w[1]))
    return {
        "root": str(root),
        "languages": {lang: _finish(rows[lang]) for lang in sorted(rows)},
        "total": _finish(total),
        "skipped": dict(sorted(skipped.items())),
        "most_fallback": [{"path": p, "language": lang, "fallback_lines": n} for n, p, lang in worst_files[:worst]],
        "wall_s": round(time.perf_counter() - t0, 2),
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def format_table(result: dict) -> str:
    """A readable table of :func:`measure`'s result."""
    head = ("language", "files", "lines", "decl lines", "fallback", "uncovered", "parse err", "chunks", "named", "chunks/s")
    rows = [head]
    items = list(result["languages"].items()) + [("total", result["total"])]
    for lang, r in items:
        rows.append((
            lang, str(r["files"]), str(r["lines"]), str(r["decl_lines"]), _pct(r["fallback_share"]),
            _pct(r["uncovered_share"]), "-" if r["parse_errors"] is None else str(r["parse_errors"]),
            str(r["chunks"]), str(r["named_chunks"]), "-" if r["chunks_per_s"] is None else f"{r['chunks_per_s']:.0f}",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    out = []
    for k, row in enumerate(rows):
        if k == len(rows) - 1 and len(rows) > 2:
            out.append("  ".join("-" * w for w in widths))
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    out.append("fallback: share of the non-blank lines of declaration-bearing files only in unnamed "
               "window/code chunks; uncovered: in no chunk; parse err: maximal tree-sitter ERROR nodes.")
    if result.get("skipped"):
        out.append("skipped files: " + ", ".join(f"{n} {reason}" for reason, n in result["skipped"].items()))
    if result.get("most_fallback"):
        out.append("most fallback lines: " + ", ".join(f"{w['path']} ({w['fallback_lines']})" for w in result["most_fallback"]))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Script use (also from a copy against another checkout): measure several corpora."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", action="append", required=True, metavar="NAME=DIR",
                    help="A corpus to measure (repeatable).")
    ap.add_argument("--json", action="store_true", help="Print all figures as one JSON object.")
    args = ap.parse_args(argv)
    import codesearch

    out = {"codesearch": os.path.dirname(os.path.abspath(codesearch.__file__)), "corpora": {}}
    for spec in args.corpus:
        name, _, folder = spec.partition("=")
        result = measure(folder)
        out["corpora"][name] = result
        if not args.json:
            print(f"## {name} ({folder})\n{format_table(result)}\n", flush=True)
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
