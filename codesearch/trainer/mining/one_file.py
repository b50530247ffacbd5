"""Mining one file: the doc, name and augmented pairs of one file's text (:func:`mine_text`),
with its declarations and test declarations for the source-wide test and commit pairs."""

from __future__ import annotations

import bisect
import re
from collections import Counter
from dataclasses import dataclass, field

from codesearch.identifiers import identifier_words
from codesearch.indexer.chunking import Chunk
from codesearch.indexer.chunking.spans import split_lines
from codesearch.trainer import augment as aug
from codesearch.trainer.doc_queries import (
    doc_query,
    leading_doc,
    python_doc,
    python_docstrings,
)
from codesearch.trainer.mining.decls import (
    CONTAINER_KINDS,
    MinedDecl,
    declarations,
    extend_container,
    file_chunks,
    good_name_words,
    mining_language,
    name_query,
    positive_chunk,
)
from codesearch.trainer.mining.testpairs import is_test_decl, test_query
from codesearch.trainer.pairs import Origin, Pair, domain_for

MAX_PAIRS_PER_FILE = 300
MAX_NAME_PAIRS_PER_FILE = 100


@dataclass
class FileMined:
    pairs: list[Pair] = field(default_factory=list)
    skips: Counter = field(default_factory=Counter)  # why documented declarations gave no doc pair
    decls: list[tuple[MinedDecl, Chunk]] = field(default_factory=list)  # non-test declarations and positives
    tests: list[tuple[MinedDecl, str]] = field(default_factory=list)  # test declarations and their queries


def mine_text(
    rel_path: str,
    text: str,
    *,
    corpus: str = "",
    language: str | None = None,
    domain: str | None = None,
    personal: bool = False,
    origin_path: str | None = None,
) -> FileMined:
    """Doc, name and augmented pairs of one file's text (test and commit pairs need the
    other files and the history: :func:`mine_source` adds them).

    ``rel_path`` is the path the encoder sees (relative to the file's repository, as the
    index has it); ``origin_path`` (default ``rel_path``) names the file inside the corpus."""
    res = FileMined()
    lang = language or mining_language(rel_path)
    if lang is None:
        return res
    chunks = file_chunks(rel_path, text, lang)
    if not chunks:
        return res
    lines = split_lines(text)
    pydocs = python_docstrings(text) if lang == "python" else {}
    dom = domain_for(lang, personal, domain)
    starts = [c.start_line for c in chunks]
    n_name = 0
    for d in declarations(chunks):
        if d.start > len(lines) or ", " in d.name:
            continue  # merged runs of tiny items: no one query describes them all
        if lang == "python" and d.kind in ("function", "method", "class"):
            doc = python_doc(lines, d.start, d.end, d.name, pydocs)
        else:
            doc = leading_doc(lang, lines, d.start, d.end)
        end = d.end
        if d.kind in CONTAINER_KINDS:
            pos0 = positive_chunk(d, lines, doc)
            if pos0 is None or sum(1 for x in pos0.text.split("\n") if x.strip()) < 3:
                k = bisect.bisect_right(starts, d.end)
                end = extend_container(d, chunks[k : k + 200])
        pos = positive_chunk(d, lines, doc, end)
        if pos is None:
            continue
        if is_test_decl(d, lines):
            q = test_query(d.name)
            if q:
                res.tests.append((d, q))
            continue
        res.decls.append((d, pos))
        positive = pos.encoder_text()
        origin = Origin(corpus, origin_path or rel_path, pos.start_line, max(end, pos.end_line), d.name, d.kind)

        def add(query: str, source: str) -> None:
            res.pairs.append(Pair(query, positive, [], dom, lang, source, origin))

        query = None
        if doc is not None:
            query, skip = doc_query(lang, doc, d.name)
            if query is None:
                res.skips[skip or "unusable"] += 1
            else:
                add(query, "doc")
        short = re.split(r"::|\.", d.name.strip("|"))[-1]
        if d.name and not good_name_words(short, identifier_words(short)) and d.kind != "assert":
            augmented = []
        else:
            augmented = aug.augment_queries(lang, d.kind, d.name, pos.text, query, key=f"{corpus}:{rel_path}:{d.start}")
        for _rule, q in augmented:
            add(q, "augmented")
        if query is None and not augmented and n_name < MAX_NAME_PAIRS_PER_FILE:
            nq = name_query(d)
            if nq:
                add(nq, "name")
                n_name += 1
        if len(res.pairs) >= MAX_PAIRS_PER_FILE:
            break
    return res
