"""Lean 4 declaration chunker (a line scanner; there is no tree-sitter grammar wheel).

A command starts on a line at column 0, outside comments and strings, whose first word
(after ``@[attributes]`` and modifiers such as ``private`` / ``noncomputable``) is a
command keyword. A declaration runs until the next command start; trailing blank and
comment lines are left for the next one. A ``/-- docstring -/``, an attribute line or a
``set_option ... in`` line directly above a declaration belongs to it, as do ``--`` and
``/- -/`` comments directly above. ``namespace`` / ``section`` / ``end`` give the context.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from codesearch.indexer.chunking.spans import CODE, Span, is_blank

DECL_KEYWORDS = frozenset(
    """def theorem lemma instance structure class inductive abbrev axiom axioms example opaque
    macro macro_rules syntax notation infix infixl infixr prefix postfix elab elab_rules term_elab
    declare_syntax_cat initialize builtin_initialize constant irreducible_def alias simproc
    register_simp_attr add_decl_doc library_note unif_hint""".split()
)
MERGEABLE = frozenset("notation infix infixl infixr prefix postfix attribute deriving axiom alias".split())
MODIFIERS = frozenset("private protected noncomputable partial unsafe nonrec scoped local public meta".split())
_MODIFIER = re.compile(r"(?:%s)\s+" % "|".join(sorted(MODIFIERS)))
# Commands that are not chunked (context and environment commands).
QUIET = frozenset(
    """import open export variable variables universe universes set_option include omit
    namespace section end mutual assert_not_exists suppress_compilation""".split()
)
NOTATIONS = frozenset({"notation", "infix", "infixl", "infixr", "prefix", "postfix"})

_WORD = re.compile(r"[^\s(){}\[\]:,]+")
_TOKEN = {
    "code": re.compile(r'--|/-|"|(?<![\w\'.])\'(?:\\.|[^\\\'\n])\''),
    "comment": re.compile(r"/-|-/"),
    "string": re.compile(r'\\.|"'),
}


@dataclass
class _Line:
    in_code: bool  # the line starts outside comments and strings
    has_code: bool  # some character of the line is outside comments


def scan_lines(lines: list[str]) -> list[_Line]:
    """Comment/string state at the start of each line (nested ``/- -/``, ``--``, strings)."""
    out: list[_Line] = []
    depth, in_str = 0, False
    for line in lines:
        starts_in_code = depth == 0 and not in_str
        has_code = False
        i = 0
        while i < len(line):
            if depth > 0:
                m = _TOKEN["comment"].search(line, i)
                if m is None:
                    break
                depth += 1 if m.group() == "/-" else -1
                i = m.end()
            elif in_str:
                m = _TOKEN["string"].search(line, i)
                has_code = True
                if m is None:
                    break
                in_str = m.group() != '"'
                i = m.end()
            else:
                m = _TOKEN["code"].search(line, i)
                stop = m.start() if m is not None else len(line)
                has_code = has_code or bool(line[i:stop].strip())
                if m is None or m.group() == "--":
                    break
                if m.group() == "/-":
                    depth += 1
                elif m.group() == '"':
                    in_str = has_code = True
                else:
                    has_code = True
                i = m.end()
        out.append(_Line(starts_in_code, has_code))
    return out


@dataclass
class _Command:
    line: int  # 1-based
    role: str  # "decl", "prefix", "doc", "quiet", "code"
    kind: str = ""
    name: str = ""
    words: tuple[str, ...] = ()


def _strip_attributes(s: str) -> str:
    """Drop leading ``@[...]`` groups (balanced brackets) from ``s``."""
    while s.startswith("@["):
        depth = 0
        for i, ch in enumerate(s):
            if ch == "[":
                depth += 1
            elif ch == "]":
                depth -= 1
                if depth == 0:
                    s = s[i + 1 :].lstrip()
                    break
        else:
            return ""
    return s


def _decl_name(kind: str, rest: str) -> str:
    if kind in NOTATIONS or kind in ("syntax", "macro", "elab"):
        m = re.search(r"\(name\s*:=\s*([^\s)]+)\)", rest) or re.search(r'"([^"]*)"', rest)
        return m.group(1).strip() if m else ""
    if kind == "instance":
        rest = re.sub(r"^\(priority\s*:=[^)]*\)\s*", "", rest)
    if kind in ("example", "macro_rules", "elab_rules", "initialize", "builtin_initialize"):
        return ""
    m = _WORD.match(rest)
    if m is None or m.group().startswith(("@", "where", ":=")):
        return ""
    return m.group()


def classify_line(text: str) -> _Command | None:
    """The command a column-0 line starts, or None for a continuation line."""
    if text.startswith("/--"):
        return _Command(0, "prefix")
    if text.startswith("/-!"):
        return _Command(0, "doc")
    if text.startswith("#"):
        return _Command(0, "prefix" if re.match(r"#guard_msgs\b.*\bin\s*$", text) else "code")
    s = _strip_attributes(text)
    if not s:
        return _Command(0, "prefix") if text.startswith("@[") else None
    while True:
        m = _MODIFIER.match(s)
        if m is None:
            break
        s = _strip_attributes(s[m.end() :])
    words = s.split()
    if not words:
        return _Command(0, "prefix")
    head = words[0]
    rest = s[len(head) :].strip() if s.startswith(head) else ""
    if head == "class" and len(words) > 1 and words[1] == "inductive":
        return _Command(0, "decl", "class", _decl_name("inductive", rest[len("inductive") :].strip()))
    if head == "deriving" and len(words) > 1 and words[1] == "instance":
        return _Command(0, "decl", "deriving", rest[len("instance") :].strip())
    if head == "attribute" and len(words) > 1 and words[1].startswith("["):
        return _Command(0, "decl", "attribute", " ".join(words[2:]))
    if head in DECL_KEYWORDS:
        kind = {"axioms": "axiom", "constant": "axiom", "term_elab": "elab"}.get(head, head)
        return _Command(0, "decl", kind, _decl_name(kind, rest), tuple(words))
    if head in QUIET:
        if head in ("set_option", "open") and re.search(r"\bin\s*$", s):
            return _Command(0, "prefix")
        return _Command(0, "quiet", head, "", tuple(words))
    if re.match(r"(run_cmd|run_elab|run_meta|eval|check|print|reduce)\b", head):
        return _Command(0, "code")
    return None


def lean_spans(lines: list[str]) -> list[Span]:
    info = scan_lines(lines)
    commands: list[_Command] = []
    in_mutual = False
    open_begin = False  # Lean 3 style `begin ... end` proof at column 0
    for i, line in enumerate(lines):
        if not info[i].in_code or not line or (line[0].isspace() and not in_mutual):
            continue
        text = line.strip() if in_mutual else line
        if open_begin and text.rstrip() == "end":
            open_begin = False
            continue
        if text.rstrip() == "begin":
            open_begin = True
            continue
        cmd = classify_line(text)
        if cmd is None or (line[0].isspace() and cmd.role != "decl"):
            continue
        cmd.line = i + 1
        commands.append(cmd)
        if cmd.role == "quiet" and cmd.kind == "mutual":
            in_mutual = True
        elif cmd.role == "quiet" and cmd.kind == "end" and not line[0].isspace():
            in_mutual = False

    spans: list[Span] = []
    stack: list[tuple[str, str]] = []  # (keyword, name)
    prefix_start: int | None = None
    last_end = 0
    for k, cmd in enumerate(commands):
        nxt = commands[k + 1].line if k + 1 < len(commands) else len(lines) + 1
        end = nxt - 1
        # a command ends at its last line holding code (trailing comments go to the next one)
        while end > cmd.line and (is_blank(lines[end - 1]) or not info[end - 1].has_code):
            end -= 1
        if cmd.role == "doc":
            end = nxt - 1
            while end > cmd.line and is_blank(lines[end - 1]):
                end -= 1
        context = " > ".join(f"{kw} {name}" for kw, name in stack if name and kw != "mutual")
        if cmd.role == "prefix":
            if prefix_start is None:
                prefix_start = cmd.line
            continue
        start = prefix_start if prefix_start is not None else cmd.line
        prefix_start = None
        if cmd.role == "quiet":
            _update_context(stack, cmd)
            last_end = end
            continue
        # `--` / `/- -/` comment lines directly above belong to the declaration
        while start - 1 > last_end and not is_blank(lines[start - 2]) and not info[start - 2].has_code:
            start -= 1
        if cmd.role == "decl":
            spans.append(
                Span(start, end, cmd.kind, cmd.name, context, mergeable=cmd.kind in MERGEABLE, body_start=cmd.line)
            )
        elif cmd.role == "doc":
            spans.append(Span(start, end, "doc", "", context))
        else:
            spans.append(Span(start, end, CODE, "", context))
        last_end = end
    return spans


def _update_context(stack: list[tuple[str, str]], cmd: _Command) -> None:
    words = [w for w in cmd.words if w not in MODIFIERS]
    head = words[0] if words else cmd.kind
    name = words[1] if len(words) > 1 else ""
    if head == "namespace":
        stack.append(("namespace", name))
    elif head == "section":
        stack.append(("section", name))
    elif head == "mutual":
        stack.append(("mutual", ""))
    elif head == "end" and stack:
        for j in range(len(stack) - 1, -1, -1):
            if not name or stack[j][1] == name:
                del stack[j:]
                return
        stack.pop()
