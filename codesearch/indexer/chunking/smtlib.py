"""SMT-LIB 2 chunker: one chunk per top-level command (s-expression).

A balanced-paren scanner that knows ``"strings"`` (``""`` escapes a quote),
``|quoted symbols|`` and ``; line comments``. The ``;`` comment block directly above a
command belongs to it. Runs of housekeeping commands (set-logic, set-option, check-sat,
get-model, ...) become one "commands" chunk; tiny declarations and asserts of the same
kind merge (see ``windows.merge_tiny``). An unbalanced last command runs to the end.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from codesearch.indexer.chunking.spans import Span

HOUSEKEEPING = frozenset(
    """set-logic set-option set-info check-sat check-sat-assuming get-model get-value get-info
    get-option get-assertions get-assignment get-proof get-unsat-core get-unsat-assumptions
    exit push pop reset reset-assertions echo""".split()
)
NAMED_HEADS = frozenset(
    "declare-fun define-fun define-fun-rec declare-const define-const declare-sort define-sort declare-datatype".split()
)
MERGEABLE = frozenset({"declare-fun", "declare-const", "declare-sort", "define-sort", "assert"})

_TOKEN = re.compile(r'[()";|]')
_COMMAND = re.compile(r"[a-z][a-z0-9-]{0,40}")
_ATOM = re.compile(r'\s*(\(|\)|"(?:[^"]|"")*"|\|[^|]*\||[^\s()";|]+)')


@dataclass
class Form:
    start: int  # offset of "("
    end: int  # offset of the matching ")" (or the end of the text)
    head: str


def scan(text: str) -> tuple[list[Form], list[tuple[int, int]]]:
    """Top-level forms and top-level ``;`` comments (as (start, end) offsets)."""
    forms: list[Form] = []
    comments: list[tuple[int, int]] = []
    depth, start, i, n = 0, 0, 0, len(text)
    while i < n:
        m = _TOKEN.search(text, i)
        if m is None:
            break
        ch, p = m.group(), m.start()
        if ch == ";":
            nl = text.find("\n", p)
            nl = n if nl < 0 else nl
            if depth == 0:
                comments.append((p, nl))
            i = nl
        elif ch == '"':
            i = p + 1
            while True:
                q = text.find('"', i)
                if q < 0:
                    i = n
                    break
                if text.startswith('""', q):
                    i = q + 2
                    continue
                i = q + 1
                break
        elif ch == "|":
            q = text.find("|", p + 1)
            i = n if q < 0 else q + 1
        elif ch == "(":
            if depth == 0:
                start = p
            depth += 1
            i = p + 1
        else:  # ")"
            if depth > 0:
                depth -= 1
                if depth == 0:
                    forms.append(Form(start, p, _head(text, start)))
            i = p + 1
    if depth > 0:
        forms.append(Form(start, n - 1, _head(text, start)))
    return forms, comments


def _head(text: str, start: int) -> str:
    m = re.match(r"\(\s*([^\s()\";|]+)", text[start : start + 200])
    return m.group(1) if m else ""


def _sexpr(text: str, max_atoms: int = 400) -> list:
    """A nested-list reading of the start of one form (enough to find declared names)."""
    stack: list[list] = [[]]
    pos = 0
    for _ in range(max_atoms):
        m = _ATOM.match(text, pos)
        if m is None:
            break
        tok = m.group(1)
        pos = m.end()
        if tok == "(":
            stack.append([])
        elif tok == ")":
            if len(stack) == 1:
                break
            done = stack.pop()
            stack[-1].append(done)
            if len(stack) == 1:
                break
        else:
            stack[-1].append(tok)
    while len(stack) > 1:
        done = stack.pop()
        stack[-1].append(done)
    top = stack[0]
    return top[0] if top and isinstance(top[0], list) else top


def _name(head: str, form_text: str) -> str:
    if head == "assert":
        m = re.search(r":named\s+([^\s()]+)", form_text[:4000])
        return m.group(1) if m else ""
    if head not in NAMED_HEADS and head not in ("declare-datatypes", "define-funs-rec"):
        return ""
    e = _sexpr(form_text)
    if len(e) < 2:
        return ""
    if head in NAMED_HEADS:
        return e[1] if isinstance(e[1], str) else ""
    first = e[1]
    if head == "define-funs-rec":
        return ", ".join(d[0] for d in first if isinstance(d, list) and d and isinstance(d[0], str))
    # declare-datatypes: SMT-LIB 2.6 `((Name arity) ...)`, or 2.5 `(params) ((Name ctor ...) ...)`
    if first and all(isinstance(d, list) and len(d) == 2 for d in first):
        return ", ".join(d[0] for d in first if isinstance(d[0], str))
    if len(e) > 2 and isinstance(e[2], list):
        return ", ".join(d[0] for d in e[2] if isinstance(d, list) and d and isinstance(d[0], str))
    return ""


def smtlib_spans(text: str) -> list[Span]:
    forms, comments = scan(text)
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_of(offset: int) -> int:
        return bisect.bisect_right(line_starts, offset)

    comment_lines = sorted({line_of(s) for s, _ in comments})
    spans: list[Span] = []
    prev_end_line = 0
    for f in forms:
        start, end = line_of(f.start), line_of(f.end)
        # the ';' block directly above
        k = bisect.bisect_left(comment_lines, start) - 1
        while k >= 0 and comment_lines[k] == start - 1 and start - 1 > prev_end_line:
            start -= 1
            k -= 1
        if f.head in HOUSEKEEPING:
            prev = spans[-1] if spans else None
            if prev is not None and prev.kind == "commands":
                prev.end = end
            else:
                spans.append(Span(start, end, "commands", ""))
        else:
            name = _name(f.head, text[f.start : min(f.end + 1, f.start + 20000)])
            kind = f.head if _COMMAND.fullmatch(f.head) else "code"
            spans.append(Span(start, end, kind, name, mergeable=kind in MERGEABLE))
        prev_end_line = end
    return spans
