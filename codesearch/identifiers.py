"""Identifiers split into words, in one place. Three callers, three deliberately different rules:

* :func:`split_identifiers`: what a model space reads (``splits_identifiers``): camelCase and
  PascalCase boundaries become spaces inside arbitrary text, nothing else changes (the
  tokenizer splits at ``_`` already). Its output is part of the index: changing it changes
  every vector of a space that splits.
* :func:`identifier_words`: a declaration's name as lower-case words, for mined queries and
  augmentation (``parseHTTPRequest`` -> parse, http, request; digits are words).
* :func:`snake_case` / :func:`camel_case`: the language server's camelCase setting names and
  the snake_case fields behind them.
"""

from __future__ import annotations

import re

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def split_identifiers(text: str) -> str:
    """camelCase and PascalCase identifiers as words: ``checkNeverMatches`` -> ``check Never
    Matches``, ``HTTPServer`` -> ``HTTP Server``. snake_case is left alone (WordPiece already
    splits at ``_``; turning it into spaces lowered the Rust and Coq eval sets, untrained).
    Everything else (operators, unicode, layout) is kept. Spelling Lean's symbols out was tried
    and did not help: the uncased vocabulary has no ``∀ ∃ ℕ ⊢`` ([UNK]) and reads ``≠ ∉`` as
    ``= ∈`` (accents stripped), yet mapping them (``∀`` -> forall, ``ℕ`` -> Nat, ``≠`` -> !=, NFKC)
    moved the Lean eval set's multi-vector P@1 0.273 -> 0.270 untrained and 0.380 -> 0.347 with
    the shipped adapters (0.377 mapping only the quantifiers and negations)."""
    return _CAMEL_BOUNDARY.sub(" ", text)


def split_identifiers_with_map(text: str) -> tuple[str, list[int]]:
    """:func:`split_identifiers`, and the positions in its output of the spaces it inserted (an
    offset ``k`` of the output is ``k - (inserted before k)`` in ``text``)."""
    out: list[str] = []
    inserted: list[int] = []
    last = 0
    for m in _CAMEL_BOUNDARY.finditer(text):
        out.append(text[last : m.start()])
        inserted.append(m.start() + len(inserted))
        out.append(" ")
        last = m.start()
    out.append(text[last:])
    return "".join(out), inserted


_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def identifier_words(name: str) -> list[str]:
    """``parse_interval`` -> [parse, interval]; ``parseHTTPRequest`` -> [parse, http, request];
    ``Tree.size`` / ``Foo::bar`` -> [tree, size] / [foo, bar]. Non-ASCII symbols separate words."""
    out: list[str] = []
    for piece in re.split(r"[^A-Za-z0-9]+", name):
        out.extend(p.lower() for p in _CAMEL.findall(piece))
    return out


def snake_case(name: str) -> str:
    """A setting's camelCase name as the snake_case of its field: ``symbolLimit`` -> ``symbol_limit``."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def camel_case(name: str) -> str:
    """The inverse for settings: ``symbol_limit`` -> ``symbolLimit``."""
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)
