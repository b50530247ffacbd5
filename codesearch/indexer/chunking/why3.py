"""Why3 (WhyML) declaration chunker: a line scanner.

There is no tree-sitter grammar wheel for WhyML (and Why3's own parser is OCaml), so, as for
Lean and Coq, a small scanner does the job. A declaration starts on a line whose first word
is ``let`` / ``val`` / ``function`` / ``predicate`` / ``lemma`` / ``goal`` / ``axiom`` /
``type`` / ``inductive`` / ``coinductive`` / ``constant`` / ``exception`` (outside
``(* comments *)``, not deeper than the declaration being read) and runs to its last code
line before the next declaration or ``use`` / ``clone`` / ``end`` / ``module``. The comments
directly above a declaration belong to it; ``module`` / ``theory`` / ``scope`` give the
context. ``let lemma`` is a "lemma", ``let predicate`` a "predicate", ``let constant`` a
"constant", other ``let``s are "function"s.
"""

from __future__ import annotations

import re

from codesearch.indexer.chunking.mlcomments import depth_after
from codesearch.indexer.chunking.spans import Span

KEYWORDS = "let val function predicate lemma goal axiom type inductive coinductive constant exception".split()
MERGEABLE = frozenset({"val", "constant", "exception", "axiom", "type"})
_DECL = re.compile(r"^(\s*)(%s)\b(.*)$" % "|".join(KEYWORDS))
_CONTAINER = re.compile(r"^(\s*)(module|theory|scope)\s+([A-Za-z_][\w']*)")
_STOP = re.compile(r"^\s*(?:end|use|import|clone|meta|module|theory|scope)\b")
_END = re.compile(r"^\s*end\b")
_MODIFIERS = {"rec", "ghost", "function", "predicate", "lemma", "constant", "partial", "val", "let", "axiom"}
_WORDS = re.compile(r"\(\s*[^()\s]+\s*\)|[^\s:(]+")


def comment_starts(lines: list[str], open_: str = "(*", close: str = "*)") -> list[bool]:
    """Whether each line starts inside a (nested) block comment. With ``(*``, ``(*)`` is the
    operator ``( * )``, as in ``val (*) (a: t) (b: t) : t``, not an opener."""
    out, depth = [], 0
    for line in lines:
        out.append(depth > 0)
        depth = depth_after(line, depth, open_=open_, close=close, operator=open_ == "(*")
    return out


def attach_comments(lines: list[str], start: int, in_comment: list[bool], opener: tuple[str, ...], floor: int) -> int:
    """Move a declaration's start up over the comment lines directly above it (no blank line
    between), never to or above line ``floor``."""
    s = start
    while s - 1 > floor and lines[s - 2].strip() and (in_comment[s - 2] or lines[s - 2].strip().startswith(opener)):
        s -= 1
    return s


def _decl(keyword: str, rest: str) -> tuple[str, str]:
    """(kind, name) of a declaration line."""
    words = _WORDS.findall(keyword + " " + rest)
    mods = []
    k = 1
    while k < len(words) and words[k] in _MODIFIERS:
        mods.append(words[k])
        k += 1
    name = words[k].strip("() ") if k < len(words) else ""
    if name.startswith(("[@", "=", "{")):
        name = ""
    if keyword == "let":
        kind = next((m for m in ("predicate", "lemma", "constant") if m in mods), "function")
    else:
        kind = keyword
    return kind, name


def why3_spans(lines: list[str]) -> list[Span]:
    in_comment = comment_starts(lines)
    ctx: list[tuple[int, str]] = []  # (indent, "module Queue")
    spans: list[Span] = []
    cur: Span | None = None
    cur_indent = 0
    prev_code = 0  # last line holding code
    for i, line in enumerate(lines, 1):
        s = line.strip()
        if in_comment[i - 1] or not s or s.startswith("(*"):
            continue
        indent = len(line) - len(line.lstrip())
        m_c = _CONTAINER.match(line)
        is_end = _END.match(line) is not None
        if is_end and ctx and indent > ctx[-1][0]:
            prev_code = i  # the `end` of a match / begin / loop inside a declaration
            continue
        if _STOP.match(line):
            if cur is not None:
                cur.end = prev_code
                cur = None
            if m_c:
                ctx.append((indent, f"{m_c.group(2)} {m_c.group(3)}"))
            elif is_end and ctx:
                ctx.pop()
            prev_code = i
            continue
        m = _DECL.match(line)
        if m and (cur is None or indent <= cur_indent):
            if cur is not None:
                cur.end = prev_code
            kind, name = _decl(m.group(2), m.group(3))
            start = attach_comments(lines, i, in_comment, ("(*",), prev_code)
            context = " > ".join(label for _, label in ctx)
            cur = Span(start, i, kind, name, context, mergeable=kind in MERGEABLE, body_start=i)
            cur_indent = indent
            spans.append(cur)
        prev_code = i
    if cur is not None:
        cur.end = prev_code
    return spans
