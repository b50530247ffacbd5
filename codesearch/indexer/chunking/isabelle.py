"""Isabelle/Isar theory chunker: a command scanner.

There is no tree-sitter grammar wheel for Isabelle's outer syntax (Isabelle parses it in
Scala/ML), so, as for Lean and Coq, a small scanner does the job. It tracks nested
``(* comments *)``, cartouches (``\\<open> ... \\<close>`` or ``‹ ... ›``) and ``"strings"``
(which may span lines). A theory command starts on a line whose first word (outside those)
is a command keyword. Declarations (``lemma``, ``theorem``, ``corollary``, ``proposition``,
``definition``, ``fun``, ``function``, ``primrec``, ``datatype``, ``inductive``,
``abbreviation``, ``record``, ``type_synonym``, ``locale``, ``class``, ``instantiation``,
...) run, with their proofs (``by``, ``apply``, ``proof ... qed``, which are not theory
commands), to their last code line before the next theory command. A ``text \\<open>...\\<close>``
block or ``(* comment *)`` directly above a declaration belongs to it; other ``text``
blocks are "doc" chunks; ``ML`` / ``setup`` blocks are "code". ``theory X``, and
``locale`` / ``context`` / ``class`` / ``instantiation`` ... ``begin`` ... ``end`` give
the context ("theory Lists > locale monoid"). Kinds are the command keyword; names the
declared name ("" for an unnamed lemma).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from codesearch.indexer.chunking.mlcomments import OPEN, skip_comment
from codesearch.indexer.chunking.spans import CODE, Span

DECLS = frozenset(
    """lemma theorem corollary proposition schematic_goal definition fun function primrec primcorec
    corec datatype codatatype inductive inductive_set coinductive coinductive_set abbreviation record
    type_synonym typedef locale class instantiation instance interpretation global_interpretation
    sublocale subclass axiomatization consts lemmas overloading lift_definition quotient_type
    specification method nominal_datatype nominal_function""".split()
)
MERGEABLE = frozenset({"consts", "lemmas", "type_synonym", "abbreviation"})
TEXT = frozenset({"text", "text_raw"})
CODE_COMMANDS = frozenset(
    "ML ML_val ML_command setup method_setup attribute_setup simproc_setup local_setup".split()
)
# Theory commands that end a declaration but make no chunk (headings, context, diagnostics ...).
QUIET = frozenset(
    """theory begin end context chapter section subsection subsubsection paragraph subparagraph
    declare notation no_notation type_notation no_type_notation syntax no_syntax translations
    hide_const hide_type hide_fact hide_class ML_file bundle unbundle named_theorems code_printing
    code_datatype export_code value term typ thm prop find_theorems find_consts print_theorems
    print_statement default_sort setup_lifting adhoc_overloading no_adhoc_overloading experiment
    notepad unused_thms nitpick_params sledgehammer_params quickcheck_params declaration
    termination_simp lemmas_reset""".split()
)
OPENERS = frozenset({"theory", "locale", "context", "class", "instantiation", "overloading", "experiment", "notepad", "bundle"})

_WORD = re.compile(r"[A-Za-z_][\w']*")
_OPEN = ("\\<open>", "‹")
_CLOSE = ("\\<close>", "›")


@dataclass
class _Line:
    in_code: bool  # starts outside comments, cartouches and strings
    has_code: bool  # some character is outside comments


def scan_lines(lines: list[str]) -> list[_Line]:
    out: list[_Line] = []
    comment = cartouche = 0
    in_str = False
    for line in lines:
        info = _Line(comment == 0 and cartouche == 0 and not in_str, False)
        i, n = 0, len(line)
        while i < n:
            if comment:
                i, comment = skip_comment(line, i, comment)
                continue
            if not in_str and not cartouche and line.startswith(OPEN, i):
                comment = 1
                i += 2
                continue
            ch = line[i]
            if not ch.isspace():
                info.has_code = True
            if in_str:
                if ch == "\\" and not line.startswith("\\<", i):
                    i += 2
                    continue
                in_str = ch != '"'
                i += 1
                continue
            opened = next((t for t in _OPEN if line.startswith(t, i)), None)
            if opened is not None:
                cartouche += 1
                i += len(opened)
                continue
            if cartouche:
                closed = next((t for t in _CLOSE if line.startswith(t, i)), None)
                if closed is not None:
                    cartouche -= 1
                    i += len(closed)
                else:
                    i += 1
                continue
            if ch == '"':
                in_str = True
            i += 1
        out.append(info)
    return out


@dataclass
class _Command:
    line: int
    indent: int
    keyword: str
    rest: str
    end: int = 0


def _name(keyword: str, rest: str) -> str:
    s = rest.strip()
    while s.startswith("("):  # `(in monoid)`, `(sequential)`, `(plugins del: size)`
        k = s.find(")")
        if k < 0:
            return ""
        s = s[k + 1 :].lstrip()
    if keyword in ("datatype", "codatatype", "record", "type_synonym", "typedef", "nominal_datatype"):
        s = re.sub(r"^(?:'\w+\s+|\([^)]*\)\s*)", "", s)  # type parameters
    m = _WORD.match(s)
    if m is None or m.group() in ("proof", "where", "begin", "fixes", "assumes", "shows", "by"):
        return ""
    return m.group()


def _label(cmd: _Command) -> str:
    """The context a ``... begin`` command opens: "locale monoid", "context", ..."""
    rest = re.sub(r"\bbegin\s*$", "", cmd.rest.strip()).strip()
    if cmd.keyword == "instantiation":
        m = re.match(r"(.*?::\s*\S+)", rest)
        return f"instantiation {' '.join((m.group(1) if m else rest).split())}".strip()
    if cmd.keyword in ("notepad", "experiment"):
        return ""
    name = _name(cmd.keyword, rest)
    return f"{cmd.keyword} {name}".strip()


def isabelle_spans(lines: list[str]) -> list[Span]:
    info = scan_lines(lines)
    commands: list[_Command] = []
    decl_indent: int | None = None  # indentation of the declaration being read
    for i, line in enumerate(lines, 1):
        if not info[i - 1].in_code:
            continue
        m = _WORD.match(line.lstrip())
        if m is None:
            continue
        word = m.group()
        if word not in DECLS and word not in TEXT and word not in QUIET and word not in CODE_COMMANDS:
            continue
        rest = line.lstrip()[len(word) :]
        if rest and (rest[0].isalnum() or rest[0] in "_'."):
            continue
        indent = len(line) - len(line.lstrip())
        if word not in DECLS and decl_indent is not None and indent > decl_indent:
            continue  # `text`, `term`, ... inside a proof
        decl_indent = indent if word in DECLS else None
        commands.append(_Command(i, indent, word, rest))
    # each command runs to its last code line before the next one
    for k, cmd in enumerate(commands):
        nxt = commands[k + 1].line if k + 1 < len(commands) else len(lines) + 1
        end = nxt - 1
        while end > cmd.line and not info[end - 1].has_code:
            end -= 1
        cmd.end = end

    spans: list[Span] = []
    stack: list[str] = []
    pending: _Command | None = None  # an opener waiting for its `begin`
    texts: dict[int, Span] = {}  # end line -> unattached text block
    for cmd in commands:
        context = " > ".join(x for x in stack if x)
        kw = cmd.keyword
        if kw == "end":
            if stack:
                stack.pop()
            pending = None
            continue
        if kw == "begin":
            if pending is not None:
                stack.append(_label(pending))
                pending = None
            continue
        opens = kw in OPENERS
        if opens and re.search(r"\bbegin\s*$", _code_tail(lines, info, cmd)):
            stack.append(_label(cmd))
            pending = None
        else:
            pending = cmd if opens else None
        if kw in TEXT:
            sp = Span(cmd.line, cmd.end, "doc", "", context)
            spans.append(sp)
            texts[cmd.end] = sp
            continue
        if kw in CODE_COMMANDS:
            spans.append(Span(cmd.line, cmd.end, CODE, "", context))
            continue
        if kw not in DECLS:
            continue
        start = cmd.line
        while start > 1 and lines[start - 2].strip() and not info[start - 2].has_code:
            start -= 1  # (* comments *) directly above
        doc = texts.pop(start - 1, None)
        if doc is not None and doc in spans:
            spans.remove(doc)
            start = doc.start
        spans.append(
            Span(start, cmd.end, kw, _name(kw, cmd.rest), context, mergeable=kw in MERGEABLE, body_start=cmd.line)
        )
    spans.sort(key=lambda sp: (sp.start, sp.end))
    return spans


def _code_tail(lines: list[str], info: list[_Line], cmd: _Command) -> str:
    """The command's last code line, without a trailing ``(* comment *)``."""
    return re.sub(r"\(\*.*?\*\)\s*$", "", lines[cmd.end - 1]).rstrip()
