"""The language registry: one :class:`Language` object per language, read by every feature.

Chunking (which chunker cuts a file), routing (which adapter's space a language's code lives
in), pair mining, doc-comment reading, query augmentation and the eval-set builder all look
languages up here, so adding a language is one :func:`register` call (plus its chunker, and
a doc style in :mod:`codesearch.trainer.doc_queries` when its comment syntax is new)::

    register(Language("ocaml", "OCaml", extensions=(".ml", ".mli"),
                      chunker=scanner("codesearch.indexer.chunking.ocaml", "ocaml_spans"),
                      doc_style="coq", doc_format="coqdoc"))

This module imports nothing but the standard library: a chunker is named by module and
attribute and imported on first use (``codesearch search`` must stay quick to start).

Files of no registered language are plain ``"text"`` (Markdown files among them are cut at
their headings); ``"text"`` and ``"markdown"`` are no registered languages.
"""

from __future__ import annotations

import importlib
import posixpath
from dataclasses import dataclass
from typing import Iterator

TEXT = "text"  # the language of every file no registered language claims
PLAIN_TEXT = frozenset({TEXT, "markdown"})  # the plain-text fallback's names (prose): no registered languages
DOMAINS = ("general", "rust", "formal")  # a language's domain (the adapter that encodes it)
MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown", ".mdx"})  # text files cut at their headings

GRAMMARS_MODULE = "codesearch.indexer.chunking.grammars"


@dataclass(frozen=True)
class Chunker:
    """How a language's files are cut into declarations, named rather than imported.

    ``takes`` says what the object at ``module:attr`` is: ``"grammar"``, a tree-sitter
    :class:`~codesearch.indexer.chunking.treesitter.Grammar` class; ``"lines"``, a scanner
    ``f(lines) -> spans``; ``"text"``, a scanner ``f(text) -> spans``. Spans are
    :class:`~codesearch.indexer.chunking.spans.Span` lists (None: window the file).
    """

    module: str
    attr: str
    takes: str = "lines"  # "grammar" | "lines" | "text"

    def resolve(self) -> object:
        """The grammar class or scanner function (imports its module on first use)."""
        return getattr(importlib.import_module(self.module), self.attr)

    def run(self, target: object, text: str, lines: list[str]) -> list | None:
        """Spans of one file from ``target`` (what :meth:`resolve` returned)."""
        if self.takes == "grammar":
            from codesearch.indexer.chunking.treesitter import tree_sitter_spans

            return tree_sitter_spans(target, text, lines)  # type: ignore[arg-type]
        if self.takes == "text":
            return target(text)  # type: ignore[operator]
        if self.takes == "lines":
            return target(lines)  # type: ignore[operator]
        raise ValueError(f"chunker {self.module}:{self.attr}: unknown input {self.takes!r}")


def grammar(cls_name: str, module: str = GRAMMARS_MODULE) -> Chunker:
    """A tree-sitter grammar class (``grammar("Rust")``)."""
    return Chunker(module, cls_name, "grammar")


def scanner(module: str, function: str, takes: str = "lines") -> Chunker:
    """A hand-written scanner: ``function(lines)`` (or ``function(text)`` with ``takes="text"``)."""
    if takes not in ("lines", "text"):
        raise ValueError(f"scanner {module}:{function}: takes 'lines' or 'text', not {takes!r}")
    return Chunker(module, function, takes)


@dataclass(frozen=True)
class Language:
    """One language and everything the features need to know about it."""

    name: str  # the language name chunks, filters and routing tables carry ("tlaplus")
    display: str  # for people and generated queries ("TLA+")
    extensions: tuple[str, ...] = ()  # lower-case, with the dot; the first is the main one
    filenames: tuple[str, ...] = ()  # exact file names (``Makefile``), for files without one
    chunker: Chunker | None = None  # None: cut into line windows like plain text
    domain: str = "general"  # "general" | "rust" | "formal": the adapter that encodes it
    # How its comments are written: a style name in codesearch.trainer.doc_queries.STYLE_DEFS
    # (None: no doc comments are read, so no doc pairs are mined).
    doc_style: str | None = None
    # How a doc's text is marked up: "markdown", "coqdoc", "javadoc", "rest", "isabelle",
    # or "plain" (see codesearch.trainer.doc_queries.doc_query).
    doc_format: str = "plain"
    aliases: tuple[str, ...] = ()  # other names a user may filter by (``--lang tla+``), lower-case

    @property
    def structured(self) -> bool:
        """Cut at declarations (a grammar or a scanner), not windows."""
        return self.chunker is not None


_BY_NAME: dict[str, Language] = {}
_BY_EXTENSION: dict[str, str] = {}
_BY_FILENAME: dict[str, str] = {}


def register(lang: Language) -> Language:
    """Add ``lang`` (or replace the language of that name); returns it."""
    if lang.domain not in DOMAINS:
        raise ValueError(f"language {lang.name}: unknown domain {lang.domain!r}")
    if lang.name in PLAIN_TEXT:
        raise ValueError(f"{lang.name!r} is the plain-text fallback, not a language to register")
    for ext in lang.extensions:
        if not ext.startswith(".") or ext != ext.lower():
            raise ValueError(f"language {lang.name}: extension {ext!r} must be lower-case and start with '.'")
        owner = _BY_EXTENSION.get(ext)
        if owner is not None and owner != lang.name:
            raise ValueError(f"language {lang.name}: extension {ext} already belongs to {owner}")
    for fname in lang.filenames:
        owner = _BY_FILENAME.get(fname)
        if owner is not None and owner != lang.name:
            raise ValueError(f"language {lang.name}: file name {fname} already belongs to {owner}")
    taken = aliases()
    for alias in lang.aliases:
        owner = taken.get(alias)
        if owner is not None and owner != lang.name:
            raise ValueError(f"language {lang.name}: alias {alias} already belongs to {owner}")
    if lang.name in _BY_NAME:
        unregister(lang.name)
    _BY_NAME[lang.name] = lang
    _BY_EXTENSION.update(dict.fromkeys(lang.extensions, lang.name))
    _BY_FILENAME.update(dict.fromkeys(lang.filenames, lang.name))
    return lang


def unregister(name: str) -> Language | None:
    """Remove a language (tests register throw-away ones); returns it, or None."""
    lang = _BY_NAME.pop(name, None)
    if lang is not None:
        for ext in lang.extensions:
            _BY_EXTENSION.pop(ext, None)
        for fname in lang.filenames:
            _BY_FILENAME.pop(fname, None)
    return lang


# ---------------------------------------------------------------------------------------
# Lookups
# ---------------------------------------------------------------------------------------


def get(name: str) -> Language | None:
    """The registered language called ``name`` (None for "text" and unknown names)."""
    return _BY_NAME.get(name)


def all_languages() -> Iterator[Language]:
    """Every registered language, in registration order."""
    return iter(list(_BY_NAME.values()))


def names() -> frozenset[str]:
    return frozenset(_BY_NAME)


def structured_names() -> frozenset[str]:
    """Languages with a structural chunker (grammar or scanner)."""
    return frozenset(n for n, lang in _BY_NAME.items() if lang.structured)


def in_domain(domain: str) -> frozenset[str]:
    """The names of the languages of ``domain`` ("formal": Lean, Coq, TLA+, ...)."""
    return frozenset(n for n, lang in _BY_NAME.items() if lang.domain == domain)


def aliases() -> dict[str, str]:
    """Alias -> language name, for every registered alias."""
    return {a: lang.name for lang in _BY_NAME.values() for a in lang.aliases}


def extensions() -> dict[str, str]:
    """Extension -> language name, for every registered extension."""
    return dict(_BY_EXTENSION)


def for_path(path: str) -> Language | None:
    """The registered language of ``path`` (by file name, then by lower-cased extension)."""
    if not path:
        return None
    base = posixpath.basename(path.replace("\\", "/"))
    if not base:
        return None
    name = _BY_FILENAME.get(base)
    if name is None:
        name = _BY_EXTENSION.get(posixpath.splitext(base)[1].lower())
    return _BY_NAME.get(name) if name is not None else None


def name_for_path(path: str) -> str | None:
    """The language name of ``path``: a registered language, or "text" for any other file
    (``None`` only for an empty path or one ending in a separator)."""
    if not path or not posixpath.basename(path.replace("\\", "/")):
        return None
    lang = for_path(path)
    return lang.name if lang is not None else TEXT


def is_markdown(path: str) -> bool:
    """Text files chunked by headings rather than fixed windows."""
    return posixpath.splitext(path.lower())[1] in MARKDOWN_EXTENSIONS


def domain_of(name: str) -> str:
    """The domain of a language name; "general" for text and unknown names."""
    lang = _BY_NAME.get(name)
    return lang.domain if lang is not None else "general"


def display_name(name: str) -> str:
    lang = _BY_NAME.get(name)
    return lang.display if lang is not None else name


# ---------------------------------------------------------------------------------------
# The languages
# ---------------------------------------------------------------------------------------

_CHUNKING = "codesearch.indexer.chunking"

for _lang in (
    Language("rust", "Rust", (".rs",), chunker=grammar("Rust"), domain="rust",
             doc_style="rust", doc_format="markdown", aliases=("rs",)),
    Language("python", "Python", (".py", ".pyi"), chunker=grammar("Python"),
             doc_style="python", doc_format="rest", aliases=("py",)),
    Language("tlaplus", "TLA+", (".tla",), chunker=grammar("TlaPlus"), domain="formal",
             doc_style="tlaplus", aliases=("tla", "tla+")),
    Language("c", "C", (".c", ".h"), chunker=grammar("C"), doc_style="c", doc_format="javadoc"),
    Language("go", "Go", (".go",), chunker=grammar("Go"), doc_style="go"),
    Language("javascript", "JavaScript", (".js", ".mjs", ".cjs", ".jsx"), chunker=grammar("JavaScript"),
             doc_style="java", doc_format="javadoc", aliases=("js",)),
    Language("typescript", "TypeScript", (".ts", ".mts", ".cts"), chunker=grammar("TypeScript"),
             doc_style="java", doc_format="javadoc", aliases=("ts",)),
    Language("tsx", "TSX", (".tsx",), chunker=grammar("Tsx"), doc_style="java", doc_format="javadoc"),
    Language("java", "Java", (".java",), chunker=grammar("Java"), doc_style="java", doc_format="javadoc"),
    Language("lean", "Lean", (".lean",), chunker=scanner(f"{_CHUNKING}.lean", "lean_spans"), domain="formal",
             doc_style="lean", doc_format="markdown", aliases=("lean4",)),
    Language("smtlib", "SMT-LIB", (".smt2", ".smt"), chunker=scanner(f"{_CHUNKING}.smtlib", "smtlib_spans", "text"),
             domain="formal", doc_style="smtlib", aliases=("smt", "smt2")),
    Language("coq", "Coq", (".v",), chunker=scanner(f"{_CHUNKING}.coq", "coq_spans", "text"), domain="formal",
             doc_style="coq", doc_format="coqdoc", aliases=("rocq",)),
    Language("why3", "Why3", (".mlw", ".why"), chunker=scanner(f"{_CHUNKING}.why3", "why3_spans"), domain="formal",
             doc_style="why3", doc_format="coqdoc", aliases=("mlw",)),
    Language("agda", "Agda", (".agda",), chunker=scanner(f"{_CHUNKING}.agda", "agda_spans"), domain="formal",
             doc_style="agda"),
    Language("dafny", "Dafny", (".dfy",), chunker=scanner(f"{_CHUNKING}.dafny", "dafny_spans"), domain="formal",
             doc_style="dafny", aliases=("dfy",)),
    Language("isabelle", "Isabelle", (".thy",), chunker=scanner(f"{_CHUNKING}.isabelle", "isabelle_spans"),
             domain="formal", doc_style="isabelle", doc_format="isabelle", aliases=("thy",)),
):  # fmt: skip
    register(_lang)
del _lang
