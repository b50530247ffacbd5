#!/usr/bin/env python3
"""Build the held-out retrieval eval sets (CodeSearchNet style) from code on this machine.

For each set: take documented declarations from a real code base, use the first sentence
of the doc comment as the query, and copy the source files into a corpus folder with every
doc comment blanked out (each doc line becomes an empty line, so line numbers still match
the originals). The relevant span of a query is the declaration without its doc: its first
attribute/decorator/signature line through its last line. Queries are sampled with a fixed
seed; the output format is docs/eval-format.md.

    python scripts/build_eval_sets.py                       # all sets, seed 0
    python scripts/build_eval_sets.py --sets rust --max-queries 100

Output per set: <out>/<set>/corpus/... and <out>/<set>.jsonl; when <out> is the default
evals/data, the first 20 lines of each JSONL also go to evals/samples/<set>.jsonl (committed,
for review; `--samples DIR` writes them elsewhere), and evals/heldout_sources.txt lists every source
folder/file the sets are made from (never train on them). See evals/README.md.
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import re
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

REPO = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------------------
# Sources. Fixed lists (with versions) so that a rebuild gives the same sets; a set whose
# sources are not all present is skipped with a message.
# ---------------------------------------------------------------------------------------

CARGO_REGISTRY = Path("/usr/share/cargo/registry")
RUST_CRATES = (
    "bytes-1.2.1",
    "chrono-0.4.23",
    "hashbrown-0.12.3",
    "indexmap-1.9.2",
    "itertools-0.10.3",
    "smallvec-1.9.0",
)

PYTHON_VERSION = "3.11.7"
PYTHON_STDLIB = Path(f"/root/.pyenv/versions/{PYTHON_VERSION}/lib/python3.11")
# Pure-Python modules (a file) or packages (a folder, walked recursively, no tests).
PYTHON_MODULES = (
    "argparse.py",
    "base64.py",
    "bisect.py",
    "calendar.py",
    "collections/__init__.py",
    "colorsys.py",
    "configparser.py",
    "contextlib.py",
    "copy.py",
    "csv.py",
    "dataclasses.py",
    "datetime.py",
    "difflib.py",
    "email/_parseaddr.py",
    "email/message.py",
    "email/utils.py",
    "enum.py",
    "filecmp.py",
    "fnmatch.py",
    "fractions.py",
    "functools.py",
    "getopt.py",
    "gettext.py",
    "glob.py",
    "graphlib.py",
    "heapq.py",
    "http/cookies.py",
    "ipaddress.py",
    "json",
    "mimetypes.py",
    "netrc.py",
    "optparse.py",
    "pathlib.py",
    "pprint.py",
    "queue.py",
    "random.py",
    "reprlib.py",
    "sched.py",
    "shlex.py",
    "shutil.py",
    "statistics.py",
    "string.py",
    "tempfile.py",
    "textwrap.py",
    "tokenize.py",
    "urllib/parse.py",
    "zipfile.py",
)

COQ_VERSION = "8.16.1"
COQ_THEORIES = Path("/usr/lib/ocaml/coq/theories")
COQ_FOLDERS = (
    "Arith",
    "Bool",
    "Classes",
    "Init",
    "Lists",
    "Logic",
    "NArith",
    "PArith",
    "Program",
    "QArith",
    "Relations",
    "Sets",
    "Sorting",
    "Strings",
    "Structures",
    "Vectors",
    "Wellfounded",
    "ZArith",
)

# Lean and TLA+: checkouts of public repositories (not installed by any package); the
# version is the commit. Get them with `git clone https://github.com/<owner>/<name>
# /work/formal-src/<owner>+<name> && git -C ... checkout <commit>` (see evals/README.md).
FORMAL_SRC = Path("/work/formal-src")
LEAN_REPO = ("cedar-policy/cedar-spec", "795ddccff61c83aeb5d6a7ccd22abf5e00164c73")
# Lean files of the set: under these folders of the repository, minus tests and build files.
LEAN_FOLDERS = ("cedar-lean/Cedar", "cedar-lean/CedarProto", "cedar-lean/Protobuf")
TLAPLUS_REPO = ("tlaplus/CommunityModules", "a8068a4c21ed76b339b9a2aa6de69d78f64f6422")
TLAPLUS_FOLDERS = ("modules",)
# Validation sets: for choosing things the held-out pairs cannot judge (an adapter's
# interpolation factor, see docs/training.md) without looking at the eval sets.
# Built only on request (`--sets lean-validation,coq-validation`); never trained on either.
LEAN_VALIDATION_REPO = ("lecopivo/SciLean", "95f8119a2884e9c41f82136523bd5568ea7075c5")
LEAN_VALIDATION_FOLDERS = ("SciLean",)
COQ_VALIDATION_REPO = ("DeepSpec/InteractionTrees", "bd356ec0d2ea1cf13ed08b129967027f0f81b882")
COQ_VALIDATION_FOLDERS = ("theories",)
# Verus: asterinas/vostd (MPL-2.0), the `.rs` files under these folders that hold `verus!`
# code. Not ostd/libs, tools/ nor verified_libs/ (vstd extensions); nothing from
# verus-lang/verus, which is reserved for an independent benchmark. Its checkout is an export
# of the commit: `git -C <mirror> archive <commit> | tar -x -C <formal-src>/asterinas+vostd`.
VERUS_REPO = ("asterinas/vostd", "b5b972861a1ff6944269d08e3e8e2abbad7f4a93")
VERUS_FOLDERS = ("ostd/src", "ostd/specs")
VERUS_LICENSE = "LICENSE-MPL"  # copied into the corpus as is

DEFAULT_SEED = 0
DEFAULT_MAX_QUERIES = 300
SAMPLE_LINES = 20
from codesearch.trainer.doc_queries import MAX_QUERY_WORDS, MIN_QUERY_WORDS  # noqa: E402,F401  (4 and 60)
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


def _cr(line):
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
            lines[r0] = lines[r0][:c0] + _cr(lines[r0])
            for r in range(r0 + 1, r1):
                lines[r] = _cr(lines[r])
            lines[r1] = lines[r1][c1:]
        touched.update(range(r0, r1 + 1))
    for r in touched:
        if not lines[r].strip():
            lines[r] = _cr(lines[r])


# ---------------------------------------------------------------------------------------
# Queries: the first sentence of a doc, with markup simplified. The text rules live in
# codesearch.trainer.doc_queries, shared with the trainer's pair miner.
# ---------------------------------------------------------------------------------------

from codesearch.trainer.doc_queries import (  # noqa: E402  (re-exported: tests and callers use them from here)
    _STOP,
    _words,
    first_paragraph,
    first_sentence,
    query_from_paragraph,
    simplify_coqdoc,
    simplify_markdown,
    simplify_rest,
)


def make_query(item: DocItem, simplify: Callable[[str], str], para: str) -> None:
    """Set item.query (or item.skip) from the first paragraph of its doc."""
    item.query, item.skip = query_from_paragraph(para, item.name, simplify)


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
# Rust (tree-sitter-rust)
# ---------------------------------------------------------------------------------------

RUST_ITEM_KINDS = {
    "function_item": "function",
    "function_signature_item": "function",
    "struct_item": "struct",
    "enum_item": "enum",
    "union_item": "union",
    "trait_item": "trait",
    "type_item": "type",
    "associated_type": "type",
    "const_item": "const",
    "static_item": "static",
    "macro_definition": "macro",
}

_RUST_PARSER = None


def _rust_parser():
    global _RUST_PARSER
    if _RUST_PARSER is None:
        import tree_sitter
        import tree_sitter_rust

        _RUST_PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_rust.language()))
    return _RUST_PARSER


def _walk(node) -> Iterator:
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children))


def _rust_doc_kind(node) -> str | None:
    """'outer' or 'inner' for a doc comment node, None for any other node."""
    if node.type not in ("line_comment", "block_comment"):
        return None
    for c in node.children:
        if c.type == "outer_doc_comment_marker":
            return "outer"
        if c.type == "inner_doc_comment_marker":
            return "inner"
    return None


def _node_end(node, lines) -> tuple[int, int]:
    """End (row, col) of a node, with a trailing newline (line comments) left out."""
    row, col = node.end_point
    if col == 0 and row > node.start_point[0]:
        row -= 1
        col = len(lines[row]) - len(_cr(lines[row]))
    return row, col


def _rust_doc_text(node, src: bytes) -> str:
    text = src[node.start_byte : node.end_byte].decode("utf-8", "replace")
    if node.type == "line_comment":
        body = text[3:].rstrip("\r\n")
        return body[1:] if body.startswith(" ") else body
    body = text[3:-2]
    out = []
    for line in body.splitlines():
        line = line.strip()
        if line.startswith("*"):
            line = line[1:]
            line = line[1:] if line.startswith(" ") else line
        out.append(line)
    return "\n".join(out)


def _rust_attrs_text(item, src: bytes) -> list[str]:
    out = []
    sib = item.prev_named_sibling
    while sib is not None and (sib.type == "attribute_item" or _rust_doc_kind(sib) == "outer"):
        if sib.type == "attribute_item":
            out.append(src[sib.start_byte : sib.end_byte].decode("utf-8", "replace"))
        sib = sib.prev_named_sibling
    return out


def _rust_is_test_code(item, src: bytes) -> bool:
    if any(re.search(r"^#\[\s*test\s*\]$", a) for a in _rust_attrs_text(item, src)):
        return True
    node = item.parent
    while node is not None:
        if node.type == "mod_item":
            if any(re.search(r"cfg\s*\(\s*test\s*\)", a) for a in _rust_attrs_text(node, src)):
                return True
        node = node.parent
    return False


def _rust_qualified_name(item, src: bytes) -> str:
    name_node = item.child_by_field_name("name")
    name = src[name_node.start_byte : name_node.end_byte].decode() if name_node else ""
    parent = item.parent.parent if item.parent is not None else None
    if parent is not None and parent.type in ("impl_item", "trait_item"):
        field_name = "type" if parent.type == "impl_item" else "name"
        owner = parent.child_by_field_name(field_name)
        if owner is not None:
            owner_text = src[owner.start_byte : owner.end_byte].decode("utf-8", "replace")
            owner_text = re.split(r"[<\s]", owner_text.strip(), maxsplit=1)[0]
            if owner_text:
                return f"{owner_text}::{name}"
    return name


def process_rust(text: str, relpath: str) -> FileResult:
    """Blank every doc comment (///, //!, /** */, /*! */) and find documented items."""
    src = text.encode("utf-8", "surrogateescape")
    tree = _rust_parser().parse(src)
    lines = split_lines(src)
    ranges = []
    items: list[DocItem] = []
    declarations = 0
    for node in _walk(tree.root_node):
        if _rust_doc_kind(node) is not None:
            r1, c1 = _node_end(node, lines)
            ranges.append((node.start_point[0], node.start_point[1], r1, c1))
            continue
        kind = RUST_ITEM_KINDS.get(node.type)
        if kind is None:
            continue
        declarations += 1
        # Walk back over the attributes and outer doc comments attached to the item.
        docs, start_row = [], node.start_point[0]
        sib = node.prev_named_sibling
        while sib is not None:
            if sib.type == "attribute_item":
                start_row = sib.start_point[0]
            elif _rust_doc_kind(sib) == "outer":
                docs.append(sib)
            else:
                break
            sib = sib.prev_named_sibling
        if not docs:
            continue
        docs.reverse()
        # A doc that shares a line with code (`x, /// doc`) is not a clean query.
        if any(lines[d.start_point[0]][: d.start_point[1]].strip() for d in docs):
            continue
        if _rust_is_test_code(node, src):
            continue
        # Attributes above the doc are part of the declaration, docs below them too.
        doc_rows = [d.start_point[0] for d in docs] + [_node_end(d, lines)[0] for d in docs]
        end_row = _node_end(node, lines)[0]
        item = DocItem(
            path=relpath,
            name=_rust_qualified_name(node, src),
            kind=kind,
            start_line=min(start_row, node.start_point[0]) + 1,
            end_line=end_row + 1,
            doc_start=min(doc_rows) + 1,
            doc_end=max(doc_rows) + 1,
            doc="\n".join(_rust_doc_text(d, src) for d in docs),
        )
        para = first_paragraph(item.doc, is_heading=lambda s: s.startswith("#"))
        make_query(item, simplify_markdown, para)
        items.append(item)
    blank_ranges(lines, ranges)
    finish_items(items, lines)
    return FileResult(join_lines(lines).decode("utf-8", "surrogateescape"), declarations, items)


# ---------------------------------------------------------------------------------------
# Python (ast)
# ---------------------------------------------------------------------------------------

_SIGNATURE_LINE = re.compile(r"^[\w.]+\(.*\)\s*(->.*)?$")


def _python_docstring_node(node) -> ast.Expr | None:
    body = getattr(node, "body", None)
    if not body:
        return None
    first = body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first
    return None


def process_python(text: str, relpath: str) -> FileResult:
    """Blank every docstring (module, class, function) and find documented defs/classes.

    A docstring on its own lines becomes empty lines, except when it is the whole body:
    then its first line becomes ``pass`` so that the corpus stays valid Python. A docstring
    that shares a line with code (``def f(): "doc"``) is replaced by ``...`` on that line
    and its declaration is not used as a query.
    """
    src = text.encode("utf-8", "surrogateescape")
    tree = ast.parse(src, filename=relpath)
    lines = split_lines(src)
    ranges = []
    pass_lines: list[tuple[int, bytes]] = []  # (row, indent) to become indent + b"pass"
    ellipses: list[tuple[int, int]] = []  # (row, col) where "..." replaces the docstring
    items: list[DocItem] = []
    declarations = 0
    for node in ast.walk(tree):
        is_decl = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        declarations += is_decl
        if not (is_decl or isinstance(node, ast.Module)):
            continue
        doc = _python_docstring_node(node)
        if doc is None:
            continue
        r0, c0 = doc.lineno - 1, doc.col_offset
        r1, c1 = doc.end_lineno - 1, doc.end_col_offset
        after = lines[r1][c1:].strip()
        whole_lines = not lines[r0][:c0].strip() and (not after or after.startswith(b"#"))
        if whole_lines:
            ranges.append((r0, 0, r1, len(lines[r1]) - len(_cr(lines[r1]))))
            if len(node.body) == 1 and not isinstance(node, ast.Module):
                pass_lines.append((r0, lines[r0][:c0]))
        else:
            ranges.append((r0, c0, r1, c1))
            ellipses.append((r0, c0))
        if not is_decl or not whole_lines:
            continue
        start = min([node.lineno] + [d.lineno for d in node.decorator_list])
        item = DocItem(
            path=relpath,
            name=node.name,
            kind="class" if isinstance(node, ast.ClassDef) else "function",
            start_line=start,
            end_line=node.end_lineno,
            doc_start=doc.lineno,
            doc_end=doc.end_lineno,
            doc=ast.get_docstring(node, clean=True) or "",
        )
        paras = [p for p in re.split(r"\n\s*\n", item.doc.strip()) if p.strip()]
        if paras and _SIGNATURE_LINE.match(paras[0].strip().splitlines()[0]):
            paras = paras[1:]  # "name(args) -> result" header, as in C-style docstrings
        para = first_paragraph(paras[0]) if paras else ""
        if para.startswith(">>>"):
            para = ""
        make_query(item, simplify_rest, para)
        items.append(item)
    blank_ranges(lines, ranges)
    for row, col in ellipses:
        lines[row] = lines[row][:col] + b"..." + lines[row][col:]
    for row, indent in pass_lines:
        lines[row] = indent + b"pass" + _cr(lines[row])
    finish_items(items, lines)
    return FileResult(join_lines(lines).decode("utf-8", "surrogateescape"), declarations, items)


# ---------------------------------------------------------------------------------------
# Coq (a small lexer: nested comments, strings, sentences ending in '.')
# ---------------------------------------------------------------------------------------

_COQ_KEYWORDS = (
    "Lemma|Theorem|Corollary|Proposition|Fact|Remark|Example|Definition|Fixpoint|CoFixpoint|"
    "Inductive|CoInductive|Variant|Record|Structure|Class|Instance|Function|Let"
)
_COQ_DECL = re.compile(
    r"^(?:#\[[^\]]*\]\s*)*"
    r"(?:(?:Local|Global|Polymorphic|Monomorphic|Program|Cumulative|NonCumulative|Private)\s+)*"
    rf"({_COQ_KEYWORDS})\s+([^\s:({{\[]+)"
)
_COQ_DEFINITION_LIKE = {
    "Definition", "Fixpoint", "CoFixpoint", "Inductive", "CoInductive", "Variant", "Record",
    "Structure", "Class", "Instance", "Function", "Let", "Example",
}
_COQ_PROOF_END = re.compile(r"^[\s\-+*{}]*(Qed|Defined|Admitted|Abort|Save)\b")
_COQ_VERNACULAR = re.compile(
    rf"^[\s\-+*{{}}]*(?:#\[|(?:{_COQ_KEYWORDS}|End|Section|Module|Require|Import|Export|Hint|"
    r"Notation|Infix|Arguments|Implicit|Variable|Variables|Hypothesis|Hypotheses|Context|"
    r"Parameter|Parameters|Axiom|Axioms|Conjecture|Ltac|Tactic|Opaque|Transparent|Set|Unset|"
    r"Open|Close|Local|Global|Declare|Existing|Scheme|Combined|Create|Delimit|Bind|Reserved|"
    r"Include|Next|Obligation|Obligations|Add|Remove|Coercion|Canonical|Generalizable|"
    r"Typeclasses|Strategy|Check|Print|Eval|Compute|Extraction|Register|Universe|Constraint)\b)"
)


@dataclass
class _CoqComment:
    start: int
    end: int  # exclusive

    def text(self, src: str) -> str:
        return src[self.start : self.end]


def _coq_skip_string(src: str, i: int) -> int:
    """Index after the string literal that starts at src[i] == '"' ("" escapes a quote)."""
    i += 1
    while i < len(src):
        if src[i] == '"':
            if src.startswith('""', i):
                i += 2
                continue
            return i + 1
        i += 1
    return i


def _skip_nested_comment(src: str, i: int, open_: str, close: str, skip_string=None) -> int:
    """Index after the (possibly nested) comment starting at ``src[i:]`` with ``open_``.
    ``skip_string``: where strings inside comments are lexed too (Coq), the string skipper."""
    depth = 0
    while i < len(src):
        if src.startswith(open_, i):
            depth += 1
            i += len(open_)
        elif src.startswith(close, i):
            depth -= 1
            i += len(close)
            if depth == 0:
                return i
        elif skip_string is not None and src[i] == '"':
            i = skip_string(src, i)
        else:
            i += 1
    return i


def _coq_skip_comment(src: str, i: int) -> int:
    """Index after the (possibly nested) comment starting at src[i:i+2] == '(*'."""
    return _skip_nested_comment(src, i, "(*", "*)", _coq_skip_string)


def coq_lex(src: str) -> tuple[list[_CoqComment], list[tuple[int, int]]]:
    """Top-level comments and sentences (start, end-after-the-period) of a .v file."""
    comments: list[_CoqComment] = []
    sentences: list[tuple[int, int]] = []
    i, n, start = 0, len(src), None
    while i < n:
        if src.startswith("(*", i):
            j = _coq_skip_comment(src, i)
            comments.append(_CoqComment(i, j))
            i = j
            continue
        c = src[i]
        if c == '"':
            start = i if start is None else start
            i = _coq_skip_string(src, i)
            continue
        if c.isspace():
            i += 1
            continue
        start = i if start is None else start
        if c == "." and (i + 1 == n or src[i + 1].isspace()) and (i == 0 or src[i - 1] != "."):
            sentences.append((start, i + 1))
            start = None
        i += 1
    return comments, sentences


def _coq_is_doc(text: str) -> bool:
    """(** doc *) but not a heading (** * Title *) nor a banner (*******)."""
    return text.startswith("(**") and not text.startswith("(***") and not text[3:-2].lstrip().startswith("*")


def _coq_is_plain(text: str) -> bool:
    body = text[2:-2].strip()
    return not text.startswith("(**") and bool(body) and not set(body) <= set("*-=# ")


def _coq_comment_text(text: str) -> str:
    body = text[3:-2] if text.startswith("(**") else text[2:-2]
    return body.rstrip("*").rstrip()  # (** doc **)


def _coq_sole_declaration(text: str, comments: list[_CoqComment], k: int, sentences, si: int) -> bool:
    """Is sentences[si] the only declaration between comment k and the next comment?"""
    limit = comments[k + 1].start if k + 1 < len(comments) else len(text)
    for t0, _ in sentences[si + 1 :]:
        if t0 >= limit:
            break
        head = text[t0 : t0 + 400]
        if _COQ_DECL.match(head) or re.match(r"(End|Section|Module)\b", head):
            return False
    return True


def process_coq(text: str, relpath: str, accept_plain: bool = False) -> FileResult:
    """Blank every (** *) comment and find documented declarations.

    Doc = a (** ... *) comment (not a heading like (** * Title *)) on its own lines,
    directly above a declaration (no blank line between). With ``accept_plain``, a plain
    (* ... *) comment in that position counts too (and all such comments are blanked).
    The span runs from the declaration's first line through Qed./Defined./Admitted. (or
    through its own terminating '.' for a definition with ':=').
    """
    comments, sentences = coq_lex(text)
    lines = split_lines(text)
    line_starts = [0]
    for line in lines[:-1]:
        line_starts.append(line_starts[-1] + len(line) + 1)

    def pos(offset: int) -> tuple[int, int]:
        lo, hi = 0, len(line_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if line_starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo, offset - line_starts[lo]

    to_blank: set[int] = {i for i, c in enumerate(comments) if c.text(text).startswith("(**")}
    items: list[DocItem] = []
    declarations = 0
    ci = 0  # index of the first comment after the previous sentence
    for si, (s0, s1) in enumerate(sentences):
        # comments between the previous sentence and this one
        prev_end = sentences[si - 1][1] if si else 0
        while ci < len(comments) and comments[ci].start < prev_end:
            ci += 1
        k = ci
        while k < len(comments) and comments[k].end <= s0:
            k += 1
        last_comment = k - 1 if k > ci else None
        m = _COQ_DECL.match(text[s0:s1])
        if not m:
            continue
        declarations += 1
        keyword, name = m.group(1), m.group(2).rstrip(".")
        # where the declaration ends
        end = s1
        if not (keyword in _COQ_DEFINITION_LIKE and ":=" in text[s0:s1]):
            for t0, t1 in sentences[si + 1 :]:
                sentence = text[t0:t1]
                if _COQ_PROOF_END.match(sentence):
                    end = t1
                    break
                if _COQ_VERNACULAR.match(sentence):
                    break  # no proof: the statement alone
        if last_comment is None:
            continue
        k = last_comment
        comment = comments[k]
        ctext = comment.text(text)
        gap = text[comment.end : s0]
        if gap.strip() or gap.count("\n") not in (1, 2):
            continue  # on the same line, or not above it
        if gap.count("\n") == 2 and not _coq_sole_declaration(text, comments, k, sentences, si):
            continue  # one blank line between: only when the comment heads this declaration alone
        r0, c0 = pos(comment.start)
        if lines[r0][:c0].strip():
            continue  # the comment shares its first line with code
        if _coq_is_doc(ctext):
            pass
        elif accept_plain and _coq_is_plain(ctext):
            to_blank.add(k)
        else:
            continue
        r1, _ = pos(comment.end - 1)
        start_row, _ = pos(s0)
        end_row, _ = pos(end - 1)
        item = DocItem(
            path=relpath,
            name=name,
            kind=keyword.lower(),
            start_line=start_row + 1,
            end_line=end_row + 1,
            doc_start=r0 + 1,
            doc_end=r1 + 1,
            doc=_coq_comment_text(ctext),
        )
        make_query(item, simplify_coqdoc, first_paragraph(item.doc))
        items.append(item)
    ranges = []
    for k in sorted(to_blank):
        c = comments[k]
        r0, c0 = pos(c.start)
        r1, c1 = pos(c.end - 1)
        ranges.append((r0, c0, r1, c1 + 1))
    blank_ranges(lines, ranges)
    finish_items(items, lines)
    return FileResult(join_lines(lines), declarations, items)


# ---------------------------------------------------------------------------------------
# Lean 4 (the indexer's Lean chunker; a small lexer for the doc comments to blank)
# ---------------------------------------------------------------------------------------


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
            start, i = i, _skip_nested_comment(src, i, "/-", "-/")
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


def _offset_to_pos(lines: list[str]) -> Callable[[int], tuple[int, int]]:
    line_starts = [0]
    for line in lines[:-1]:
        line_starts.append(line_starts[-1] + len(line) + 1)

    def pos(offset: int) -> tuple[int, int]:
        import bisect

        row = bisect.bisect_right(line_starts, offset) - 1
        return row, offset - line_starts[row]

    return pos


def _mined_declarations(text: str, relpath: str, language: str):
    """The pair miner's declarations of a file (the indexer's chunker, windows merged)."""
    from codesearch.trainer.mine import declarations, file_chunks

    return [d for d in declarations(file_chunks(relpath, text, language)) if ", " not in d.name]


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
    pos = _offset_to_pos(lines)
    ranges = []
    for a, z in lean_doc_comments(text):
        r0, c0 = pos(a)
        r1, c1 = pos(z)
        ranges.append((r0, c0, r1, c1))
    chunk_lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    items: list[DocItem] = []
    decls = _mined_declarations(text, relpath, "lean")
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
        make_query(item, simplify_markdown, first_paragraph(item.doc, is_heading=lambda s: s.startswith("#")))
        items.append(item)
    blank_ranges(lines, ranges)
    finish_items(items, lines)
    return FileResult(join_lines(lines), len(decls), items)


# ---------------------------------------------------------------------------------------
# TLA+ (the indexer's tree-sitter-tlaplus chunker)
# ---------------------------------------------------------------------------------------

# CONSTANT/VARIABLE declarations and PlusCal `define` blocks are not used as targets.
TLAPLUS_KINDS = frozenset({"operator", "theorem", "lemma", "proposition", "corollary", "assumption",
                           "procedure", "process", "macro"})  # fmt: skip


def process_tlaplus(text: str, relpath: str) -> FileResult:
    """Blank the comments that document declarations and find the documented ones.

    TLA+ has no doc-comment syntax: the doc of an operator, theorem, assumption or PlusCal
    procedure/process/macro is the ``\\*`` line group or ``(* *)`` block (boxed comments
    included) directly above it, with no blank line between. Those comments are blanked
    (line by line); other comments stay. The span runs from the declaration's first line
    through its last.
    """
    from codesearch.trainer.doc_queries import leading_doc

    lines = split_lines(text)
    chunk_lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    blank: set[int] = set()
    items: list[DocItem] = []
    decls = [d for d in _mined_declarations(text, relpath, "tlaplus") if d.kind in TLAPLUS_KINDS]
    for d in decls:
        doc = leading_doc("tlaplus", chunk_lines, d.start, d.end)
        if doc is None:
            continue
        code = max(doc.lines) + 1
        if code > len(lines) or not lines[code - 1].strip():
            continue  # a blank line between: a section comment, not this declaration's doc
        blank.update(doc.lines)
        item = DocItem(
            path=relpath,
            name=d.name,
            kind=d.kind,
            start_line=code,
            end_line=d.end,
            doc_start=min(doc.lines),
            doc_end=max(doc.lines),
            doc=doc.text,
        )
        make_query(item, lambda t: " ".join(t.split()), first_paragraph(item.doc))
        items.append(item)
    for ln in blank:
        lines[ln - 1] = _cr(lines[ln - 1])
    finish_items(items, lines)
    return FileResult(join_lines(lines), len(decls), items)


# ---------------------------------------------------------------------------------------
# Verus (a small lexer and item finder of its own: tree-sitter-rust sees a `verus! { }` body
# as an opaque token tree, and Verus syntax is not Rust. Deliberately not the indexer's
# chunker, so that the eval set is not defined by the code under test.)
# ---------------------------------------------------------------------------------------


@dataclass
class _VTok:
    kind: str  # ident, punct, lit, lifetime, doc (outer doc comment), idoc (inner), comment
    text: str
    start: int  # character offsets, end exclusive
    end: int


_V_RAW_STR = re.compile(r'(?:b|c)?r(#*)"')
_V_STR = re.compile(r'(?:b|c)?"')
_V_IDENT = re.compile(r"(?:r#)?[^\W\d]\w*")
_V_NUMBER = re.compile(r"\d\w*")


def verus_lex(src: str) -> list[_VTok]:
    """Tokens of a Rust/Verus file: comments (nested ``/* */``), doc comments, strings (raw
    ones too), char literals told apart from lifetimes, identifiers, numbers, punctuation
    (single characters, plus ``->``, ``=>`` and ``::``)."""
    toks: list[_VTok] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c.isspace():
            i += 1
            continue
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            e = j - 1 if j > i and src[j - 1] == "\r" else j
            text = src[i:e]
            kind = "doc" if text.startswith("///") and not text.startswith("////") else (
                "idoc" if text.startswith("//!") else "comment")  # fmt: skip
            toks.append(_VTok(kind, text, i, e))
            i = j
            continue
        if src.startswith("/*", i):
            j = _skip_nested_comment(src, i, "/*", "*/")
            text = src[i:j]
            if text.startswith("/**") and not text.startswith("/***") and not text.startswith("/**/"):
                kind = "doc"
            else:
                kind = "idoc" if text.startswith("/*!") else "comment"
            toks.append(_VTok(kind, text, i, j))
            i = j
            continue
        m = _V_RAW_STR.match(src, i)
        if m:
            close = '"' + m.group(1)
            j = src.find(close, m.end())
            j = n if j < 0 else j + len(close)
            toks.append(_VTok("lit", src[i:j], i, j))
            i = j
            continue
        m = _V_STR.match(src, i)
        if m:
            j = m.end()
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            j = min(j + 1, n)
            toks.append(_VTok("lit", src[i:j], i, j))
            i = j
            continue
        if c == "'" or (c == "b" and src.startswith("'", i + 1)):
            k = i + 1 if c == "'" else i + 2
            if src.startswith("\\", k):  # '\n', '\'', '\u{1F600}'
                j = k + 2
                while j < n and src[j] != "'" and src[j] != "\n":
                    j += 1
                j = min(j + 1, n)
                toks.append(_VTok("lit", src[i:j], i, j))
                i = j
                continue
            if k + 1 < n and src[k + 1] == "'" and src[k] != "\n":  # 'x'
                toks.append(_VTok("lit", src[i : k + 2], i, k + 2))
                i = k + 2
                continue
            m = _V_IDENT.match(src, k) if c == "'" else None
            if m:  # a lifetime or a loop label
                toks.append(_VTok("lifetime", src[i : m.end()], i, m.end()))
                i = m.end()
                continue
        m = _V_IDENT.match(src, i)
        if m:
            toks.append(_VTok("ident", m.group(), i, m.end()))
            i = m.end()
            continue
        m = _V_NUMBER.match(src, i)
        if m:
            toks.append(_VTok("lit", m.group(), i, m.end()))
            i = m.end()
            continue
        two = src[i : i + 2]
        if two in ("->", "=>", "::"):
            toks.append(_VTok("punct", two, i, i + 2))
            i += 2
            continue
        toks.append(_VTok("punct", c, i, i + 1))
        i += 1
    return toks


# Words that can start an item (after a fn body's closing brace; an expression inside a
# requires/ensures clause continues with `else`, an operator, `,` or the next clause instead).
_V_ITEM_WORDS = frozenset({
    "pub", "fn", "struct", "enum", "union", "trait", "type", "const", "static", "impl", "mod",
    "use", "extern", "unsafe", "async", "default", "macro_rules", "open", "closed", "uninterp",
    "spec", "proof", "exec", "axiom", "broadcast", "tracked", "ghost", "global",
})  # fmt: skip
# Words that continue a signature or an expression: never the start of the next item.
_V_CONTINUE_WORDS = frozenset({
    "else", "as", "is", "has", "matches", "requires", "ensures", "recommends", "decreases",
    "returns", "invariant", "invariant_except_break", "opens_invariants", "no_unwind", "when",
    "via", "default_ensures", "where", "with", "by", "implies",
})  # fmt: skip
_V_MODIFIERS = frozenset({
    "pub", "open", "closed", "uninterp", "broadcast", "default", "unsafe", "async", "spec",
    "proof", "exec", "axiom", "tracked", "ghost",
})  # fmt: skip
_V_FN_MODES = ("spec", "proof", "exec", "axiom")
# Macros whose bodies hold items: `verus! { ... }` and Verus's struct_with_invariants!.
_V_ITEM_MACROS = frozenset({"verus", "struct_with_invariants"})
_V_TEST_ATTR = re.compile(r"^#\[\s*k?test\s*\]$|^#\[\s*cfg\s*\(\s*k?test\s*\)\s*\]$")


def _verus_match(toks: list[_VTok]) -> dict[int, int]:
    """Index of the matching closer of each ( [ { token (the last token when unbalanced)."""
    pairs = {")": "(", "]": "[", "}": "{"}
    match: dict[int, int] = {}
    stack: list[int] = []
    for k, t in enumerate(toks):
        if t.kind != "punct":
            continue
        if t.text in "([{":
            stack.append(k)
        elif t.text in pairs:
            # pop to the matching opener (a stray closer in broken code closes what is open)
            while stack and toks[stack[-1]].text != pairs[t.text]:
                match[stack.pop()] = k
            if stack:
                match[stack.pop()] = k
    for k in stack:
        match[k] = len(toks) - 1
    return match


class _VerusParser:
    """Items of a token stream: fns of every mode, structs, enums, unions, traits, types,
    consts, statics, macro_rules (impl, trait, mod, verus! and struct_with_invariants! bodies
    are walked for the items inside)."""

    def __init__(self, src: str, toks: list[_VTok]):
        self.src = src
        self.toks = [t for t in toks if t.kind not in ("comment", "idoc")]
        self.match = _verus_match(self.toks)
        # (name, kind, first token (attribute or keyword), last token, doc tokens, in test code)
        self.items: list[tuple[str, str, int, int, list[_VTok], bool]] = []

    def text(self, k: int) -> str:
        return self.toks[k].text if 0 <= k < len(self.toks) else ""

    def _starts_item(self, k: int, hi: int) -> bool:
        if k >= hi:
            return True
        t = self.toks[k]
        if t.kind == "doc" or t.text in ("}", "#"):
            return True
        if t.kind != "ident" or t.text in _V_CONTINUE_WORDS:
            return False
        return t.text in _V_ITEM_WORDS or (self.text(k + 1) == "!" and self.text(k + 2) in ("{", "(", "["))

    def body_end(self, j: int, hi: int) -> int:
        """Last token of a fn/const/static/type from j on: the '}' of its body (the first '{'
        at depth 0 whose '}' is not followed by more of an expression) or a ';' at depth 0."""
        while j < hi:
            t = self.toks[j]
            if t.kind == "punct":
                if t.text == ";":
                    return j
                if t.text == "{":
                    k = self.match[j]
                    if self._starts_item(k + 1, hi):
                        return k
                    j = k + 1
                    continue
                if t.text in "([":
                    j = self.match[j] + 1
                    continue
            j += 1
        return hi - 1

    def first_brace(self, j: int, hi: int) -> int | None:
        """The first '{' at depth 0 from j on, or None when a ';' comes first."""
        while j < hi:
            t = self.toks[j]
            if t.kind == "punct":
                if t.text == "{":
                    return j
                if t.text == ";":
                    return None
                if t.text in "([":
                    j = self.match[j] + 1
                    continue
            j += 1
        return None

    def semi_end(self, j: int, hi: int) -> int:
        while j < hi:
            t = self.toks[j]
            if t.kind == "punct":
                if t.text == ";":
                    return j
                if t.text in "([{":
                    j = self.match[j] + 1
                    continue
            j += 1
        return hi - 1

    def impl_owner(self, j: int, brace: int) -> str:
        """The type an ``impl`` block is for (the last path segment, generics dropped)."""
        k, angle = j, 0
        if self.text(k) == "<":  # impl<...>
            while k < brace:
                angle += {"<": 1, ">": -1}.get(self.text(k), 0)
                k += 1
                if angle == 0:
                    break
        start, angle = k, 0
        for m in range(k, brace):
            s = self.text(m)
            angle += {"<": 1, ">": -1}.get(s, 0)
            if s == "for" and angle == 0:
                start = m + 1
        name = ""
        for m in range(start, brace):
            t = self.toks[m]
            if t.kind == "ident" and t.text not in ("mut", "dyn", "unsafe"):
                name = t.text
                if self.text(m + 1) != "::":
                    break
            elif t.text in ("&", "!", "::") or t.kind == "lifetime":
                continue
            else:
                break
        return name

    def parse(self, lo: int, hi: int, owner: str = "", in_test: bool = False) -> None:
        toks, i = self.toks, lo
        while i < hi:
            docs: list[_VTok] = []
            first: int | None = None  # first attribute or keyword token
            test = in_test
            while i < hi:
                t = toks[i]
                if t.kind == "doc":
                    docs.append(t)
                    i += 1
                elif t.text == "#" and self.text(i + 1) == "[":
                    close = self.match[i + 1]
                    if _V_TEST_ATTR.match(re.sub(r"\s+", " ", self.src[t.start : toks[close].end])):
                        test = True
                    first = i if first is None else first
                    i = close + 1
                elif t.text == "#" and self.text(i + 1) == "!" and self.text(i + 2) == "[":
                    i = self.match[i + 2] + 1  # an inner attribute: belongs to no item
                    docs, first = [], None
                else:
                    break
            if i >= hi:
                break
            first = i if first is None else first
            j, mods = i, []
            while j < hi:
                s = toks[j].text
                if toks[j].kind == "ident" and s in _V_MODIFIERS:
                    mods.append(s)
                    j += 1
                    if s in ("pub", "spec") and self.text(j) == "(":  # pub(crate), spec(checked)
                        j = self.match[j] + 1
                elif s == "const" and self.text(j + 1) in ("fn", "unsafe", "async", "extern"):
                    mods.append(s)
                    j += 1
                elif s == "extern" and j + 1 < hi and toks[j + 1].kind == "lit":  # extern "C" fn
                    mods.append(s)
                    j += 2
                else:
                    break
            if j >= hi:
                break
            kw, name_tok = toks[j].text, self.text(j + 1)
            kind = None
            if kw == "fn":
                mode = next((m for m in mods if m in _V_FN_MODES), None)
                kind, end = (f"{mode} fn" if mode else "fn"), self.body_end(j + 2, hi)
            elif kw in ("struct", "enum", "union") and toks[j + 1].kind == "ident":
                brace = self.first_brace(j + 2, hi)
                kind, end = kw, (self.match[brace] if brace is not None else self.semi_end(j + 2, hi))
            elif kw in ("type", "const", "static"):
                kind, end = kw, self.body_end(j + 2, hi)
            elif kw == "trait":
                brace = self.first_brace(j + 2, hi)
                kind, end = kw, (self.match[brace] if brace is not None else self.semi_end(j + 2, hi))
                if brace is not None:
                    self.parse(brace + 1, end, name_tok, test)
            elif kw == "macro_rules" and self.text(j + 1) == "!":
                name_tok = self.text(j + 2)
                end = self.match.get(j + 3, j + 3)
                end = end + 1 if self.text(end + 1) == ";" else end
                kind = "macro"
            elif kw == "impl":
                brace = self.first_brace(j + 1, hi)
                if brace is None:
                    i = self.semi_end(j + 1, hi) + 1
                    continue
                end = self.match[brace]
                self.parse(brace + 1, end, self.impl_owner(j + 1, brace), test)
                i = end + 1
                continue
            elif kw == "mod":
                brace = self.first_brace(j + 2, hi)
                if brace is None:
                    i = self.semi_end(j + 2, hi) + 1
                    continue
                end = self.match[brace]
                self.parse(brace + 1, end, "", test or name_tok in ("test", "tests"))
                i = end + 1
                continue
            elif toks[j].kind == "ident" and name_tok == "!" and self.text(j + 2) in ("{", "(", "["):
                end = self.match[j + 2]
                if kw in _V_ITEM_MACROS:
                    self.parse(j + 3, end, owner, test)
                i = end + 1
                continue
            elif kw in ("use", "global") or (kw == "extern" and name_tok == "crate"):
                i = self.semi_end(j + 1, hi) + 1
                continue
            if kind is None:  # anything else (`broadcast group`, stray tokens): step over it
                i = (self.match[j] + 1) if toks[j].text in ("(", "[", "{") else j + 1
                continue
            name = f"{owner}::{name_tok}" if owner else name_tok
            self.items.append((name, kind, first, end, docs, test))
            i = end + 1


def process_verus(text: str, relpath: str) -> FileResult:
    """Blank every doc comment (///, //!, /** */, /*! */) and find documented Verus/Rust items.

    Items inside ``verus! { }`` (fns of every mode: spec, proof, exec, axiom; structs, enums,
    traits, types, consts, statics) and plain Rust items outside it; methods of impl and trait
    blocks too. Doc = the ``///`` / ``/** */`` comments above the item (attributes and plain
    comments may sit between or above them); a doc on an ``impl`` block is not used. The span
    runs from the first attribute (or the first keyword) through the body's closing ``}`` or
    the final ``;``. Test code (``#[test]``, ``#[ktest]``, ``#[cfg(test)]``, ``#[cfg(ktest)]``,
    ``mod test(s)``) is skipped.
    """
    lines = split_lines(text)
    pos = _offset_to_pos(lines)
    toks = verus_lex(text)
    ranges = []
    for t in toks:
        if t.kind in ("doc", "idoc"):
            ranges.append((*pos(t.start), *pos(t.end)))
        elif t.kind == "comment" and re.match(r"//\s*(?:///(?!/)|//!)", t.text):
            ranges.append((*pos(t.start), *pos(t.end)))  # `// /// doc`: a commented-out doc line
        elif t.kind == "comment" and t.text.startswith("/*"):
            # commented-out code keeps its doc lines: blank those too (up to a `*/` on the line)
            for m in _V_DOC_LINE_IN_COMMENT.finditer(t.text):
                a, z = t.start + m.start(1), t.start + m.end(1)
                ranges.append((*pos(a), *pos(z)))
    parser = _VerusParser(text, toks)
    parser.parse(0, len(parser.toks))
    items: list[DocItem] = []
    for name, kind, first, last, docs, test in parser.items:
        if not docs or test:
            continue
        if any(lines[pos(d.start)[0]][: pos(d.start)[1]].strip() for d in docs):
            continue  # a doc sharing its line with code (`x, /// doc`) is not a clean query
        doc_rows = [pos(d.start)[0] for d in docs] + [pos(d.end - 1)[0] for d in docs]
        start_row = pos(parser.toks[first].start)[0]
        item = DocItem(
            path=relpath,
            name=name,
            kind=kind,
            start_line=start_row + 1,
            end_line=pos(parser.toks[last].end - 1)[0] + 1,
            doc_start=min(doc_rows) + 1,
            doc_end=max(doc_rows) + 1,
            doc="\n".join(_verus_doc_text(d.text) for d in docs),
        )
        make_query(item, simplify_markdown, first_paragraph(item.doc, is_heading=lambda s: s.startswith("#")))
        items.append(item)
    blank_ranges(lines, ranges)
    finish_items(items, lines)
    return FileResult(join_lines(lines), len(parser.items), items)


# A `///` or `//!` line inside a block comment (commented-out code), through the end of the line
# or the first `*/` on it.
_V_DOC_LINE_IN_COMMENT = re.compile(r"(?m)^[ \t]*(?:/\*+[ \t]*)?((?:///(?!/)|//!)(?:(?!\*/)[^\r\n])*)")


def _verus_doc_text(text: str) -> str:
    if text.startswith("///"):
        body = text[3:]
        return body[1:] if body.startswith(" ") else body
    out = []
    for line in text[3:-2].splitlines():
        line = line.strip()
        if line.startswith("*"):
            line = line[1:]
            line = line[1:] if line.startswith(" ") else line
        out.append(line)
    return "\n".join(out)


# ---------------------------------------------------------------------------------------
# Sets
# ---------------------------------------------------------------------------------------


@dataclass
class SourceFile:
    src: Path  # absolute path of the original
    rel: str  # path inside the corpus, '/' separators


@dataclass
class SetSpec:
    name: str
    domain: str
    # (kind, name, version, path) rows of evals/heldout_sources.txt
    sources: list[tuple[str, str, str, Path]]
    list_files: Callable[[], list[SourceFile]]
    process: Callable[[str, str], FileResult]
    # files copied into the corpus unchanged and not counted (a license)
    extra_files: Callable[[], list[SourceFile]] = lambda: []


def _ext(language: str) -> str:
    """A language's main file extension, from the language registry (``codesearch.languages``).

    The sets' extractors (``process_rust``, ``process_coq``, ...) stay their own: they define
    the committed eval data, and their docs are found independently of the miner's."""
    from codesearch import languages

    lang = languages.get(language)
    assert lang is not None and lang.extensions, language
    return lang.extensions[0]


def _rust_files(registry: Path) -> list[SourceFile]:
    out = []
    for crate in RUST_CRATES:
        root = registry / crate / "src"
        for p in sorted(root.rglob(f"*{_ext('rust')}")):
            rel = p.relative_to(registry / crate)
            if any(part in ("tests", "benches", "examples") for part in rel.parts[1:-1]):
                continue
            out.append(SourceFile(p, f"{crate}/{rel.as_posix()}"))
    return out


def _python_files(stdlib: Path) -> list[SourceFile]:
    out = []
    for entry in PYTHON_MODULES:
        p = stdlib / entry
        if p.is_dir():
            for f in sorted(p.rglob(f"*{_ext('python')}")):
                rel = f.relative_to(stdlib)
                if any(part in ("test", "tests", "idle_test", "__pycache__") for part in rel.parts):
                    continue
                out.append(SourceFile(f, rel.as_posix()))
        else:
            out.append(SourceFile(p, entry))
    return out


def _coq_files(theories: Path) -> list[SourceFile]:
    out = []
    for folder in COQ_FOLDERS:
        for f in sorted((theories / folder).rglob(f"*{_ext('coq')}")):
            out.append(SourceFile(f, f.relative_to(theories).as_posix()))
    return out


def _repo_files(root: Path, folders: Sequence[str], suffix: str) -> list[SourceFile]:
    out = []
    for folder in folders:
        for f in sorted((root / folder).rglob(f"*{suffix}")):
            rel = f.relative_to(root)
            if any(part.lower() in ("test", "tests", "unittest", "symtest", "difftest") for part in rel.parts[:-1]):
                continue
            out.append(SourceFile(f, rel.as_posix()))
    return out


def _verus_files(root: Path) -> list[SourceFile]:
    return [f for f in _repo_files(root, VERUS_FOLDERS, _ext("rust")) if "verus!" in _read(f.src)]


def repo_dir(formal_src: Path, repo: tuple[str, str]) -> Path:
    """Where a repository's checkout lives: <formal_src>/<owner>+<name>."""
    return formal_src / repo[0].replace("/", "+")


def make_specs(cargo_registry: Path, python_stdlib: Path, coq_theories: Path, coq_plain: bool,
               formal_src: Path = FORMAL_SRC) -> dict[str, SetSpec]:  # fmt: skip
    lean_dir, tla_dir = repo_dir(formal_src, LEAN_REPO), repo_dir(formal_src, TLAPLUS_REPO)
    lean_val_dir, coq_val_dir = repo_dir(formal_src, LEAN_VALIDATION_REPO), repo_dir(formal_src, COQ_VALIDATION_REPO)
    verus_dir = repo_dir(formal_src, VERUS_REPO)

    def py_name(entry: str) -> str:
        return entry.removesuffix(".py").removesuffix("/__init__").replace("/", ".")

    return {
        "rust": SetSpec(
            "rust",
            "rust",
            [("crate", c.rsplit("-", 1)[0], c.rsplit("-", 1)[1], cargo_registry / c) for c in RUST_CRATES],
            lambda: _rust_files(cargo_registry),
            process_rust,
        ),
        "python": SetSpec(
            "python",
            "python",
            [
                ("package" if not entry.endswith(".py") else "module", py_name(entry), PYTHON_VERSION, python_stdlib / entry)
                for entry in PYTHON_MODULES
            ],
            lambda: _python_files(python_stdlib),
            process_python,
        ),
        "coq": SetSpec(
            "coq",
            "coq",
            [("theories", f"Coq.{f}", COQ_VERSION, coq_theories / f) for f in COQ_FOLDERS],
            lambda: _coq_files(coq_theories),
            lambda text, rel: process_coq(text, rel, accept_plain=coq_plain),
        ),
        "lean": SetSpec(
            "lean",
            "lean",
            [("repo", LEAN_REPO[0], LEAN_REPO[1], lean_dir)],
            lambda: _repo_files(lean_dir, LEAN_FOLDERS, _ext("lean")),
            process_lean,
        ),
        "tlaplus": SetSpec(
            "tlaplus",
            "tla",
            [("repo", TLAPLUS_REPO[0], TLAPLUS_REPO[1], tla_dir)],
            lambda: _repo_files(tla_dir, TLAPLUS_FOLDERS, _ext("tlaplus")),
            process_tlaplus,
        ),
        "lean-validation": SetSpec(
            "lean-validation",
            "lean",
            [("repo", LEAN_VALIDATION_REPO[0], LEAN_VALIDATION_REPO[1], lean_val_dir)],
            lambda: _repo_files(lean_val_dir, LEAN_VALIDATION_FOLDERS, _ext("lean")),
            process_lean,
        ),
        "coq-validation": SetSpec(
            "coq-validation",
            "coq",
            [("repo", COQ_VALIDATION_REPO[0], COQ_VALIDATION_REPO[1], coq_val_dir)],
            lambda: _repo_files(coq_val_dir, COQ_VALIDATION_FOLDERS, _ext("coq")),
            lambda text, rel: process_coq(text, rel, accept_plain=True),  # few (** *) docs there
        ),
        "verus": SetSpec(
            "verus",
            "verus",
            [("repo", VERUS_REPO[0], VERUS_REPO[1], verus_dir)],
            lambda: _verus_files(verus_dir),
            process_verus,
            lambda: [SourceFile(verus_dir / VERUS_LICENSE, VERUS_LICENSE)],
        ),
    }


def group_queries(items: Sequence[DocItem]) -> list[tuple[str, list[DocItem]]]:
    """Usable items grouped by query text (case-insensitive, without the final period).

    The same doc on several declarations (cfg twins, map/set pairs) makes one query whose
    relevant spans are all of them, so no query has a right answer that counts as a miss.
    """
    groups: dict[str, list[DocItem]] = {}
    for it in items:
        if it.query is None:
            continue
        key = " ".join(it.query.lower().rstrip(".!? ").split())
        groups.setdefault(key, []).append(it)
    return sorted(groups.items())


def sample_queries(items: Sequence[DocItem], n: int, seed: int, domain: str, prefix: str) -> list[dict]:
    """Sample n query groups with a fixed seed; returns eval-set JSON objects."""
    groups = group_queries(items)
    rng = random.Random(seed)
    chosen = rng.sample(groups, min(n, len(groups)))
    out = []
    for i, (_, members) in enumerate(chosen):
        members = sorted(members, key=lambda it: (it.path, it.start_line))
        first = members[0]
        out.append(
            {
                "id": f"{prefix}-{i}",
                "query": first.query,
                "domain": domain,
                "relevant": [{"path": m.path, "start_line": m.start_line, "end_line": m.end_line} for m in members],
                "name": first.name,
                "kind": first.kind,
            }
        )
    return out


def _read(path: Path) -> str:
    # newline="" keeps CRLF; surrogateescape round-trips any odd byte
    with path.open(encoding="utf-8", errors="surrogateescape", newline="") as f:
        return f.read()


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", errors="surrogateescape", newline="") as f:
        f.write(text)


def build_set(spec: SetSpec, out: Path, seed: int, max_queries: int) -> dict | None:
    """Build one set; returns its summary, or None when its sources are missing."""
    missing = [str(p) for _, _, _, p in spec.sources if not p.exists()]
    if missing:
        print(f"[{spec.name}] skipped: missing source(s): {', '.join(missing[:5])}", file=sys.stderr)
        return None
    files = spec.list_files()
    corpus = out / spec.name / "corpus"
    if corpus.exists():
        shutil.rmtree(corpus)
    all_items: list[DocItem] = []
    n_lines = declarations = 0
    for f in files:
        text = _read(f.src)
        result = spec.process(text, f.rel)
        assert len(split_lines(result.text)) == len(split_lines(text)), f.rel
        _write(corpus / f.rel, result.text)
        n_lines += len(split_lines(text)) - (1 if text.endswith("\n") else 0)
        declarations += result.declarations
        all_items.extend(result.items)
    for f in spec.extra_files():
        _write(corpus / f.rel, _read(f.src))
    records = sample_queries(all_items, max_queries, seed, spec.domain, spec.name)
    jsonl = out / f"{spec.name}.jsonl"
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    with jsonl.open("w", encoding="utf-8", newline="\n") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    skips = Counter(it.skip for it in all_items if it.skip)
    summary = {
        "set": spec.name,
        "files": len(files),
        "lines": n_lines,
        "declarations": declarations,
        "documented": len(all_items),
        "usable": sum(1 for it in all_items if it.query),
        "unique_queries": len(group_queries(all_items)),
        "queries": len(records),
        "multi_target_queries": sum(1 for r in records if len(r["relevant"]) > 1),
        "skipped": dict(sorted(skips.items())),
        "corpus": str(corpus),
        "jsonl": str(jsonl),
    }
    return summary


def write_heldout(specs: dict[str, SetSpec], path: Path) -> None:
    lines = [
        "# Sources of the held-out eval and validation sets (see evals/README.md). NEVER use them for training:",
        "# not these files, nor other copies of them (any version of these crates, CPython's",
        "# Lib/ modules, the Coq standard library theories folders listed, any checkout of the",
        "# repositories listed as `repo`, whatever its commit).",
        "# Generated by scripts/build_eval_sets.py. Tab-separated columns:",
        "# set\tkind\tname\tversion\tpath",
    ]
    for spec in specs.values():
        for kind, name, version, p in spec.sources:
            lines.append(f"{spec.name}\t{kind}\t{name}\t{version}\t{p}")
    _write(path, "\n".join(lines) + "\n")


DEFAULT_OUT = REPO / "evals" / "data"
DEFAULT_SAMPLES = REPO / "evals" / "samples"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default="rust,python,coq,lean,tlaplus",
                    help="comma-separated: rust,python,coq,lean,tlaplus (the eval sets; verus on request), "
                         "lean-validation,coq-validation")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (git-ignored)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--max-queries", type=int, default=DEFAULT_MAX_QUERIES, help="queries per set")
    ap.add_argument("--samples", type=Path, default=None,
                    help=f"where the first {SAMPLE_LINES} lines of each set go ('' to skip; default: "
                         "evals/samples when --out is the default, else nowhere)")
    ap.add_argument("--heldout-file", type=Path, default=REPO / "evals" / "heldout_sources.txt",
                    help="machine-readable list of the sources ('' to skip)")
    ap.add_argument("--cargo-registry", type=Path, default=CARGO_REGISTRY)
    ap.add_argument("--python-stdlib", type=Path, default=PYTHON_STDLIB)
    ap.add_argument("--coq-theories", type=Path, default=COQ_THEORIES)
    ap.add_argument("--formal-src", type=Path, default=FORMAL_SRC,
                    help="folder holding the <owner>+<name> checkouts of the Lean, TLA+ and Verus sets' repositories")
    ap.add_argument("--coq-plain-comments", action="store_true",
                    help="also accept plain (* *) comments above Coq declarations as docs")
    args = ap.parse_args(argv)
    if args.samples is None:  # a build elsewhere (experiments, validation sets) leaves the checkout alone
        args.samples = DEFAULT_SAMPLES if args.out.resolve() == DEFAULT_OUT.resolve() else Path("")

    specs = make_specs(args.cargo_registry, args.python_stdlib, args.coq_theories, args.coq_plain_comments,
                       args.formal_src)
    wanted = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in specs]
    if unknown:
        ap.error(f"unknown set(s): {', '.join(unknown)} (known: {', '.join(specs)})")
    if str(args.heldout_file) not in ("", "."):
        write_heldout(specs, args.heldout_file)
    built = 0
    for name in wanted:
        summary = build_set(specs[name], args.out, args.seed, args.max_queries)
        if summary is None:
            continue
        built += 1
        print(
            f"[{name}] files={summary['files']} lines={summary['lines']} "
            f"declarations={summary['declarations']} documented={summary['documented']} "
            f"usable={summary['usable']} unique_queries={summary['unique_queries']} "
            f"queries_written={summary['queries']} (multi-target {summary['multi_target_queries']})"
        )
        print(f"[{name}] skipped docs: {json.dumps(summary['skipped'])}")
        print(f"[{name}] -> {summary['jsonl']}, {summary['corpus']}")
        if str(args.samples) not in ("", "."):
            args.samples.mkdir(parents=True, exist_ok=True)
            with open(summary["jsonl"], encoding="utf-8") as fh:
                head = [line for _, line in zip(range(SAMPLE_LINES), fh)]
            _write(args.samples / f"{name}.jsonl", "".join(head))
    return 0 if built or not wanted else 1


if __name__ == "__main__":
    sys.exit(main())
