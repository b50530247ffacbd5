"""Coq (Rocq) declaration chunker: a sentence scanner, no grammar needed.

Sentences end with a "." followed by whitespace (not inside nested ``(* comments *)`` or
``"strings"``, not part of ``..``). A declaration sentence (``Lemma``, ``Definition``,
``Inductive``, ...) starts a chunk; a statement followed by ``Proof.`` (or by tactics,
for theorem-like ones) extends through ``Qed.`` / ``Defined.`` / ``Admitted.`` /
``Abort.``. ``Section X.`` / ``Module X.`` ... ``End X.`` give the context. A comment
(``(** doc *)`` or plain) directly above a declaration belongs to it.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from codesearch.indexer.chunking.mlcomments import FLAT_COMMENT, comment_end, string_end
from codesearch.indexer.chunking.spans import CODE, Span

THEOREM_LIKE = {
    "Theorem": "theorem", "Lemma": "lemma", "Fact": "fact", "Remark": "remark", "Corollary": "corollary",
    "Proposition": "proposition", "Property": "property", "Example": "example", "Goal": "goal",
    "Conjecture": "conjecture",
}  # fmt: skip
DEFINITION_LIKE = {
    "Definition": "definition", "Fixpoint": "fixpoint", "CoFixpoint": "cofixpoint", "Let": "let",
    "Instance": "instance", "Function": "function", "Equations": "equations", "Inductive": "inductive",
    "CoInductive": "coinductive", "Variant": "variant", "Record": "record", "Structure": "structure",
    "Class": "class", "Ltac": "ltac", "Ltac2": "ltac", "Notation": "notation", "Infix": "notation",
    "Axiom": "axiom", "Axioms": "axiom", "Parameter": "parameter", "Parameters": "parameter",
    "Variable": "variable", "Variables": "variable", "Hypothesis": "variable", "Hypotheses": "variable",
    "Context": "variable", "Scheme": "scheme", "Coercion": "coercion", "Canonical": "canonical",
    "Derive": "derive",
}  # fmt: skip
MERGEABLE = frozenset("notation variable parameter axiom coercion canonical ltac scheme instance".split())
MODIFIERS = frozenset("Local Global Polymorphic Monomorphic Program Private Cumulative NonCumulative".split())
_ADD_KINDS = {"Morphism": "morphism", "Relation": "relation", "Ring": "ring", "Field": "field"}
PROOF_END = frozenset({"Qed", "Defined", "Admitted", "Abort", "Save"})
QUIET = frozenset(
    """Require Import Export From Set Unset Open Close Declare Delimit Bind Arguments Implicit Hint
    Create Generalizable Opaque Transparent Typeclasses Strategy Proof Include Local Global Reserved
    Unshelve Obligation Tactic Solve""".split()
)
# Sentences that may not appear inside a proof script: they end an unterminated proof.
VERNAC = frozenset(THEOREM_LIKE) | frozenset(DEFINITION_LIKE) | frozenset(
    {"Section", "End", "Module", "Require", "From", "Import", "Export", "Next", "Add"}
)

_TOKENS = re.compile(r'\(\*|"|\.(?=\s|$)')  # outside comments: comment, string, sentence end


@dataclass
class Sentence:
    start: int  # offsets into the text
    end: int  # offset of the final "."
    words: list[str]
    text: str


@dataclass
class Comment:
    start: int
    end: int


def scan(text: str) -> tuple[list[Sentence], list[Comment]]:
    """Sentences and top-level comments of ``text``; an unterminated last sentence runs to EOF
    (an unterminated comment ends the scan)."""
    sentences: list[Sentence] = []
    comments: list[Comment] = []
    i, n = 0, len(text)
    sent_start: int | None = None
    while i < n:
        m = _TOKENS.search(text, i)
        if sent_start is None:
            j = i
            stop = m.start() if m is not None else n
            while j < stop and text[j].isspace():
                j += 1
            if j < stop:
                sent_start = j
        if m is None:
            break
        tok = m.group()
        if tok == "(*":
            end = comment_end(text, m.start())
            if end is None:
                break
            if sent_start is None:
                comments.append(Comment(m.start(), end - 1))
            i = end
            continue
        if tok == '"':
            if sent_start is None:
                sent_start = m.start()
            i = string_end(text, m.start())
            continue
        # a "." followed by whitespace
        dot = m.start()
        if dot > 0 and text[dot - 1] == ".":
            i = m.end()
            continue
        if sent_start is None:
            sent_start = dot
        sentences.append(_sentence(text, sent_start, dot))
        sent_start = None
        i = m.end()
    if sent_start is not None and text[sent_start:].strip():
        sentences.append(_sentence(text, sent_start, n - 1))
    return sentences, comments


_LEADING = re.compile(r"^(?:\s|[-+*{}]|#\[[^\]]*\])+")


def _sentence(text: str, start: int, end: int) -> Sentence:
    head = text[start : min(end + 1, start + 400)]
    head = FLAT_COMMENT.sub(" ", head)
    head = _LEADING.sub("", head)
    words = head.split(None, 8)[:8]
    return Sentence(start, end, words, head)


def _decl(words: list[str]) -> tuple[str, str, bool] | None:
    """(kind, name, theorem_like) of a declaration sentence, or None."""
    ws = list(words)
    while ws and (ws[0] in MODIFIERS or ws[0].startswith("#[")) and len(ws) > 1:
        ws.pop(0)
    if not ws:
        return None
    head = ws[0].rstrip(".")
    rest = ws[1:]
    nxt = rest[0] if rest else ""
    if head in THEOREM_LIKE:
        return THEOREM_LIKE[head], _ident(nxt) if head != "Goal" else "", True
    if head == "Next" and nxt.startswith("Obligation"):
        return "obligation", "", True
    if head == "Add" and rest:  # Add Morphism / Add Parametric Relation / Add Ring ...
        what = rest[1:] if rest[0] == "Parametric" else rest
        kind = _ADD_KINDS.get(what[0] if what else "")
        if kind is None:
            return None
        return kind, _ident(what[1]) if len(what) > 1 else "", kind in ("morphism", "relation")
    if head == "Existing" and nxt in ("Instance", "Instances", "Class"):
        return "instance", _ident(rest[1]) if len(rest) > 1 else "", False
    if head == "Tactic" and nxt == "Notation":
        return "notation", _notation_name(words), False
    if head in ("Module", "Declare"):
        return None
    if head in DEFINITION_LIKE:
        kind = DEFINITION_LIKE[head]
        if kind == "notation":
            return kind, _notation_name(words), False
        if kind == "canonical" and nxt == "Structure":
            nxt = rest[1] if len(rest) > 1 else ""
        if kind == "instance" and (nxt.startswith(":") or nxt.startswith(("{", "(", "`", "!"))):
            nxt = ""
        if kind in ("variable", "parameter", "axiom"):
            return kind, _binder_names(" ".join(rest)), False
        return kind, _ident(nxt), False
    return None


def _ident(word: str) -> str:
    m = re.match(r"[A-Za-z_][\w'.]*", word)
    return m.group().rstrip(".") if m else ""


def _binder_names(s: str) -> str:
    """``A B : Type`` -> "A B"; ``(A : Type) (f : A -> A)`` -> "A f"."""
    if s.startswith(("(", "{", "[", "`")):
        names = re.findall(r"[({\[]\s*([A-Za-z_][\w' ]*?)\s*:", s)
    else:
        names = [s.split(":", 1)[0]] if ":" in s else []
    return " ".join(" ".join(n.split()) for n in names)


def _notation_name(words: list[str]) -> str:
    m = re.search(r'"((?:[^"]|"")*)"', " ".join(words))
    return m.group(1) if m else ""


def coq_spans(text: str) -> list[Span]:
    sentences, comments = scan(text)
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_of(offset: int) -> int:
        return bisect.bisect_right(line_starts, offset)

    spans: list[Span] = []
    attached: set[int] = set()
    doc_contexts: dict[int, str] = {}  # comment index -> context where it sits
    stack: list[str] = []
    last_end_offset = -1  # end of the last sentence already given to a chunk
    ci = 0  # next comment to consider
    k = 0
    while k < len(sentences):
        s = sentences[k]
        words = s.words
        head = words[0] if words else ""
        context = " > ".join(stack)
        while ci < len(comments) and comments[ci].end < s.start:
            doc_contexts[ci] = context
            ci += 1
        decl = _decl(words)
        end_k = k
        if decl is None:
            opened = _context_command(words, s.text)
            if opened is not None:
                if opened:
                    stack.append(opened)
                elif stack:
                    stack.pop()
                last_end_offset = s.end
                k += 1
                continue
            if head.rstrip(".") in QUIET or head.rstrip(".") in PROOF_END or not head:
                last_end_offset = s.end
                k += 1
                continue
            kind, name, theorem_like = CODE, "", False
        else:
            kind, name, theorem_like = decl
            end_k = _proof_end(sentences, k, theorem_like)

        # comments directly above (no blank line between) belong to the chunk
        start_line = line_of(s.start)
        j = ci - 1
        prev_line = line_of(last_end_offset) if last_end_offset >= 0 else 0
        while (
            j >= 0
            and comments[j].start > last_end_offset
            and line_of(comments[j].start) > prev_line
            and line_of(comments[j].end) >= start_line - 1
        ):
            start_line = line_of(comments[j].start)
            attached.add(j)
            j -= 1
        end = sentences[end_k].end
        body = line_of(s.start)
        spans.append(Span(start_line, line_of(end), kind, name, context, mergeable=kind in MERGEABLE, body_start=body))
        last_end_offset = end
        k = end_k + 1
    # a (** documentation *) block of 3+ lines that belongs to no declaration is a "doc" chunk
    for idx, c in enumerate(comments):
        if idx in attached or not text.startswith("(**", c.start) or text.startswith("(***", c.start):
            continue
        first, last = line_of(c.start), line_of(c.end)
        if last - first >= 2:
            spans.append(Span(first, last, "doc", "", doc_contexts.get(idx, " > ".join(stack))))
    spans.sort(key=lambda sp: (sp.start, sp.end))
    # runs of code sentences form one code span
    return _join_code(spans)


def _proof_end(sentences: list[Sentence], k: int, theorem_like: bool) -> int:
    """Index of the last sentence of the declaration starting at sentence ``k``."""
    if k + 1 >= len(sentences):
        return k
    nxt = sentences[k + 1].words
    first = nxt[0].rstrip(".") if nxt else ""
    is_proof = first == "Proof"
    if is_proof and len(nxt) > 1 and nxt[1] not in ("using", "with"):
        return k + 1  # `Proof term.` is a whole proof
    if not is_proof and (not theorem_like or first in VERNAC or first in PROOF_END or first in QUIET):
        return k
    j = k + 1
    while j < len(sentences):
        w = sentences[j].words
        first = w[0].rstrip(".") if w else ""
        if first in PROOF_END:
            return j
        if j > k + 1 and first in VERNAC:
            return j - 1  # unterminated proof
        j += 1
    return len(sentences) - 1


def _context_command(words: list[str], text: str) -> str | None:
    """"Section X" / "Module X" for an opening sentence, "" for ``End X.``, else None."""
    ws = [w.rstrip(".") for w in words]
    if not ws:
        return None
    if ws[0] == "Section" and len(ws) > 1:
        return f"Section {ws[1]}"
    if ws[0] == "End" and len(ws) <= 2:
        return ""
    if ws[0] == "Module":
        rest = [w for w in ws[1:] if w not in ("Import", "Export", "Type")]
        if not rest or ":=" in text:
            return None
        return ("Module Type " if "Type" in ws[1:2] else "Module ") + rest[0].split("(")[0]
    return None


def _join_code(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for sp in spans:
        prev = out[-1] if out else None
        if prev is not None and prev.kind == CODE == sp.kind and prev.context == sp.context:
            prev.end = max(prev.end, sp.end)
            continue
        out.append(sp)
    return out
