"""chunk_text over samples of real source trees installed on this machine (skipped where absent):
invariants every chunk must satisfy, and how much of each file the chunks cover."""

from __future__ import annotations

import os
import random
import re
import sysconfig
from pathlib import Path

import pytest

from codesearch.indexer.chunking import chunk_text, language_for_path
from codesearch.indexer.chunking.spans import MAX_CHUNK_CHARS

RUST_STD = Path("/usr/lib/rustlib/src/rust/library")
COQ_STDLIB = Path("/usr/lib/ocaml/coq/theories")
WHY3_STDLIB = Path("/usr/share/why3/stdlib")
AGDA_STDLIB = Path("/usr/share/agda-stdlib")
C_HEADERS = Path("/usr/include")
NPM = Path("/usr/lib/node_modules/npm")
PY_STDLIB = Path(sysconfig.get_paths()["stdlib"])

KINDS = {
    "rust": {
        "function", "method", "struct", "enum", "union", "trait", "impl", "type", "const", "static", "macro", "mod",
        "extern", "doc", "code", "spec", "proof", "axiom", "harness", "broadcast_group", "macro_call",
    },
    "python": {"function", "method", "class", "code", "doc"},
    "c": {"function", "struct", "union", "enum", "typedef", "macro", "declaration", "variable", "code"},
    "javascript": {"function", "class", "method", "field", "variable", "code"},
    "coq": {
        "theorem", "lemma", "fact", "remark", "corollary", "proposition", "property", "example", "goal",
        "conjecture", "definition", "fixpoint", "cofixpoint", "let", "instance", "function", "equations",
        "inductive", "coinductive", "variant", "record", "structure", "class", "ltac", "notation", "axiom",
        "parameter", "variable", "scheme", "coercion", "canonical", "derive", "obligation", "morphism",
        "relation", "ring", "field", "code", "doc",
    },
    "why3": {
        "function", "predicate", "lemma", "goal", "axiom", "type", "inductive", "coinductive", "constant",
        "exception", "val", "let",
    },
    "agda": {"definition", "lemma", "data", "record"},
    "text": {"window"},
}  # fmt: skip
FALLBACK = {"window"}  # any file a parser gives up on (none expected in these samples)

# Lines that need no chunk: comments, imports, attributes, lone brackets.
TRIVIAL = re.compile(
    r"\s*($|//|/\*|\*|#!?\[|#|--|;|\(\*"  # comments, attributes
    r"|use\s|pub\s+use\s|pub\(crate\)\s+use\s|import\s|from\s+\S+\s+import\s"  # imports
    r"|[\[\](){};,]+\s*$)"  # lone brackets
)


def sample(root: Path, suffix: str, n: int, prune: tuple[str, ...] = (), depth: int = 99) -> list[Path]:
    """A fixed random sample of the files ending in ``suffix`` under ``root``."""
    if not root.is_dir():
        pytest.skip(f"{root} not installed")
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        level = len(Path(dirpath).relative_to(root).parts)
        dirnames[:] = [] if level >= depth else sorted(d for d in dirnames if d not in prune)
        files.extend(Path(dirpath) / f for f in filenames if f.endswith(suffix))
    if not files:
        pytest.skip(f"no {suffix} files under {root}")
    return random.Random(0).sample(sorted(files), min(n, len(files)))


def check_file(path: Path, root: Path) -> tuple[int, int]:
    """Assert the invariants for one file; return (non-trivial lines, covered among them)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    rel = path.relative_to(root).as_posix()
    language = language_for_path(rel)
    chunks = chunk_text(rel, text)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    covered = [False] * len(lines)
    for c in chunks:
        assert c.path == rel and c.language == language
        assert 1 <= c.start_line <= c.end_line <= len(lines), (rel, c.start_line, c.end_line)
        expected = "\n".join(x.rstrip("\r") for x in lines[c.start_line - 1 : c.end_line])
        assert c.text == expected[:MAX_CHUNK_CHARS], (rel, c.start_line)
        assert c.kind in KINDS[language] | FALLBACK, (rel, c.kind)
        assert c.n_lines <= 60, (rel, c.start_line, c.end_line)
        covered[c.start_line - 1 : c.end_line] = [True] * c.n_lines
    assert [c.start_line for c in chunks] == sorted(c.start_line for c in chunks)
    content = [i for i, line in enumerate(lines) if not TRIVIAL.match(line)]
    return len(content), sum(covered[i] for i in content)


def check_tree(files: list[Path], root: Path, min_coverage: float | None) -> None:
    total = hit = 0
    for f in files:
        n, c = check_file(f, root)
        total, hit = total + n, hit + c
    if min_coverage is not None and total:
        assert hit / total >= min_coverage, f"only {hit}/{total} content lines are in a chunk"


def test_rust_std_sample():
    check_tree(sample(RUST_STD, ".rs", 30), RUST_STD, 0.9)


def test_python_stdlib_sample():
    check_tree(sample(PY_STDLIB, ".py", 30, prune=("site-packages", "test", "tests")), PY_STDLIB, 0.9)


def test_coq_stdlib_sample():
    check_tree(sample(COQ_STDLIB, ".v", 30), COQ_STDLIB, 0.85)


def test_c_headers_sample():
    check_tree(sample(C_HEADERS, ".h", 30, depth=0), C_HEADERS, None)


def test_javascript_sample():
    check_tree(sample(NPM / "lib", ".js", 20), NPM / "lib", None)


def test_why3_stdlib_sample():
    check_tree(sample(WHY3_STDLIB, ".mlw", 30), WHY3_STDLIB, 0.8)


def test_agda_stdlib_sample():
    check_tree(sample(AGDA_STDLIB, ".agda", 30), AGDA_STDLIB, 0.65)
