"""Chunking of Lean 4, SMT-LIB and Coq: the hand-written declaration scanners."""

from __future__ import annotations

import random
import time

import pytest

from codesearch.indexer.chunking import chunk_text
from codesearch.indexer.chunking.spans import MAX_CHUNK_CHARS
from test_chunking import assert_well_formed, chunks_of, find, summary

# ----------------------------------------------------------------------------------------
# Lean 4


def test_lean_declarations_docstrings_attributes_and_namespaces():
    chunks = chunks_of("BinaryTree.lean", "Tree/BinaryTree.lean")
    ns, sec = "namespace Tree", "namespace Tree > section Mirror"
    assert summary(chunks) == [
        ("doc", "", 8, 12, ""),
        ("inductive", "Tree", 18, 22, ns),
        ("def", "size", 26, 29, ns),
        ("theorem", "size_leaf", 31, 33, ns),
        ("theorem", "size_node", 35, 37, ns),
        ("def", "mirror", 41, 44, sec),
        ("theorem", "mirror_mirror", 46, 49, sec),
        ("instance", "", 53, 53, ns),
        ("instance", "instSizeOfTree", 55, 56, ns),
        ("structure", "Point", 58, 61, ns),
        ("def", "choice", 63, 63, ns),
        ("notation", "‖", 65, 65, ns),
        ("code", "", 67, 67, ns),
    ]
    size = find(chunks, "def", "size")[0]
    assert size.text.startswith("/-- The number of nodes. -/\ndef size")
    leaf = find(chunks, "theorem", "size_leaf")[0]
    assert leaf.text.splitlines()[:2] == ["-- a helper lemma", "@[simp]"]
    # `deriving Repr` at column 0 continues the structure
    assert find(chunks, "structure", "Point")[0].text.endswith("deriving Repr")


def test_lean_column0_continuations_comments_and_mutual_blocks():
    src = (
        "def fib : Nat → Nat\n"
        "| 0 => 0\n"
        "| 1 => 1\n"
        "| n + 2 => fib n + fib (n + 1)\n"
        "termination_by n => n\n"
        "\n"
        "/- A block comment /- nested -/ mentioning\n"
        "theorem not_a_decl : True := trivial\n"
        "-/\n"
        "\n"
        "mutual\n"
        "  def isEven : Nat → Bool\n"
        "    | 0 => true\n"
        "    | n + 1 => isOdd n\n"
        "  def isOdd : Nat → Bool\n"
        "    | 0 => false\n"
        "    | n + 1 => isEven n\n"
        "end\n"
        "\n"
        "set_option maxHeartbeats 400000 in\n"
        "private theorem slow : 2 + 2 = 4 := by decide\n"
    )
    chunks = chunk_text("Fib.lean", src)
    assert_well_formed(src, chunks, "Fib.lean")
    assert summary(chunks) == [
        ("def", "fib", 1, 5, ""),
        ("def", "isEven", 12, 14, ""),
        ("def", "isOdd", 15, 17, ""),
        ("theorem", "slow", 20, 21, ""),
    ]


def test_lean_large_proof_is_windowed():
    src = "theorem big : True := by\n" + "  trivial\n" * 100
    chunks = chunk_text("Big.lean", src)
    assert [c.name for c in chunks] == ["big"] * len(chunks) and len(chunks) >= 3
    assert chunks[0].start_line == 1 and chunks[-1].end_line == 101
    assert all(c.n_lines <= 60 for c in chunks)


# ----------------------------------------------------------------------------------------
# SMT-LIB


def test_smtlib_commands_names_comments_and_housekeeping():
    chunks = chunks_of("queue.smt2", "bench/queue.smt2")
    assert summary(chunks) == [
        ("commands", "", 1, 4, ""),
        ("declare-sort", "Elem", 6, 6, ""),
        ("declare-datatypes", "Queue, Pair", 7, 9, ""),
        ("declare-const", "cap", 11, 12, ""),
        ("declare-fun", "size, contains", 13, 14, ""),
        ("define-fun-rec", "len", 16, 20, ""),
        ("define-fun", "full", 22, 23, ""),
        ("define-fun", "|weird name|", 24, 24, ""),
        ("assert", "cap_positive", 26, 27, ""),
        ("commands", "", 28, 30, ""),
    ]
    assert find(chunks, "declare-const", "cap")[0].text.startswith("; capacity of the queue")
    assert find(chunks, "define-fun-rec", "len")[0].text.startswith(";; Length of a queue")


def test_smtlib_strings_quoted_symbols_and_comments_do_not_confuse_parens():
    src = (
        '(define-fun s () String "a ) ; not a comment ""(""")\n'
        "(declare-fun |odd ) name| () Int) ; trailing (\n"
        "(assert (= |odd ) name| 1))\n"
        "(declare-datatypes (T) ((Lst nil (cons (hd T) (tl Lst)))))\n"
    )
    assert summary(chunk_text("x.smt2", src)) == [
        ("define-fun", "s", 1, 1, ""),
        ("declare-fun", "|odd ) name|", 2, 2, ""),
        ("assert", "", 3, 3, ""),
        ("declare-datatypes", "Lst", 4, 4, ""),
    ]


def test_smtlib_many_asserts_merge_into_small_chunks():
    src = "".join(f"(assert (> x{i} 0))\n" for i in range(100))
    chunks = chunk_text("many.smt2", src)
    assert len(chunks) == 7
    assert all(c.kind == "assert" and c.n_lines <= 15 for c in chunks)


# ----------------------------------------------------------------------------------------
# Coq


def test_coq_declarations_proofs_sections_and_doc_comments():
    chunks = chunks_of("Sorted.v", "theories/Sorted.v")
    s = "Section Sorted"
    assert summary(chunks) == [
        ("notation", "[[ x ; .. ; y ]]", 12, 12, "Module SortedNotations"),
        ("variable", "A, R", 17, 18, s),
        ("inductive", "LocallySorted", 20, 25, s),
        ("definition", "head_or", 27, 29, s),
        ("fixpoint", "insert", 31, 35, s),
        ("lemma", "insert_length", 37, 43, s),
        ("theorem", "LocallySorted_cons_inv", 45, 48, s),
        ("definition", "sorted_dec_spec", 50, 51, s),
        ("ltac", "solve_sorted", 55, 55, ""),
        ("instance", "nat_le_refl", 57, 58, ""),
        ("lemma", "unfinished", 60, 63, ""),
        ("code", "", 65, 65, ""),
    ]
    lemma = find(chunks, "lemma", "insert_length")[0]
    assert lemma.text.startswith("  (** Sorting preserves length")
    assert lemma.text.endswith("Qed.")
    assert find(chunks, "inductive", "LocallySorted")[0].text.startswith("  (** [LocallySorted R l]")
    assert find(chunks, "definition", "head_or")[0].text.startswith("  (* The head of a list")


def test_coq_long_documentation_comments_become_doc_chunks():
    src = (
        "(* Copyright header, not documentation. *)\n\n"
        "(** This file proves\n    facts about lists\n    of naturals. *)\n\n"
        "(** * Section title *)\n\n"
        "Lemma l : True.\nProof. exact I. Qed.\n"
    )
    assert summary(chunk_text("D.v", src)) == [("doc", "", 3, 5, ""), ("lemma", "l", 9, 10, "")]


def test_coq_nested_modules_and_unterminated_proofs():
    src = (
        "Module Outer.\n"
        "Module Type Sig.\n"
        "  Parameter t : Type.\n"
        "End Sig.\n"
        "Lemma open_proof : True.\n"
        "Proof.\n"
        "  exact I.\n"
        "Definition after := 1.\n"
        "End Outer.\n"
    )
    assert summary(chunk_text("M.v", src)) == [
        ("parameter", "t", 3, 3, "Module Outer > Module Type Sig"),
        ("lemma", "open_proof", 5, 7, "Module Outer"),
        ("definition", "after", 8, 8, "Module Outer"),
    ]


def test_ml_comments_nest_skip_strings_and_report_unterminated():
    from codesearch.indexer.chunking import mlcomments as mc

    src = '(* a (* b *) c *) x'
    assert mc.comment_end(src, 0) == src.index(" x")  # nested: the first "*)" does not close it
    s = '(* "*)" still comment *) y'
    assert mc.comment_end(s, 0) == s.index(" y")  # Coq: a "*)" in a string does not close it
    assert mc.comment_end(s, 0, strings=False) == s.index('" still')  # the line scanners: it does
    q = '(* "a""b*)" *)'  # "" escapes a quote inside a string
    assert mc.comment_end(q, 0) == len(q)
    assert mc.string_end('"a""b" c', 0) == 6 and mc.string_end('"never', 0) == 6
    assert mc.comment_end("(* open (* deeper *)", 0) is None  # unterminated
    assert mc.comment_end("(**)", 0) == 4
    # line by line: the depth left over carries to the next line
    assert mc.skip_comment("a (* b", 0, 1) == (6, 2)
    assert mc.skip_comment("*) *) rest", 0, 2) == (5, 0)
    assert mc.skip_comment("x", 0, 0) == (0, 0)
    assert [mc.depth_after(t) for t in ("(* (*", "*) x *) y", "*) stray", "")] == [2, 0, 0, 0]
    assert mc.depth_after("val (*) (a: t) : t", operator=True) == 0  # WhyML's operator ( * )
    assert mc.depth_after("val (*) (a: t) : t") == 1
    assert mc.depth_after("{- a {- b -}", open_="{-", close="-}") == 1
    assert mc.strip("a (* b (* c *) d *) e (* f") == "a  e "
    assert mc.strip("x {- y -} z", "{-", "-}") == "x  z"
    # the callers agree: the chunker, the eval-set lexer and the line scanners
    from codesearch.eval.sets.coq import coq_lex
    from codesearch.indexer.chunking.coq import scan
    from codesearch.indexer.chunking.why3 import comment_starts

    text = '(** doc "*)" (* in *) *)\nLemma l : True.\n(* never closed\nLemma m : True.\n'
    sentences, comments = scan(text)
    assert [(c.start, c.end) for c in comments] == [(0, 23)]
    assert [s.words[:2] for s in sentences] == [["Lemma", "l"]]
    lexed, _ = coq_lex(text)
    assert [(c.start, c.end) for c in lexed] == [(0, 24), (text.index("(* never"), len(text))]
    assert comment_starts(text.split("\n")) == [False, False, False, True, True]


# ----------------------------------------------------------------------------------------
# Hostile input


@pytest.mark.parametrize("path", ["x.lean", "x.smt2", "x.v"])
def test_garbage_and_unbalanced_input_never_raises(path):
    rng = random.Random(11)
    garbage = bytes(rng.randrange(256) for _ in range(20_000)).decode("utf-8", "replace")
    samples = [
        garbage,
        "(((((" * 2000,
        ")))) (assert" + "(" * 100 + "\n" * 50,
        '(declare-fun "unterminated string\n' * 30,
        "(* never closed (* nested\nLemma x : True.\nProof.\n" * 40,
        "/- open comment /- deeper\ntheorem t : True := trivial\n" * 40,
        "theorem t :\n  True := by\n" * 200 + "end\n" * 30,
        "Lemma a : True. Proof. Qed. End. End Nothing. Qed.\n" * 20,
        "|quoted symbol never closed\n" * 10,
    ]
    for text in samples:
        t0 = time.monotonic()
        chunks = chunk_text(path, text)
        assert time.monotonic() - t0 < 2
        assert_well_formed(text, chunks, path)
        assert all(len(c.text) <= MAX_CHUNK_CHARS for c in chunks)


def test_unbalanced_smtlib_form_runs_to_the_end():
    src = "(declare-const a Int)\n(assert (and (> a 0)\n  (< a 10)\n"
    assert summary(chunk_text("x.smt2", src)) == [("declare-const", "a", 1, 1, ""), ("assert", "", 2, 3, "")]
