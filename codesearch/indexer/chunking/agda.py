"""Agda declaration chunker: a layout-aware line scanner.

There is no tree-sitter grammar wheel for Agda on this project's platforms (and Agda's own
parser is Haskell), so a small scanner follows Agda's layout rule instead. A declaration is a
type signature ``name : T`` and everything below it that is indented deeper or, at the same
indentation, its defining clauses (up to the next signature, ``data`` / ``record`` or
keyword line); ``data`` / ``record`` definitions run the same way. ``--`` and ``{- -}``
comments directly above a declaration belong to it. A signature whose type states an
equation or equivalence (``≡``, ``≗``, ``≢``, ``↔``, ``⇔``) is a "lemma", any other a
"definition". ``module X where`` gives the context: the file's top-level module for the
whole file, a nested module for the lines indented below it.
"""

from __future__ import annotations

import re

from codesearch.indexer.chunking.why3 import attach_comments, comment_starts
from codesearch.indexer.chunking.spans import Span

KEYWORDS = frozenset(
    """open import module data record field constructor infix infixl infixr variable private where
    postulate abstract instance mutual syntax pattern using hiding renaming public let in rewrite
    with macro primitive unquoteDecl unquoteDef opaque""".split()
)
_SIG = re.compile(r"^(\s*)([^\s;{}()\"@.][^\s;{}()\"]*)\s+:(?:\s|$)")
_DATA = re.compile(r"^(\s*)(data|record)\s+([^\s;{}()\"]+)")
_MODULE = re.compile(r"^(\s*)module\s+([^\s;{}()\"]+)")
_PROP = re.compile(r"[≡≗≢↔⇔]")


def agda_spans(lines: list[str]) -> list[Span]:
    in_comment = comment_starts(lines, "{-", "-}")
    ctx: list[tuple[int, str]] = []  # (indent, "module X"); indent -1: the file's module
    spans: list[Span] = []
    cur: Span | None = None
    cur_indent = 0
    type_text: list[str] | None = None  # the signature's type, while its lines are being read
    seen_code = False
    prev_code = 0
    for i, line in enumerate(lines, 1):
        s = line.strip()
        if in_comment[i - 1] or not s or s.startswith(("--", "{-")):
            continue
        indent = len(line) - len(line.lstrip())
        while ctx and indent <= ctx[-1][0]:
            ctx.pop()
        m_mod = _MODULE.match(line)
        m_data = _DATA.match(line)
        m_sig = _SIG.match(line)
        first = s.split(None, 1)[0]
        is_new = bool(m_data) or (m_sig is not None and m_sig.group(2) not in KEYWORDS)
        if cur is not None and type_text is not None:
            if indent > cur_indent and not is_new:
                type_text.append(s)  # the type continues on a deeper line
            else:
                _set_kind(cur, type_text)
                type_text = None
        if cur is not None and (indent < cur_indent or (indent == cur_indent and (is_new or first in KEYWORDS))):
            cur.end = prev_code
            cur = None
        if m_mod:
            if re.search(r"\bwhere\s*$", s):
                top = not seen_code and indent == 0 and not ctx
                ctx.append((-1 if top else indent, f"module {m_mod.group(2)}"))
            seen_code = True
            prev_code = i
            continue
        if first not in ("open", "import"):
            seen_code = True
        if cur is None and is_new:
            if m_data:
                kind, name = m_data.group(2), m_data.group(3)
            else:
                assert m_sig is not None
                kind, name = "definition", m_sig.group(2)
                type_text = [line.split(":", 1)[1]]
            start = attach_comments(lines, i, in_comment, ("--", "{-"), prev_code)
            context = " > ".join(label for _, label in ctx)
            cur = Span(start, i, kind, name, context, body_start=i)
            cur_indent = indent
            spans.append(cur)
        prev_code = i
    if cur is not None:
        cur.end = prev_code
        if type_text is not None:
            _set_kind(cur, type_text)
    return spans


def _set_kind(span: Span, type_text: list[str]) -> None:
    if _PROP.search(" ".join(type_text)):
        span.kind = "lemma"
