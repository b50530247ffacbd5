"""Chunking: split a source file into declaration-sized, searchable chunks.

One module per language family; this package's public entry points are
``language_for_path`` and ``chunk_text``.

* ``treesitter`` + ``grammars``: Rust, Python, TLA+ (with PlusCal), C, Go, JavaScript,
  TypeScript/TSX and Java, through one tree-sitter walker driven by per-language tables;
* ``lean``, ``coq``, ``smtlib``, ``why3``, ``agda``, ``dafny``, ``isabelle``: hand-written
  scanners for languages without a grammar wheel;
* ``windows``: merging tiny items, windowing large ones, and the line-window fallback.
"""

from __future__ import annotations

import logging

from codesearch.indexer.chunking.agda import agda_spans
from codesearch.indexer.chunking.base import Chunk
from codesearch.indexer.chunking.coq import coq_spans
from codesearch.indexer.chunking.dafny import dafny_spans
from codesearch.indexer.chunking.grammars import grammar_for
from codesearch.indexer.chunking.isabelle import isabelle_spans
from codesearch.indexer.chunking.languages import STRUCTURED_LANGUAGES, is_markdown, language_for_path
from codesearch.indexer.chunking.lean import lean_spans
from codesearch.indexer.chunking.smtlib import smtlib_spans
from codesearch.indexer.chunking.treesitter import tree_sitter_spans
from codesearch.indexer.chunking.why3 import why3_spans
from codesearch.indexer.chunking.windows import Span, finish, is_blank, markdown_chunks, split_lines, window_chunks

__all__ = ["CHUNKER_VERSION", "Chunk", "chunk_text", "language_for_path"]

# Raised whenever a change cuts some files differently: an index built by another version
# cuts every file again on its next full run (vectors of unchanged chunks are reused).
# 2: items inside Rust macro bodies, Verus; Why3, Agda, Dafny and Isabelle declarations.
CHUNKER_VERSION = 2

log = logging.getLogger(__name__)

MAX_STRUCTURED_CHARS = 2_000_000  # larger files are generated: plain windows
MAX_AVG_LINE_CHARS = 1000  # minified / single-line files: plain windows


def chunk_text(rel_path: str, text: str, language: str | None = None) -> list[Chunk]:
    """Chunks of one file, sorted by start line; never raises.

    ``language`` defaults to ``language_for_path(rel_path)``. Files a structural chunker
    cannot handle (parse failure, minified, huge) are cut into overlapping line windows.
    """
    lang = language or language_for_path(rel_path) or "text"
    try:
        lines = split_lines(text)
    except Exception:  # not a str: nothing sensible to index
        log.warning("chunking %s: text is not a string", rel_path)
        return []
    if all(is_blank(x) for x in lines):
        return []
    try:
        spans = _structured_spans(lang, text, lines)
        if spans is not None:
            return finish(rel_path, lang, lines, spans)
        if lang == "text" and is_markdown(rel_path):
            return markdown_chunks(rel_path, lang, lines)
    except Exception:  # a chunker bug must not stop indexing: fall back to windows
        log.warning("chunking %s as %s failed; using line windows", rel_path, lang, exc_info=True)
    return window_chunks(rel_path, lang, lines)


_LINE_SCANNERS = {"why3": why3_spans, "agda": agda_spans, "dafny": dafny_spans, "isabelle": isabelle_spans}


def _structured_spans(lang: str, text: str, lines: list[str]) -> list[Span] | None:
    """Declaration spans, or None when the file should be windowed instead."""
    if lang not in STRUCTURED_LANGUAGES:
        return None
    if len(text) > MAX_STRUCTURED_CHARS or len(text) > MAX_AVG_LINE_CHARS * max(len(lines), 10):
        return None
    if lang == "lean":
        return lean_spans(lines)
    if lang == "coq":
        return coq_spans(text)
    if lang == "smtlib":
        return smtlib_spans(text)
    if lang in _LINE_SCANNERS:
        return _LINE_SCANNERS[lang](lines)
    grammar = grammar_for(lang)
    return tree_sitter_spans(grammar, text, lines) if grammar is not None else None
