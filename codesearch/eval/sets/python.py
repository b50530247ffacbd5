"""The eval sets' Python extractor (``ast``): blank every docstring and find the documented
defs and classes (:func:`process_python`)."""

from __future__ import annotations

import ast
import re

from codesearch.eval.sets.extract import (
    DocItem,
    FileResult,
    blank_ranges,
    doc_markup,
    finish_items,
    join_lines,
    make_query,
    split_lines,
    trailing_cr,
)
from codesearch.trainer.doc_queries import first_paragraph

_SIGNATURE_LINE = re.compile(r"^[\w.]+\(.*\)\s*(->.*)?$")


def _python_docstring_node(node) -> ast.Expr | None:
    body = getattr(node, "body", None)
    if not body:
        return None
    first = body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first
    return None


def process_python(text: str, relpath: str) -> FileResult:
    """Blank every docstring (module, class, function) and find documented defs/classes.

    A docstring on its own lines becomes empty lines, except when it is the whole body:
    then its first line becomes ``pass`` so that the corpus stays valid Python. A docstring
    that shares a line with code (``def f(): "doc"``) is replaced by ``...`` on that line
    and its declaration is not used as a query.
    """
    src = text.encode("utf-8", "surrogateescape")
    tree = ast.parse(src, filename=relpath)
    lines = split_lines(src)
    ranges = []
    pass_lines: list[tuple[int, bytes]] = []  # (row, indent) to become indent + b"pass"
    ellipses: list[tuple[int, int]] = []  # (row, col) where "..." replaces the docstring
    items: list[DocItem] = []
    declarations = 0
    for node in ast.walk(tree):
        is_decl = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        declarations += is_decl
        if not (is_decl or isinstance(node, ast.Module)):
            continue
        doc = _python_docstring_node(node)
        if doc is None:
            continue
        r0, c0 = doc.lineno - 1, doc.col_offset
        r1, c1 = doc.end_lineno - 1, doc.end_col_offset
        after = lines[r1][c1:].strip()
        whole_lines = not lines[r0][:c0].strip() and (not after or after.startswith(b"#"))
        if whole_lines:
            ranges.append((r0, 0, r1, len(lines[r1]) - len(trailing_cr(lines[r1]))))
            if len(node.body) == 1 and not isinstance(node, ast.Module):
                pass_lines.append((r0, lines[r0][:c0]))
        else:
            ranges.append((r0, c0, r1, c1))
            ellipses.append((r0, c0))
        if not is_decl or not whole_lines:
            continue
        start = min([node.lineno] + [d.lineno for d in node.decorator_list])
        item = DocItem(
            path=relpath,
            name=node.name,
            kind="class" if isinstance(node, ast.ClassDef) else "function",
            start_line=start,
            end_line=node.end_lineno,
            doc_start=doc.lineno,
            doc_end=doc.end_lineno,
            doc=ast.get_docstring(node, clean=True) or "",
        )
        paras = [p for p in re.split(r"\n\s*\n", item.doc.strip()) if p.strip()]
        if paras and _SIGNATURE_LINE.match(paras[0].strip().splitlines()[0]):
            paras = paras[1:]  # "name(args) -> result" header, as in C-style docstrings
        para = first_paragraph(paras[0]) if paras else ""
        if para.startswith(">>>"):
            para = ""
        make_query(item, doc_markup("python")[0], para)
        items.append(item)
    blank_ranges(lines, ranges)
    for row, col in ellipses:
        lines[row] = lines[row][:col] + b"..." + lines[row][col:]
    for row, indent in pass_lines:
        lines[row] = indent + b"pass" + trailing_cr(lines[row])
    finish_items(items, lines)
    return FileResult(join_lines(lines).decode("utf-8", "surrogateescape"), declarations, items)
