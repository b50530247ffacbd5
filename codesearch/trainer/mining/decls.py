"""Pair mining's declarations: a file's chunks (as the index cuts them) grouped into
declarations (:class:`MinedDecl`), each one's positive (the declaration without its doc) and
the query its name makes ("parse interval", "ring buffer push")."""

from __future__ import annotations

import re
from dataclasses import dataclass

from codesearch import languages as _languages
from codesearch.indexer.chunking import Chunk, chunk_text
from codesearch.indexer.chunking.spans import MAX_CHUNK_CHARS
from codesearch.identifiers import identifier_words
from codesearch.trainer.doc_queries import Doc

MAX_POSITIVE_LINES = 60  # a declaration's positive: its first lines (as the index's first chunk)

MINED_LANGUAGES = _languages.structured_names()  # as registered at import (codesearch.languages)

# Chunk kinds that are not declarations.
NOT_DECLS = frozenset({"code", "window", "doc", "section", "commands", "module", "algorithm"})
# Kinds that make no name pair (containers, bindings, housekeeping).
NO_NAME_KINDS = NOT_DECLS | frozenset(
    """impl mod extern namespace assert variable parameter notation declaration coercion canonical
    scheme derive import package instance define""".split()
)
CONTAINER_KINDS = frozenset({"impl", "trait", "class", "interface", "mod", "namespace", "object", "extern"})
TRIVIAL_NAMES = frozenset(
    """new main fmt from default clone drop eq ne hash into deref deref_mut next len is_empty as_ref
    as_mut borrow borrow_mut index index_mut partial_cmp cmp to_string __init__ __repr__ __str__
    __eq__ __hash__ __len__ __iter__ __next__ __call__ __enter__ __exit__ __getitem__ __setitem__
    __contains__ __del__ __lt__ __le__ __gt__ __ge__ __ne__ __bool__ init run get set size build
    setup teardown setUp tearDown toString equals hashCode constructor apply call poll describe
    render update handle process value values keys items""".split()
)


def mining_language(rel_path: str) -> str | None:
    """The language a file is mined as: a registered language with a structural chunker, or
    None when it gives no pairs (plain text)."""
    lang = _languages.for_path(rel_path)
    return lang.name if lang is not None and lang.structured else None


@dataclass
class MinedDecl:
    """A declaration as the miner sees it: one chunk, or the windows of one large declaration put
    together (not the tree-sitter walker's :class:`~codesearch.indexer.chunking.treesitter.Decl`)."""

    path: str
    language: str
    kind: str
    name: str
    context: str
    start: int  # 1-based, inclusive; includes the doc and attributes above
    end: int


def declarations(chunks: list[Chunk]) -> list[MinedDecl]:
    """Declarations of a file's chunks (windows of one declaration merged back)."""
    out: list[MinedDecl] = []
    for c in chunks:
        if c.kind in NOT_DECLS:
            continue
        prev = out[-1] if out else None
        if (
            prev is not None
            and (prev.kind, prev.name, prev.context) == (c.kind, c.name, c.context)
            and c.start_line <= prev.end
        ):
            prev.end = max(prev.end, c.end_line)
            continue
        out.append(MinedDecl(c.path, c.language, c.kind, c.name, c.context, c.start_line, c.end_line))
    return out


def extend_container(d: MinedDecl, chunks: list[Chunk]) -> int:
    """End line for a container whose header alone says little: through its members' chunks."""
    inner = (d.context + " > " if d.context else "") + f"{d.kind} {d.name}".strip()
    end = d.end
    for c in chunks:
        if c.start_line <= d.end:
            continue
        if c.context == inner or c.context.startswith(inner + " > "):
            end = max(end, c.end_line)
        else:
            break
    return end


def positive_chunk(d: MinedDecl, lines: list[str], doc: Doc | None, end: int | None = None) -> Chunk | None:
    """The declaration as the encoder sees it, without its doc: a :class:`Chunk` of its
    first MAX_POSITIVE_LINES non-doc lines. None when nothing but the doc is there."""
    removed = doc.lines if doc is not None else frozenset()
    replace = dict(doc.replace) if doc is not None else {}
    last = min(end or d.end, len(lines))
    kept: list[tuple[int, str]] = []
    for ln in range(d.start, last + 1):
        if ln in removed:
            continue
        kept.append((ln, replace.get(ln, lines[ln - 1])))
    while kept and not kept[0][1].strip():
        kept.pop(0)
    while kept and not kept[-1][1].strip():
        kept.pop()
    if not kept:
        return None
    kept = kept[:MAX_POSITIVE_LINES]
    text = "\n".join(t for _, t in kept)[:MAX_CHUNK_CHARS]
    if not text.strip():
        return None
    return Chunk(d.path, kept[0][0], kept[-1][0], d.language, d.kind, d.name, text, d.context)


def _owner(context: str) -> str:
    """The type a member belongs to: "impl Display for RingBuffer" -> "RingBuffer"."""
    if not context:
        return ""
    label = context.split(" > ")[-1]
    head, _, rest = label.partition(" ")
    if head in (
        "MODULE", "module", "namespace", "section", "Section", "Module", "mod", "extern", "theory", "scope",
        "locale", "context", "instantiation",
    ):  # fmt: skip
        return ""
    if " for " in rest:
        rest = rest.rsplit(" for ", 1)[1]
    return re.split(r"[<\s(\[]", rest.strip(), maxsplit=1)[0]


def good_name_words(name: str, words: list[str]) -> bool:
    """Enough real words in a name to make a query (not ``x⊓y≈y⇒y≤x`` or ``a1``)."""
    if not words:
        return False
    letters = sum(ch.isascii() and ch.isalnum() for ch in name)
    if letters < 0.7 * len(name.strip("_|")):
        return False
    if not any(len(w) >= 3 and w.isalpha() for w in words):
        return False
    return sum(len(w) == 1 for w in words) * 3 <= len(words)


def name_query(d: MinedDecl) -> str | None:
    """A query from the declaration's name: "parse interval", "ring buffer push"."""
    if d.kind in NO_NAME_KINDS or not d.name or ", " in d.name:
        return None
    short = re.split(r"::|\.", d.name.strip("|"))[-1]
    if short in TRIVIAL_NAMES or short.lower() in TRIVIAL_NAMES or short.startswith("__"):
        return None
    if d.language == "c" and d.kind == "macro":
        return None  # header constants: FOO_BAR_SZ
    words = identifier_words(short)
    if not good_name_words(short, words):
        return None
    owner = _owner(d.context)
    owner_words = identifier_words(owner) if owner and d.kind in ("method", "function", "constructor", "field") else []
    if len(words) < 2 and not owner_words:
        return None
    q = " ".join(owner_words + words)
    if len(q.split()) < 2 or len(q) < 6:
        return None
    return q


def file_chunks(rel_path: str, text: str, language: str) -> list[Chunk]:
    """A file's chunks as the index cuts them (the eval builder imports this name)."""
    return chunk_text(rel_path, text, language)
