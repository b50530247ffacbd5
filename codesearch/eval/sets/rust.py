"""The eval sets' Rust extractor (tree-sitter-rust): blank every doc comment and find the
documented items (:func:`process_rust`)."""

from __future__ import annotations

import re
from typing import Iterator

from codesearch.eval.sets.extract import (
    DocItem,
    FileResult,
    blank_ranges,
    finish_items,
    join_lines,
    set_doc_query,
    split_lines,
    star_block_text,
    trailing_cr,
)

RUST_ITEM_KINDS = {
    "function_item": "function",
    "function_signature_item": "function",
    "struct_item": "struct",
    "enum_item": "enum",
    "union_item": "union",
    "trait_item": "trait",
    "type_item": "type",
    "associated_type": "type",
    "const_item": "const",
    "static_item": "static",
    "macro_definition": "macro",
}

_RUST_PARSER = None


def _rust_parser():
    global _RUST_PARSER
    if _RUST_PARSER is None:
        import tree_sitter
        import tree_sitter_rust

        _RUST_PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_rust.language()))
    return _RUST_PARSER


def _walk(node) -> Iterator:
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children))


def _rust_doc_kind(node) -> str | None:
    """'outer' or 'inner' for a doc comment node, None for any other node."""
    if node.type not in ("line_comment", "block_comment"):
        return None
    for c in node.children:
        if c.type == "outer_doc_comment_marker":
            return "outer"
        if c.type == "inner_doc_comment_marker":
            return "inner"
    return None


def _node_end(node, lines) -> tuple[int, int]:
    """End (row, col) of a node, with a trailing newline (line comments) left out."""
    row, col = node.end_point
    if col == 0 and row > node.start_point[0]:
        row -= 1
        col = len(lines[row]) - len(trailing_cr(lines[row]))
    return row, col


def _rust_doc_text(node, src: bytes) -> str:
    text = src[node.start_byte : node.end_byte].decode("utf-8", "replace")
    if node.type == "line_comment":
        body = text[3:].rstrip("\r\n")
        return body[1:] if body.startswith(" ") else body
    return star_block_text(text[3:-2])


def _rust_attrs_text(item, src: bytes) -> list[str]:
    out = []
    sib = item.prev_named_sibling
    while sib is not None and (sib.type == "attribute_item" or _rust_doc_kind(sib) == "outer"):
        if sib.type == "attribute_item":
            out.append(src[sib.start_byte : sib.end_byte].decode("utf-8", "replace"))
        sib = sib.prev_named_sibling
    return out


def _rust_is_test_code(item, src: bytes) -> bool:
    if any(re.search(r"^#\[\s*test\s*\]$", a) for a in _rust_attrs_text(item, src)):
        return True
    node = item.parent
    while node is not None:
        if node.type == "mod_item":
            if any(re.search(r"cfg\s*\(\s*test\s*\)", a) for a in _rust_attrs_text(node, src)):
                return True
        node = node.parent
    return False


def _rust_qualified_name(item, src: bytes) -> str:
    name_node = item.child_by_field_name("name")
    name = src[name_node.start_byte : name_node.end_byte].decode() if name_node else ""
    parent = item.parent.parent if item.parent is not None else None
    if parent is not None and parent.type in ("impl_item", "trait_item"):
        field_name = "type" if parent.type == "impl_item" else "name"
        owner = parent.child_by_field_name(field_name)
        if owner is not None:
            owner_text = src[owner.start_byte : owner.end_byte].decode("utf-8", "replace")
            owner_text = re.split(r"[<\s]", owner_text.strip(), maxsplit=1)[0]
            if owner_text:
                return f"{owner_text}::{name}"
    return name


def process_rust(text: str, relpath: str) -> FileResult:
    """Blank every doc comment (///, //!, /** */, /*! */) and find documented items."""
    src = text.encode("utf-8", "surrogateescape")
    tree = _rust_parser().parse(src)
    lines = split_lines(src)
    ranges = []
    items: list[DocItem] = []
    declarations = 0
    for node in _walk(tree.root_node):
        if _rust_doc_kind(node) is not None:
            r1, c1 = _node_end(node, lines)
            ranges.append((node.start_point[0], node.start_point[1], r1, c1))
            continue
        kind = RUST_ITEM_KINDS.get(node.type)
        if kind is None:
            continue
        declarations += 1
        # Walk back over the attributes and outer doc comments attached to the item.
        docs, start_row = [], node.start_point[0]
        sib = node.prev_named_sibling
        while sib is not None:
            if sib.type == "attribute_item":
                start_row = sib.start_point[0]
            elif _rust_doc_kind(sib) == "outer":
                docs.append(sib)
            else:
                break
            sib = sib.prev_named_sibling
        if not docs:
            continue
        docs.reverse()
        # A doc that shares a line with code (`x, /// doc`) is not a clean query.
        if any(lines[d.start_point[0]][: d.start_point[1]].strip() for d in docs):
            continue
        if _rust_is_test_code(node, src):
            continue
        # Attributes above the doc are part of the declaration, docs below them too.
        doc_rows = [d.start_point[0] for d in docs] + [_node_end(d, lines)[0] for d in docs]
        end_row = _node_end(node, lines)[0]
        item = DocItem(
            path=relpath,
            name=_rust_qualified_name(node, src),
            kind=kind,
            start_line=min(start_row, node.start_point[0]) + 1,
            end_line=end_row + 1,
            doc_start=min(doc_rows) + 1,
            doc_end=max(doc_rows) + 1,
            doc="\n".join(_rust_doc_text(d, src) for d in docs),
        )
        set_doc_query(item, "rust")
        items.append(item)
    blank_ranges(lines, ranges)
    finish_items(items, lines)
    return FileResult(join_lines(lines).decode("utf-8", "surrogateescape"), declarations, items)

