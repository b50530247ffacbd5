"""One tree-sitter walker for every grammar; languages differ only by a :class:`Grammar`.

The walker visits the children of the root (and, recursively, of container bodies) and
asks the grammar to classify each child node:

* a :class:`Decl` -- a declaration, emitted as one span (with the comments/attributes
  directly above it); if ``Decl.label`` is set it is a *container* (impl, class, mod,
  namespace, MODULE, ...) whose body is walked with ``label`` appended to the context;
* ``PREFIX`` -- a comment or attribute that belongs to the next item when directly above it;
* ``DOC`` -- a module doc comment (Rust ``//!``): grouped into "doc" spans;
* ``IGNORE`` -- imports, package lines, separators: never chunked;
* ``TRANSPARENT`` -- a wrapper whose children are walked in place (``#ifdef``, error nodes);
* ``CODE`` -- anything else: consecutive code nodes become "code" spans.

Containers emit their own chunk only for their header (the lines before the first
*primary* member, e.g. a class's docstring and fields). Members with ``absorb=True``
(fields, associated types, method signatures, code) that sit before the first primary
member are folded into that header instead of becoming chunks of their own.
"""

from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass, field
from typing import Iterable

import tree_sitter

from codesearch.indexer.chunking.spans import CODE, Span, is_blank

PREFIX = "prefix"
DOC = "doc"
IGNORE = "ignore"
TRANSPARENT = "transparent"

PARSE_TIMEOUT_S = 5.0

Node = tree_sitter.Node


@dataclass
class Decl:
    """A classified declaration node."""

    kind: str
    name: str = ""
    node: Node | None = None  # the node whose extent is the declaration (default: the classified one)
    label: str | None = None  # context label; set for containers only
    body: list[Node] = field(default_factory=list)  # container: the member nodes to walk
    header: str = "always"  # container: "always" emit a header chunk, or "auto" (only if it says something)
    absorb: bool = False  # fold into the enclosing container's header when it precedes the first primary member
    mergeable: bool = False  # may merge with adjacent tiny spans of the same kind


Role = Decl | str


def first_line(s: str) -> str:
    return " ".join(s.split("\n", 1)[0].split())


_LANGUAGES: dict[type, tree_sitter.Language] = {}


class Grammar:
    """Per-language tables and hooks; subclasses fill the tables and override hooks.

    One instance serves one parse: it holds the source bytes its hooks read names from.
    """

    name: str = ""
    prefix: frozenset[str] = frozenset({"comment"})  # comment / attribute node types
    ignore: frozenset[str] = frozenset()
    transparent: frozenset[str] = frozenset({"ERROR"})
    decls: dict[str, str] = {}  # node type -> kind of a leaf declaration
    containers: dict[str, str] = {}  # node type -> kind of a container
    mergeable: frozenset[str] = frozenset()  # kinds whose tiny spans may merge
    absorb: frozenset[str] = frozenset()  # kinds folded into a container header
    method_parents: frozenset[str] = frozenset()  # container kinds in which "function" means "method"
    attribute_line: re.Pattern[str] | None = None  # lines that do not make a container header worth a chunk
    comment_line: re.Pattern[str] | None = None  # for grammars whose nodes swallow trailing comments

    def __init__(self, source: bytes = b"") -> None:
        self.source = source

    def load(self) -> object:  # the grammar's language capsule
        raise NotImplementedError

    def language(self) -> tree_sitter.Language:
        cls = type(self)
        if cls not in _LANGUAGES:
            with warnings.catch_warnings():  # some grammar wheels still hand out an int pointer
                warnings.simplefilter("ignore", DeprecationWarning)
                _LANGUAGES[cls] = tree_sitter.Language(self.load())
        return _LANGUAGES[cls]

    def text(self, node: Node | None) -> str:
        """Source text of ``node`` ("" for None)."""
        if node is None:
            return ""
        return self.source[node.start_byte : node.end_byte].decode("utf-8", "replace")

    def field_text(self, node: Node, name: str) -> str:
        return self.text(node.child_by_field_name(name))

    # -- hooks -----------------------------------------------------------------------
    def classify(self, node: Node, parent: Decl | None) -> Role:
        t = node.type
        if t in self.prefix:
            return PREFIX
        if t in self.ignore:
            return IGNORE
        if t in self.transparent:
            return TRANSPARENT
        if t in self.containers:
            kind = self.containers[t]
            name = self.name_of(node)
            return Decl(kind, name, label=self.label(node, kind, name), body=self.body(node))
        if t in self.decls:
            kind = self.decls[t]
            if kind == "function" and parent is not None and parent.kind in self.method_parents:
                kind = "method"
            return Decl(kind, self.name_of(node), absorb=kind in self.absorb, mergeable=kind in self.mergeable)
        return CODE

    def name_of(self, node: Node) -> str:
        return first_line(self.field_text(node, "name"))

    def label(self, node: Node, kind: str, name: str) -> str:
        return f"{kind} {name}".strip()

    def body(self, node: Node) -> list[Node]:
        b = node.child_by_field_name("body")
        return list(b.children) if b is not None else []

    def children_in_place(self, node: Node) -> list[Node]:
        """Children of a TRANSPARENT node to walk (conditions and names left out)."""
        out = []
        for i, c in enumerate(node.children):
            if node.field_name_for_child(i) in ("name", "condition"):
                continue
            out.append(c)
        return out


# ----------------------------------------------------------------------------------------
# The walker


@dataclass
class _Item:
    start: int  # 1-based, including the attached prefix
    end: int
    kind: str  # CODE, DOC, or a declaration kind
    primary: bool  # splits a container header (non-primary items may be absorbed)
    spans: list[Span]


def _start_line(node: Node) -> int:
    return node.start_point.row + 1


def _end_line(node: Node) -> int:
    row, col = node.end_point
    end = row + 1 if col > 0 else row  # a node ending at column 0 ended on the previous line
    return max(end, node.start_point.row + 1)


def _content_end(node: Node) -> int:
    """Last line of ``node`` ignoring trailing comments (extras) swallowed into it."""
    n = node
    for _ in range(200):
        kids = n.children
        j = len(kids) - 1
        while j >= 0 and kids[j].is_extra:
            j -= 1
        if j < 0:
            break
        n = kids[j]
    return _end_line(n)


class _Walker:
    def __init__(self, grammar: Grammar, lines: list[str]):
        self.g = grammar
        self.lines = lines

    def walk(self, nodes: Iterable[Node], ctx: list[str], parent: Decl | None) -> list[_Item]:
        items: list[_Item] = []
        pending: list[Node] = []
        prev_end = 0
        for node in nodes:
            if not node.is_named:
                continue
            role = self.g.classify(node, parent)
            if role == PREFIX:
                pending.append(node)
                continue
            if role == IGNORE:
                pending.clear()
                prev_end = _content_end(node)
                continue
            if role == TRANSPARENT:
                pending.clear()
                items.extend(self.walk(self.g.children_in_place(node), ctx, parent))
                prev_end = _content_end(node)
                continue
            start = self._lead_start(node, pending, prev_end)
            pending.clear()
            end = _content_end(node)
            prev_end = end
            if role == CODE or role == DOC:
                items.append(_Item(start if role == CODE else _start_line(node), end, role, False, []))
            elif isinstance(role, Decl):
                items.append(self._decl_item(role, node, start, ctx))
        return items

    def _lead_start(self, node: Node, pending: list[Node], prev_end: int) -> int:
        """Start of ``node`` extended over the comments/attributes directly above it."""
        start = _start_line(node)
        for p in reversed(pending):
            if _end_line(p) < start - 1 or _start_line(p) <= prev_end:
                break
            if p.start_point.row == 0 and _end_line(p) >= 3:
                break  # the file's license / header comment
            start = _start_line(p)
        comment = self.g.comment_line
        if comment is not None:  # comment lines the grammar folded into the previous node
            while start - 1 > max(prev_end, 0) and comment.match(self.lines[start - 2]):
                start -= 1
        return start

    def _decl_item(self, d: Decl, node: Node, start: int, ctx: list[str]) -> _Item:
        extent = d.node if d.node is not None else node
        start = min(start, _start_line(extent))
        end = max(_content_end(extent), _content_end(node))
        context = " > ".join(ctx)
        if d.label is None:
            span = Span(start, end, d.kind, d.name, context, mergeable=d.mergeable, body_start=_start_line(extent))
            return _Item(start, end, d.kind, not d.absorb, [span])

        inner = self.walk(d.body, ctx + [d.label], d)
        first = next((it for it in inner if it.primary), None)
        header_end = first.start - 1 if first is not None else end
        absorbed = [it for it in inner if it.end <= header_end]
        attr = self.g.attribute_line
        nonblank = sum(
            1 for x in self.lines[start - 1 : header_end] if not is_blank(x) and not (attr and attr.match(x))
        )
        emit_header = header_end >= start and (
            d.header == "always" or first is None or bool(absorbed) or nonblank >= 3
        )
        spans: list[Span] = []
        if emit_header:
            spans.append(Span(start, header_end, d.kind, d.name, context, mergeable=d.mergeable and first is None))
            inner = [it for it in inner if it.end > header_end]
        spans.extend(self.spans(inner, " > ".join(ctx + [d.label])))
        return _Item(start, end, d.kind, True, spans)

    @staticmethod
    def spans(items: list[_Item], context: str) -> list[Span]:
        """All spans of ``items``; runs of adjacent CODE (or DOC) items become one span."""
        out: list[Span] = []
        run: _Item | None = None
        for it in items:
            if it.kind in (CODE, DOC):
                if run is not None and run.kind == it.kind:
                    run.end = max(run.end, it.end)
                    continue
                if run is not None:
                    out.append(Span(run.start, run.end, run.kind, "", context))
                run = _Item(it.start, it.end, it.kind, False, [])
                continue
            if run is not None:
                out.append(Span(run.start, run.end, run.kind, "", context))
                run = None
            out.extend(it.spans)
        if run is not None:
            out.append(Span(run.start, run.end, run.kind, "", context))
        return out


def parse(
    grammar: Grammar, source: bytes | bytearray, timeout_s: float | None = None, ranges: list[tree_sitter.Range] | None = None
) -> tree_sitter.Tree | None:
    """Parse ``source`` (only the byte ``ranges`` of it, if given: nodes keep their offsets in
    the whole source); None when the parser gives up or runs past ``timeout_s``
    (default PARSE_TIMEOUT_S)."""
    parser = tree_sitter.Parser(grammar.language())
    if ranges:
        parser.included_ranges = ranges
    deadline = time.monotonic() + (PARSE_TIMEOUT_S if timeout_s is None else timeout_s)

    given: list[bytes] = []

    def read(offset: int, _point: object) -> bytes:
        piece = bytes(source[offset : offset + 65536])
        if piece is source:  # (a whole bytes object slices to itself: the copy is ours alone)
            piece = bytes(bytearray(piece))
        given.append(piece)
        return piece

    def too_slow(*_args: object) -> bool:
        return time.monotonic() > deadline

    try:
        return parser.parse(read, progress_callback=too_slow)
    except ValueError:
        return None
    finally:
        _drop_leaked_references(given)


def _drop_leaked_references(given: list[bytes]) -> None:
    """Give back the references py-tree-sitter 0.26 keeps to what a read callback returned.

    It never releases them: every byte a parse read stayed allocated, about the size of the file
    per parse, so an index run grew with its corpus (2 GB of RSS at 52k chunks of Debian's Rust
    crates; heaptrack showed 490 MB of these bytes at the peak; docs/speed.md). The parse has
    returned, so nothing of the parser uses them any more; a reference beyond ours is the kept
    one. Bytes of length 0 or 1 are shared singletons and are left alone. A version that
    releases them leaves nothing to give back.
    """
    import ctypes
    import sys

    decref = ctypes.pythonapi.Py_DecRef
    decref.argtypes = [ctypes.py_object]
    decref.restype = None
    for piece in given:
        if len(piece) > 1:
            kept = sys.getrefcount(piece) - 3  # (ours: the list, this loop's name, the call's argument)
            for _ in range(kept):
                decref(piece)


def tree_sitter_spans(grammar_class: type[Grammar], text: str, lines: list[str]) -> list[Span] | None:
    """Spans for ``text``; None if it could not be parsed (the caller falls back to windows)."""
    source = text.encode("utf-8", "replace")
    grammar = grammar_class(source)
    tree = parse(grammar, source)
    if tree is None:
        return None
    walker = _Walker(grammar, lines)
    items = walker.walk(tree.root_node.children, [], None)
    return walker.spans(items, "")

