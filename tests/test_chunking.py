"""Chunking of tree-sitter languages (Rust, Python, TLA+, C, Go, TS, Java), the public API,
the plain-text fallbacks and hostile input. Real parsers, small real-looking fixtures."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from codesearch.indexer.chunking import Chunk, chunk_text, language_for_path
from codesearch.indexer.chunking.spans import MAX_CHUNK_CHARS

FIXTURES = Path(__file__).parent / "fixtures" / "chunking"


def chunks_of(name: str, rel_path: str | None = None) -> list[Chunk]:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    chunks = chunk_text(rel_path or name, text)
    assert_well_formed(text, chunks, rel_path or name)
    return chunks


def assert_well_formed(text: str, chunks: list[Chunk], path: str) -> None:
    """Invariants every chunk list must satisfy."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    assert [c.start_line for c in chunks] == sorted(c.start_line for c in chunks)
    for c in chunks:
        assert c.path == path
        assert 1 <= c.start_line <= c.end_line <= len(lines), c
        expected = "\n".join(x.rstrip("\r") for x in lines[c.start_line - 1 : c.end_line])
        assert c.text == expected[:MAX_CHUNK_CHARS], c
        assert c.kind and c.kind == c.kind.lower()


def summary(chunks: list[Chunk]) -> list[tuple[str, str, int, int, str]]:
    return [(c.kind, c.name, c.start_line, c.end_line, c.context) for c in chunks]


def find(chunks: list[Chunk], kind: str, name: str) -> list[Chunk]:
    return [c for c in chunks if c.kind == kind and c.name == name]


# ----------------------------------------------------------------------------------------
# API


@pytest.mark.parametrize(
    "path, language",
    [
        ("src/lib.rs", "rust"),
        ("pkg/mod.py", "python"),
        ("typing/stubs.pyi", "python"),
        ("specs/Paxos.tla", "tlaplus"),
        ("csrc/hash.c", "c"),
        ("include/hash.h", "c"),
        ("cmd/main.go", "go"),
        ("web/app.js", "javascript"),
        ("web/app.mjs", "javascript"),
        ("web/app.cjs", "javascript"),
        ("web/App.jsx", "javascript"),
        ("web/app.ts", "typescript"),
        ("web/app.mts", "typescript"),
        ("web/App.tsx", "tsx"),
        ("src/Main.java", "java"),
        ("Mathlib/Order/Basic.lean", "lean"),
        ("bench/queue.smt2", "smtlib"),
        ("bench/old.smt", "smtlib"),
        ("theories/Lists.v", "coq"),
        ("README.md", "text"),
        ("Cargo.toml", "text"),
        ("stdlib/list.mlw", "why3"),
        ("proofs/sort.dfy", "dafny"),
        ("Makefile", "text"),
        ("SRC/LIB.RS", "rust"),
    ],
)
def test_language_for_path(path, language):
    assert language_for_path(path) == language


def test_language_for_empty_path_is_none():
    assert language_for_path("") is None


def test_empty_and_blank_files_have_no_chunks():
    for path in ("a.rs", "a.py", "a.lean", "a.v", "a.smt2", "a.md", "a.txt"):
        assert chunk_text(path, "") == []
        assert chunk_text(path, "\n\n   \n\t\n") == []


def test_explicit_language_overrides_extension():
    chunks = chunk_text("notes/snippet.txt", "fn main() {\n    println!(\"hi\");\n}\n", language="rust")
    assert summary(chunks) == [("function", "main", 1, 3, "")]
    assert chunks[0].language == "rust"


def test_crlf_files_keep_line_numbers_and_drop_carriage_returns():
    text = "def f():\r\n    return 1\r\n\r\ndef g():\r\n    return 2\r\n"
    chunks = chunk_text("m.py", text)
    assert summary(chunks) == [("function", "f", 1, 2, ""), ("function", "g", 4, 5, "")]
    assert chunks[1].text == "def g():\n    return 2"


# ----------------------------------------------------------------------------------------
# Rust


def test_rust_declarations_with_docs_attributes_and_impl_context():
    chunks = chunks_of("ring_buffer.rs", "src/ring_buffer.rs")
    assert summary(chunks) == [
        ("doc", "", 1, 3, ""),
        ("const", "DEFAULT_CAPACITY, MAX_CAPACITY", 8, 11, ""),
        ("struct", "RingBuffer", 13, 19, ""),
        ("method", "new", 22, 25, "impl RingBuffer"),
        ("method", "with_capacity", 27, 36, "impl RingBuffer"),
        ("method", "push", 38, 50, "impl RingBuffer"),
        ("method", "fmt", 54, 61, "impl Display for RingBuffer"),
        ("impl", "Index<usize> for RingBuffer", 64, 65, ""),
        ("method", "index", 67, 69, "impl Index<usize> for RingBuffer"),
        ("impl", "Send for RingBuffer", 72, 72, ""),
        ("trait", "Source", 74, 80, ""),
        ("method", "drain_into", 82, 87, "trait Source"),
        ("function", "summarize", 90, 129, ""),
        ("function", "summarize", 120, 151, ""),
        ("macro", "ring", 153, 159, ""),
        ("function", "push_wraps_around", 165, 171, "mod tests"),
    ]
    struct = find(chunks, "struct", "RingBuffer")[0]
    assert struct.text.startswith("/// A ring buffer that overwrites")
    assert "#[derive(Clone, Debug)]" in struct.text
    push = find(chunks, "method", "push")[0]
    assert push.text.splitlines()[:2] == [
        "    /// Appends `value`, returning the element it overwrote, if any.",
        "    #[inline]",
    ]
    # the trait header keeps its associated type and the body-less signature
    trait = find(chunks, "trait", "Source")[0]
    assert "type Item;" in trait.text and "fn next_item(&mut self)" in trait.text
    assert "fn drain_into" not in trait.text


def test_rust_impl_names_drop_only_the_impls_own_generics():
    src = (
        "impl<T> From<Vec<T>> for Stack<T> {\n    fn from(v: Vec<T>) -> Self { Stack(v) }\n}\n\n"
        "impl<'a, T: Clone> Iterator for Iter<'a, T> {\n"
        "    type Item = T;\n    fn next(&mut self) -> Option<T> { None }\n}\n\n"
        "impl<T: Clone> From<&[T]> for std::vec::Vec<T> {\n    fn from(s: &[T]) -> Self { s.to_vec() }\n}\n"
    )
    contexts = [c.context for c in chunk_text("lib.rs", src) if c.kind == "method"]
    assert contexts == ["impl From<Vec<T>> for Stack", "impl Iterator for Iter", "impl From<&[T]> for Vec"]


def test_rust_large_function_is_windowed_with_overlap():
    chunks = [c for c in chunks_of("ring_buffer.rs") if c.name == "summarize"]
    assert len(chunks) == 2
    first, second = chunks
    assert first.start_line == 90 and first.text.startswith("/// Computes summary statistics")
    assert second.start_line <= first.end_line - 9  # 10 lines of overlap
    assert second.end_line == 151
    assert all(c.n_lines <= 60 for c in chunks)


def test_rust_long_doc_comment_leaves_a_window_with_the_signature():
    doc = "".join(f"/// Paragraph line {i} about how `frobnicate` works.\n" for i in range(70))
    src = doc + "#[inline]\npub fn frobnicate(x: u32) -> u32 {\n    x.rotate_left(3)\n}\n"
    chunks = chunk_text("lib.rs", src)
    assert_well_formed(src, chunks, "lib.rs")
    assert {(c.kind, c.name) for c in chunks} == {("function", "frobnicate")}
    assert chunks[0].start_line == 1 and chunks[-1].end_line == 74
    last = chunks[-1]
    assert last.start_line == 62  # ten lines above the signature: the doc tail and the attribute
    assert "#[inline]\npub fn frobnicate(x: u32) -> u32 {" in last.text
    assert all(c.n_lines <= 60 for c in chunks)


def test_rust_nested_modules_join_contexts():
    src = (
        "pub mod outer {\n"
        "    pub mod inner {\n"
        "        pub struct Token;\n"
        "        impl Token {\n"
        "            pub fn new() -> Self { Token }\n"
        "        }\n"
        "    }\n"
        "}\n"
    )
    assert summary(chunk_text("lib.rs", src)) == [
        ("struct", "Token", 3, 3, "mod outer > mod inner"),
        ("method", "new", 5, 5, "mod outer > mod inner > impl Token"),
    ]


def test_no_chunk_spans_a_whole_large_container():
    methods = "\n".join(
        f"    /// Method number {i}.\n    pub fn m{i}(&self) -> usize {{\n        {i}\n    }}\n" for i in range(40)
    )
    src = f"pub struct Big;\n\nimpl Big {{\n{methods}}}\n"
    n_lines = len(src.splitlines())
    chunks = chunk_text("big.rs", src)
    assert n_lines > 150
    assert len(chunks) == 41
    assert max(c.n_lines for c in chunks) <= 5
    assert {c.context for c in chunks if c.kind == "method"} == {"impl Big"}


# ----------------------------------------------------------------------------------------
# Python


def test_python_functions_classes_methods_and_module_code():
    chunks = chunks_of("lru_cache.py", "pkg/lru_cache.py")
    assert summary(chunks) == [
        ("doc", "", 1, 1, ""),  # the module docstring
        ("code", "", 8, 9, ""),  # module constants; the imports above them are not chunked
        ("function", "_now", 12, 13, ""),
        ("function", "_validate", 16, 22, ""),
        ("class", "LRUCache", 25, 32, ""),
        ("method", "__init__", 34, 37, "class LRUCache"),
        ("method", "full", 39, 41, "class LRUCache"),
        ("method", "get", 43, 56, "class LRUCache"),
        ("method", "put", 58, 62, "class LRUCache"),
        ("class", "Stats", 64, 65, "class LRUCache"),
        ("method", "ratio", 67, 68, "class LRUCache > class Stats"),
        ("function", "memoize", 71, 81, ""),
        ("code", "", 84, 87, ""),
    ]
    validate = find(chunks, "function", "_validate")[0]
    assert validate.text.startswith("# Decorators come with their function.\n@staticmethod\ndef _validate")
    header = find(chunks, "class", "LRUCache")[0]
    assert '"""Map keys to values' in header.text and "misses = 0" in header.text
    assert "def __init__" not in header.text
    assert find(chunks, "method", "full")[0].text.startswith("    @property")


def test_python_imports_only_file_has_no_chunks():
    assert chunk_text("pkg/__init__.py", "import os\nfrom . import core  # re-export\n\n# done\n") == []


def test_python_definitions_under_module_level_if_are_found():
    src = (
        "import sys\n\n"
        "if sys.platform == 'win32':\n"
        "    def sep():\n        return '\\\\'\n"
        "else:\n"
        "    def sep():\n        return '/'\n"
    )
    assert summary(chunk_text("paths.py", src)) == [("function", "sep", 4, 5, ""), ("function", "sep", 7, 8, "")]


def test_python_long_module_code_is_cut_into_windows_of_at_most_40_lines():
    src = "TABLE = {\n" + "".join(f"    'k{i}': {i},\n" for i in range(100)) + "}\n"
    chunks = chunk_text("table.py", src)
    assert {c.kind for c in chunks} == {"code"}
    assert chunks[0].start_line == 1 and chunks[-1].end_line == 102
    assert all(c.n_lines <= 40 for c in chunks)


# ----------------------------------------------------------------------------------------
# TLA+


def test_tlaplus_operators_comments_module_header_and_pluscal():
    chunks = chunks_of("TwoPhase.tla", "specs/TwoPhase.tla")
    m = "MODULE TwoPhase"
    assert summary(chunks) == [
        ("module", "TwoPhase", 1, 12, ""),
        ("operator", "vars", 14, 14, m),
        ("operator", "Messages", 16, 18, m),
        ("operator", "TypeOK", 20, 23, m),
        ("operator", "Init", 25, 28, m),
        ("operator", "TMCommit", 30, 36, m),
        ("operator", "RMPrepare", 38, 42, m),
        ("operator", "Next", 44, 44, m),
        ("operator", "Spec", 46, 46, m),
        ("operator", "Consistent", 48, 49, m),
        ("theorem", "", 51, 51, m),
        ("algorithm", "Voting", 53, 54, m),
        ("procedure", "vote", 56, 59, f"{m} > algorithm Voting"),
        ("process", "Voter", 61, 63, f"{m} > algorithm Voting"),
    ]
    # the comment above an operator is its doc, even where the grammar folds it into the
    # previous definition
    assert find(chunks, "operator", "TMCommit")[0].text.startswith("(* The TM commits")
    assert "The TM commits" not in find(chunks, "operator", "Init")[0].text
    assert find(chunks, "operator", "Messages")[0].text.startswith("\\* The set of all possible messages.")
    header = chunks[0].text
    assert "CONSTANT RM" in header and "VARIABLES" in header


def test_tlaplus_theorems_assumptions_and_local_definitions():
    src = (
        "---- MODULE M ----\n"
        "CONSTANTS N\n"
        "ASSUME NPos == N > 0\n"
        "LOCAL Helper(x) == x + 1\n"
        "LEMMA Easy == TRUE\n"
        "  OBVIOUS\n"
        "====\n"
    )
    assert summary(chunk_text("M.tla", src)) == [
        ("module", "M", 1, 2, ""),  # the header keeps the CONSTANTS declared before any definition
        ("assumption", "NPos", 3, 3, "MODULE M"),
        ("operator", "Helper", 4, 4, "MODULE M"),
        ("lemma", "Easy", 5, 6, "MODULE M"),
    ]


# ----------------------------------------------------------------------------------------
# C, Go, TypeScript, JavaScript, Java


def test_c_functions_types_macros_and_include_guards():
    assert summary(chunks_of("hashmap.c")) == [
        ("macro", "HM_MIN_CAPACITY, HM_LOAD", 12, 13, ""),
        ("struct", "hm_entry", 15, 19, ""),
        ("typedef", "hashmap_t", 21, 25, ""),
        ("enum", "hm_status", 27, 27, ""),
        ("variable", "hm_seed", 29, 29, ""),
        ("declaration", "hm_put", 31, 31, ""),
        ("function", "hm_hash", 33, 43, ""),
        ("function", "hm_put", 45, 55, ""),
    ]


def test_c_license_header_is_not_glued_to_the_first_declaration():
    src = "/*\n * Copyright (c) 2024.\n * MIT licence.\n */\nint answer(void)\n{\n    return 42;\n}\n"
    assert summary(chunk_text("a.c", src)) == [("function", "answer", 5, 8, "")]


def test_go_functions_methods_types_and_grouped_consts():
    chunks = chunks_of("server.go")
    assert summary(chunks) == [
        ("variable", "ErrNotFound", 9, 10, ""),
        ("const", "MaxKeyLen, maxShards", 12, 16, ""),
        ("type", "Store", 18, 22, ""),
        ("method", "Get", 24, 33, ""),
        ("function", "NewStore", 35, 38, ""),
    ]
    assert find(chunks, "method", "Get")[0].text.startswith("// Get returns the value stored under key.")


def test_typescript_classes_interfaces_and_arrow_functions():
    chunks = chunks_of("router.ts")
    assert summary(chunks) == [
        ("type", "Handler", 4, 5, ""),
        ("interface", "Route", 7, 11, ""),
        ("enum", "Method", 13, 16, ""),
        ("variable", "normalize", 18, 20, ""),
        ("class", "Router", 22, 27, ""),
        ("method", "constructor", 29, 31, "class Router"),
        ("method", "get", 33, 37, "class Router"),
        ("method", "dispatch", 39, 43, "class Router"),
        ("function", "createRouter", 46, 48, ""),
    ]
    assert "private routes: Route[] = [];" in find(chunks, "class", "Router")[0].text


def test_tsx_and_javascript_use_their_grammars():
    tsx = "export function App(): JSX.Element {\n  return <div className=\"app\">hi</div>;\n}\n"
    assert summary(chunk_text("App.tsx", tsx)) == [("function", "App", 1, 3, "")]
    js = (
        "const fs = require('fs')\n\n"
        "// Reads a JSON file.\n"
        "function readJson (p) {\n  return JSON.parse(fs.readFileSync(p, 'utf8'))\n}\n\n"
        "class Cache {\n  get (k) { return this.m.get(k) }\n}\n\n"
        "module.exports = { readJson, Cache }\n"
    )
    assert summary(chunk_text("lib/util.js", js)) == [
        ("function", "readJson", 3, 6, ""),
        ("class", "Cache", 8, 8, ""),
        ("method", "get", 9, 9, "class Cache"),
        ("code", "", 12, 12, ""),
    ]


def test_java_classes_constructors_methods_and_nested_enums():
    chunks = chunks_of("Inventory.java")
    assert summary(chunks) == [
        ("class", "Inventory", 6, 11, ""),
        ("constructor", "Inventory", 13, 16, "class Inventory"),
        ("method", "add", 18, 24, "class Inventory"),
        ("method", "toString", 26, 29, "class Inventory"),
        ("enum", "Level", 31, 33, "class Inventory"),
        ("method", "of", 35, 37, "class Inventory > enum Level"),
    ]
    assert find(chunks, "method", "toString")[0].text.lstrip().startswith("@Override")


# ----------------------------------------------------------------------------------------
# Plain text fallbacks


def test_markdown_is_split_at_headings():
    text = (
        "# Project\n\nA tool.\nIt searches code.\n\n"
        "## Install\n\n```sh\n# not a heading\npip install .\n```\n\n"
        "## Usage\n\nRun it.\nThen read the output.\nDone.\n"
    )
    chunks = chunk_text("README.md", text)
    assert_well_formed(text, chunks, "README.md")
    assert summary(chunks) == [
        ("section", "Project", 1, 4, ""),
        ("section", "Install", 6, 11, ""),
        ("section", "Usage", 13, 17, ""),
    ]
    assert {c.language for c in chunks} == {"text"}


def test_toml_and_other_text_get_overlapping_windows():
    text = "[package]\nname = \"demo\"\n" + "".join(f"dep{i} = \"1.{i}\"\n" for i in range(98))
    chunks = chunk_text("Cargo.toml", text)
    assert_well_formed(text, chunks, "Cargo.toml")
    assert [(c.kind, c.name, c.start_line, c.end_line) for c in chunks] == [
        ("window", "", 1, 40),
        ("window", "", 31, 70),
        ("window", "", 61, 100),
    ]


def test_text_windows_skip_blank_stretches():
    text = "alpha\n" + "\n" * 100 + "omega\n"
    chunks = chunk_text("notes.txt", text)
    assert_well_formed(text, chunks, "notes.txt")
    assert all(c.text.strip() for c in chunks)
    assert chunks[0].start_line == 1 and chunks[-1].end_line == 102


# ----------------------------------------------------------------------------------------
# Hostile input


@pytest.mark.parametrize("path", "x.rs x.py x.tla x.c x.go x.js x.ts x.tsx x.java x.md x.bin".split())
def test_garbage_input_never_raises(path):
    rng = random.Random(7)
    garbage = bytes(rng.randrange(256) for _ in range(20_000)).decode("utf-8", "replace")
    for text in (garbage, "}}}{{{((([[[", "fn (\n" * 500, "\x00\x01\x02", "class :\n  def\n" * 50):
        chunks = chunk_text(path, text)
        assert_well_formed(text, chunks, path)


@pytest.mark.parametrize("path", ["bundle.min.js", "huge.rs", "huge.py", "blob.txt", "x.lean", "x.v", "x.smt2", "x.md"])
def test_a_5mb_single_line_is_chunked_quickly_with_bounded_text(path):
    text = "var a=" + "(1+2)*3;" * 650_000
    t0 = time.monotonic()
    chunks = chunk_text(path, text)
    assert time.monotonic() - t0 < 5
    assert 1 <= len(chunks) <= 10
    assert all(len(c.text) <= MAX_CHUNK_CHARS for c in chunks)
    assert all(c.start_line == c.end_line == 1 for c in chunks)


def test_a_parse_running_past_its_deadline_falls_back_to_windows(monkeypatch):
    from codesearch.indexer.chunking import treesitter

    monkeypatch.setattr(treesitter, "PARSE_TIMEOUT_S", 0.0)
    src = "".join(f"fn f{i}() {{ let x = {i}; }}\n" for i in range(3000))
    chunks = chunk_text("gen.rs", src)
    assert_well_formed(src, chunks, "gen.rs")
    assert {(c.kind, c.language) for c in chunks} == {("window", "rust")}
    assert chunks[-1].end_line == 3000


def test_cutting_files_again_and_again_keeps_no_memory():
    """py-tree-sitter 0.26 kept every byte its read callback returned (an index run grew by about
    its corpus); the chunker gives those references back."""
    import gc
    import tracemalloc

    src = "".join(f"/// Adds {i}.\nfn add_{i}(x: u64) -> u64 {{ x + {i} }}\n" for i in range(4000))  # ~200 KB
    chunk_text("gen.rs", src)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(5):
            chunks = chunk_text("gen.rs", src)
        del chunks
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < len(src) // 4, f"{grown} bytes kept after 5 cuts of {len(src)} bytes"


def test_a_chunker_bug_falls_back_to_windows(monkeypatch):
    from codesearch.indexer.chunking import lean  # (the module the registry names for Lean)

    def broken(lines):
        raise IndexError("boom")

    monkeypatch.setattr(lean, "lean_spans", broken)
    src = "theorem t : True := trivial\n"
    assert summary(chunk_text("T.lean", src)) == [("window", "", 1, 1, "")]


def test_huge_files_get_a_bounded_number_of_chunks():
    text = "".join(f"const C{i}: u32 = {i};\n\nfn f{i}() {{}}\n\n" for i in range(20_000))
    chunks = chunk_text("gen.rs", text)
    assert 0 < len(chunks) <= 4000
    text = "x\n" * 400_000
    chunks = chunk_text("big.txt", text)
    assert 0 < len(chunks) <= 4000
    assert chunks[-1].end_line == 400_000
