"""Chunking of Why3, Agda, Dafny and Isabelle: the hand-written declaration scanners that
serve both the index and the pair miner, and one index + search round trip."""

from __future__ import annotations

import random
import shutil
import subprocess

import pytest

from codesearch.indexer.chunking import chunk_text, language_for_path
from codesearch.model.routing import domain_of_language
from test_chunking import FIXTURES, assert_well_formed, chunks_of, find, summary


@pytest.mark.parametrize(
    "path, language",
    [
        ("stdlib/queue.mlw", "why3"),
        ("theories/old.why", "why3"),
        ("src/Data/Vec.agda", "agda"),
        ("proofs/sort.dfy", "dafny"),
        ("thys/Lists.thy", "isabelle"),
    ],
)
def test_formal_extensions_are_structured_and_routed_to_the_formal_space(path, language):
    assert language_for_path(path) == language
    assert domain_of_language(language) == "formal"


def lines_of(chunk) -> list[str]:
    return [x.strip() for x in chunk.text.split("\n")]


# ----------------------------------------------------------------------------------------
# Why3


def test_why3_declarations_comments_and_scopes():
    chunks = chunks_of("Queue.mlw")
    m, s = "module Queue", "module Queue > scope Lemmas"
    assert summary(chunks) == [
        ("type", "queue", 14, 14, m),
        ("function", "elements", 16, 18, m),
        ("constant", "empty", 20, 21, m),
        ("function", "size", 23, 28, m),
        ("lemma", "size_nonneg", 30, 30, m),
        ("predicate", "is_empty", 32, 32, m),
        ("function", "push", 34, 37, m),
        ("exception", "Empty", 39, 39, m),
        ("function", "pop", 41, 51, m),
        ("lemma", "push_not_empty", 55, 58, s),
        ("goal", "elements_empty", 62, 62, m),
    ]
    push = find(chunks, "function", "push")[0]
    assert push.text.startswith("  (** Add [x] at the back of the queue. *)\n  let push")
    assert "ensures { elements result = elements q ++ Cons x Nil }" in lines_of(push)
    # the inner `end`s of nested matches do not end the declaration or the module
    assert lines_of(find(chunks, "function", "pop")[0])[-2:] == ["end", "end"]
    assert "ensures { not is_empty (push x q) }" in lines_of(find(chunks, "lemma", "push_not_empty")[0])


# ----------------------------------------------------------------------------------------
# Agda


def test_agda_signatures_clauses_data_records_and_modules():
    chunks = chunks_of("Vec.agda")
    m = "module Vec"
    assert summary(chunks) == [
        ("data", "Vec", 8, 11, m),
        ("lemma", "cong", 15, 17, m),
        ("definition", "_++_", 19, 22, m),
        ("definition", "map", 24, 28, m),
        ("lemma", "map-id", 30, 34, m),  # the ≡ is on the type's second line
        ("record", "Pair", 36, 40, m),
        ("definition", "revAcc", 44, 50, "module Vec > module Reverse"),
        ("definition", "head", 52, 53, m),
    ]
    assert find(chunks, "definition", "map")[0].text.startswith("{- Apply a function to every element,")
    assert lines_of(find(chunks, "definition", "revAcc")[0])[-1] == "revAcc′ _ acc = acc"


# ----------------------------------------------------------------------------------------
# Dafny


def test_dafny_declarations_with_clauses_docs_and_containers():
    chunks = chunks_of("BankAccount.dfy")
    b, a = "module Bank", "module Bank > class Account"
    assert summary(chunks) == [
        ("function", "Sum", 8, 13, b),
        ("lemma", "SumAppend", 15, 25, b),
        ("datatype", "Transaction", 27, 27, b),
        ("class", "Account", 29, 30, b),
        ("field", "balance, history", 31, 32, a),
        ("predicate", "Valid", 34, 38, a),
        ("constructor", "", 40, 45, a),
        ("method", "Deposit", 47, 57, a),
        ("method", "Withdraw", 59, 74, a),
        ("function", "Balance", 76, 80, a),
        ("const", "MaxAccounts", 83, 83, b),
        ("lemma", "TransferPreservesTotal", 85, 93, b),
    ]
    lemma = find(chunks, "lemma", "SumAppend")[0]
    assert lemma.text.startswith("  /** Summing a concatenation sums both parts. */\n  lemma SumAppend")
    assert "ensures Sum(a + b) == Sum(a) + Sum(b)" in lines_of(lemma)
    transfer = find(chunks, "lemma", "TransferPreservesTotal")[0]
    assert transfer.text.startswith("  // A transfer moves money")
    assert sum(x.startswith(("requires", "ensures")) for x in lines_of(transfer)) == 5
    withdraw = find(chunks, "method", "Withdraw")[0]
    assert [x for x in lines_of(withdraw) if x.startswith(("requires", "modifies", "ensures"))] == [
        "requires Valid()",
        "modifies this",
        "ensures Valid()",
        "ensures ok ==> balance == old(balance) - amount",
        "ensures !ok ==> balance == old(balance)",
    ]
    assert find(chunks, "class", "Account")[0].text.startswith("  /** A bank account")


def test_dafny_braces_in_comments_strings_and_chars_do_not_confuse_the_scanner():
    src = (
        "/* a comment with } braces { and\n"
        "   /* nested */ method NotADecl() */\n"
        "method Greet() returns (s: string)\n"
        '  ensures s == "}{"\n'
        "{\n"
        "  var c := '}';\n"
        '  s := "}{"; // }\n'
        "}\n"
        "\n"
        "static ghost function {:opaque} Twice(x: int): int { 2 * x }\n"
        "least predicate Even(n: nat) { n == 0 || (n >= 2 && Even(n - 2)) }\n"
        "\n"
        "@IsolateAssertions\n"
        "method {:timeLimit 20} Slow(x': int)\n"
        "  decreases *\n"
        "{\n"
        "}\n"
        "\n"
        "trait Shape {\n"
        "  function Area(): real\n"
        "    reads this\n"
        "}\n"
        "class Empty {}\n"
        "type Id = nat\n"
    )
    chunks = chunk_text("Misc.dfy", src)
    assert_well_formed(src, chunks, "Misc.dfy")
    assert summary(chunks) == [
        ("method", "Greet", 1, 8, ""),  # the comment directly above is its doc
        ("function", "Twice", 10, 10, ""),
        ("predicate", "Even", 11, 11, ""),
        ("method", "Slow", 13, 17, ""),
        ("trait", "Shape", 19, 19, ""),
        ("function", "Area", 20, 21, "trait Shape"),
        ("class", "Empty", 23, 23, ""),
        ("type", "Id", 24, 24, ""),
    ]


# ----------------------------------------------------------------------------------------
# Isabelle


def test_isabelle_commands_proofs_text_blocks_and_locales():
    chunks = chunks_of("Lists.thy")
    t, loc = "theory Lists", "theory Lists > locale monoid"
    assert summary(chunks) == [
        ("fun", "rev_app", 7, 10, t),
        ("fun", "itrev", 12, 15, t),
        ("lemma", "itrev_rev_app", 17, 18, t),
        ("theorem", "rev_app_rev_app", 20, 30, t),
        ("doc", "", 32, 35, t),
        ("definition", "total", 37, 38, t),
        ("datatype", "tree", 40, 40, t),
        ("primrec", "mirror", 42, 44, t),
        ("locale", "monoid", 46, 50, t),
        ("definition", "mconcat", 53, 55, loc),
        ("lemma", "mconcat_append", 57, 61, loc),
        ("record", "point", 65, 67, t),
        ("abbreviation", "origin", 69, 70, t),
    ]
    thm = find(chunks, "theorem", "rev_app_rev_app")[0]
    assert thm.text.startswith("text \\<open>Reversing twice gives back the original list.\\<close>\ntheorem")
    assert lines_of(thm)[-1] == "qed"
    assert find(chunks, "fun", "itrev")[0].text.startswith("(* accumulator version, linear time *)")
    lemma = lines_of(find(chunks, "lemma", "mconcat_append")[0])
    assert lemma[1:3] == ['assumes "xs \\<noteq> []"', 'shows "mconcat (xs @ ys) = mconcat xs \\<cdot> mconcat ys"']
    assert lemma[-1] == "by (induction xs) (auto simp: assoc left_unit)"


def test_isabelle_keywords_in_comments_strings_and_proofs_start_nothing():
    src = (
        "theory Scratch imports Main begin\n"
        "\n"
        "(* lemma in_a_comment: True\n"
        "lemma still_comment: True *)\n"
        "lemma (in group) inv_unique [simp]:\n"
        '  "x \\<cdot> y = one \\<Longrightarrow>\n'
        'lemma inside_a_string"\n'
        "proof -\n"
        "  text \\<open>a remark inside the proof\\<close>\n"
        "  show ?thesis sorry\n"
        "qed\n"
        "\n"
        "context\n"
        "  fixes n :: nat\n"
        "begin\n"
        "  definition double where \"double = 2 * n\"\n"
        "end\n"
        "\n"
        "instantiation nat :: order begin\n"
        "instance proof qed\n"
        "end\n"
        "\n"
        "ML \\<open>\n"
        "  val lemma = 1\n"
        "\\<close>\n"
        "end\n"
    )
    chunks = chunk_text("Scratch.thy", src)
    assert_well_formed(src, chunks, "Scratch.thy")
    assert summary(chunks) == [
        ("lemma", "inv_unique", 3, 11, "theory Scratch"),  # with the comment above
        ("definition", "double", 16, 16, "theory Scratch > context"),
        ("instantiation", "nat", 19, 19, "theory Scratch"),
        ("instance", "", 20, 20, "theory Scratch > instantiation nat :: order"),
        ("code", "", 23, 25, "theory Scratch"),
    ]


# ----------------------------------------------------------------------------------------
# All four


@pytest.mark.parametrize("name", ["Queue.mlw", "Vec.agda", "BankAccount.dfy", "Lists.thy"])
def test_formal_files_are_never_windowed_and_survive_hostile_edits(name):
    text = (FIXTURES / name).read_text(encoding="utf-8")
    assert all(c.kind != "window" for c in chunk_text(name, text))
    rng = random.Random(name)
    lines = text.split("\n")
    for _ in range(30):  # unbalanced comments, braces, strings: still well-formed chunks
        cut = lines[: rng.randrange(len(lines))] + [rng.choice(["(*", "{-", "/*", '"', "{", "}", "\\<open>", "end"])]
        broken = "\n".join(cut + lines[len(cut) :])
        assert_well_formed(broken, chunk_text(name, broken), name)


def test_formal_declarations_larger_than_a_chunk_are_windowed_inside_their_span():
    src = "lemma Big(n: nat)\n  ensures n >= 0\n{\n" + "  assert n >= 0;\n" * 100 + "}\n"
    chunks = chunk_text("Big.dfy", src)
    assert_well_formed(src, chunks, "Big.dfy")
    assert {(c.kind, c.name) for c in chunks} == {("lemma", "Big")}
    assert chunks[0].start_line == 1 and chunks[-1].end_line == 104 and len(chunks) > 1


# ----------------------------------------------------------------------------------------
# Index and search


def test_index_and_search_find_a_dafny_and_an_isabelle_lemma_by_what_it_states(tmp_path, index_env):
    repo = tmp_path / "repos" / "proofs"
    repo.mkdir(parents=True)
    shutil.copy(FIXTURES / "BankAccount.dfy", repo / "BankAccount.dfy")
    shutil.copy(FIXTURES / "Lists.thy", repo / "Lists.thy")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    _, indexer, searcher = index_env
    summary_ = indexer.run([repo.parent])
    assert summary_.files_seen == 2 and summary_.chunks > 0
    s = searcher()
    top = s.search("reversing a list twice gives back the original list", limit=3)[0]
    assert (top.rel_path, top.language, top.kind, top.name) == ("Lists.thy", "isabelle", "theorem", "rev_app_rev_app")
    assert (top.start_line, top.end_line) == (20, 30)
    top = s.search("transfer between two accounts preserves the total balance", limit=3)[0]
    assert (top.rel_path, top.language, top.kind, top.name) == ("BankAccount.dfy", "dafny", "lemma", "TransferPreservesTotal")
    assert (top.start_line, top.end_line) == (85, 93)
