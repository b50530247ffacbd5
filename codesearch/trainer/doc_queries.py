"""Doc comments: finding them above (or, for Python, inside) a declaration, and turning
them into queries.

Two halves:

* **Query text** (shared with the eval-set builder, ``codesearch/eval/sets/``, which imports it from here so
  that training queries and eval queries are made the same way): the first sentence of the
  first paragraph of a doc, with Markdown / reST / coqdoc markup simplified, and the rules
  that reject a sentence as a query (too short, too long, only repeats the name).
* **Doc comments per language**: :func:`leading_doc` scans the first lines of a declaration
  (the chunkers attach the comments directly above a declaration to it) for its doc comment:
  Rust ``///`` / ``/** */``, Lean ``/-- -/``, Coq and Why3 ``(** *)``, Java / JS / TS / C
  ``/** */``, Go / C ``//`` blocks, TLA+ ``\\*`` / ``(* *)``, SMT-LIB ``;``, Agda ``--``,
  Dafny ``//`` / ``/** */``, Isabelle ``text \\<open>...\\<close>`` / ``(* *)``.
  Marked doc comments win; without one, the plain comment block directly above the code is
  used. :func:`python_docstrings` finds docstrings (the first statement of a body) with
  ``ast``. The lines a doc occupies are what the pair miner removes from the positive.

Which comment style (``STYLE_DEFS``) and doc markup a language uses is its entry in the
language registry (:mod:`codesearch.languages`: ``doc_style`` and ``doc_format``).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Callable

from codesearch import languages as _languages
from codesearch.indexer.chunking import mlcomments

# ---------------------------------------------------------------------------------------
# Query text: the first sentence of a doc, with markup simplified.
# (Moved here from the eval-set builder; its output is unchanged.)
# ---------------------------------------------------------------------------------------

MIN_QUERY_WORDS = 4
MAX_QUERY_WORDS = 60

_ABBREV_END = re.compile(r"(?:\b(?:e\.g|i\.e|etc|vs|cf|resp|approx|incl|viz|Mr|Dr|No)\.|\.\.\.)$", re.I)
_SENT_END = re.compile(r"[.!?](?=\s|$)")


def first_paragraph(doc: str, is_heading: Callable[[str], bool] | None = None) -> str:
    """The first paragraph of a doc (lines up to the first blank line), joined by spaces.

    Leading blank lines and headings are skipped; a ``` code fence ends the paragraph.
    """
    para: list[str] = []
    for raw in doc.splitlines():
        line = raw.strip()
        if not line:
            if para:
                break
            continue
        if line.startswith(("```", "~~~", ">>>", "[[")):
            break  # a code block or doctest ends the paragraph
        if not para and is_heading is not None and is_heading(line):
            continue
        para.append(line)
    return " ".join(para)


def first_sentence(paragraph: str) -> str:
    """Cut a paragraph at its first sentence end ('.', '!', '?' followed by a space)."""
    text = " ".join(paragraph.split())
    for m in _SENT_END.finditer(text):
        head = text[: m.end()]
        if _ABBREV_END.search(head) or text[m.start() - 1 : m.start()] == ".":
            continue
        return _drop_dangling_example(head)
    return _drop_dangling_example(text)


def _drop_dangling_example(sentence: str) -> str:
    """'Returns X, e.g.:' (the example is in the next paragraph) -> 'Returns X'."""
    return re.sub(r"[,;]?\s*\b(?:e\.g|i\.e|for example|for instance|such as)\.?:?$", "", sentence, flags=re.I)


def _protect_code(text: str, fn: Callable[[str], str]) -> str:
    """Apply fn to the text outside `code` spans; code spans lose their backticks."""
    parts = re.split(r"(`+[^`]*?`+)", text)
    out = []
    for i, part in enumerate(parts):
        if i % 2 == 1:
            out.append(part.strip("`"))
        else:
            out.append(fn(part))
    return "".join(out)


def _md_outside_code(s: str) -> str:
    s = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", s)  # [text](url), images
    s = re.sub(r"\[([^\]]*)\]\[[^\]]*\]", r"\1", s)  # [text][ref]
    s = re.sub(r"\[([^\]]*)\]", r"\1", s)  # [text]
    s = re.sub(r"\*\*([^*]+)\*\*", r"\1", s)
    s = re.sub(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])", r"\1", s)
    s = re.sub(r"(?<!\w)__([^_]+)__(?!\w)", r"\1", s)
    s = re.sub(r"(?<!\w)_([^_\s][^_]*?)_(?!\w)", r"\1", s)
    s = re.sub(r"</?(?:code|em|strong|b|i|a|p|br|sup|sub|span|kbd|pre|tt)\b[^>]*>", "", s)
    return s


def simplify_markdown(text: str) -> str:
    """Rust doc markdown to plain text: keep identifiers, drop link targets and markup."""
    # [`Foo`](crate::Foo) / [`Foo`] / [`Foo`][x]: link markup first, while the backticks
    # still delimit code, then the code spans lose their backticks.
    text = re.sub(r"\[(`[^`\]]*`)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"\[(`[^`\]]*`)\]\[[^\]]*\]", r"\1", text)
    text = re.sub(r"\[(`[^`\]]*`)\]", r"\1", text)
    return " ".join(_protect_code(text, _md_outside_code).split())


def simplify_rest(text: str) -> str:
    """Python docstring reST to plain text: roles, ``literals``, *emphasis*."""

    def role(m: re.Match) -> str:
        target = m.group(1)
        target = re.sub(r"^.*<(.+)>$", r"\1", target)  # :ref:`text <target>` -> target
        if target.startswith("~"):
            target = target[1:].rsplit(".", 1)[-1]
        return target

    text = re.sub(r":[\w:.-]+:`([^`]+)`", role, text)
    text = re.sub(r"``([^`]+)``", r"\1", text)
    text = re.sub(r"`([^`]+)`_?", r"\1", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"\1", text)
    text = re.sub(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])", r"\1", text)
    return " ".join(text.split())


def simplify_coqdoc(text: str) -> str:
    """coqdoc to plain text: [code] loses its brackets, _emphasis_ its underscores."""
    text = re.sub(r"\[\[(.*?)\]\]", r"\1", text, flags=re.S)
    prev = None
    while prev != text:  # innermost brackets first: [f [x]] -> f x
        prev = text
        text = re.sub(r"\[([^\[\]]*)\]", r"\1", text)
    text = re.sub(r"(?<!\w)_([^_\s][^_]*?)_(?!\w)", r"\1", text)
    text = re.sub(r"#[^#]*#", "", text)  # raw html
    text = re.sub(r"(\S)\{\^\s*([^}]*)\}", r"\1-\2", text)  # n{^ th} -> n-th
    return " ".join(text.split())


def simplify_isabelle(text: str) -> str:
    """Isabelle document text to plain text: antiquotations ``@{term \\<open>xs @ ys\\<close>}``
    and cartouches keep their content, ``\\<forall>``-style symbols become their names."""
    text = text.replace("\\<open>", "‹").replace("\\<close>", "›")
    prev = None
    while prev != text:  # innermost first: @{const ‹f›} -> ‹f› -> f
        prev = text
        text = re.sub(r"@\{\w+\s+‹([^‹›]*)›\s*\}", r"\1", text)
        text = re.sub(r"@\{\w+\s+([^{}\s]+)\s*\}", r"\1", text)
        text = re.sub(r"‹([^‹›]*)›", r"\1", text)
    text = re.sub(r"\\<(\^?\w+)>", lambda m: " " + m.group(1).lstrip("^") + " ", text)
    return " ".join(text.split())


def simplify_javadoc(text: str) -> str:
    """Javadoc / JSDoc / Doxygen to plain text: {@code x} -> x, HTML tags dropped, then
    Markdown as for Rust."""
    text = re.sub(r"\{@\w+\s+([^}\s]+)(?:\s+([^}]*))?\}", lambda m: (m.group(2) or m.group(1)).strip(), text)
    text = re.sub(r"</?[a-zA-Z][^>]*>", "", text)
    text = re.sub(r"[\\@](?:brief|short)\s+", "", text)
    return simplify_markdown(text)


STOP_WORDS = {"a", "an", "the", "this", "that", "of", "for", "to", "and", "or", "is", "it", "its",
              "returns", "return", "get", "gets", "new", "create", "creates", "construct",
              "constructs", "function", "method", "struct", "type", "trait", "enum", "macro",
              "lemma", "theorem", "definition", "class", "value", "given", "self"}  # fmt: skip
_STOP = STOP_WORDS  # the eval builder's name


def name_words(text: str) -> list[str]:
    """Lower-case words of identifiers and text: snake_case, CamelCase and dotted paths split."""
    # split identifiers: snake_case, CamelCase, dotted paths
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)
    return [w for w in re.split(r"[^A-Za-z0-9]+", text.lower()) if w]


_words = name_words  # the eval builder's name


def query_from_paragraph(para: str, name: str, simplify: Callable[[str], str]) -> tuple[str | None, str | None]:
    """(query, None) from the first paragraph of a doc, or (None, why it is unusable).

    The query is the paragraph's first sentence after ``simplify``; it is unusable when
    under MIN_QUERY_WORDS or over MAX_QUERY_WORDS words, or when its content words only
    repeat the declaration's ``name``.
    """
    if not para:
        return None, "no text"
    sentence = first_sentence(simplify(para)).strip()
    sentence = sentence.rstrip(":").strip()
    words = sentence.split()
    if len(words) < MIN_QUERY_WORDS:
        return None, "too short"
    if len(words) > MAX_QUERY_WORDS:
        return None, "too long"
    content = {w for w in name_words(sentence) if w not in STOP_WORDS}
    if not content or content <= set(name_words(name)):
        return None, "repeats the name"
    return sentence, None


# ---------------------------------------------------------------------------------------
# Doc comments above a declaration
# ---------------------------------------------------------------------------------------

DOC = "doc"  # a marked doc comment (///, /** */, /-- -/, (** *), ...)
PLAIN = "plain"  # an ordinary comment: a doc only when no marked doc is there
SKIP = "skip"  # a comment that is never a declaration's doc (inner docs, headings, banners)


@dataclass(frozen=True)
class _Style:
    """How one language writes comments. Openers are tried longest first."""

    lines: tuple[tuple[str, str], ...] = ()  # (line-comment prefix, DOC/PLAIN/SKIP)
    blocks: tuple[tuple[str, str, str], ...] = ()  # (open, close, DOC/PLAIN/SKIP)
    nested: bool = False  # block comments nest (Coq, Lean, TLA+, Why3, Agda)
    attribute: re.Pattern[str] | None = None  # attribute / annotation lines between doc and code
    classify: Callable[[str, str], str] | None = None  # refine (opener, first line) -> kind
    # a code line whose comments above are not its doc (Lean `#guard_msgs in`: the docstring
    # above it is the expected output of the command, not documentation)
    not_doc_before: re.Pattern[str] | None = None


_C_LIKE_LINES = (("////", PLAIN), ("///", DOC), ("//!", SKIP), ("//", PLAIN))


def _coq_kind(opener: str, line: str) -> str:
    """(** * Title *) and (** {1 Title} *) are headings; (*****) banners are not docs."""
    body = line[len(opener) :].lstrip()
    if opener == "(**":
        if body.startswith(("*", "{", "-")) or not body.strip("*) "):
            return SKIP
    return DOC if opener == "(**" else PLAIN


# Comment styles by name: a language's ``doc_style`` in the registry names one of them.
STYLE_DEFS: dict[str, _Style] = {
    "rust": _Style(
        lines=(("////", PLAIN), ("///", DOC), ("//!", SKIP), ("//", PLAIN)),
        blocks=(("/**/", "*/", PLAIN), ("/***", "*/", PLAIN), ("/**", "*/", DOC), ("/*!", "*/", SKIP), ("/*", "*/", PLAIN)),
        attribute=re.compile(r"#\["),
    ),
    "c": _Style(
        lines=(("////", PLAIN), ("///", DOC), ("//!", DOC), ("//", PLAIN)),
        blocks=(("/**/", "*/", PLAIN), ("/***", "*/", PLAIN), ("/**", "*/", DOC), ("/*!", "*/", DOC), ("/*", "*/", PLAIN)),
    ),
    "go": _Style(lines=(("//", PLAIN),), blocks=(("/*", "*/", PLAIN),)),
    "java": _Style(
        lines=_C_LIKE_LINES,
        blocks=(("/**/", "*/", PLAIN), ("/***", "*/", PLAIN), ("/**", "*/", DOC), ("/*", "*/", PLAIN)),
        attribute=re.compile(r"@(?!interface\b)[A-Za-z_]"),
    ),
    "lean": _Style(
        lines=(("--", PLAIN),),
        blocks=(("/--", "-/", DOC), ("/-!", "-/", SKIP), ("/-", "-/", PLAIN)),
        nested=True,
        attribute=re.compile(r"@\[|set_option\s.*\bin\s*$"),
        not_doc_before=re.compile(r"#guard_msgs\b"),
    ),
    "coq": _Style(blocks=(("(**", "*)", DOC), ("(*", "*)", PLAIN)), nested=True,
                  attribute=re.compile(r"#\["), classify=_coq_kind),
    "why3": _Style(blocks=(("(**", "*)", DOC), ("(*", "*)", PLAIN)), nested=True, classify=_coq_kind),
    "tlaplus": _Style(lines=(("\\*", PLAIN),), blocks=(("(*", "*)", PLAIN),), nested=True),
    "smtlib": _Style(lines=((";", PLAIN),)),
    "agda": _Style(lines=(("--", PLAIN),), blocks=(("{-|", "-}", DOC), ("{-#", "#-}", SKIP), ("{-", "-}", PLAIN)),
                   nested=True),
    "dafny": _Style(
        lines=(("////", PLAIN), ("///", DOC), ("//", PLAIN)),
        blocks=(("/**/", "*/", PLAIN), ("/***", "*/", PLAIN), ("/**", "*/", DOC), ("/*", "*/", PLAIN)),
        nested=True,
        attribute=re.compile(r"@[A-Z]"),
    ),
    # Isabelle: `text \<open>...\<close>` (or `text ‹...›`) above a declaration is its doc
    "isabelle": _Style(
        blocks=tuple((f"text{sp}{op}", cl, DOC) for op, cl in (("\\<open>", "\\<close>"), ("‹", "›")) for sp in (" ", ""))
        + (("(*", "*)", PLAIN),),
    ),
    "python": _Style(lines=(("#!", SKIP), ("#", PLAIN))),
}


def style_for(language: str) -> _Style | None:
    """The comment style the registry gives ``language`` (None: no doc comments read)."""
    lang = _languages.get(language)
    return STYLE_DEFS[lang.doc_style] if lang is not None and lang.doc_style is not None else None


# Language name -> comment style, as the registry stands at import (kept for callers).
STYLES: dict[str, _Style] = {
    lang.name: STYLE_DEFS[lang.doc_style] for lang in _languages.all_languages() if lang.doc_style is not None
}


@dataclass(frozen=True)
class Doc:
    """A declaration's doc: its text without comment markers and the file lines it fills."""

    text: str
    lines: frozenset[int]  # 1-based; removed from the positive
    marked: bool  # a real doc comment (or docstring), not a plain comment
    replace: tuple[tuple[int, str], ...] = field(default=())  # (line, new text): e.g. "pass"


@dataclass
class _Comment:
    first: int
    last: int
    kind: str
    text: str


def _close_of_block(
    lines: list[str], i: int, col: int, open_: str, close: str, nested: bool, end: int
) -> tuple[int, int] | None:
    """(line, column after the close) of the block comment opened at ``lines[i-1][col:]``,
    None when it does not close by line ``end``."""
    if open_.startswith("text"):  # an Isabelle cartouche: nested ones inside it are text
        return _close_of_cartouche(lines, i, col + len(open_), end)
    if nested:  # lines[i-1][col:] starts with open_, whose first two characters open it
        op, cl = open_[:2], close[-2:]
        depth, ln, pos = 1, i, col + len(op)
        while ln <= end:
            pos, depth = mlcomments.skip_comment(lines[ln - 1], pos, depth, open_=op, close=cl)
            if not depth:
                return ln, pos
            ln, pos = ln + 1, 0
        return None
    ln, pos = i, col + 2  # after "/*": "/**/" closes at once
    while ln <= end:
        k = lines[ln - 1].find(close, pos)
        if k >= 0:
            return ln, k + len(close)
        ln, pos = ln + 1, 0
    return None


def _close_of_cartouche(lines: list[str], i: int, pos: int, end: int) -> tuple[int, int] | None:
    depth, ln = 1, i
    while ln <= end:
        line = lines[ln - 1]
        while pos < len(line):
            step = next((len(t) for t in ("\\<open>", "‹") if line.startswith(t, pos)), 0)
            if step:
                depth += 1
            else:
                step = next((len(t) for t in ("\\<close>", "›") if line.startswith(t, pos)), 0)
                if step:
                    depth -= 1
                    if depth == 0:
                        return ln, pos + step
            pos += step or 1
        ln, pos = ln + 1, 0
    return None


def _block_text(body_lines: list[str], open_: str, close: str) -> str:
    """A block comment's text without its markers, javadoc stars or banner lines."""
    text = "\n".join(line.strip() for line in body_lines)[len(open_) :]
    k = text.rfind(close if close.startswith("\\<") else close[-2:])
    if k >= 0:
        text = text[:k]
    out = []
    for s in text.split("\n"):
        s = s.strip()
        if s.startswith("(*") and s.endswith("*)"):  # a boxed line inside a TLA+ / Coq block
            s = s[2:-2].strip()
        if s and set(s) <= set("*-=#~+_/() "):
            s = ""  # banner
        elif s.startswith("*") and not open_.startswith("/-"):
            s = s[1:].strip()  # javadoc " * text" (Lean docs are Markdown: "**bold**", "* item")
        out.append(s)
    return "\n".join(out).strip()


def _strip_nested(text: str, op: str, cl: str) -> str:
    return re.sub(r"[ \t]+", " ", mlcomments.strip(text, op, cl))


def _scan_comments(style: _Style, lines: list[str], start: int, end: int) -> tuple[list[_Comment], int]:
    """The comments at the top of a declaration and the first line of its code."""
    comments: list[_Comment] = []
    line_openers = sorted(style.lines, key=lambda t: -len(t[0]))
    block_openers = sorted(style.blocks, key=lambda t: -len(t[0]))
    i = start
    while i <= end:
        s = lines[i - 1].strip()
        if not s:
            i += 1
            continue
        col = len(lines[i - 1]) - len(lines[i - 1].lstrip())
        hit = next((b for b in block_openers if s.startswith(b[0])), None)
        if hit is not None:
            open_, close, kind = hit
            found = _close_of_block(lines, i, col, open_, close, style.nested, end)
            if found is None:
                return comments, i
            last, after = found
            if lines[last - 1][after:].strip():
                return comments, i  # code on the comment's last line
            if style.classify is not None:
                kind = style.classify(open_, s) if kind != SKIP else kind
            text = _block_text(lines[i - 1 : last], open_, close)
            if style.nested:  # comments nested inside the doc are not part of its text
                text = _strip_nested(text, open_[:2], close[-2:])
            comments.append(_Comment(i, last, kind, text))
            i = last + 1
            continue
        hit_line = next((p for p in line_openers if s.startswith(p[0])), None)
        if hit_line is not None:
            prefix, kind = hit_line
            body = s[len(prefix) :]
            if prefix in (";", "#", "--"):
                body = body.lstrip(prefix[0])  # ";; text", "## text"
            body = body[1:] if body.startswith(" ") else body
            comments.append(_Comment(i, i, kind, body.rstrip()))
            i += 1
            continue
        if style.attribute is not None and style.attribute.match(s):
            j = _attribute_end(lines, i, end)
            if j is None:
                return comments, i
            i = j + 1
            continue
        return comments, i
    return comments, end + 1


def _attribute_end(lines: list[str], i: int, end: int) -> int | None:
    """Last line of the attribute starting on line i (balanced brackets), None if code
    follows it on that line."""
    depth = 0
    ln = i
    while ln <= end:
        line = lines[ln - 1]
        for k, ch in enumerate(line):
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth -= 1
        if depth <= 0:
            rest = line.strip()
            # `@Override` / `#[inline]` alone on the line; `@[simp] theorem x` is code
            m = re.match(r"^(?:#\[.*\]|@\[.*\]|@[\w.]+(?:\(.*\))?|set_option\s.*\bin)\s*$", rest)
            if ln == i and m is None:
                return None
            return ln
        ln += 1
    return None


def _group(comments: list[_Comment]) -> list[_Comment]:
    """Adjacent comments of the same kind (no blank line between) form one group."""
    out: list[_Comment] = []
    for c in comments:
        prev = out[-1] if out else None
        if prev is not None and prev.kind == c.kind and c.first == prev.last + 1:
            out[-1] = _Comment(prev.first, c.last, c.kind, prev.text + "\n" + c.text)
        else:
            out.append(_Comment(c.first, c.last, c.kind, c.text))
    return out


def leading_doc(language: str, lines: list[str], start: int, end: int) -> Doc | None:
    """The doc comment at the top of the declaration spanning ``start..end`` (1-based lines of
    ``lines``, the whole file), or None.

    Marked doc comments (all of them, with attributes between) are the doc; without one, the
    plain comment group closest to the code is. Comments that share a line with code, inner
    docs (``//!``), headings (``(** * Title *)``) and banners are never docs.
    """
    style = style_for(language)
    if style is None:
        return None
    comments, code_line = _scan_comments(style, lines, start, end)
    if code_line > end:
        return None  # nothing but comments
    if style.not_doc_before is not None and style.not_doc_before.match(lines[code_line - 1].strip()):
        return None
    groups = _group(comments)
    marked = [g for g in groups if g.kind == DOC]
    if marked:
        chosen = marked
    else:
        plain = [g for g in groups if g.kind == PLAIN]
        if not plain:
            return None
        chosen = [plain[-1]]
    text = "\n\n".join(g.text for g in chosen).strip()
    if not text:
        return None
    doc_lines = frozenset(ln for g in chosen for ln in range(g.first, g.last + 1))
    return Doc(text, doc_lines, bool(marked))


# ---------------------------------------------------------------------------------------
# Python docstrings
# ---------------------------------------------------------------------------------------

_SIGNATURE_LINE = re.compile(r"^[\w.]+\(.*\)\s*(->.*)?$")


@dataclass(frozen=True)
class PyDoc:
    def_line: int  # line of `def` / `class`
    start: int  # docstring lines, 1-based inclusive
    end: int
    whole_lines: bool  # the docstring has its lines to itself
    only_statement: bool  # the docstring is the whole body
    indent: str
    text: str  # ast.get_docstring(clean=True)


def python_docstrings(text: str) -> dict[int, PyDoc]:
    """Docstrings of every def/class of a Python file, keyed by the line of ``def``/``class``.
    Empty when the file does not parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return {}
    lines = text.split("\n")
    out: dict[int, PyDoc] = {}
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        body = node.body
        if not body:
            continue
        first = body[0]
        if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)):
            continue
        r0, r1 = first.lineno, first.end_lineno or first.lineno
        if r0 < 1 or r1 > len(lines):
            continue
        # ast columns are UTF-8 byte offsets: compare on bytes
        b0 = lines[r0 - 1].encode("utf-8", "surrogatepass")
        b1 = lines[r1 - 1].encode("utf-8", "surrogatepass")
        after = b1[first.end_col_offset :].strip()
        whole = not b0[: first.col_offset].strip() and (not after or after.startswith(b"#"))
        indent = lines[r0 - 1][: len(lines[r0 - 1]) - len(lines[r0 - 1].lstrip())]
        out[node.lineno] = PyDoc(
            node.lineno, r0, r1, whole, len(body) == 1, indent, ast.get_docstring(node, clean=True) or ""
        )
    return out


_PY_DEF = re.compile(r"^\s*(?:async\s+def|def|class)\s+([A-Za-z_]\w*)")


def python_doc(lines: list[str], start: int, end: int, name: str, docstrings: dict[int, PyDoc]) -> Doc | None:
    """The docstring of the def/class ``name`` spanning ``start..end`` (as a :class:`Doc`),
    else its leading ``#`` comment block."""
    for ln in range(start, min(end, len(lines)) + 1):
        m = _PY_DEF.match(lines[ln - 1])
        if m is None:
            continue
        if m.group(1) != name.split(".")[-1]:
            break
        pd = docstrings.get(ln)
        if pd is None or pd.end > end:
            break
        if not pd.whole_lines:
            return None  # `def f(): "doc"`: not a clean query
        replace = ((pd.start, pd.indent + "pass"),) if pd.only_statement else ()
        removed = frozenset(range(pd.start, pd.end + 1)) - {r for r, _ in replace}
        return Doc(pd.text, removed, True, replace)
    return leading_doc("python", lines, start, end)


def python_paragraph(doc: str) -> str:
    """First paragraph of a docstring, skipping a C-style ``name(args) -> x`` header line."""
    paras = [p for p in re.split(r"\n\s*\n", doc.strip()) if p.strip()]
    if paras and _SIGNATURE_LINE.match(paras[0].strip().splitlines()[0]):
        paras = paras[1:]
    para = first_paragraph(paras[0]) if paras else ""
    return "" if para.startswith(">>>") else para


# ---------------------------------------------------------------------------------------
# Doc -> query
# ---------------------------------------------------------------------------------------

_BOILERPLATE = re.compile(
    r"\b(?:copyright|licen[cs]ed?|spdx|all rights reserved|todo|fixme|xxx|hack|safety:|nolint|noqa|"
    r"auto-?generated|generated by|do not edit|pylint|eslint|clippy|rustfmt|type:\s*ignore)\b",
    re.I,
)
_LIST_ITEM = re.compile(r"\s*[-*+]\s")  # a doc that opens with a bullet has no summary sentence
_WORDLIKE = re.compile(r"[(\"'`]*[A-Za-z][A-Za-z'-]*[)\"'`.,;:!?]*")


def looks_like_prose(sentence: str) -> bool:
    """A sentence of words, not commented-out code or a formula."""
    tokens = sentence.split()
    if not tokens:
        return False
    wordlike = sum(1 for t in tokens if _WORDLIKE.fullmatch(t) and sum(ch.isalpha() for ch in t) >= 2)
    if wordlike < 3 or wordlike / len(tokens) < 0.6:
        return False
    code_chars = sum(sentence.count(ch) for ch in "{}=;<>|&$\\")
    if code_chars > 0.06 * len(sentence) or sentence.rstrip().endswith((";", "{", "}", ")", "=>", "->")):
        return False
    return True


def _is_heading_md(s: str) -> bool:
    return s.startswith("#")


def _is_heading_coq(s: str) -> bool:
    return s.startswith(("*", "{"))


def _cut_tags(doc: str) -> str:
    """Javadoc / JSDoc / Doxygen: the description ends at the first block tag."""
    out = []
    for line in doc.splitlines():
        if re.match(r"\s*[@\\](?!code\b|link\b|brief\b)\w+", line):
            break
        out.append(line)
    return "\n".join(out)


def doc_query(language: str, doc: Doc | str, name: str) -> tuple[str | None, str | None]:
    """(query, None) from a declaration's doc, or (None, why not)."""
    text = doc.text if isinstance(doc, Doc) else doc
    simplify: Callable[[str], str] = simplify_markdown
    lang = _languages.get(language)
    markup = lang.doc_format if lang is not None else "plain"  # the registry's doc_format
    if markup == "rest":  # Python docstrings
        para = python_paragraph(text) if (not isinstance(doc, Doc) or doc.marked) else first_paragraph(text)
        simplify = simplify_rest
    elif markup == "markdown":
        para = first_paragraph(text, is_heading=_is_heading_md)
    elif markup == "coqdoc":
        para = first_paragraph(text, is_heading=_is_heading_coq)
        simplify = simplify_coqdoc
    elif markup == "javadoc":
        para = first_paragraph(_cut_tags(text))
        simplify = simplify_javadoc
    elif markup == "isabelle":
        para = first_paragraph(text)
        simplify = simplify_isabelle
    else:
        para = first_paragraph(text)
    if language == "go" and para:
        short = name.rsplit(".", 1)[-1]
        words = para.split(None, 1)
        verb = words[1].split(None, 1)[0] if len(words) == 2 else ""
        if words[0] == short and verb.endswith("s") and verb not in ("is", "was", "has", "does", "as"):
            para = words[1]  # "Get returns the value ..." -> "returns the value ..."
    if language == "c" and para:  # kernel-doc: "struct foo - what it is"
        para = re.sub(r"^(?:(?:struct|enum|union|typedef)\s+)?[\w.]+(?:\(\))?\s*(?:-|:)\s+", "", para)
    if _LIST_ITEM.match(para or ""):
        return None, "list item"  # "- Work O(n), Span O(1)": a note of a list, not what the declaration is
    query, skip = query_from_paragraph(para, name, simplify)
    if query is None:
        return None, skip
    if _BOILERPLATE.search(query):
        return None, "boilerplate"
    if not looks_like_prose(query):
        return None, "not prose"
    return query, None
