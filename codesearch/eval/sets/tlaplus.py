"""The eval sets' TLA+ extractor (the indexer's tree-sitter-tlaplus chunker): blank the
comments that document declarations and find the documented ones (:func:`process_tlaplus`)."""

from __future__ import annotations

import re

from codesearch.eval.sets.extract import (
    DocItem,
    FileResult,
    finish_items,
    join_lines,
    mined_declarations,
    set_doc_query,
    split_lines,
    trailing_cr,
)

# A doc line that is no prose: an Apalache type annotation, or a framed section heading.
_ANNOTATION = re.compile(r"^\s*(?:@type(?:Alias)?\s*:|\*{3,}.*\*{3,}\s*$)")

# CONSTANT/VARIABLE declarations and PlusCal `define` blocks are not used as targets.
TLAPLUS_KINDS = frozenset({"operator", "theorem", "lemma", "proposition", "corollary", "assumption",
                           "procedure", "process", "macro"})  # fmt: skip


def process_tlaplus(text: str, relpath: str, drop_annotations: bool = False) -> FileResult:
    """Blank the comments that document declarations and find the documented ones.

    TLA+ has no doc-comment syntax: the doc of an operator, theorem, assumption or PlusCal
    procedure/process/macro is the ``\\*`` line group or ``(* *)`` block (boxed comments
    included) directly above it, with no blank line between. Those comments are blanked
    (line by line); other comments stay. The span runs from the declaration's first line
    through its last. With ``drop_annotations`` the query leaves out the doc's Apalache type
    annotations (``@type: ...;``, ``@typeAlias: ...;``) and framed section headings
    (``**** DEFINITIONS ****``) (the tlaplus-validation set: Hermes' specs carry them).
    """
    from codesearch.trainer.doc_queries import leading_doc

    lines = split_lines(text)
    chunk_lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    blank: set[int] = set()
    items: list[DocItem] = []
    decls = [d for d in mined_declarations(text, relpath, "tlaplus") if d.kind in TLAPLUS_KINDS]
    for d in decls:
        doc = leading_doc("tlaplus", chunk_lines, d.start, d.end)
        if doc is None:
            continue
        code = max(doc.lines) + 1
        if code > len(lines) or not lines[code - 1].strip():
            continue  # a blank line between: a section comment, not this declaration's doc
        blank.update(doc.lines)
        item = DocItem(
            path=relpath,
            name=d.name,
            kind=d.kind,
            start_line=code,
            end_line=d.end,
            doc_start=min(doc.lines),
            doc_end=max(doc.lines),
            doc=doc.text,
        )
        if drop_annotations:
            item.doc = "\n".join(ln for ln in item.doc.split("\n") if not _ANNOTATION.match(ln))
        set_doc_query(item, "tlaplus")
        items.append(item)
    for ln in blank:
        lines[ln - 1] = trailing_cr(lines[ln - 1])
    finish_items(items, lines)
    return FileResult(join_lines(lines), len(decls), items)
