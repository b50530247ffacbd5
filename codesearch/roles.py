"""Path roles: what part of a project a file belongs to, from its path inside the repository.

A chunk's role is computed from its stored ``rel_path`` when it is searched (nothing about it
is stored), the same way in Python (:func:`role_of`, for results and the score prior) and in
SQL (:func:`role_sql`, for ``--role`` filters), so both always agree.

Roles, checked in this order (the first that matches wins; ``lib`` when none does):

=============  ==========================================================================
``vendor``     vendor/, vendored/, third_party/, third-party/, thirdparty/, node_modules/,
               site-packages/
``generated``  generated/, __generated__/, target/ (Rust build output); *_pb2.py,
               *_pb2_grpc.py, *.pb.go, *_generated.*, *.generated.*, *.min.js
``test``       test/, tests/, __tests__/, testdata/; test_*.py, *_test.py, conftest.py,
               *_test.go, *_test.rs, tests.rs, *.test.*, *.spec.*
``bench``      bench/, benches/, benchmark/, benchmarks/; bench_*.py, *_bench.rs
``example``    example/, examples/, demo/, demos/, sample/, samples/
``doc``        doc/, docs/; *.md, *.markdown, *.rst, *.adoc
``lib``        everything else: the library or application source
=============  ==========================================================================

A folder name matches at any depth (``crates/x/tests/a.rs`` is a test), a file pattern
matches the file name; both ignore case. Path-based only: a Rust ``#[cfg(test)] mod tests``
inside ``src/lib.rs`` is ``lib``.
"""

from __future__ import annotations

import re
from fnmatch import translate
from functools import lru_cache
from typing import Iterable, Sequence

from codesearch.languages import PLAIN_TEXT

LIB = "lib"

# (role, patterns): "name/" is a folder at any depth, anything else a file-name glob ('*' only).
_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("vendor", ("vendor/", "vendored/", "third_party/", "third-party/", "thirdparty/", "node_modules/", "site-packages/")),
    ("generated", ("generated/", "__generated__/", "target/", "*_pb2.py", "*_pb2_grpc.py", "*.pb.go",
                   "*_generated.*", "*.generated.*", "*.min.js")),
    ("test", ("test/", "tests/", "__tests__/", "testdata/", "test_*.py", "*_test.py", "conftest.py",
              "*_test.go", "*_test.rs", "tests.rs", "*.test.*", "*.spec.*")),
    ("bench", ("bench/", "benches/", "benchmark/", "benchmarks/", "bench_*.py", "*_bench.rs")),
    ("example", ("example/", "examples/", "demo/", "demos/", "sample/", "samples/")),
    ("doc", ("doc/", "docs/", "*.md", "*.markdown", "*.rst", "*.adoc")),
)

# Words by which a query asks for a role itself ("tests for the json encoder"): the prior leaves
# that role alone for such a query.
_NAMED_BY: dict[str, frozenset[str]] = {
    "test": frozenset({"test", "tests", "testing", "unittest", "unittests"}),
    "bench": frozenset({"bench", "benches", "benchmark", "benchmarks"}),
    "example": frozenset({"example", "examples"}),
    "doc": frozenset({"doc", "docs", "documentation"}),
}
_WORD = re.compile(r"[a-z]+")


def named_roles(query: str) -> frozenset[str]:
    """The roles a query names by one of their words, as a whole word in any case
    (``test_wrap`` names ``test``; ``latest`` or ``contest`` does not)."""
    words = set(_WORD.findall(query.lower()))
    return frozenset(role for role, names in _NAMED_BY.items() if words & names)


def takes_prior(role: str, language: str, named: frozenset[str] = frozenset()) -> bool:
    """Whether ``search.role_prior`` scales a chunk's score: every role but ``lib``, except code
    in the ``doc`` role (a TLA+ spec under ``docs/spec``, a Lean file under ``doc/``): the prior
    puts library code before prose, tests and examples, not before a specification; and except
    a role the query names (``named``, see :func:`named_roles`)."""
    return role != LIB and role not in named and (role != "doc" or language in PLAIN_TEXT)


# (in the order they are shown; the rules above are checked in their own order)
ROLES: tuple[str, ...] = (LIB, "test", "bench", "example", "doc", "generated", "vendor")
assert set(ROLES) == {LIB} | {role for role, _ in _RULES}


def _globs(pattern: str) -> tuple[str, ...]:
    """A pattern as whole-path globs: at the start of the path, or after any '/'.
    ('*' may cross '/': the same as SQL's '%', so that :func:`role_of` and :func:`role_sql`
    match exactly the same paths.)"""
    glob = pattern + "*" if pattern.endswith("/") else pattern
    return (glob,) if glob.startswith("*") else (glob, "*/" + glob)


_COMPILED = tuple((role, tuple(g for p in pats for g in _globs(p))) for role, pats in _RULES)
# Each role's globs as one regular expression (what fnmatchcase matches each glob with, joined):
# one match per role instead of one per glob, for every candidate of every search.
_REGEXES = tuple((role, re.compile("|".join(f"(?:{translate(g)})" for g in globs))) for role, globs in _COMPILED)


@lru_cache(maxsize=1 << 16)
def role_of(rel_path: str) -> str:
    """The role of a file, from its path relative to its repository."""
    path = rel_path.replace("\\", "/").lower()
    for role, regex in _REGEXES:
        if regex.match(path):
            return role
    return LIB


def check_roles(roles: Iterable[str]) -> tuple[str, ...]:
    """Roles as given (case-insensitive, comma lists allowed), or ValueError naming the valid ones."""
    out: list[str] = []
    for item in roles:
        for r in str(item).split(","):
            r = r.strip().lower()
            if not r:
                continue
            if r not in ROLES:
                raise ValueError(f"unknown role {r!r}: choose from {', '.join(ROLES)}")
            if r not in out:
                out.append(r)
    return tuple(out)


def _like(column: str, glob: str) -> str:
    escaped = glob.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_").replace("*", "%")
    escaped = escaped.replace("'", "''")
    return f"{column} LIKE '{escaped}' ESCAPE '\\'"


def _matches(globs: Sequence[str], column: str) -> str:
    return " OR ".join(_like(column, g) for g in globs)


def role_sql(roles: Sequence[str], column: str = "rel_path") -> str:
    """A SQL condition: the role of the path in ``column`` is one of ``roles``.

    (LanceDB's filters have no CASE: role i is "matches rule i and none before it".)"""
    wanted = set(check_roles(roles))
    col = f"lower({column})"
    parts = []
    earlier: list[str] = []
    for role, globs in _COMPILED:
        if role in wanted:
            parts.append(f"({_matches(globs, col)})" + (f" AND NOT ({' OR '.join(earlier)})" if earlier else ""))
        earlier.append(_matches(globs, col))
    if LIB in wanted:
        parts.append(f"NOT ({' OR '.join(earlier)})")
    return " OR ".join(f"({p})" for p in parts)
