"""Rust items inside macro bodies, and Verus syntax made parseable for tree-sitter-rust.

tree-sitter-rust parses a macro invocation's body as an opaque token tree, so items written
inside ``verus! { ... }``, ``cfg_if! { ... }`` or any item-producing macro were never seen
by the chunker. Here such a body is parsed again as Rust items, in place: the parser reads
only the body's byte range of the file (``included_ranges``), so every node keeps its exact
byte, line and column and the walker treats the items like any others.

Verus code inside ``verus!`` is not Rust (``pub open spec fn``, ``requires``/``ensures``
clauses between signature and body, ``tracked`` parameters, ``&&&``, ``==>``, ``x@`` ...).
Before the body is parsed it is *masked*: a copy of the source in which the Verus-only
tokens are overwritten with spaces (or, for operators, with a Rust operator of the same
length), so that the result is Rust the grammar accepts while every offset stays where it
was. Chunk text is always cut from the original lines; the masked copy is only parsed.
The modes the mask removed (``spec``, ``proof``, ``broadcast`` ...) are kept per function
name position, so the chunker can give each function a kind that says its mode.

No library does this: verus-syn (Verus' own parser) is a Rust crate, not on PyPI, and
tree-sitter-verus has no wheel; a token-level mask over tree-sitter-rust keeps one walker
for plain and verified Rust.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Macros whose bodies hold Verus syntax (the mask is applied only inside them).
VERUS_MACROS = frozenset({"verus", "verus_", "verus_code"})

# Words that put a function (or struct, use, ...) in a Verus mode; removed before parsing.
_MODE_WORDS = frozenset({"spec", "proof", "exec", "open", "closed", "broadcast", "uninterp", "axiom"})
_GHOST_WORDS = frozenset({"tracked", "ghost"})
_AFTER_MODE = _MODE_WORDS | _GHOST_WORDS | frozenset(
    {"fn", "struct", "enum", "union", "type", "const", "static", "use", "group", "trait", "impl", "unsafe"}
)
# Specification clauses between a signature (or loop head) and its body.
CLAUSES = frozenset(
    {
        "requires",
        "ensures",
        "recommends",
        "decreases",
        "opens_invariants",
        "no_unwind",
        "returns",
        "invariant",
        "invariant_except_break",
        "invariant_ensures",
        "default_ensures",
    }
)
_NOT_BEFORE_CLAUSE = frozenset({".", "::", "fn", "let", "mut", "struct", "enum", "as", "&", "const", "static"})
_NOT_AFTER_CLAUSE = frozenset({":", "=", ".", ",", ")", ";", "::", "]", "}"})
_CONTROL = frozenset({"if", "else", "match", "while", "loop", "for", "unsafe", "=>"})
_QUANTIFIERS = frozenset({"forall", "exists", "choose"})

# Verus operators -> Rust operators of the same byte length (the mask keeps every offset).
_OPERATORS = {
    "<==>": " == ",
    "=~~=": "==  ",
    "!=~=": "!=  ",
    "&&&": " &&",
    "|||": " ||",
    "==>": ">= ",
    "<==": " <=",
    "===": "== ",
    "!==": "!= ",
    "=~=": "== ",
}
_PUNCT = sorted(
    list(_OPERATORS) + ["->", "=>", "::", "==", "!=", "<=", ">=", "&&", "||", "..=", "...", ".."],
    key=len,
    reverse=True,
)
_ITEM_WORD = re.compile(rb"\b(?:fn|struct|enum|impl|trait|mod|type|const|static|union|use|macro_rules)\b")


@dataclass
class Token:
    kind: str  # "ident", "punct", "num", "lit" (string / char), "open", "close"
    start: int
    end: int
    text: str


@dataclass
class Masked:
    """A masked copy of a macro body and what the mask took away."""

    source: bytearray
    modes: dict[int, tuple[str, ...]] = field(default_factory=dict)  # name start byte -> mode words
    names: dict[int, str] = field(default_factory=dict)  # name start byte -> the name, where the mask moved it


_UTF8_CHAR = rb"(?:[\x00-\x7f]|[\xc0-\xff][\x80-\xbf]+)"
_TOKEN = re.compile(
    rb"(?P<ws>\s+)"
    rb"|(?P<line>//[^\n]*)"
    rb"|(?P<block>/\*)"
    rb'|(?P<raw>b?r(?P<hashes>#*)")'
    rb'|(?P<str>b?"(?:\\.|[^"\\])*(?:"|\Z))'
    rb"|(?P<char>b?'(?:\\(?:u\{[0-9a-fA-F_]*\}|x[0-9a-fA-F]{2}|.)|(?!['\\\n])" + _UTF8_CHAR + rb")')"
    rb"|(?P<life>'[A-Za-z_][A-Za-z0-9_]*)"
    rb"|(?P<num>[0-9][A-Za-z0-9_]*)"
    rb"|(?P<ident>[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*)"
    rb"|(?P<open>[(\[{])|(?P<close>[)\]}])"
    rb"|(?P<punct>" + b"|".join(re.escape(p.encode()) for p in _PUNCT) + rb"|.)",
    re.S,
)


def tokens(src: bytes | bytearray, start: int, end: int) -> list[Token]:
    """Code tokens of ``src[start:end]``: comments and whitespace dropped, string and char
    literals kept whole (their contents are never masked)."""
    out: list[Token] = []
    i = start
    match = _TOKEN.match
    while i < end:
        m = match(src, i, end)
        kind = m.lastgroup
        j = m.end()
        if kind == "hashes" or kind == "raw":  # raw string: ends at a quote and as many hashes
            close = b'"' + m.group("hashes")
            k = src.find(close, j, end)
            j = end if k < 0 else k + len(close)
            out.append(Token("lit", i, j, ""))
        elif kind == "block":  # nested block comment
            depth = 1
            while j < end and depth:
                k = src.find(b"*/", j, end)
                o = src.find(b"/*", j, end)
                if k < 0:
                    j = end
                    break
                if 0 <= o < k:
                    depth, j = depth + 1, o + 2
                else:
                    depth, j = depth - 1, k + 2
        elif kind == "str" or kind == "char":
            out.append(Token("lit", i, j, ""))
        elif kind == "ident" or kind == "life" or kind == "num":
            out.append(Token("num" if kind == "num" else "ident", i, j, m.group().decode("utf-8", "replace")))
        elif kind == "open" or kind == "close" or kind == "punct":
            out.append(Token(kind, i, j, m.group().decode("utf-8", "replace")))
        i = j
    return out


def _blank(buf: bytearray, start: int, end: int) -> None:
    """Overwrite ``buf[start:end]`` with spaces, keeping line breaks."""
    for k in range(start, end):
        if buf[k] not in (10, 13):
            buf[k] = 32


def _write(buf: bytearray, at: int, text: str) -> None:
    buf[at : at + len(text)] = text.encode()


def _matching(toks: list[Token], i: int) -> int:
    """Index of the token closing the bracket opened at ``toks[i]`` (or the last index)."""
    depth = 0
    for k in range(i, len(toks)):
        if toks[k].kind == "open":
            depth += 1
        elif toks[k].kind == "close":
            depth -= 1
            if depth == 0:
                return k
    return len(toks) - 1


def _first_on_line(src: bytes | bytearray, pos: int) -> bool:
    k = pos - 1
    while k >= 0 and src[k] in b" \t":
        k -= 1
    return k < 0 or src[k] == 10


def _clause_end(src: bytes | bytearray, toks: list[Token], i: int) -> int:
    """Index of the token that ends the clause region starting at ``toks[i]``: the body's
    ``{``, or the ``;`` of a function without a body, or the ``}`` that closes the scope."""
    segment_has_control = False
    k = i + 1
    while k < len(toks):
        t = toks[k]
        if t.kind == "close" or (t.kind == "punct" and t.text == ";"):
            return k
        if t.kind == "punct" and t.text == ",":
            segment_has_control = False
        elif t.text in _CONTROL or t.text in CLAUSES:
            segment_has_control = t.text in _CONTROL
        if t.kind == "open":
            if t.text == "{":
                prev = toks[k - 1]
                struct_literal = prev.kind == "ident" and prev.text[:1].isupper()
                operand = prev.kind == "punct" and prev.text != ">"  # `==> {`, `&& {`: a block expression
                if _first_on_line(src, t.start) or not (segment_has_control or struct_literal or operand):
                    return k
            k = _matching(toks, k) + 1
            continue
        k += 1
    return len(toks)


def mask_verus(src: bytes | bytearray, start: int, end: int, out: Masked) -> None:
    """Mask the Verus syntax of ``src[start:end]`` into ``out.source`` (same offsets)."""
    buf = out.source
    toks = tokens(src, start, end)
    n = len(toks)
    i = 0
    while i < n:
        t = toks[i]
        nxt = toks[i + 1] if i + 1 < n else None
        prev = toks[i - 1] if i > 0 else None
        if t.kind == "ident":
            w = t.text
            if (
                w in _GHOST_WORDS
                and nxt is not None
                and (nxt.kind == "ident" or nxt.text in ("&", "&&", "("))
                and not (prev is not None and prev.text in (".", "::"))
            ):
                _blank(buf, t.start, t.end)  # tracked x: T, tracked &mut self, let ghost g = ..
            elif w == "proof" and nxt is not None and nxt.text == "{":
                _blank(buf, t.start, t.end)  # proof { ... } block
            elif w in _MODE_WORDS and nxt is not None and nxt.kind == "ident" and nxt.text in _AFTER_MODE:
                words = []
                k = i
                while k < n and toks[k].kind == "ident" and toks[k].text in _MODE_WORDS | _GHOST_WORDS:
                    words.append(toks[k].text)
                    _blank(buf, toks[k].start, toks[k].end)
                    k += 1
                if k < n and toks[k].text == "fn" and k + 1 < n and toks[k + 1].kind == "ident":
                    out.modes[toks[k + 1].start] = tuple(w_ for w_ in words if w_ not in _GHOST_WORDS)
                elif k + 1 < n and toks[k].text == "group" and toks[k + 1].kind == "ident":
                    # broadcast group NAME { a, b } -> struct NAME {      }
                    _write(buf, t.start, "struct"[: t.end - t.start])
                    _blank(buf, toks[k].start, toks[k].end)
                    out.modes[toks[k + 1].start] = ("broadcast", "group")
                    if k + 2 < n and toks[k + 2].text == "{":
                        close = _matching(toks, k + 2)
                        _blank(buf, toks[k + 2].end, toks[close].start)
                        i = close + 1
                        continue
                i = k
                continue
            elif (
                w in CLAUSES
                and not (prev is not None and prev.text in _NOT_BEFORE_CLAUSE)
                and not (nxt is not None and nxt.text in _NOT_AFTER_CLAUSE)
                and not (nxt is not None and nxt.text == "!" and nxt.start == t.end and i + 2 < n and toks[i + 2].kind == "open")
            ):
                k = _clause_end(src, toks, i)
                stop = toks[k].start if k < n else end
                _blank(buf, t.start, stop)
                i = k
                continue
            elif w == "assume_specification" and nxt is not None and nxt.text in ("<", "["):
                i = _assume_specification(src, toks, i, out)
                continue
            elif w in _QUANTIFIERS and nxt is not None and nxt.text in ("|", "||"):
                _blank(buf, t.start, t.end)
                if prev is not None and prev.text == "assert":
                    _blank(buf, prev.start, prev.end)
            elif (
                w == "by"
                and prev is not None
                and prev.kind in ("close", "num", "ident", "lit")
                and prev.text not in ("let", "fn", "mut")
                and nxt is not None
                and nxt.text in ("{", "(")
            ):
                _write(buf, t.start, "; ")  # assert(x) by { ... }
            elif w == "spec_fn" and nxt is not None and nxt.text == "(":
                _write(buf, t.start, "     fn")
            elif w in ("implies", "matches") and prev is not None and prev.kind in ("ident", "close", "num"):
                _write(buf, t.start, ">=" if w == "implies" else "==")  # P implies Q; x matches Some(y)
                _blank(buf, t.start + 2, t.end)
            elif w == "is" and prev is not None and nxt is not None and nxt.kind == "ident" and prev.kind in ("ident", "close"):
                _write(buf, t.start, "==")
        elif t.kind == "num":
            m = re.search(r"(int|nat)$", t.text)
            if m and t.text[: m.start()].rstrip("_").isdigit():
                _blank(buf, t.start + m.start(), t.end)
        elif t.kind == "punct":
            if t.text in _OPERATORS:
                _write(buf, t.start, _OPERATORS[t.text])
            elif t.text == "->" and prev is not None and nxt is not None:
                glued = prev.end == t.start and nxt.start == t.end
                if glued and prev.kind in ("ident", "close") and nxt.kind == "ident":
                    _write(buf, t.start, ". ")  # self->field
                elif nxt.text == "(":
                    k = i + 2
                    while k < n and toks[k].text in _GHOST_WORDS:
                        k += 1
                    if k + 1 < n and toks[k].kind == "ident" and toks[k + 1].text == ":":
                        _blank(buf, toks[i + 2].start, toks[k + 1].end)  # -> (r: T), -> (tracked r: T)
            elif t.text == "!" and nxt is not None and nxt.text == "is" and nxt.start == t.end:
                _write(buf, t.start, "!= ")  # x !is Variant
                i += 2
                continue
            elif t.text == "@" and prev is not None and prev.end == t.start and prev.kind in ("ident", "close"):
                _blank(buf, t.start, t.end)  # the view v@
            elif t.text == "#" and nxt is not None and nxt.text == "!" and i + 3 < n and toks[i + 2].text == "[":
                if toks[i + 3].text in ("auto", "trigger"):  # #![trigger f(x)] inside a quantifier
                    close = _matching(toks, i + 2)
                    _blank(buf, t.start, toks[close].end)
                    i = close + 1
                    continue
            elif t.text == "#" and nxt is not None and nxt.text == "[" and i + 3 < n and toks[i + 2].text == "trigger":
                close = _matching(toks, i + 1)
                if toks[i + 3].text == "]":
                    _blank(buf, t.start, toks[close].end)  # #[trigger] on an expression
                    i = close + 1
                    continue
        i += 1


_CONTINUES = frozenset({"else", ".", "?", ",", "=>", "==", "!=", "&&", "||", "+", "-", "*", "/", "%", "as", "<", ">"})


def item_segments(src: bytes | bytearray, start: int, end: int) -> list[tuple[int, int]]:
    """Byte ranges of the top-level items of ``src[start:end]``, found from tokens alone: an
    item ends at a ``;`` outside brackets, or at a closing ``}`` of a top-level brace group
    that nothing continues (an ``else``, an operator). Each range starts right after the
    previous one, so comments and attributes above an item stay in its range. Used where the
    parser errs, so that one item it cannot read does not swallow the items after it."""
    toks = tokens(src, start, end)
    out: list[tuple[int, int]] = []
    seg_start = start
    depth = 0
    for k, t in enumerate(toks):
        if t.kind == "open":
            depth += 1
        elif t.kind == "close":
            depth -= 1
            if depth < 0:
                depth = 0
            elif depth == 0 and t.text == "}":
                nxt = toks[k + 1] if k + 1 < len(toks) else None
                if nxt is None or nxt.text not in _CONTINUES and nxt.text != ";":
                    out.append((seg_start, t.end))
                    seg_start = t.end
        elif depth == 0 and t.kind == "punct" and t.text == ";":
            out.append((seg_start, t.end))
            seg_start = t.end
    if seg_start < end and tokens(src, seg_start, end):
        out.append((seg_start, end))
    return out


def blank_fn_bodies(buf: bytearray, start: int, end: int) -> None:
    """Empty every function body in ``buf[start:end]`` (``{ ... }`` -> ``{     }``), keeping
    offsets: the last resort for an item whose body the parser cannot read, so that its
    signature, its doc comment and its place in an ``impl`` are still found."""
    toks = tokens(buf, start, end)
    k = 0
    while k < len(toks):
        if toks[k].text == "fn" and k + 1 < len(toks) and toks[k + 1].kind == "ident":
            j = k + 2
            while j < len(toks) and toks[j].text not in ("{", ";"):
                j = _matching(toks, j) + 1 if toks[j].kind == "open" else j + 1
            if j < len(toks) and toks[j].text == "{":
                close = _matching(toks, j)
                _blank(buf, toks[j].end, toks[close].start)
                k = close + 1
                continue
        k += 1


def _assume_specification(src: bytes | bytearray, toks: list[Token], i: int, out: Masked) -> int:
    """``assume_specification<T>[ path::to::f ](args) -> R ensures ..;`` becomes
    ``fn f<T>(args) -> R ..;`` (on the same bytes; the name keeps the whole path). Returns
    the index of the next token to look at."""
    k = i + 1
    generics = ""
    if toks[k].text == "<":
        depth = 0
        while k < len(toks):
            depth += toks[k].text.count("<") - toks[k].text.count(">")
            k += 1
            if depth <= 0:
                break
        generics = bytes(src[toks[i + 1].start : toks[k - 1].end]).decode("utf-8", "replace")
    if k >= len(toks) or toks[k].text != "[":
        return i + 1
    close = _matching(toks, k)
    path = bytes(src[toks[k].end : toks[close].start]).decode("utf-8", "replace").strip()
    name = path.rsplit("::", 1)[-1].strip()
    span = bytes(src[toks[i].start : toks[close].end])
    if b"\n" in span or not re.fullmatch(r"[A-Za-z_]\w*", name):
        return close + 1
    text = f"fn {name}{generics}"
    _blank(out.source, toks[i].start, toks[close].end)
    _write(out.source, toks[i].start, text)
    out.modes[toks[i].start + 3] = ("assume_specification",)
    out.names[toks[i].start + 3] = path
    return close + 1


_DECLARING = frozenset({"struct", "enum", "union", "fn", "type", "trait", "mod", "static", "const", "interface", "class"})
_NOT_NAMES = frozenset(
    {"pub", "crate", "ref", "mut", "unsafe", "extern", "impl", "for", "where", "self", "super", "in", "bool", "char", "str"}
    | {f"{s}{n}" for s in "uif" for n in ("8", "16", "32", "64", "128", "size")}
)


def invocation_name(src: bytes | bytearray, start: int, end: int) -> str:
    """What an item-position macro invocation whose body is no item list declares, by its
    tokens: the name after a declaring keyword (``bitflags! { pub struct Flags ..``,
    ``RIDL!{ interface IFoo ..``), else the first identifier followed by ``(``, ``,``, ``:``,
    ``=``, ``{`` or ``<`` (``DEFINE_GUID!{IID_IFoo, ..}``, ``mat!(match_basic, ..)``). "" if none."""
    toks = tokens(src, start, min(end, start + 4000))
    k = 0
    while k < len(toks) and toks[k].text == "#" and k + 1 < len(toks) and toks[k + 1].text == "[":
        k = _matching(toks, k + 1) + 1  # leading attributes
    for j in range(k, min(len(toks) - 1, k + 40)):
        t = toks[j]
        if t.kind == "ident" and t.text in _DECLARING:
            n = j + 1
            while n < len(toks) and toks[n].text in ("ref", "mut"):
                n += 1
            if n < len(toks) and toks[n].kind == "ident":
                return toks[n].text
    for j in range(k, min(len(toks) - 1, k + 40)):
        t = toks[j]
        if t.kind == "ident" and t.text not in _NOT_NAMES and not t.text.startswith("'"):
            if toks[j + 1].text in ("(", ",", ":", "=", "{", "<", ";"):
                return t.text
    return ""


def may_hold_items(src: bytes | bytearray, start: int, end: int) -> bool:
    """A cheap test before parsing a macro body again: does it name an item keyword?"""
    return _ITEM_WORD.search(bytes(src[start:end])) is not None


def mode_kind(words: tuple[str, ...]) -> str | None:
    """The chunk kind for a function with these Verus mode words (None: an exec function)."""
    if "spec" in words or "uninterp" in words or "assume_specification" in words:
        return "spec"
    if "axiom" in words:
        return "axiom"
    if "proof" in words:
        return "proof"
    return None


# Attribute-based verifiers (Kani, Creusot, Prusti): attributes that give a function a kind.
_HARNESS_ATTR = re.compile(r"#\[\s*(?:cfg_attr\s*\(.*,\s*)?kani::proof(?:_for_contract)?\b|#\[\s*(?:crux_test|bolero::check)\b")
_SPEC_ATTR = re.compile(r"#\[\s*(?:creusot::|creusot_contracts::|prusti_contracts::)?(?:logic|predicate|pure|spec_only)\b")
_LAW_ATTR = re.compile(r"#\[\s*(?:creusot::|creusot_contracts::)?(?:law\b|logic\s*\([^\]]*\blaw\b)")


def attribute_kind(attributes: list[str]) -> str | None:
    """The chunk kind that a function's verifier attributes give it, if any."""
    text = "\n".join(attributes)
    if _HARNESS_ATTR.search(text):
        return "harness"
    if _LAW_ATTR.search(text):
        return "proof"
    if _SPEC_ATTR.search(text):
        return "spec"
    return None
