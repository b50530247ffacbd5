"""Call-site pairs: an ordinary comment in the code, in a person's words, linked to the one
declaration of the same repository that the code under it calls.

    # Strip the pad characters off the right before decoding
    data = _strip_padding(data)

gives ("Strip the pad characters off the right before decoding", the declaration of
``_strip_padding``). Code without doc comments still has such comments, so these are pairs in
plain words about the user's own code (``finetune --personal`` mines them; the gate ranks them
with the doc and commit pairs).

A comment counts when it stands on lines of its own, the code right under it (up to
``CODE_LINES`` lines, up to a blank line) calls exactly one declaration of the repository whose
name is unique there, and its first sentence makes a query (:func:`doc_query`: prose, four
words or more, not just the name). Calls are bare (``f(``), on ``self``/``cls``/``this``/
``Self``, or on a capitalised name (``Type::f(``, ``Class.f(``); a method called on any other
value (``s.strip()``) could be anyone's and is not linked.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from codesearch.identifiers import identifier_words
from codesearch.trainer.doc_queries import PLAIN, STOP_WORDS, doc_query, name_words, style_for
from codesearch.trainer.mining.decls import NO_NAME_KINDS, TRIVIAL_NAMES

CODE_LINES = 2  # code lines under a comment that it is taken to describe
MAX_COMMENT_LINES = 4  # a longer block explains more than the call under it
MAX_PAIRS_PER_CALLEE = 3  # one helper called under many comments should not swamp the rest

_CALL = re.compile(
    r"(?<![\w.:])(?:(?:self|cls|this|Self|[A-Z]\w*)(?:\.|::))?([A-Za-z_]\w*)\s*(?:::<[^()]*>)?\("
)
# A line that starts a declaration: the comment above it is that declaration's doc, mined as one.
_DECL_LINE = re.compile(
    r"^\s*(?:@|#\[|(?:pub(?:\([^)]*\))?\s+|async\s+|unsafe\s+|const\s+|export\s+|static\s+)*"
    r"(?:def|fn|class|struct|enum|trait|impl|type|mod|macro_rules!|function|interface)\b)"
)
_NOT_CALLS = frozenset(
    """if elif while for return match not and or in assert yield raise with lambda print super
    isinstance len int str list dict set tuple type getattr setattr hasattr range enumerate zip
    min max sorted reversed map filter any all open iter next repr bool float bytes object format
    sizeof Some Ok Err Box Vec Rc Arc Option Result String""".split()
)
_NOT_WORDS = re.compile(r"^(?:TODO|FIXME|XXX|HACK|SAFETY|NOTE|NB|noqa|type:|pragma|fmt:|pylint|clippy|rustfmt)\b", re.I)


@dataclass
class CallSite:
    repo: str
    path: str  # the file the comment is in (inside the corpus)
    line: int  # 1-based line of the comment's first line
    comment: str
    callees: frozenset[str]  # names called in the code under it
    language: str


def _line_comment(style, stripped: str) -> str | None:
    """The text of an ordinary line comment, or None (code, or a doc/skip comment)."""
    for prefix, kind in sorted(style.lines, key=lambda x: -len(x[0])):
        if stripped.startswith(prefix):
            return stripped[len(prefix) :].strip() if kind == PLAIN else None
    return None


def call_sites(lines: list[str], language: str, repo: str, path: str) -> list[CallSite]:
    """The comments of one file that stand above calls (not yet linked to declarations)."""
    style = style_for(language)
    if style is None or not any(kind == PLAIN for _, kind in style.lines):
        return []
    out: list[CallSite] = []
    i, n = 0, len(lines)
    while i < n:
        text = _line_comment(style, lines[i].strip())
        if text is None:
            i += 1
            continue
        start, block = i, []
        while i < n and (t := _line_comment(style, lines[i].strip())) is not None:
            block.append(t)
            i += 1
        code = []
        j = i
        while j < n and len(code) < CODE_LINES and lines[j].strip() and _line_comment(style, lines[j].strip()) is None:
            code.append(lines[j])
            j += 1
        words = [b for b in block if b]
        if not code or not words or len(block) > MAX_COMMENT_LINES or _NOT_WORDS.match(words[0]):
            continue
        if _DECL_LINE.match(code[0]):
            continue  # the comment above a declaration is its doc
        names = {m.group(1) for c in code for m in _CALL.finditer(c)} - _NOT_CALLS
        if names:
            out.append(CallSite(repo, path, start + 1, "\n".join(block), frozenset(names), language))
    return out


def _shares_a_word(query: str, name: str) -> bool:
    """Whether the comment names what the callee's name does ("pad" / ``_strip_padding``): a
    comment that shares no word with it is more often about the code around the call."""
    words = {w for w in name_words(query) if w not in STOP_WORDS and len(w) >= 3}
    names = [w for w in identifier_words(re.split(r"::|\.", name)[-1]) if len(w) >= 3]
    return any(a.startswith(b) or b.startswith(a) for a in words for b in names)


def link_call_sites(sites: list[CallSite], targets: list) -> list[tuple[CallSite, object, str]]:
    """(site, target, query) for each site whose code calls exactly one declaration of its
    repository with a name found once there (``targets``: the source's
    :class:`~codesearch.trainer.mining.testpairs.TargetDecl`), and whose comment makes a query."""
    by_name: dict[tuple[str, str], list] = defaultdict(list)
    for tg in targets:
        d = tg.decl
        if d.kind in NO_NAME_KINDS or ", " in d.name:
            continue
        by_name[(tg.repo, re.split(r"::|\.", d.name)[-1])].append(tg)
    per_callee: dict[int, int] = defaultdict(int)
    out = []
    for s in sites:
        found = [by_name[(s.repo, nm)] for nm in s.callees
                 if len(nm) >= 3 and nm not in TRIVIAL_NAMES and (s.repo, nm) in by_name]  # fmt: skip
        if len(found) != 1 or len(found[0]) != 1:
            continue  # no callee of the repository, several, or a name declared more than once
        tg = found[0][0]
        if tg.decl.language != s.language or (tg.path == s.path and tg.decl.start <= s.line <= tg.decl.end):
            continue  # a comment inside the callee describes a step of it, not the call
        if per_callee[id(tg)] >= MAX_PAIRS_PER_CALLEE:
            continue
        query, _why = doc_query(s.language, s.comment, tg.decl.name)
        if query is None or not _shares_a_word(query, tg.decl.name):
            continue
        per_callee[id(tg)] += 1
        out.append((s, tg, query))
    return out
