"""Nested block comments of the ML family: ``(* ... *)`` in Coq, Why3, TLA+ and Isabelle.

One scanner for the Coq chunker, the Why3 / Agda / Isabelle line scanners, the eval sets'
Coq lexer and the doc-comment reader. Comments nest (``(* a (* b *) c *)`` is one comment);
the markers are parameters, so Agda ``{- -}``, Lean ``/- -/`` and Dafny ``/* */`` (all
nesting) use it too. What differs between callers is a keyword:

* ``strings``: Coq lexes ``"strings"`` inside comments too (``(* "*)" *)`` is one comment;
  ``""`` escapes a quote). The line scanners (Why3, Isabelle, doc comments) do not.
* ``operator``: ``(*)`` is WhyML's operator ``( * )``, not an opener (Why3 only).

Outside a comment only an opener counts: a stray ``*)`` is ignored. An unterminated comment
runs to the end of the text; :func:`comment_end` says so with None, :func:`skip_comment`
with the depth left (line scanners carry it to the next line).
"""

from __future__ import annotations

import re
from functools import lru_cache

OPEN, CLOSE = "(*", "*)"
OPERATOR = "(*)"
# A comment without nesting, for quick regex strips of short heads (the first "*)" closes it).
FLAT_COMMENT = re.compile(r"\(\*.*?\*\)", re.S)


@lru_cache(maxsize=None)
def _tokens(open_: str, close: str, strings: bool, operator: bool) -> re.Pattern[str]:
    # order matters where two tokens start at one offset: "(*)" before "(*"
    toks = ([OPERATOR] if operator else []) + [open_, close] + (['"'] if strings else [])
    return re.compile("|".join(re.escape(t) for t in toks))


@lru_cache(maxsize=None)
def _openers(open_: str, operator: bool) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(t) for t in ([OPERATOR] if operator else []) + [open_]))


def string_end(text: str, i: int) -> int:
    """Index after the Coq string literal opening at ``text[i] == '"'`` (``""`` is an escaped
    quote); ``len(text)`` when it is not closed."""
    i += 1
    while True:
        j = text.find('"', i)
        if j < 0:
            return len(text)
        if text.startswith('""', j):
            i = j + 2
            continue
        return j + 1


def skip_comment(
    text: str,
    i: int,
    depth: int = 1,
    *,
    open_: str = OPEN,
    close: str = CLOSE,
    strings: bool = False,
    operator: bool = False,
) -> tuple[int, int]:
    """Scan ``text[i:]`` from inside a comment nested ``depth`` deep.

    Returns (index after the close that ends the comment, 0), or ``(len(text), depth left)``
    when the text ends first. ``depth == 0`` returns ``(i, 0)`` at once.
    """
    pat = _tokens(open_, close, strings, operator)
    while depth:
        m = pat.search(text, i)
        if m is None:
            return len(text), depth
        tok = m.group()
        if tok == open_:
            depth += 1
            i = m.end()
        elif tok == close:
            depth -= 1
            i = m.end()
        elif tok == '"':
            i = string_end(text, m.start())
        else:  # the operator (*)
            i = m.end()
    return i, 0


def comment_end(text: str, i: int, *, strings: bool = True, open_: str = OPEN, close: str = CLOSE) -> int | None:
    """Index after the (nested) comment opening at ``text[i:]`` (``(*``), None when it is not
    closed. ``strings``: skip ``"strings"`` inside it (Coq; the default)."""
    j, depth = skip_comment(text, i + len(open_), 1, open_=open_, close=close, strings=strings)
    return None if depth else j


def depth_after(text: str, depth: int = 0, *, open_: str = OPEN, close: str = CLOSE, operator: bool = False) -> int:
    """The comment depth at the end of ``text`` (a line) when it starts ``depth`` deep.
    No strings; with ``operator``, ``(*)`` opens nothing (WhyML)."""
    i = 0
    openers = _openers(open_, operator)
    while True:
        if depth:
            i, depth = skip_comment(text, i, depth, open_=open_, close=close, operator=operator)
            if depth:
                return depth
        m = openers.search(text, i)
        while m is not None and m.group() != open_:
            m = openers.search(text, m.end())
        if m is None:
            return 0
        depth, i = 1, m.end()


def strip(text: str, open_: str = OPEN, close: str = CLOSE) -> str:
    """``text`` without its (nested) comments; an unterminated one runs to the end. No strings."""
    out: list[str] = []
    i = 0
    while True:
        k = text.find(open_, i)
        if k < 0:
            out.append(text[i:])
            break
        out.append(text[i:k])
        i, depth = skip_comment(text, k + len(open_), 1, open_=open_, close=close)
        if depth:
            break
    return "".join(out)
