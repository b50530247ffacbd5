"""Verified Rust and items inside macro bodies: every declaration is its own chunk.

Fixtures are written for this project (tests/fixtures/chunking/): a Verus file, items inside
cfg_if!/user macros, and a Prusti + Kani + Flux file.
"""

from __future__ import annotations

from pathlib import Path

from codesearch.indexer.chunking import chunk_text
from codesearch.search import Filters

FIXTURES = Path(__file__).parent / "fixtures" / "chunking"


def _cut(name: str) -> list[tuple[int, int, str, str, str]]:
    text = (FIXTURES / name).read_text()
    return [(c.start_line, c.end_line, c.kind, c.name, c.context) for c in chunk_text(name, text)]


def test_verus_functions_are_chunks_with_their_mode_clauses_and_impl_context():
    assert _cut("bounded_counter.rs") == [
        (1, 1, "doc", "", ""),
        (6, 7, "const", "MAX", "verus!"),
        (9, 13, "spec", "in_bounds", "verus!"),  # doc comment + `&&&` body
        (15, 24, "spec", "triangle", "verus!"),  # closed spec fn with `decreases`
        (26, 38, "proof", "lemma_triangle_monotonic", "verus!"),  # requires/ensures/decreases kept
        (40, 44, "proof", "lemma_in_bounds_zero", "verus!"),  # broadcast proof fn, #[trigger]
        (46, 48, "broadcast_group", "group_counter_lemmas", "verus!"),
        (50, 53, "struct", "Counter", "verus!"),  # ghost field
        (56, 59, "spec", "wf", "verus! > impl Counter"),
        (61, 79, "method", "increment", "verus! > impl Counter"),  # Tracked param, -> (r: bool), proof { }
        (81, 91, "method", "reset", "verus! > impl Counter"),  # exec fn, forall|..|, x@, assert .. by { }
        (94, 113, "function", "sum_all", "verus!"),  # loop invariant / decreases
    ]


def test_verus_chunk_text_is_the_original_source_with_its_clauses():
    text = (FIXTURES / "bounded_counter.rs").read_text()
    lemma = next(c for c in chunk_text("bounded_counter.rs", text) if c.name == "lemma_triangle_monotonic")
    assert lemma.text.splitlines()[0] == "/// The triangle numbers never decrease."
    assert "    requires\n        i <= j,\n    ensures\n        triangle(i) <= triangle(j)," in lemma.text
    assert lemma.text == "\n".join(text.splitlines()[25:38])


def test_verus_syntax_that_tree_sitter_rejects_is_recovered_item_by_item():
    # `assume_specification` is no Rust item at all (it is named by the path it specifies), and
    # the body of `odd` is unreadable: `odd` still gets its own chunk by its signature, and the
    # items after it are still found.
    text = """use vstd::prelude::*;

verus! {

pub assume_specification<T: Clone>[ <[T]>::clone ](s: &[T]) -> (r: Vec<T>)
    ensures r@ == s@;

/// Whether `n` is odd, by its last bit.
pub open spec fn odd(n: int) -> bool {
    n % 2 == 1 &&& @@@ ??? garbage +++ { ! }
}

/// Doubles a number.
pub proof fn lemma_double(n: int) -> (r: int)
    ensures r == 2 * n,
{
    n + n
}

} // verus!
"""
    assert [(c.start_line, c.end_line, c.kind, c.name) for c in chunk_text("odd.rs", text)] == [
        (5, 6, "spec", "<[T]>::clone"),
        (8, 11, "spec", "odd"),
        (13, 18, "proof", "lemma_double"),
    ]


def test_items_inside_cfg_if_and_item_macros_are_chunks_with_the_macro_in_their_context():
    assert _cut("platform_items.rs") == [
        (1, 1, "doc", "", ""),
        (5, 8, "function", "page_size", "cfg_if!"),
        (10, 13, "function", "page_size", "cfg_if!"),
        (15, 17, "function", "page_size", "cfg_if!"),
        (21, 27, "macro", "checked_ops", ""),  # a macro_rules! definition stays one chunk
        (29, 29, "code", "", ""),  # an invocation whose body holds no items stays code
        (34, 37, "function", "read_u16", "make_module! > mod wire"),
        (39, 41, "struct", "Header", "make_module! > mod wire"),
        (46, 46, "static", "COUNTER", "thread_local!"),
    ]


def test_prusti_kani_and_flux_attributes_stay_with_their_items_and_harnesses_have_a_kind():
    assert _cut("prusti_kani.rs") == [
        (3, 14, "spec", "is_sorted", ""),  # #[pure]
        (16, 34, "function", "binary_search", ""),  # #[requires] / #[ensures] above it
        (37, 40, "spec", "all_positive", "predicate!"),
        (43, 46, "function", "grow", ""),  # #[flux::sig(..)]
        (52, 59, "harness", "check_binary_search_no_panic", "mod verification"),
        (61, 65, "harness", "check_grow_contract", "mod verification"),
    ]
    text = (FIXTURES / "prusti_kani.rs").read_text()
    search = next(c for c in chunk_text("prusti_kani.rs", text) if c.name == "binary_search")
    assert search.text.startswith("/// Finds `target` in the sorted slice by binary search.\n#[requires(is_sorted(v))]")


def test_a_verus_lemma_is_found_by_what_it_states_and_kind_proof_filters_to_proofs(tmp_path, index_env):
    import shutil
    import subprocess

    store, indexer, searcher = index_env
    repo = tmp_path / "repos" / "counter"
    (repo / "src").mkdir(parents=True)
    shutil.copy(FIXTURES / "bounded_counter.rs", repo / "src" / "lib.rs")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    indexer.run([repo])
    top = searcher().search("triangle numbers never decrease", limit=5)
    assert (top[0].name, top[0].start_line, top[0].end_line, top[0].kind) == ("lemma_triangle_monotonic", 26, 38, "proof")
    proofs = searcher().search("counter lemma", filters=Filters(kind=["proof"]), limit=10)
    assert {r.name for r in proofs} == {"lemma_triangle_monotonic", "lemma_in_bounds_zero"}
    specs = searcher().search("sum of the first n natural numbers", filters=Filters(kind=["spec"]), limit=10)
    assert specs[0].name == "triangle" and {r.kind for r in specs} == {"spec"}


def test_extern_block_declarations_and_declaring_macro_calls_are_named_chunks():
    text = """extern "system" {
    /// Creates a window.
    pub fn CreateWindowExW(style: u32, class: *const u16) -> *mut Window;
    pub fn DestroyWindow(hwnd: *mut Window) -> i32;
}

DEFINE_GUID!{IID_IUnknown, 0x00000000, 0x0000, 0x0000, 0xc0, 0x00}

bitflags! {
    /// Flags of a file mode.
    pub struct Mode: u32 {
        const READ = 0b001;
        const WRITE = 0b010;
    }
}
"""
    got = [(c.start_line, c.end_line, c.kind, c.name, c.context) for c in chunk_text("win.rs", text)]
    assert got == [
        (2, 4, "function", "CreateWindowExW, DestroyWindow", 'extern "system"'),
        (7, 7, "macro_call", "IID_IUnknown", ""),
        (9, 15, "macro_call", "Mode", ""),
    ]


def test_creusot_logic_functions_are_spec_and_laws_are_proofs():
    text = """use creusot_std::prelude::*;

/// The sum of a sequence of integers.
#[logic(open)]
pub fn sum(s: Seq<Int>) -> Int {
    pearlite! { if s.len() == 0 { 0 } else { s[0] + sum(s.tail()) } }
}

/// Summing never depends on the order of two appended sequences.
#[logic(law)]
#[ensures(sum(a.concat(b)) == sum(b.concat(a)))]
pub fn sum_commutes(a: Seq<Int>, b: Seq<Int>) {}

#[requires(v@.len() > 0)]
#[ensures(result@ == sum(v@))]
pub fn total(v: &Vec<i64>) -> i64 {
    v.iter().sum()
}
"""
    got = [(c.start_line, c.end_line, c.kind, c.name) for c in chunk_text("sum.rs", text)]
    assert got == [(3, 7, "spec", "sum"), (9, 12, "proof", "sum_commutes"), (14, 18, "function", "total")]
