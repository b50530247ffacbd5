"""The eval sets' Verus extractor: a small lexer and item finder of its own (tree-sitter-rust
sees a ``verus! { }`` body as an opaque token tree, and Verus syntax is not Rust; deliberately
not the indexer's chunker, so that the eval set is not defined by the code under test):
:func:`process_verus`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from codesearch.eval.sets.extract import (
    DocItem,
    FileResult,
    blank_ranges,
    finish_items,
    join_lines,
    offset_to_pos,
    set_doc_query,
    split_lines,
    star_block_text,
)
from codesearch.indexer.chunking import mlcomments

@dataclass
class _VTok:
    kind: str  # ident, punct, lit, lifetime, doc (outer doc comment), idoc (inner), comment
    text: str
    start: int  # character offsets, end exclusive
    end: int


_V_RAW_STR = re.compile(r'(?:b|c)?r(#*)"')
_V_STR = re.compile(r'(?:b|c)?"')
_V_IDENT = re.compile(r"(?:r#)?[^\W\d]\w*")
_V_NUMBER = re.compile(r"\d\w*")


def verus_lex(src: str) -> list[_VTok]:
    """Tokens of a Rust/Verus file: comments (nested ``/* */``), doc comments, strings (raw
    ones too), char literals told apart from lifetimes, identifiers, numbers, punctuation
    (single characters, plus ``->``, ``=>`` and ``::``)."""
    toks: list[_VTok] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c.isspace():
            i += 1
            continue
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            e = j - 1 if j > i and src[j - 1] == "\r" else j
            text = src[i:e]
            kind = "doc" if text.startswith("///") and not text.startswith("////") else (
                "idoc" if text.startswith("//!") else "comment")  # fmt: skip
            toks.append(_VTok(kind, text, i, e))
            i = j
            continue
        if src.startswith("/*", i):
            j = mlcomments.comment_end(src, i, strings=False, open_="/*", close="*/") or len(src)
            text = src[i:j]
            if text.startswith("/**") and not text.startswith("/***") and not text.startswith("/**/"):
                kind = "doc"
            else:
                kind = "idoc" if text.startswith("/*!") else "comment"
            toks.append(_VTok(kind, text, i, j))
            i = j
            continue
        m = _V_RAW_STR.match(src, i)
        if m:
            close = '"' + m.group(1)
            j = src.find(close, m.end())
            j = n if j < 0 else j + len(close)
            toks.append(_VTok("lit", src[i:j], i, j))
            i = j
            continue
        m = _V_STR.match(src, i)
        if m:
            j = m.end()
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            j = min(j + 1, n)
            toks.append(_VTok("lit", src[i:j], i, j))
            i = j
            continue
        if c == "'" or (c == "b" and src.startswith("'", i + 1)):
            k = i + 1 if c == "'" else i + 2
            if src.startswith("\\", k):  # '\n', '\'', '\u{1F600}'
                j = k + 2
                while j < n and src[j] != "'" and src[j] != "\n":
                    j += 1
                j = min(j + 1, n)
                toks.append(_VTok("lit", src[i:j], i, j))
                i = j
                continue
            if k + 1 < n and src[k + 1] == "'" and src[k] != "\n":  # 'x'
                toks.append(_VTok("lit", src[i : k + 2], i, k + 2))
                i = k + 2
                continue
            m = _V_IDENT.match(src, k) if c == "'" else None
            if m:  # a lifetime or a loop label
                toks.append(_VTok("lifetime", src[i : m.end()], i, m.end()))
                i = m.end()
                continue
        m = _V_IDENT.match(src, i)
        if m:
            toks.append(_VTok("ident", m.group(), i, m.end()))
            i = m.end()
            continue
        m = _V_NUMBER.match(src, i)
        if m:
            toks.append(_VTok("lit", m.group(), i, m.end()))
            i = m.end()
            continue
        two = src[i : i + 2]
        if two in ("->", "=>", "::"):
            toks.append(_VTok("punct", two, i, i + 2))
            i += 2
            continue
        toks.append(_VTok("punct", c, i, i + 1))
        i += 1
    return toks


# Words that can start an item (after a fn body's closing brace; an expression inside a
# requires/ensures clause continues with `else`, an operator, `,` or the next clause instead).
_V_ITEM_WORDS = frozenset({
    "pub", "fn", "struct", "enum", "union", "trait", "type", "const", "static", "impl", "mod",
    "use", "extern", "unsafe", "async", "default", "macro_rules", "open", "closed", "uninterp",
    "spec", "proof", "exec", "axiom", "broadcast", "tracked", "ghost", "global",
})  # fmt: skip
# Words that continue a signature or an expression: never the start of the next item.
_V_CONTINUE_WORDS = frozenset({
    "else", "as", "is", "has", "matches", "requires", "ensures", "recommends", "decreases",
    "returns", "invariant", "invariant_except_break", "opens_invariants", "no_unwind", "when",
    "via", "default_ensures", "where", "with", "by", "implies",
})  # fmt: skip
_V_MODIFIERS = frozenset({
    "pub", "open", "closed", "uninterp", "broadcast", "default", "unsafe", "async", "spec",
    "proof", "exec", "axiom", "tracked", "ghost",
})  # fmt: skip
_V_FN_MODES = ("spec", "proof", "exec", "axiom")
# Macros whose bodies hold items: `verus! { ... }` and Verus's struct_with_invariants!.
_V_ITEM_MACROS = frozenset({"verus", "struct_with_invariants"})
_V_TEST_ATTR = re.compile(r"^#\[\s*k?test\s*\]$|^#\[\s*cfg\s*\(\s*k?test\s*\)\s*\]$")


def _verus_match(toks: list[_VTok]) -> dict[int, int]:
    """Index of the matching closer of each ( [ { token (the last token when unbalanced)."""
    pairs = {")": "(", "]": "[", "}": "{"}
    match: dict[int, int] = {}
    stack: list[int] = []
    for k, t in enumerate(toks):
        if t.kind != "punct":
            continue
        if t.text in "([{":
            stack.append(k)
        elif t.text in pairs:
            # pop to the matching opener (a stray closer in broken code closes what is open)
            while stack and toks[stack[-1]].text != pairs[t.text]:
                match[stack.pop()] = k
            if stack:
                match[stack.pop()] = k
    for k in stack:
        match[k] = len(toks) - 1
    return match


class _VerusParser:
    """Items of a token stream: fns of every mode, structs, enums, unions, traits, types,
    consts, statics, macro_rules (impl, trait, mod, verus! and struct_with_invariants! bodies
    are walked for the items inside)."""

    def __init__(self, src: str, toks: list[_VTok]):
        self.src = src
        self.toks = [t for t in toks if t.kind not in ("comment", "idoc")]
        self.match = _verus_match(self.toks)
        # (name, kind, first token (attribute or keyword), last token, doc tokens, in test code)
        self.items: list[tuple[str, str, int, int, list[_VTok], bool]] = []

    def text(self, k: int) -> str:
        return self.toks[k].text if 0 <= k < len(self.toks) else ""

    def _starts_item(self, k: int, hi: int) -> bool:
        if k >= hi:
            return True
        t = self.toks[k]
        if t.kind == "doc" or t.text in ("}", "#"):
            return True
        if t.kind != "ident" or t.text in _V_CONTINUE_WORDS:
            return False
        return t.text in _V_ITEM_WORDS or (self.text(k + 1) == "!" and self.text(k + 2) in ("{", "(", "["))

    def body_end(self, j: int, hi: int) -> int:
        """Last token of a fn/const/static/type from j on: the '}' of its body (the first '{'
        at depth 0 whose '}' is not followed by more of an expression) or a ';' at depth 0."""
        while j < hi:
            t = self.toks[j]
            if t.kind == "punct":
                if t.text == ";":
                    return j
                if t.text == "{":
                    k = self.match[j]
                    if self._starts_item(k + 1, hi):
                        return k
                    j = k + 1
                    continue
                if t.text in "([":
                    j = self.match[j] + 1
                    continue
            j += 1
        return hi - 1

    def first_brace(self, j: int, hi: int) -> int | None:
        """The first '{' at depth 0 from j on, or None when a ';' comes first."""
        while j < hi:
            t = self.toks[j]
            if t.kind == "punct":
                if t.text == "{":
                    return j
                if t.text == ";":
                    return None
                if t.text in "([":
                    j = self.match[j] + 1
                    continue
            j += 1
        return None

    def semi_end(self, j: int, hi: int) -> int:
        while j < hi:
            t = self.toks[j]
            if t.kind == "punct":
                if t.text == ";":
                    return j
                if t.text in "([{":
                    j = self.match[j] + 1
                    continue
            j += 1
        return hi - 1

    def impl_owner(self, j: int, brace: int) -> str:
        """The type an ``impl`` block is for (the last path segment, generics dropped)."""
        k, angle = j, 0
        if self.text(k) == "<":  # impl<...>
            while k < brace:
                angle += {"<": 1, ">": -1}.get(self.text(k), 0)
                k += 1
                if angle == 0:
                    break
        start, angle = k, 0
        for m in range(k, brace):
            s = self.text(m)
            angle += {"<": 1, ">": -1}.get(s, 0)
            if s == "for" and angle == 0:
                start = m + 1
        name = ""
        for m in range(start, brace):
            t = self.toks[m]
            if t.kind == "ident" and t.text not in ("mut", "dyn", "unsafe"):
                name = t.text
                if self.text(m + 1) != "::":
                    break
            elif t.text in ("&", "!", "::") or t.kind == "lifetime":
                continue
            else:
                break
        return name

    def parse(self, lo: int, hi: int, owner: str = "", in_test: bool = False) -> None:
        toks, i = self.toks, lo
        while i < hi:
            docs: list[_VTok] = []
            first: int | None = None  # first attribute or keyword token
            test = in_test
            while i < hi:
                t = toks[i]
                if t.kind == "doc":
                    docs.append(t)
                    i += 1
                elif t.text == "#" and self.text(i + 1) == "[":
                    close = self.match[i + 1]
                    if _V_TEST_ATTR.match(re.sub(r"\s+", " ", self.src[t.start : toks[close].end])):
                        test = True
                    first = i if first is None else first
                    i = close + 1
                elif t.text == "#" and self.text(i + 1) == "!" and self.text(i + 2) == "[":
                    i = self.match[i + 2] + 1  # an inner attribute: belongs to no item
                    docs, first = [], None
                else:
                    break
            if i >= hi:
                break
            first = i if first is None else first
            j, mods = i, []
            while j < hi:
                s = toks[j].text
                if toks[j].kind == "ident" and s in _V_MODIFIERS:
                    mods.append(s)
                    j += 1
                    if s in ("pub", "spec") and self.text(j) == "(":  # pub(crate), spec(checked)
                        j = self.match[j] + 1
                elif s == "const" and self.text(j + 1) in ("fn", "unsafe", "async", "extern"):
                    mods.append(s)
                    j += 1
                elif s == "extern" and j + 1 < hi and toks[j + 1].kind == "lit":  # extern "C" fn
                    mods.append(s)
                    j += 2
                else:
                    break
            if j >= hi:
                break
            kw, name_tok = toks[j].text, self.text(j + 1)
            kind = None
            if kw == "fn":
                mode = next((m for m in mods if m in _V_FN_MODES), None)
                kind, end = (f"{mode} fn" if mode else "fn"), self.body_end(j + 2, hi)
            elif kw in ("struct", "enum", "union") and toks[j + 1].kind == "ident":
                brace = self.first_brace(j + 2, hi)
                kind, end = kw, (self.match[brace] if brace is not None else self.semi_end(j + 2, hi))
            elif kw in ("type", "const", "static"):
                kind, end = kw, self.body_end(j + 2, hi)
            elif kw == "trait":
                brace = self.first_brace(j + 2, hi)
                kind, end = kw, (self.match[brace] if brace is not None else self.semi_end(j + 2, hi))
                if brace is not None:
                    self.parse(brace + 1, end, name_tok, test)
            elif kw == "macro_rules" and self.text(j + 1) == "!":
                name_tok = self.text(j + 2)
                end = self.match.get(j + 3, j + 3)
                end = end + 1 if self.text(end + 1) == ";" else end
                kind = "macro"
            elif kw == "impl":
                brace = self.first_brace(j + 1, hi)
                if brace is None:
                    i = self.semi_end(j + 1, hi) + 1
                    continue
                end = self.match[brace]
                self.parse(brace + 1, end, self.impl_owner(j + 1, brace), test)
                i = end + 1
                continue
            elif kw == "mod":
                brace = self.first_brace(j + 2, hi)
                if brace is None:
                    i = self.semi_end(j + 2, hi) + 1
                    continue
                end = self.match[brace]
                self.parse(brace + 1, end, "", test or name_tok in ("test", "tests"))
                i = end + 1
                continue
            elif toks[j].kind == "ident" and name_tok == "!" and self.text(j + 2) in ("{", "(", "["):
                end = self.match[j + 2]
                if kw in _V_ITEM_MACROS:
                    self.parse(j + 3, end, owner, test)
                i = end + 1
                continue
            elif kw in ("use", "global") or (kw == "extern" and name_tok == "crate"):
                i = self.semi_end(j + 1, hi) + 1
                continue
            if kind is None:  # anything else (`broadcast group`, stray tokens): step over it
                i = (self.match[j] + 1) if toks[j].text in ("(", "[", "{") else j + 1
                continue
            name = f"{owner}::{name_tok}" if owner else name_tok
            self.items.append((name, kind, first, end, docs, test))
            i = end + 1


def process_verus(text: str, relpath: str) -> FileResult:
    """Blank every doc comment (///, //!, /** */, /*! */) and find documented Verus/Rust items.

    Items inside ``verus! { }`` (fns of every mode: spec, proof, exec, axiom; structs, enums,
    traits, types, consts, statics) and plain Rust items outside it; methods of impl and trait
    blocks too. Doc = the ``///`` / ``/** */`` comments above the item (attributes and plain
    comments may sit between or above them); a doc on an ``impl`` block is not used. The span
    runs from the first attribute (or the first keyword) through the body's closing ``}`` or
    the final ``;``. Test code (``#[test]``, ``#[ktest]``, ``#[cfg(test)]``, ``#[cfg(ktest)]``,
    ``mod test(s)``) is skipped.
    """
    lines = split_lines(text)
    pos = offset_to_pos(lines)
    toks = verus_lex(text)
    ranges = []
    for t in toks:
        if t.kind in ("doc", "idoc"):
            ranges.append((*pos(t.start), *pos(t.end)))
        elif t.kind == "comment" and re.match(r"//\s*(?:///(?!/)|//!)", t.text):
            ranges.append((*pos(t.start), *pos(t.end)))  # `// /// doc`: a commented-out doc line
        elif t.kind == "comment" and t.text.startswith("/*"):
            # commented-out code keeps its doc lines: blank those too (up to a `*/` on the line)
            for m in _V_DOC_LINE_IN_COMMENT.finditer(t.text):
                a, z = t.start + m.start(1), t.start + m.end(1)
                ranges.append((*pos(a), *pos(z)))
    parser = _VerusParser(text, toks)
    parser.parse(0, len(parser.toks))
    items: list[DocItem] = []
    for name, kind, first, last, docs, test in parser.items:
        if not docs or test:
            continue
        if any(lines[pos(d.start)[0]][: pos(d.start)[1]].strip() for d in docs):
            continue  # a doc sharing its line with code (`x, /// doc`) is not a clean query
        doc_rows = [pos(d.start)[0] for d in docs] + [pos(d.end - 1)[0] for d in docs]
        start_row = pos(parser.toks[first].start)[0]
        item = DocItem(
            path=relpath,
            name=name,
            kind=kind,
            start_line=start_row + 1,
            end_line=pos(parser.toks[last].end - 1)[0] + 1,
            doc_start=min(doc_rows) + 1,
            doc_end=max(doc_rows) + 1,
            doc="\n".join(_verus_doc_text(d.text) for d in docs),
        )
        set_doc_query(item, "rust")  # Verus docs are rustdoc Markdown
        items.append(item)
    blank_ranges(lines, ranges)
    finish_items(items, lines)
    return FileResult(join_lines(lines), len(parser.items), items)


# A `///` or `//!` line inside a block comment (commented-out code), through the end of the line
# or the first `*/` on it.
_V_DOC_LINE_IN_COMMENT = re.compile(r"(?m)^[ \t]*(?:/\*+[ \t]*)?((?:///(?!/)|//!)(?:(?!\*/)[^\r\n])*)")


def _verus_doc_text(text: str) -> str:
    if text.startswith("///"):
        body = text[3:]
        return body[1:] if body.startswith(" ") else body
    return star_block_text(text[3:-2])
