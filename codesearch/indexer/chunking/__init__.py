"""Chunking: split a source file into declaration-sized, searchable chunks.

One module per language family; this package's public entry points are
``language_for_path`` and ``chunk_text``. Which chunker cuts which language is the
language registry's word (:mod:`codesearch.languages`); chunkers are imported on first use.

* ``treesitter`` + ``grammars``: Rust, Python, TLA+ (with PlusCal), C, Go, JavaScript,
  TypeScript/TSX and Java, through one tree-sitter walker driven by per-language tables;
* ``lean``, ``coq``, ``smtlib``, ``why3``, ``agda``, ``dafny``, ``isabelle``: hand-written
  scanners for languages without a grammar wheel (``mlcomments``: the nested ``(* *)``
  comments they, the eval sets' Coq lexer and the doc-comment reader share);
* ``windows``: merging tiny items, windowing large ones, and the line-window fallback.
"""

from __future__ import annotations

import logging

from codesearch import languages as _registry
from codesearch.indexer.chunking.base import Chunk
from codesearch.indexer.chunking.languages import is_markdown, language_for_path
from codesearch.indexer.chunking.spans import Span, finish, is_blank, markdown_chunks, split_lines, window_chunks

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


def _structured_spans(lang: str, text: str, lines: list[str]) -> list[Span] | None:
    """Declaration spans, or None when the file should be windowed instead."""
    language = _registry.get(lang)
    if language is None or language.chunker is None:
        return None
    if len(text) > MAX_STRUCTURED_CHARS or len(text) > MAX_AVG_LINE_CHARS * max(len(lines), 10):
        return None
    return language.chunker.run(language.chunker.resolve(), text, lines)
