"""The eval sets' Coq extractor (a small lexer: nested comments, strings, sentences ending in
'.'): blank every ``(** *)`` comment and find the documented declarations (:func:`process_coq`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from codesearch.eval.sets.extract import (
    DocItem,
    FileResult,
    blank_ranges,
    finish_items,
    join_lines,
    set_doc_query,
    split_lines,
)
from codesearch.indexer.chunking.mlcomments import comment_end, string_end

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


def coq_lex(src: str) -> tuple[list[_CoqComment], list[tuple[int, int]]]:
    """Top-level comments and sentences (start, end-after-the-period) of a .v file."""
    comments: list[_CoqComment] = []
    sentences: list[tuple[int, int]] = []
    i, n, start = 0, len(src), None
    while i < n:
        if src.startswith("(*", i):
            j = comment_end(src, i)
            if j is None:
                j = n  # unterminated: it runs to the end
            comments.append(_CoqComment(i, j))
            i = j
            continue
        c = src[i]
        if c == '"':
            start = i if start is None else start
            i = string_end(src, i)
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
        set_doc_query(item, "coq")
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

