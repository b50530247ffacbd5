"""Dafny declaration chunker: a brace-aware line scanner.

No tree-sitter grammar for Dafny is published as a Python wheel (and Dafny's own parser is
C#), so, as for Lean and Coq, a small scanner does the job. It tracks ``//`` and nested
``/* */`` comments, strings (``"..."``, verbatim ``@"..."``), character literals and brace
depth. A declaration starts on a line, at the brace depth of the enclosing ``module`` /
``class`` / ``trait`` body (or of the file), whose first word after modifiers (``ghost``,
``static``, ``twostate``, ``least``, ``greatest``, ``opaque``, ...) is a declaration keyword
(``method``, ``function`` (also ``function method``), ``predicate``, ``lemma``,
``constructor``, ``datatype``, ``codatatype``, ``iterator``, ``const``, ``type``,
``newtype``, ``var``). It runs through its ``requires`` / ``ensures`` / ``decreases`` /
``reads`` / ``modifies`` clauses and its body to its last code line before the next
declaration or the closing brace of its container. ``//`` and ``/** */`` comments and
``@Attribute`` lines directly above a declaration belong to it. ``module X`` gives the
context "module X"; ``class`` / ``trait`` do too, and their header (with its doc comment) is
a chunk of its own, kind "class" / "trait". Kinds are the declaration keyword (``var``: a
"field"); names are the declared name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from codesearch.indexer.chunking.spans import Span

KINDS = {
    "method": "method", "function": "function", "predicate": "predicate", "lemma": "lemma",
    "colemma": "lemma", "copredicate": "predicate", "constructor": "constructor", "datatype": "datatype",
    "codatatype": "codatatype", "iterator": "iterator", "const": "const", "type": "type",
    "newtype": "newtype", "var": "field", "class": "class", "trait": "trait",
}  # fmt: skip
CONTAINERS = frozenset({"module", "class", "trait"})
MODIFIERS = frozenset(
    "ghost static twostate least greatest abstract opaque inductive protected replaceable nonghost".split()
)
QUIET = frozenset({"import", "include", "export"})
MERGEABLE = frozenset({"const", "field", "type"})

_NAME = re.compile(r"[A-Za-z_?][\w'?]*(?:\.[A-Za-z_?][\w'?]*)*")
_CHAR = re.compile(r"'(?:\\u\{?[0-9a-fA-F]+\}?|\\.|[^\\'\n])'")


@dataclass
class _Line:
    in_code: bool  # the line starts outside comments and verbatim strings
    has_code: bool  # some character of the line is outside comments
    d0: int  # brace depth at the start of the line
    d1: int  # ... at its end
    dmax: int  # the deepest it gets on the line


def scan_lines(lines: list[str]) -> list[_Line]:
    """Comment / string state and brace depth of every line."""
    out: list[_Line] = []
    comment = 0  # nesting depth of /* */
    verbatim = False  # inside a multi-line @"..." string
    depth = 0
    for line in lines:
        info = _Line(comment == 0 and not verbatim, False, depth, depth, depth)
        i, n = 0, len(line)
        while i < n:
            ch = line[i]
            if comment:
                if line.startswith("/*", i):
                    comment += 1
                    i += 2
                elif line.startswith("*/", i):
                    comment -= 1
                    i += 2
                else:
                    i += 1
                continue
            if verbatim:
                info.has_code = True
                if line.startswith('""', i):
                    i += 2
                elif ch == '"':
                    verbatim = False
                    i += 1
                else:
                    i += 1
                continue
            if line.startswith("//", i):
                break
            if line.startswith("/*", i):
                comment = 1
                i += 2
                continue
            if not ch.isspace():
                info.has_code = True
            if line.startswith('@"', i):
                verbatim = True
                i += 2
            elif ch == '"':
                i += 1
                while i < n and line[i] != '"':
                    i += 2 if line[i] == "\\" else 1
                i += 1
            elif ch == "'" and (i == 0 or not (line[i - 1].isalnum() or line[i - 1] in "_'?")):
                m = _CHAR.match(line, i)
                i = m.end() if m else i + 1
            elif ch == "{":
                depth += 1
                info.dmax = max(info.dmax, depth)
                i += 1
            elif ch == "}":
                depth = max(0, depth - 1)
                i += 1
            else:
                i += 1
        info.d1 = depth
        out.append(info)
    return out


def _skip_attributes(s: str) -> str:
    """Drop leading ``{:attribute ...}`` groups (balanced braces) from ``s``."""
    s = s.lstrip()
    while s.startswith("{:"):
        depth = 0
        for k, ch in enumerate(s):
            depth += 1 if ch == "{" else -1 if ch == "}" else 0
            if depth == 0:
                s = s[k + 1 :].lstrip()
                break
        else:
            return ""
    return s


def classify(text: str) -> tuple[str, str, str] | None:
    """(role, keyword, name) of a line at declaration level: role "decl", "container",
    "quiet" or "prefix" (an ``@Attribute`` line); None for a continuation line."""
    s = text.strip()
    if s.startswith("@"):
        return "prefix", "", ""
    words = s.split(None, 1)
    while words and words[0] in MODIFIERS:
        words = words[1].split(None, 1) if len(words) > 1 else []
    if not words:
        return None
    head = re.match(r"[A-Za-z]+", words[0])
    keyword = head.group() if head else ""
    if keyword != words[0] and not words[0].startswith((keyword + "{", keyword + "<", keyword + "(")):
        return None  # `methodCall(...)`, `type_x := ...`: not a keyword
    rest = words[0][len(keyword) :] + (" " + words[1] if len(words) > 1 else "")
    if keyword in QUIET:
        return "quiet", keyword, ""
    if keyword not in KINDS and keyword != "module":
        return None
    rest = _skip_attributes(rest)
    if keyword in ("function", "predicate") and re.match(r"method\b", rest):
        rest = _skip_attributes(rest[len("method") :])
    m = _NAME.match(rest)
    name = m.group() if m else ""
    return ("container" if keyword in CONTAINERS else "decl"), keyword, name


@dataclass
class _Container:
    body_depth: int  # brace depth of its members
    label: str  # "module Bank", "class Account"; "" for the file
    opened: bool = False  # its "{" has been seen


def dafny_spans(lines: list[str]) -> list[Span]:
    info = scan_lines(lines)
    stack = [_Container(0, "", True)]
    spans: list[Span] = []
    cur: Span | None = None
    prev_code = 0  # last line holding code
    prefix_start: int | None = None  # first of the @Attribute lines above a declaration

    def close(end: int) -> None:
        nonlocal cur
        if cur is not None:
            cur.end = max(cur.start, end)
            cur = None

    for i, line in enumerate(lines, 1):
        li = info[i - 1]
        if not li.has_code:
            continue
        top = stack[-1]
        role = classify(line) if li.in_code and li.d0 == top.body_depth and top.opened else None
        if role is not None:
            kind_role, keyword, name = role
            close(prev_code)
            if kind_role == "prefix":
                prefix_start = prefix_start or i
                prev_code = i
                continue
            if kind_role == "quiet":
                prefix_start = None
                prev_code = i
            else:
                start = _attach(lines, info, prefix_start or i, prev_code)
                prefix_start = None
                context = " > ".join(c.label for c in stack if c.label)
                if keyword != "module":
                    kind = KINDS[keyword]
                    cur = Span(start, i, kind, name, context, mergeable=kind in MERGEABLE, body_start=i)
                    spans.append(cur)
                if kind_role == "container":
                    stack.append(_Container(top.body_depth + 1, f"{keyword} {name}".strip()))
        prev_code = i
        top = stack[-1]
        if not top.opened and li.dmax >= top.body_depth:
            top.opened = True
        while len(stack) > 1 and stack[-1].opened and li.d1 < stack[-1].body_depth:
            # the container's closing brace: a lone "}" belongs to no member
            if line.strip().startswith("}") and role is None:
                close(_last_code_before(info, i))
            else:
                close(i)
            stack.pop()
    close(prev_code)
    return spans


def _last_code_before(info: list[_Line], i: int) -> int:
    j = i - 1
    while j >= 1 and not info[j - 1].has_code:
        j -= 1
    return j


def _attach(lines: list[str], info: list[_Line], start: int, floor: int) -> int:
    """Move a declaration's start up over the comment lines directly above it."""
    s = start
    while s - 1 > floor and lines[s - 2].strip() and not info[s - 2].has_code:
        s -= 1
    return s
