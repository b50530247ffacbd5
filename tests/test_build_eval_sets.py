"""The eval-set builder (codesearch.eval.sets.builder, run by scripts/build_eval_sets.py) on small
fixtures: queries, blanking, spans, determinism."""

from __future__ import annotations

import ast

import pytest

from codesearch.eval import load_eval_set
from codesearch.eval.sets.verus import verus_lex
from codesearch.trainer.doc_queries import first_paragraph, first_sentence, simplify_markdown


@pytest.fixture(scope="module")
def b():
    import codesearch.eval.sets.builder as mod

    return mod


def by_name(items):
    return {it.name: it for it in items}


def span_text(text: str, start: int, end: int) -> list[str]:
    return text.split("\n")[start - 1 : end]


def line_of(text: str, needle: str) -> int:
    """1-based number of the first line containing needle."""
    for i, line in enumerate(text.split("\n"), start=1):
        if needle in line:
            return i
    raise AssertionError(needle)


# --- Rust -----------------------------------------------------------------------------

RUST = """\
//! Crate docs that mention widgets.

use std::fmt;

/// Returns the number of widgets in the frobnicator.
///
/// More text here. Second sentence.
#[inline]
#[must_use]
pub fn widget_count(x: &Frob) -> usize {
    x.widgets.len()
}

#[derive(Debug)]
/// A [`Frob`] holds widgets, see [the docs](https://example.com) for `more`.
pub struct Frob {
    /// The widgets of the frob.
    widgets: Vec<u8>, // a plain comment stays
}

impl<T> Frob {
    /// Creates an empty frob with no widgets at all. Then more.
    pub fn new() -> Self {
        Frob { widgets: Vec::new() }
    }

    /// Len.
    pub fn len(&self) -> usize { self.widgets.len() }

    //// Four slashes: not a doc comment.
    fn private(&self) {}
}

/** Block doc comment describing the trait in detail. */
pub trait Shiny {
    /// Polishes the shiny thing until it gleams, e.g. with a cloth.
    fn polish(&mut self);
}

#[cfg(test)]
mod tests {
    /// Checks that the widget count works as expected.
    #[test]
    fn counts() {}
}
"""


def test_rust_queries_and_spans(b):
    res = b.process_rust(RUST, "demo/src/lib.rs")
    items = by_name(res.items)
    assert set(items) == {"widget_count", "Frob", "Frob::new", "Frob::len", "Shiny", "Shiny::polish"}
    q = {name: it.query for name, it in items.items()}
    assert q == {
        "widget_count": "Returns the number of widgets in the frobnicator.",
        "Frob": "A Frob holds widgets, see the docs for more.",
        "Frob::new": "Creates an empty frob with no widgets at all.",
        "Frob::len": None,  # "Len." is under 4 words
        "Shiny": "Block doc comment describing the trait in detail.",
        "Shiny::polish": "Polishes the shiny thing until it gleams, e.g. with a cloth.",
    }
    assert items["Frob::len"].skip == "too short"
    # spans: the declaration without its doc, attributes included
    wc = items["widget_count"]
    assert (wc.start_line, wc.end_line) == (line_of(RUST, "#[inline]"), line_of(RUST, "x.widgets.len()") + 1)
    assert span_text(res.text, wc.start_line, wc.end_line) == [
        "#[inline]", "#[must_use]", "pub fn widget_count(x: &Frob) -> usize {", "    x.widgets.len()", "}",
    ]
    # an attribute above the doc starts the span; the blanked doc line is inside it
    frob = items["Frob"]
    assert frob.start_line == line_of(RUST, "#[derive(Debug)]")
    assert span_text(res.text, frob.start_line, frob.end_line) == [
        "#[derive(Debug)]", "", "pub struct Frob {", "", "    widgets: Vec<u8>, // a plain comment stays", "}",
    ]
    new = items["Frob::new"]
    assert span_text(res.text, new.start_line, new.start_line)[0] == "    pub fn new() -> Self {"
    assert items["Shiny::polish"].kind == "function" and items["Shiny"].kind == "trait"
    assert span_text(res.text, *(items["Shiny::polish"].start_line,) * 2) == ["    fn polish(&mut self);"]


def test_rust_declaration_count(b):
    res = b.process_rust(RUST, "x.rs")
    # widget_count, Frob, new, len, private, Shiny, polish, counts (test code counts too)
    assert res.declarations == 8


def test_rust_corpus_blanking(b):
    res = b.process_rust(RUST, "x.rs")
    orig, copy = RUST.split("\n"), res.text.split("\n")
    assert len(copy) == len(orig)
    for o, c in zip(orig, copy):
        s = o.strip()
        if s.startswith(("///", "//!", "/**")) and not s.startswith("////"):
            assert c == "", o  # every doc line, including the field's and the test module's
        else:
            assert c == o
    assert "    //// Four slashes: not a doc comment." in copy


def test_rust_doc_sharing_a_line_with_code_is_blanked_not_queried(b):
    src = "struct S { a: u8, /// The second field of the struct here.\n b: u8 }\n"
    res = b.process_rust(src, "s.rs")
    assert res.text == "struct S { a: u8, \n b: u8 }\n"
    assert res.items == []


def test_rust_crlf_keeps_line_endings(b):
    src = "/// Returns the answer to everything at once.\r\nfn answer() -> u8 { 42 }\r\n"
    res = b.process_rust(src, "a.rs")
    assert res.text == "\r\nfn answer() -> u8 { 42 }\r\n"
    assert res.items[0].query == "Returns the answer to everything at once."
    assert (res.items[0].start_line, res.items[0].end_line) == (2, 2)


# --- Python ---------------------------------------------------------------------------

PY = '''\
"""Module docstring."""

import functools


def plain(a, b):
    """Add two numbers together and return the sum.

    Longer description.
    """
    return a + b


@functools.lru_cache(maxsize=None)
def cached(n):
    """Compute the ``n``-th value of the :func:`plain` sequence quickly."""
    return n


def doc_only():
    """Do nothing at all, just a placeholder
    for subclasses to override.
    """


class Widget:
    """A widget that holds a single value for the caller.

    Attributes: value.
    """

    def get(self):
        """Return it."""
        return 1

    def one_liner(self): "Inline docstring that shares its line with the def."; return 2
'''


def test_python_queries_and_spans(b):
    res = b.process_python(PY, "pkg/mod.py")
    items = by_name(res.items)
    assert {n: it.query for n, it in items.items()} == {
        "plain": "Add two numbers together and return the sum.",
        "cached": "Compute the n-th value of the plain sequence quickly.",
        "doc_only": "Do nothing at all, just a placeholder for subclasses to override.",
        "Widget": "A widget that holds a single value for the caller.",
        "get": None,
    }
    assert res.declarations == 6  # plain, cached, doc_only, Widget, get, one_liner
    cached = items["cached"]
    assert span_text(res.text, cached.start_line, cached.end_line) == [
        "@functools.lru_cache(maxsize=None)", "def cached(n):", "", "    return n",
    ]
    plain = items["plain"]
    assert (plain.start_line, plain.end_line) == (line_of(PY, "def plain"), line_of(PY, "return a + b"))
    # a docstring-only body keeps a `pass`, and the span ends there
    d = items["doc_only"]
    assert span_text(res.text, d.start_line, d.end_line) == ["def doc_only():", "    pass"]
    w = items["Widget"]
    assert (w.start_line, w.end_line) == (line_of(PY, "class Widget"), line_of(PY, "return 2"))


def test_python_corpus_blanking(b):
    res = b.process_python(PY, "mod.py")
    orig, copy = PY.split("\n"), res.text.split("\n")
    assert len(copy) == len(orig)
    ast.parse(res.text)  # still valid Python
    assert '"' not in res.text  # every docstring gone
    for i in range(line_of(PY, '"""Add two'), line_of(PY, "return a + b")):
        assert copy[i - 1] == ""
    assert copy[line_of(PY, '"""Do nothing') - 1] == "    pass"
    assert copy[line_of(PY, "one_liner") - 1] == "    def one_liner(self): ...; return 2"
    assert copy[0] == ""  # module docstring


# --- Coq ------------------------------------------------------------------------------

COQ = """\
(** * Title of the section *)

Require Import List.

(** The length of an appended list is the sum of the lengths. *)
Lemma app_length_sum : forall (A : Type) (l m : list A),
  length (l ++ m) = length l + length m.
Proof.
  intros. (* a nested (* comment *) with a dot. *) apply app_length.
Qed.

(** Doubles a natural number by adding it to itself. *)

Definition double (n : nat) : nat := n + n.

(** Results about the [double] function on naturals. *)

Lemma double_0 : double 0 = 0.
Proof. reflexivity. Qed.

Lemma double_1 : double 1 = 2.
Proof. reflexivity. Qed.

(* A plain comment describing the triple function in words. *)
Definition triple (n : nat) : nat := n + n + n.

(** Computes the sum of the [list] of naturals. **)
Fixpoint sum (l : list nat) : nat :=
  match l with
  | nil => 0
  | x :: r => x + sum r
  end.

(** An instance whose proof comes after, with bullets. *)
#[global]
Instance two_ok : Proper eq 2.
Proof.
  - { reflexivity. }
Defined.
"""


def test_coq_queries_and_spans(b):
    res = b.process_coq(COQ, "Lists/Demo.v")
    items = by_name(res.items)
    assert {n: it.query for n, it in items.items()} == {
        "app_length_sum": "The length of an appended list is the sum of the lengths.",
        "double": "Doubles a natural number by adding it to itself.",  # one blank line, sole decl
        "sum": "Computes the sum of the list of naturals.",
        "two_ok": "An instance whose proof comes after, with bullets.",
    }
    # double_0 is not taken: its comment heads two lemmas; triple's comment is plain
    assert res.declarations == 7
    lem = items["app_length_sum"]
    assert span_text(res.text, lem.start_line, lem.end_line)[0].startswith("Lemma app_length_sum")
    assert span_text(res.text, lem.start_line, lem.end_line)[-1] == "Qed."
    assert lem.end_line - lem.start_line == 4
    assert items["double"].kind == "definition"
    assert span_text(res.text, items["double"].start_line, items["double"].end_line) == [
        "Definition double (n : nat) : nat := n + n.",
    ]
    s = items["sum"]
    assert (s.start_line, s.end_line) == (line_of(COQ, "Fixpoint sum"), line_of(COQ, "  end."))
    inst = items["two_ok"]
    assert span_text(res.text, inst.start_line, inst.end_line) == [
        "#[global]", "Instance two_ok : Proper eq 2.", "Proof.", "  - { reflexivity. }", "Defined.",
    ]


def test_coq_plain_comments_fallback(b):
    res = b.process_coq(COQ, "Demo.v", accept_plain=True)
    items = by_name(res.items)
    assert items["triple"].query == "A plain comment describing the triple function in words."
    assert res.text.split("\n")[line_of(COQ, "A plain comment") - 1] == ""
    # without the fallback the plain comment stays in the corpus
    plain = b.process_coq(COQ, "Demo.v")
    assert "A plain comment" in plain.text and "triple" not in by_name(plain.items)


def test_coq_corpus_blanking(b):
    res = b.process_coq(COQ, "Demo.v")
    orig, copy = COQ.split("\n"), res.text.split("\n")
    assert len(copy) == len(orig)
    assert "(**" not in res.text
    for o, c in zip(orig, copy):
        assert c == ("" if o.startswith("(**") else o)


# --- Lean -----------------------------------------------------------------------------

LEAN = """\
/-! # Demo module
Module docs mention appending lists. -/
namespace Demo

/-- The length of two appended lists is the sum of their lengths. -/
@[simp]
theorem length_append (xs ys : List Nat) : (xs ++ ys).length = xs.length + ys.length := by
  simp

-- a plain comment stays
def plain (s : String) : String := s ++ "/-- not a comment -/"

/--
**Points of the plane.** A point of the plane, given by two coordinates.
-/
structure Point where
  /-- The horizontal coordinate of the point. -/
  x : Nat
  y : Nat

/--
error: The prover found a potential counter example for the following input.
-/
#guard_msgs in
theorem bad_claim (x : Nat) : x + 1 > x := by omega

end Demo
"""


def test_lean_queries_and_spans(b):
    res = b.process_lean(LEAN, "Demo.lean")
    items = by_name(res.items)
    assert {n: it.query for n, it in items.items()} == {
        "length_append": "The length of two appended lists is the sum of their lengths.",
        "Point": "Points of the plane.",  # Markdown bold, not a javadoc star
    }
    assert "bad_claim" not in items  # the docstring above #guard_msgs is a test's expected output
    assert res.declarations == 4
    lem = items["length_append"]
    assert span_text(res.text, lem.start_line, lem.end_line) == [
        "@[simp]",
        "theorem length_append (xs ys : List Nat) : (xs ++ ys).length = xs.length + ys.length := by",
        "  simp",
    ]
    pt = items["Point"]
    assert span_text(res.text, pt.start_line, pt.end_line)[0] == "structure Point where"
    assert span_text(res.text, pt.start_line, pt.end_line)[-1] == "  y : Nat"


def test_lean_corpus_blanking(b):
    res = b.process_lean(LEAN, "Demo.lean")
    orig, copy = LEAN.split("\n"), res.text.split("\n")
    assert len(copy) == len(orig)
    assert "/--" not in res.text.replace('"/-- not a comment -/"', "") and "/-!" not in res.text
    assert "Module docs" not in res.text and "horizontal coordinate" not in res.text and "error:" not in res.text
    assert '"/-- not a comment -/"' in res.text and "-- a plain comment stays" in res.text
    assert "  x : Nat" in copy


# --- TLA+ -----------------------------------------------------------------------------

TLA = """\
---- MODULE Demo ----
EXTENDS Naturals
CONSTANT N

(***************************************************************************)
(* The set of numbers from one up to the bound, both included.             *)
(***************************************************************************)
Range == 1..N

\\* Increment the counter while it is below the limit.
\\* More words on a second line.
Inc(c) == IF c < N THEN c + 1 ELSE c

\\* Helpers

Dec(c) == c - 1

THEOREM RangeFinite == Range \\subseteq Nat
====
"""


def test_tlaplus_queries_spans_and_blanking(b):
    res = b.process_tlaplus(TLA, "Demo.tla")
    items = by_name(res.items)
    assert {n: it.query for n, it in items.items()} == {
        "Range": "The set of numbers from one up to the bound, both included.",
        "Inc": "Increment the counter while it is below the limit.",
    }
    assert res.declarations == 4  # Range, Inc, Dec, RangeFinite (not the CONSTANT)
    assert span_text(res.text, items["Inc"].start_line, items["Inc"].end_line) == [
        "Inc(c) == IF c < N THEN c + 1 ELSE c"]
    copy = res.text.split("\n")
    assert len(copy) == len(TLA.split("\n"))
    assert "The set of numbers" not in res.text and "Increment the counter" not in res.text
    assert "\\* Helpers" in copy  # a section comment (blank line below) is not a doc and stays



def test_tlaplus_queries_can_leave_out_apalache_annotations(b):
    spec = ("---- MODULE A ----\n(* ****** DEFINITIONS ****** *)\n\\* Checks whether the port is open\n"
            "\\* @type: (Str) => Bool;\nIsOpen(p) == p = \"open\"\n\n\\* @type: Int;\nMax == 3\n====\n")
    plain = {it.name: it.query for it in b.process_tlaplus(spec, "A.tla").items}
    assert "DEFINITIONS" in plain["IsOpen"] and "@type" in plain["IsOpen"]
    res = b.process_tlaplus(spec, "A.tla", drop_annotations=True)
    assert {it.name: it.query for it in res.items} == {"IsOpen": "Checks whether the port is open", "Max": None}
    assert res.text == b.process_tlaplus(spec, "A.tla").text  # the same lines are blanked


# --- Verus ----------------------------------------------------------------------------

VERUS = """\
//! Crate docs: a counter verified with Verus.
use vstd::prelude::*;

verus! {

/// Returns the sum of the first n natural numbers.
pub open spec fn triangle(n: nat) -> nat
    decreases n,
{
    if n == 0 { 0 } else { n + triangle((n - 1) as nat) }
}

/// Proves that the triangle number grows with its argument.
#[verifier::spinoff_prover]
pub proof fn lemma_triangle_monotonic(i: nat, j: nat)
    requires
        i <= j,
    ensures
        if i == j { triangle(i) == triangle(j) } else { triangle(i) <= triangle(j) },
    decreases j,
{
    if i < j {
        lemma_triangle_monotonic(i, (j - 1) as nat);
    }
}

/// A counter that remembers its ghost history of values.
pub struct Counter {
    /// The current value of the counter.
    pub value: u64,
    pub history: Ghost<Seq<u64>>,
}

/// The counter that starts from the zero value.
pub const ZERO: Counter = Counter { value: 0, history: Ghost(Seq::empty()) };

/** Documentation on an impl block is not a query target. */
impl Counter {
    /// Increments the counter by one and returns the old value.
    pub exec fn incr(&mut self) -> (r: u64)
        requires
            old(self).value < u64::MAX,
        ensures
            r == old(self).value,
    {
        let r = self.value; /* a } in a /* nested */ comment */
        self.value = self.value + 1;
        r
    }

    /// Peeks at the value through a borrowed reference.
    fn peek<'a>(&'a self) -> &'a u64 { let _c = '{'; let _s = "}"; &self.value }
}

/// Checks that the counter increments exactly once.
#[test]
fn test_incr() {
    assert(true);
}

} // verus!

/// Formats the counter as plain decimal text.
pub fn show(c: &Counter) -> String { let _r = r#"}"#; format!("{}", c.value) }

#[cfg(test)]
mod tests {
    /// Checks the formatting of a fresh counter.
    fn formats() {}
}
"""


def test_verus_queries_and_spans(b):
    res = b.process_verus(VERUS, "ostd/src/counter.rs")
    items = by_name(res.items)
    assert {n: (it.kind, it.query) for n, it in items.items()} == {
        "triangle": ("spec fn", "Returns the sum of the first n natural numbers."),
        "lemma_triangle_monotonic": ("proof fn", "Proves that the triangle number grows with its argument."),
        "Counter": ("struct", "A counter that remembers its ghost history of values."),
        "ZERO": ("const", "The counter that starts from the zero value."),
        "Counter::incr": ("exec fn", "Increments the counter by one and returns the old value."),
        "Counter::peek": ("fn", "Peeks at the value through a borrowed reference."),
        "show": ("fn", "Formats the counter as plain decimal text."),
    }  # not the impl's doc, not the #[test] fn, not the #[cfg(test)] module's fn
    # triangle, lemma, Counter, ZERO, incr, peek, test_incr, show, formats (test code counts too)
    assert res.declarations == 9
    spans = {n: (it.start_line, it.end_line) for n, it in items.items()}
    assert spans == {
        "triangle": (line_of(VERUS, "pub open spec fn triangle"), line_of(VERUS, "if n == 0") + 1),
        # the attribute starts the span; the `if .. { } else { }` in ensures is not the body
        "lemma_triangle_monotonic": (line_of(VERUS, "#[verifier::spinoff_prover]"), line_of(VERUS, "lemma_triangle_monotonic(i, (j") + 2),
        "Counter": (line_of(VERUS, "pub struct Counter"), line_of(VERUS, "pub history:") + 1),
        "ZERO": (line_of(VERUS, "pub const ZERO"),) * 2,
        "Counter::incr": (line_of(VERUS, "pub exec fn incr"), line_of(VERUS, "self.value = self.value + 1;") + 2),
        "Counter::peek": (line_of(VERUS, "fn peek<'a>"),) * 2,
        "show": (line_of(VERUS, "pub fn show"),) * 2,
    }
    assert span_text(res.text, *spans["lemma_triangle_monotonic"])[:2] == [
        "#[verifier::spinoff_prover]", "pub proof fn lemma_triangle_monotonic(i: nat, j: nat)"]
    assert span_text(res.text, *spans["Counter::incr"])[-1] == "    }"
    assert span_text(res.text, *spans["triangle"])[-1] == "}"
    lem = items["lemma_triangle_monotonic"]
    assert (lem.doc_start, lem.doc_end) == (lem.start_line - 1,) * 2


def test_verus_corpus_blanking(b):
    res = b.process_verus(VERUS, "x.rs")
    orig, copy = VERUS.split("\n"), res.text.split("\n")
    assert len(copy) == len(orig)
    for o, c in zip(orig, copy):
        if o.strip().startswith(("///", "//!", "/**")):
            assert c == "", o  # every doc line: items', the field's, the impl's, test code's
        else:
            assert c == o


def test_verus_commented_out_docs_are_blanked(b):
    src = "fn a() {}/*\n    /// Old doc of removed code.\n    fn b() {}\n*/\n// /// Doc of a line-commented fn.\n"
    res = b.process_verus(src, "x.rs")
    assert res.text == "fn a() {}/*\n\n    fn b() {}\n*/\n\n"
    assert res.items == []


def test_verus_lexer_tells_char_literals_from_lifetimes(b):
    toks = verus_lex("fn f<'a>(x: &'a u8) -> char { let s = br##\"x\"# }\"##; '\\'' }")
    assert [t.text for t in toks if t.kind == "lifetime"] == ["'a", "'a"]
    assert [t.text for t in toks if t.kind == "lit"] == ['br##"x"# }"##', "'\\''"]


def test_build_verus_set(b, tmp_path):
    repo = tmp_path / "formal" / "asterinas+vostd"
    (repo / "ostd" / "src").mkdir(parents=True)
    (repo / "ostd" / "specs").mkdir(parents=True)
    (repo / "ostd" / "libs").mkdir(parents=True)
    (repo / "ostd" / "src" / "counter.rs").write_text(VERUS)
    (repo / "ostd" / "src" / "plain.rs").write_text("/// Plain Rust file without any Verus code.\nfn p() {}\n")
    (repo / "ostd" / "libs" / "lib.rs").write_text("verus! {\n/// Not part of the set at all.\nfn l() {}\n}\n")
    (repo / "LICENSE-MPL").write_text("Mozilla Public License Version 2.0\n")
    out, held = tmp_path / "out", tmp_path / "heldout.txt"
    argv = ["--sets", "verus", "--out", str(out), "--samples", "", "--heldout-file", str(held),
            "--formal-src", str(tmp_path / "formal")]
    assert b.main(argv) == 0
    corpus = out / "verus" / "corpus"
    assert sorted(p.relative_to(corpus).as_posix() for p in corpus.rglob("*") if p.is_file()) == [
        "LICENSE-MPL", "ostd/src/counter.rs"]
    queries = load_eval_set(out / "verus.jsonl")
    assert len(queries) == 7 and all(q.domain == "verus" for q in queries)
    assert f"verus\trepo\tasterinas/vostd\t{b.VERUS_REPO[1]}\t{repo}" in held.read_text().splitlines()


# --- queries --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "para, sentence",
    [
        ("Returns the thing. Then more.", "Returns the thing."),
        ("Works on i.e. small inputs. More.", "Works on i.e. small inputs."),
        ("Counts from 1..n inclusive! Yes.", "Counts from 1..n inclusive!"),
        ("No period at all", "No period at all"),
        ("Returns a date string, e.g.:", "Returns a date string"),
        ("Joins the items with a separator, for example. Then more.", "Joins the items with a separator"),
        ("Version 1.5 of the thing is here. Ok.", "Version 1.5 of the thing is here."),
    ],
)
def test_first_sentence(b, para, sentence):
    assert first_sentence(para) == sentence


def test_simplify_markdown(b):
    md = "Returns [`Foo`](crate::Foo) or [`Bar`] via [link text][ref], **bold** and `*const T`."
    assert simplify_markdown(md) == "Returns Foo or Bar via link text, bold and *const T."


def test_first_paragraph_stops_at_code(b):
    assert first_paragraph("# Examples\n\nFirst line\nsecond line\n\nnext", lambda s: s.startswith("#")) == "First line second line"
    assert first_paragraph("```\ncode\n```\ntext") == ""
    assert first_paragraph("Does a thing, e.g.:\n>>> f(1)\n2") == "Does a thing, e.g.:"


# --- sampling and the whole build -----------------------------------------------------


def _items(b, n):
    return [
        b.DocItem(f"f{i % 7}.rs", f"name{i}", "function", i + 1, i + 3, i, i, "", query=f"Query number {i} about things.")
        for i in range(n)
    ]


def test_sampling_is_deterministic(b):
    a = b.sample_queries(_items(b, 60), 20, 0, "rust", "rust")
    again = b.sample_queries(list(reversed(_items(b, 60))), 20, 0, "rust", "rust")  # input order does not matter
    other = b.sample_queries(_items(b, 60), 20, 1, "rust", "rust")
    assert a == again
    assert [r["query"] for r in a] != [r["query"] for r in other]
    assert [r["id"] for r in a] == [f"rust-{i}" for i in range(20)]
    assert len({r["query"] for r in a}) == 20


def test_same_query_text_makes_one_query_with_all_targets(b):
    items = _items(b, 3)
    items[1].query = items[0].query.upper()  # same text up to case
    out = b.sample_queries(items, 10, 0, "rust", "rust")
    assert len(out) == 2
    multi = [r for r in out if len(r["relevant"]) == 2]
    assert len(multi) == 1


def test_build_end_to_end(b, tmp_path, monkeypatch):
    registry = tmp_path / "registry"
    (registry / "demo-0.1.0" / "src").mkdir(parents=True)
    (registry / "demo-0.1.0" / "src" / "lib.rs").write_text(RUST)
    (registry / "demo-0.1.0" / "src" / "util.rs").write_text("/// Helper that has no sampled query at all.\nfn h() {}\n")
    (registry / "demo-0.1.0" / "tests").mkdir()
    (registry / "demo-0.1.0" / "tests" / "t.rs").write_text("fn t() {}\n")  # not src/: not copied
    monkeypatch.setattr(b, "RUST_CRATES", ("demo-0.1.0",))
    out, samples, held = tmp_path / "out", tmp_path / "samples", tmp_path / "heldout.txt"
    argv = ["--sets", "rust", "--out", str(out), "--samples", str(samples), "--heldout-file", str(held),
            "--cargo-registry", str(registry), "--max-queries", "3"]
    assert b.main(argv) == 0
    first = (out / "rust.jsonl").read_text()
    corpus = out / "rust" / "corpus"
    assert sorted(p.relative_to(corpus).as_posix() for p in corpus.rglob("*.rs")) == ["demo-0.1.0/src/lib.rs", "demo-0.1.0/src/util.rs"]
    assert (corpus / "demo-0.1.0/src/util.rs").read_text() == "\nfn h() {}\n"
    queries = load_eval_set(out / "rust.jsonl")
    assert len(queries) == 3 and all(q.domain == "rust" for q in queries)
    for q in queries:
        for s in q.relevant:
            lines = (corpus / s.path).read_text().split("\n")
            assert lines[s.start_line - 1].strip() and lines[s.end_line - 1].strip()
    assert (samples / "rust.jsonl").read_text() == first  # fewer than 20 lines: all of them
    assert f"rust\tcrate\tdemo\t0.1.0\t{registry / 'demo-0.1.0'}" in held.read_text().splitlines()
    # a rebuild gives the same bytes
    assert b.main(argv) == 0
    assert (out / "rust.jsonl").read_text() == first


def test_samples_go_to_the_checkout_only_for_a_build_into_the_default_folder(b, tmp_path, monkeypatch):
    registry = tmp_path / "registry"
    (registry / "demo-0.1.0" / "src").mkdir(parents=True)
    (registry / "demo-0.1.0" / "src" / "lib.rs").write_text(RUST)
    monkeypatch.setattr(b, "RUST_CRATES", ("demo-0.1.0",))
    default_out, default_samples = tmp_path / "evals" / "data", tmp_path / "evals" / "samples"
    monkeypatch.setattr(b, "DEFAULT_OUT", default_out)
    monkeypatch.setattr(b, "DEFAULT_SAMPLES", default_samples)
    common = ["--sets", "rust", "--heldout-file", "", "--cargo-registry", str(registry), "--max-queries", "3"]
    # an experiment's build elsewhere leaves the committed samples alone
    assert b.main(common + ["--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "rust.jsonl").exists() and not default_samples.exists()
    # the release build (default --out) refreshes them
    assert b.main(common) == 0
    assert (default_samples / "rust.jsonl").read_text() == (default_out / "rust.jsonl").read_text()


def test_validation_sets_are_built_like_the_eval_sets_but_write_no_samples(b, tmp_path, monkeypatch):
    registry = tmp_path / "registry"
    (registry / "demo-0.1.0" / "src").mkdir(parents=True)
    (registry / "demo-0.1.0" / "src" / "lib.rs").write_text(RUST)
    monkeypatch.setattr(b, "RUST_CRATES", ("demo-0.1.0",))
    monkeypatch.setattr(b, "RUST_VALIDATION_CRATES", ("demo-0.1.0",))
    out, samples, held = tmp_path / "out", tmp_path / "samples", tmp_path / "heldout.txt"
    argv = ["--sets", "rust,rust-validation", "--out", str(out), "--samples", str(samples), "--heldout-file", str(held),
            "--cargo-registry", str(registry), "--max-queries", "3"]
    assert b.main(argv) == 0
    rust = (out / "rust.jsonl").read_text()
    assert (out / "rust-validation.jsonl").read_text() == rust.replace('"rust-', '"rust-validation-')
    assert sorted(p.name for p in samples.iterdir()) == ["rust.jsonl"]
    assert f"rust-validation\tcrate\tdemo\t0.1.0\t{registry / 'demo-0.1.0'}" in held.read_text().splitlines()
    specs = b.make_specs(registry, tmp_path, tmp_path, False, tmp_path)
    assert {n for n, s in specs.items() if not s.samples} == {n for n in specs if n.endswith("-validation")}


def test_missing_checkout_skips_the_formal_sets(b, tmp_path, capsys):
    rc = b.main(["--sets", "lean,tlaplus", "--out", str(tmp_path / "o"), "--samples", "", "--heldout-file", "",
                 "--formal-src", str(tmp_path / "nope")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "[lean] skipped: missing source" in err and "[tlaplus] skipped: missing source" in err


def test_missing_source_skips_the_set(b, tmp_path, capsys):
    rc = b.main(["--sets", "coq", "--out", str(tmp_path / "o"), "--samples", "", "--heldout-file", "",
                 "--coq-theories", str(tmp_path / "nope")])
    assert rc == 1
    assert "[coq] skipped: missing source" in capsys.readouterr().err
    assert not (tmp_path / "o" / "coq.jsonl").exists()
