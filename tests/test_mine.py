"""Pair mining (codesearch data build) on real files: the real chunker, real git, BM25."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from codesearch.indexer.chunking import chunk_text
from codesearch.trainer import augment
from codesearch.trainer.mining.commits import commit_query, line_commits
from codesearch.trainer.mining.dataset import build_dataset
from codesearch.trainer.mining.exclusions import FALLBACK_HELDOUT, Exclusions
from codesearch.trainer.mining.one_file import mine_text
from codesearch.trainer.mining.one_source import mine_source
from codesearch.trainer.mining.sources import SourceSpec
from codesearch.trainer.negatives import mine_bm25_negatives, mine_model_negatives
from codesearch.trainer.pairs import (
    Origin,
    Pair,
    dedup_pairs,
    domain_for,
    read_jsonl,
    split_pairs,
    write_jsonl,
)

FIXTURES = Path(__file__).parent / "fixtures"
MINING = FIXTURES / "mining"
CHUNKING = FIXTURES / "chunking"


def mined(path: Path, rel: str | None = None):
    return mine_text(rel or path.name, path.read_text(encoding="utf-8"), corpus="fx").pairs


def by_source(pairs, source):
    return [p for p in pairs if p.source == source]


def pair_for(pairs, name, source="doc"):
    hits = [p for p in pairs if p.origin.name == name and p.source == source]
    assert hits, f"no {source} pair for {name}: {[(p.source, p.origin.name, p.query) for p in pairs]}"
    return hits[0]


# ---------------------------------------------------------------------------------------
# doc pairs, per language
# ---------------------------------------------------------------------------------------

DOC_CASES = [
    # (file, declaration, query, a line of the doc that must be gone, a code line that must stay)
    (MINING / "intervals.rs", "parse_interval", "Parses text such as 3..7 into an Interval.",
     "/// Returns `None` when either bound", "pub fn parse_interval(s: &str) -> Option<Interval> {"),
    (MINING / "intervals.rs", "width", "Returns the number of integers inside the interval.",
     "* Returns the number of integers", "pub fn width(&self) -> u64 {"),
    (MINING / "geometry.py", "distance", "Return the Euclidean distance between two points given as (x, y) pairs.",
     "Both points must have the same dimension.", "def distance(a, b):"),
    (MINING / "geometry.py", "BoundingBox", "An axis-aligned rectangle that encloses a set of points.",
     '"""An axis-aligned rectangle', "class BoundingBox:"),
    (MINING / "Lists.lean", "length_append", "The length of two appended lists is the sum of their lengths.",
     "/-- The length of two appended", "theorem length_append (xs ys : List Nat)"),
    (MINING / "Sorting.v", "insert", "Insert an element into a sorted list, keeping it sorted.",
     "(** Insert an element", "Fixpoint insert (x : nat) (l : list nat) : list nat :="),
    (MINING / "Counter.tla", "Increment", "Increment the counter while it is below the limit.",
     "\\* Increment the counter", "/\\ count' = count + 1"),
    (MINING / "bank.smt2", "deposit", "Apply one deposit of the given amount to a balance.",
     "; Apply one deposit", "(define-fun deposit ((b Int) (amount Int)) Int"),
    (MINING / "queue.mlw", "size", "The number of elements stored in a bounded queue of lists.",
     "(** The number of elements", "let rec function size (l: list int) : int"),
    (CHUNKING / "Inventory.java", "add", "Adds count units of sku.",
     "Adds {@code count}", "public void add(String sku, int count) {"),
    (CHUNKING / "router.ts", "get", "Register a handler for GET requests.",
     "/** Register a handler", "get(path: string, handler: Handler): this {"),
    (CHUNKING / "server.go", "Get", "returns the value stored under key.",
     "// Get returns the value", "func (s *Store) Get(key string) ([]byte, error) {"),
    (CHUNKING / "hashmap.c", "hm_entry", "One slot of the table.",
     "/* One slot of the table. */", "struct hm_entry {"),
]


@pytest.mark.parametrize("path,name,query,doc_line,code_line", DOC_CASES, ids=[f"{c[0].suffix}:{c[1]}" for c in DOC_CASES])
def test_doc_pair_is_first_sentence_and_positive_has_no_doc(path, name, query, doc_line, code_line):
    pairs = mined(path)
    p = pair_for(pairs, name)
    assert p.query == query
    assert doc_line not in p.positive
    assert code_line in p.positive
    header = p.positive.split("\n", 1)[0]
    assert header.startswith(path.name)  # Chunk.encoder_text(): "path [context]" then the code
    assert p.origin.corpus == "fx" and p.origin.path == path.name
    lines = path.read_text(encoding="utf-8").split("\n")
    assert code_line.strip() in "\n".join(lines[p.origin.start_line - 1 : p.origin.end_line])
    if path.suffix != ".py":  # the origin span starts below the doc (a docstring sits inside it)
        assert not any(doc_line in x for x in lines[p.origin.start_line - 1 : p.origin.end_line])


def test_domains_and_pair_fields():
    assert domain_for("rust") == "rust"
    for lang in ("lean", "coq", "tlaplus", "smtlib", "why3", "dafny", "agda", "isabelle"):
        assert domain_for(lang) == "formal"
    assert domain_for("python") == "general" and domain_for("go") == "general"
    assert domain_for("rust", personal=True) == "personal"
    rs = mined(MINING / "intervals.rs")
    assert {p.domain for p in rs} == {"rust"} and {p.language for p in rs} == {"rust"}
    assert {p.domain for p in mined(MINING / "Sorting.v")} == {"formal"}
    assert {p.domain for p in mined(MINING / "geometry.py")} == {"general"}


def test_doc_pairs_skip_short_and_name_only_docs():
    text = '''/// Width.
pub fn width() -> u64 { 1 }

/// The parse_interval function.
pub fn parse_interval() {}
'''
    pairs = mine_text("x.rs", text).pairs
    assert not by_source(pairs, "doc")


def test_a_doc_that_opens_with_a_list_item_gives_no_doc_pair():
    # "- Alg Analysis: Work O(1), ...": a bullet of notes, not what the function is (2,845 docs of
    # one Verus repository open so); the declaration falls back to a name pair.
    text = """/// - Alg Analysis: Code review: Work O(1), Span O(1), a field write of the tree.
pub fn set_left(x: u64) -> u64 { x }

/// Returns the left child of the node in the binary search tree.
pub fn left(x: u64) -> u64 { x }
"""
    pairs = mine_text("x.rs", text).pairs
    assert [p.query for p in by_source(pairs, "doc")] == ["Returns the left child of the node in the binary search tree."]
    assert [p.query for p in by_source(pairs, "name")] == ["set left"]


def test_lean_markdown_docs_and_guard_msgs_outputs():
    # Lean docstrings are Markdown: a line starting with "**" is bold, not a javadoc star; a
    # docstring above `#guard_msgs in` is the command's expected output, not documentation.
    text = """/-- **The dimension theorem for local rings.** The Krull dimension equals the growth degree.
* the first item of a list -/
theorem dimension_theorem (R : Type) : True := trivial

/--
error: The prover found a potential counter example for the following assignment of x.
-/
#guard_msgs in
theorem add_one_gt (x : Nat) : x + 1 > x := by omega
"""
    pairs = mine_text("Dim.lean", text, corpus="fx").pairs
    assert pair_for(pairs, "dimension_theorem").query == "The dimension theorem for local rings."
    assert not [p for p in by_source(pairs, "doc") if p.origin.name == "add_one_gt"]
    assert not [p for p in pairs if p.query.startswith("error:")]


# ---------------------------------------------------------------------------------------
# name, test and commit pairs
# ---------------------------------------------------------------------------------------


def test_name_pairs_for_undocumented_declarations():
    rs = mined(MINING / "intervals.rs")
    assert pair_for(rs, "merge_overlapping", "name").query == "merge overlapping"
    assert pair_for(rs, "overlaps", "name").query == "interval overlaps"  # owner + name
    assert not [p for p in by_source(rs, "name") if p.origin.name in ("parse_interval", "width", "new")]  # documented
    py = mined(MINING / "geometry.py")
    assert pair_for(py, "polygon_area", "name").query == "polygon area"
    assert pair_for(py, "contains_point", "name").query == "bounding box contains point"
    assert not [p for p in py if p.origin.name == "__init__"]
    # undocumented trivial names give nothing
    assert not mine_text("t.rs", "impl Foo {\n    pub fn new() -> Self { Foo }\n}\n").pairs


def test_test_pairs_target_the_tested_declaration():
    res = mine_source(SourceSpec("fx", str(MINING), commits=False), exclusions=Exclusions([], [], []))
    tests = {p.query: p for p in by_source(res.pairs, "test")}
    assert tests["polygon area of unit square"].origin.name == "polygon_area"
    assert tests["polygon area of unit square"].origin.path == "geometry.py"
    assert "def polygon_area(points):" in tests["polygon area of unit square"].positive
    assert tests["distance is symmetric"].origin.name == "distance"
    assert '"""Return the Euclidean distance' not in tests["distance is symmetric"].positive
    assert tests["parse interval reads both bounds"].origin.name == "parse_interval"
    assert "something unrelated entirely" not in tests
    # test functions themselves are never positives
    assert not [p for p in res.pairs if p.origin.name.startswith("test_") or p.origin.name.startswith("parse_interval_")]


def _git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_DATE": "2024-01-01T00:00:00", "GIT_COMMITTER_DATE": "2024-01-01T00:00:00"}
    subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false",
         "-C", str(repo), *args], check=True, capture_output=True, env=env,
    )  # fmt: skip


def test_commit_pairs_from_a_small_git_repository(tmp_path):
    repo = tmp_path / "proj"
    (repo / "src").mkdir(parents=True)
    _git(tmp_path, "init", "-q", str(repo))
    ranges = (
        "pub fn clamp_to_range(v: i64, lo: i64, hi: i64) -> i64 {\n    v.max(lo).min(hi)\n}\n\n"
        "pub fn split_words(s: &str) -> Vec<&str> {\n    s.split(' ').collect()\n}\n"
    )
    (repo / "src" / "util.rs").write_text(ranges)
    (repo / "src" / "stats.rs").write_text("pub fn mean_value(xs: &[f64]) -> f64 {\n    xs.iter().sum::<f64>() / xs.len() as f64\n}\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "Add helpers for ranges and statistics")
    (repo / "src" / "util.rs").write_text(ranges.replace("s.split(' ').collect()", "s.split_whitespace().collect()"))
    _git(repo, "commit", "-q", "-am", "Split words on any whitespace, not only spaces")
    res = mine_source(SourceSpec("proj", str(repo)), exclusions=Exclusions([], [], []))
    commits = by_source(res.pairs, "commit")
    got = {(p.query, p.origin.path, p.origin.name) for p in commits}
    # each declaration gets the commits that wrote the lines it has now: the first wrote all of
    # clamp_to_range and mean_value and split_words' signature, the second split_words' body
    first, second = "Add helpers for ranges and statistics", "Split words on any whitespace, not only spaces"
    assert got == {
        (first, "src/util.rs", "clamp_to_range"), (first, "src/util.rs", "split_words"),
        (first, "src/stats.rs", "mean_value"), (second, "src/util.rs", "split_words"),
    }
    p = next(p for p in commits if p.query == second)
    assert p.positive.startswith("src/util.rs\n") and "split_whitespace" in p.positive
    # a later commit that rewrites other lines of every file (here: a comment above each) leaves
    # those pairs alone; a subject that is no query ("wip") gives none
    for f in ("util.rs", "stats.rs"):
        (repo / "src" / f).write_text("// generated\n" + (repo / "src" / f).read_text())
    _git(repo, "commit", "-q", "-am", "wip")
    res2 = mine_source(SourceSpec("proj", str(repo)), exclusions=Exclusions([], [], []))
    assert {(p.query, p.origin.path, p.origin.name) for p in by_source(res2.pairs, "commit")} == got
    # lines not committed yet belong to no commit: an edited body leaves only the signature's
    (repo / "src" / "stats.rs").write_text("// generated\npub fn mean_value(xs: &[f64]) -> f64 {\n    0.0\n}\n")
    changes = line_commits(repo, "src/stats.rs")
    assert {c.subject: c.ranges for c in changes} == {first: [(2, 2), (4, 4)], "wip": [(1, 1)]}
    assert line_commits(tmp_path, "nothing.rs") == []  # not in git: no history
    # a shallow clone's one commit stands for the history cut off: it wrote nothing it can name
    _git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo}", str(tmp_path / "shallow"))
    assert line_commits(tmp_path / "shallow", "src/util.rs") == []
    assert {(c.subject) for c in line_commits(repo, "src/util.rs")} == {first, second, "wip"}


def test_commit_subjects_that_are_not_queries():
    assert commit_query("Merge branch 'main' into dev") is None
    assert commit_query("Bump version to 1.2.3") is None
    assert commit_query("wip") is None
    assert commit_query("fix: handle empty input in the parser (#42)") == "handle empty input in the parser"


# ---------------------------------------------------------------------------------------
# augmentation
# ---------------------------------------------------------------------------------------


def test_augmentation_attaches_templates_to_the_right_declarations():
    aug_pairs = []
    for name in ("Lists.lean", "Sorting.v", "Counter.tla", "bank.smt2", "queue.mlw", "intervals.rs", "geometry.py"):
        aug_pairs += [(p.origin.name, p.origin.kind, p.language, p.query) for p in by_source(mined(MINING / name), "augmented")]
    by_name: dict[str, list[str]] = {}
    for name, _kind, _lang, q in aug_pairs:
        by_name.setdefault(name, []).append(q)
    # theorems / lemmas
    assert any(q in ("the Lean theorem stating length append", "prove that length append") for q in by_name["length_append"])
    assert any("insert length" in q for q in by_name["insert_length"])
    assert any("size nonneg" in q for q in by_name["size_nonneg"])
    # termination: recursive definitions only
    assert any("terminates: halvings" in q or "recursive function halvings" in q for q in by_name["halvings"])
    assert any("insert" in q and ("terminates" in q or "recursive" in q) for q in by_name["insert"])
    assert any("sum" in q and ("terminates" in q or "recursive" in q) for q in by_name["sum"])
    assert "doubleAll" not in by_name and "head_or" not in by_name
    # TLA+: actions prime variables; invariants are named so and prime nothing
    assert by_name["Increment"] == ["the TLA+ action that increment"] or by_name["Increment"] == ["the TLA+ action increment"]
    assert any("reset" in q for q in by_name["Reset"])
    assert by_name["TypeOK"] == ["verify the invariant TypeOK holds"] or by_name["TypeOK"] == ["the TLA+ invariant type ok"]
    assert any("InvBounded" in q or "inv bounded" in q for q in by_name["InvBounded"])
    for op in ("Init", "Next", "Remaining", "Spec", "vars"):
        assert op not in by_name, (op, by_name.get(op))
    # SMT
    asserts = [q for n, k, _, q in aug_pairs if k == "assert"]
    assert "the SMT assertion that the balance is never negative at any step" in asserts
    assert "the SMT assertion about balance, fee" in asserts
    assert any("deposit" in q for q in by_name["deposit"])
    assert "balance" not in by_name  # declare-fun: no template
    # general code never gets formal templates
    assert not [x for x in aug_pairs if x[2] in ("rust", "python")]
    # every template matches its declaration's kind
    for name, kind, lang, q in aug_pairs:
        if "theorem" in q or "lemma" in q or q.startswith("prove that ") and "terminates" not in q:
            assert kind in augment.THEOREM_KINDS, (name, kind, q)
        if "action" in q:
            assert lang == "tlaplus" and kind == "operator" and name in ("Increment", "Reset"), (name, q)
        if "invariant" in q:
            assert name in ("TypeOK", "InvBounded"), (name, q)
        if "terminates" in q or "recursive function" in q:
            assert name in ("halvings", "sum", "insert", "size"), (name, q)


def test_augment_rules_directly():
    assert augment.is_tla_action("operator", "Next == x' = x + 1")
    assert not augment.is_tla_action("operator", 'Msg == "it\'s" \\* x\' in a comment')
    assert augment.is_tla_invariant("operator", "TypeOK", "TypeOK == x \\in Nat")
    assert not augment.is_tla_invariant("operator", "TypeOK", "TypeOK == x' = 1")
    assert not augment.is_tla_invariant("operator", "Invoke", "Invoke == 1")
    assert augment.is_tla_invariant("operator", "SafetyInvariant", "SafetyInvariant == x > 0")
    assert augment.is_recursive("lean", "def", "choice", "def choice (h : Nonempty α) : α := Classical.choice h") is False
    assert augment.is_recursive("lean", "def", "size", "def size : Tree → Nat\n  | .leaf => 0\n  | .node l r => l.size + r.size")
    assert augment.is_recursive("coq", "fixpoint", "f", "Fixpoint f n := n.")
    assert not augment.is_recursive("coq", "definition", "g", "Definition g n := n.")
    assert augment.humanise("app_nil_r") == "append nil right"


# ---------------------------------------------------------------------------------------
# Why3 and Agda: mined with the index's chunker
# ---------------------------------------------------------------------------------------


def test_why3_and_agda_scanners():
    chunks = chunk_text("queue.mlw", (MINING / "queue.mlw").read_text())
    got = [(c.kind, c.name, c.context) for c in chunks]
    assert got == [("function", "size", "module Queue"), ("lemma", "size_nonneg", "module Queue"),
                   ("predicate", "is_full", "module Queue")]  # fmt: skip
    assert chunks[0].text.lstrip().startswith("(** The number of elements")
    agda = """module Data.Thing where

-- Append two lists, keeping the order of their elements.
_++_ : List A → List A → List A
[]       ++ ys = ys
(x ∷ xs) ++ ys = x ∷ (xs ++ ys)

++-assoc : ∀ xs ys zs → (xs ++ ys) ++ zs ≡ xs ++ (ys ++ zs)
++-assoc []       ys zs = refl
++-assoc (x ∷ xs) ys zs = cong (x ∷_) (++-assoc xs ys zs)

data Colour : Set where
  red green : Colour
"""
    ch = chunk_text("Thing.agda", agda)
    assert [(c.kind, c.name, c.start_line, c.end_line) for c in ch] == [
        ("definition", "_++_", 3, 6), ("lemma", "++-assoc", 8, 10), ("data", "Colour", 12, 13)]  # fmt: skip
    pairs = mine_text("Thing.agda", agda).pairs
    doc = pair_for(pairs, "_++_")
    assert doc.query == "Append two lists, keeping the order of their elements." and "-- Append" not in doc.positive


# ---------------------------------------------------------------------------------------
# dedup, split
# ---------------------------------------------------------------------------------------


def _pair(query, code, path="a.rs", name="f", language="rust", domain="rust", corpus="c", line=1, source="doc"):
    return Pair(query, f"{path}\n{code}", [], domain, language, source, Origin(corpus, path, line, line + 2, name, "function"))


def test_dedup_exact_near_and_verbatim():
    body = "fn total_weight(items: &[Item]) -> u64 {\n" + "".join(
        f"    let w{i} = items[{i}].weight as u64 * {i + 1};\n" for i in range(30)
    ) + "    w0 + w29\n}"
    near = body.replace("w0 + w29", "w0  +  w29")  # whitespace-only change
    edited = body.replace("* 30;", "* 31;")  # one token changed: a near-duplicate
    other = "fn parse_header(line: &str) -> Option<(String, String)> {\n    let (k, v) = line.split_once(':')?;\n    Some((k.trim().to_string(), v.trim().to_string()))\n}"
    pairs = [
        _pair("sum of all item weights", body, "a.rs"),
        _pair("sum of all item weights", body, "a.rs"),  # exact duplicate
        _pair("total weight of the items", near, "b.rs", line=10),  # same code elsewhere
        _pair("weights added up over items", edited, "c.rs", line=20),  # near-duplicate code
        _pair("split a header line into key and value", other, "d.rs", name="parse_header"),
        _pair("parse_header", "fn parse_header() {}", "e.rs", name="parse_header"),  # query verbatim in code
        _pair("total weight", body, "a.rs", source="name"),  # same declaration, another query: kept
    ]
    kept, stats = dedup_pairs(pairs)
    assert [(p.query, p.origin.path) for p in kept] == [
        ("sum of all item weights", "a.rs"), ("split a header line into key and value", "d.rs"), ("total weight", "a.rs")]  # fmt: skip
    assert stats["exact duplicate"] == 1 and stats["query in positive"] == 1 and stats["near-duplicate positive"] == 2


def test_split_is_deterministic_by_file_and_never_straddles():
    rng = random.Random(0)
    pairs = []
    for domain, lang in (("rust", "rust"), ("formal", "coq"), ("general", "python")):
        for f in range(120):
            for k in range(rng.randint(3, 8)):
                pairs.append(_pair(f"query {domain} {f} {k}", f"code {f} {k}", f"src/f{f}.x", f"n{k}", lang, domain, line=k))
    train, held = split_pairs(pairs, 0.05, 50)
    shuffled = pairs[:]
    rng.shuffle(shuffled)
    train2, held2 = split_pairs(shuffled, 0.05, 50)
    assert {id(p) for p in held} == {id(p) for p in held2} and len(train) + len(held) == len(pairs)
    for domain in ("rust", "formal", "general"):
        n = sum(p.domain == domain for p in held)
        assert 50 <= n <= 0.2 * sum(p.domain == domain for p in pairs), (domain, n)
    held_files = {(p.domain, p.file_key) for p in held}
    assert not [p for p in train if (p.domain, p.file_key) in held_files]
    # a small domain (< 500 pairs) only holds out its 5% by hash
    small = [p for p in pairs if p.domain == "rust"][:100]
    _, h = split_pairs(small, 0.05, 50)
    assert len(h) < 50


def test_split_never_holds_out_more_than_half_of_a_group():
    """A small repository where one file holds most of a group's pairs: topping the held-out
    side up to its size takes smaller files, never the big one (which left 4 of 117 pairs to
    train on)."""
    big = [_pair(f"q big {k}", f"code {k}", "src/big.rs", f"n{k}", line=k) for k in range(100)]
    small = [_pair(f"q {f} {k}", f"code {f} {k}", f"src/s{f}.rs", f"n{k}", line=k) for f in range(20) for k in range(3)]
    pairs = big + small
    train, held = split_pairs(pairs, 0.05, 40, min_domain_pairs=60)
    assert 0 < len(held) <= len(pairs) // 2 and len(train) >= len(pairs) // 2, (len(train), len(held))
    assert not [p for p in held if p.file_key == big[0].file_key]
    assert len(held) >= 40  # still as many as asked, from the small files
    # a group of one file is trained on, not held out whole
    _, h = split_pairs(big, 0.05, 40, min_domain_pairs=60)
    assert h == []


def test_pair_jsonl_round_trip(tmp_path):
    p = _pair("find the max", "fn max() {}")
    p.negatives = ["x.rs\nfn min() {}"]
    write_jsonl(tmp_path / "p.jsonl", [p, p])
    back = read_jsonl(tmp_path / "p.jsonl")
    assert back == [p, p] and back[0].to_dict()["origin"]["path"] == "a.rs"
    row = json.loads((tmp_path / "p.jsonl").read_text().splitlines()[0])
    assert set(row) == {"query", "positive", "negatives", "domain", "language", "source", "origin"}
    assert set(row["origin"]) == {"corpus", "path", "start_line", "end_line", "name", "kind"}


# ---------------------------------------------------------------------------------------
# hard negatives
# ---------------------------------------------------------------------------------------


def _fixture_pairs():
    res = mine_source(SourceSpec("fx", str(MINING), commits=False), exclusions=Exclusions([], [], []))
    extra = mine_source(SourceSpec("ch", str(CHUNKING), commits=False), exclusions=Exclusions([], [], []))
    pairs, _ = dedup_pairs(res.pairs + extra.pairs)
    return pairs


def test_bm25_negatives_are_same_language_and_never_the_positive():
    pairs = _fixture_pairs()
    lang_of = {}
    for p in pairs:
        lang_of[p.positive] = p.language
    stats = mine_bm25_negatives(pairs, k=3, seed=0)
    assert stats["pairs"] == len(pairs) and stats["bm25"] > 0
    for p in pairs:
        assert len(p.negatives) <= 3 and len(set(p.negatives)) == len(p.negatives)
        for n in p.negatives:
            assert n != p.positive
            assert lang_of[n] == p.language
            if p.origin.name:  # never another chunk of the same declaration (or a cfg twin)
                same = [q for q in pairs if q.positive == n and (q.origin.path, q.origin.name) == (p.origin.path, p.origin.name)]
                assert not same
    # a language with several declarations gets BM25 negatives for its documented pairs
    rust = [p for p in pairs if p.language == "rust" and p.source == "doc"]
    assert rust and all(p.negatives for p in rust)


def test_bm25_drops_likely_false_negatives():
    # two declarations that answer the same query equally well: neither is the other's negative
    a = _pair("parse an interval from text", "fn parse_interval_a(s: &str) { parse interval text }", "a.rs", "parse_interval_a")
    b = _pair("read an interval from a string", "fn parse_interval_b(s: &str) { parse interval text }", "b.rs", "parse_interval_b")
    c = _pair("merge sorted lists", "fn merge(a: &[i32], b: &[i32]) { interval }", "c.rs", "merge")
    d = _pair("compute a checksum", "fn checksum(bytes: &[u8]) -> u32 { 0 }", "d.rs", "checksum")
    pairs = [a, b, c, d]
    mine_bm25_negatives(pairs, k=1, fill_random=False)
    assert a.negatives == [c.positive]  # b scores like a's own positive: a likely false negative
    same_query = [_pair("the same doc", "fn x1() { same doc }", "x.rs", "x1"), _pair("the same doc", "fn x2() { same doc }", "y.rs", "x2")]
    mine_bm25_negatives(same_query, k=3, fill_random=True)
    assert same_query[0].negatives == [] and same_query[1].negatives == []


class _BagOfWordsEncoder:
    """A stand-in with the Encoder's pooled API: hashed bag-of-words unit vectors."""

    def _vec(self, texts):
        from codesearch.indexer.store import code_words

        out = np.zeros((len(texts), 64), np.float32)
        for i, t in enumerate(texts):
            for w in code_words(t):
                out[i, hash(w) % 64] += 1
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)
        return [None] * len(texts), out

    def encode_documents(self, texts, batch_size=32):
        return self._vec(texts)

    def encode_queries_pooled(self, queries, batch_size=32):
        return self._vec(queries)


def test_model_negatives_use_pooled_vectors():
    pairs = _fixture_pairs()
    stats = mine_model_negatives(pairs, _BagOfWordsEncoder(), k=2)
    assert stats["pairs"] > 0 and stats["model"] > 0
    langs = {p.positive: p.language for p in pairs}
    for p in pairs:
        assert p.positive not in p.negatives and len(p.negatives) <= 2
        assert all(langs[n] == p.language for n in p.negatives)


def test_model_negatives_of_a_large_pool_are_those_of_a_full_sort():
    """Past k + 32 documents each block of queries keeps its best few candidates: the chosen
    negatives score exactly as those of sorting every row whole (exclusions and the
    false-negative threshold included; a row whose few all fail is searched whole)."""
    from codesearch.trainer.negatives import _LanguagePool, _select
    from codesearch.trainer.pairs import Origin, Pair

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    pairs = []
    for i in range(300):
        text = " ".join(rng.choice(words, size=6))
        # every third declaration shares its origin with the next (a window twin: excluded)
        origin = Origin("src", f"f{i // 3}.rs", i, i + 1, f"n{i // 2}", "fn")
        pairs.append(Pair(f"q {text}", f"fn d{i}() {{ {text} }}", [], "rust", "rust", "doc", origin))
    enc = _BagOfWordsEncoder()
    stats = mine_model_negatives(pairs, enc, k=3, block=64)
    assert stats["pairs"] == 300
    pool = _LanguagePool(pairs)
    _, d = enc.encode_documents(pool.docs)
    _, q = enc.encode_queries_pooled([p.query for p in pairs])
    sims = np.concatenate([q[i : i + 64] @ d.T for i in range(0, len(pairs), 64)])  # the same products, by block
    for n, p in enumerate(pairs):
        expected = _select(sims[n], pool.index[p.positive], pool.excluded(p), 3, 0.95, floor=None)
        got = [pool.index[x] for x in p.negatives]
        assert not set(got) & set(pool.excluded(p))
        # equal scores may be broken either way (bag-of-words twins): compare the scores
        assert [sims[n][i] for i in got] == [sims[n][i] for i in expected]


# ---------------------------------------------------------------------------------------
# held-out sources are never read
# ---------------------------------------------------------------------------------------


def test_heldout_file_and_fallback_agree():
    ex = Exclusions.from_heldout_file()
    assert ex.crates == sorted(FALLBACK_HELDOUT["crate"])
    assert ex.python_modules == sorted(FALLBACK_HELDOUT["python"])
    assert ex.coq_folders == sorted(FALLBACK_HELDOUT["coq"])
    assert ex.repos == sorted(FALLBACK_HELDOUT["repo"])
    for line in (Path(__file__).parent.parent / "evals" / "heldout_sources.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            src = line.split("\t")[4]
            assert ex.reason(src) and ex.reason(src + "/x/y.rs")


def test_heldout_and_reserved_sources_are_never_read(tmp_path, monkeypatch):
    import codesearch.indexer.walk as walk_mod

    forbidden = [
        "registry/itertools-0.12.1/src/lib.rs",  # another version of a held-out crate
        "registry/hashbrown-0.14.0/src/map.rs",
        "vendor/smallvec/src/lib.rs",  # a vendored copy (a crate root)
        "mirrors/tlaplus/Examples/specs/Paxos.tla",
        "mirrors/tlaplus+Examples/Paxos.tla",
        "mirrors/batteries/Batteries/Data/List.lean",
        "mirrors/verus/source/vstd/seq.rs",
        "registry/jiff-0.1.13/src/civil.rs",
        "cpython/Lib/json/decoder.py",
        "pyenv/lib/python3.12/random.py",
        "coq/theories/Lists/List.v",
        "checkouts/cedar-policy+cedar-spec/cedar-lean/Cedar/Spec.lean",  # an eval set's repository
        "checkouts/lecopivo+SciLean/SciLean/Analysis/Calculus/FDeriv.lean",  # a validation set's repository
        "elsewhere/InteractionTrees/theories/Core/ITreeDefinition.v",
        "elsewhere/CommunityModules/modules/Functions.tla",
        "checkouts/vostd-main/ostd/src/mm/frame/mod.rs",  # the verus eval set, as an archive download
        "checkouts/asterinas/ostd/src/mm/frame/mod.rs",  # the code vostd's ostd/ was copied from
    ]
    allowed = ["registry/regex-1.7.1/src/lib.rs", "cpython/Lib/calendar_utils.py", "coq/theories/Reals/Rdefs.v",
               "vendor/bytes_helpers/src/lib.rs", "checkouts/cedar-spec-notes/Spec.tla"]  # fmt: skip
    for i, rel in enumerate(forbidden + allowed):
        f = tmp_path / "src" / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        doc = f"Adds two numbers together for caller number {i}."
        if f.suffix == ".py":
            f.write_text(f'def add_numbers_{i}(a, b):\n    """{doc}"""\n    return a + b + {i}\n')
        elif f.suffix == ".v":
            f.write_text(f"(** {doc} *)\nDefinition add_numbers_{i} (a b : nat) := a + b + {i}.\n")
        elif f.suffix in (".tla", ".lean"):
            f.write_text(f"---- MODULE M ----\n\\* {doc}\nAdd{i}(a, b) == a + b + {i}\n====\n")
        else:
            f.write_text(f"/// {doc}\npub fn add_numbers_{i}(a: i32, b: i32) -> i32 {{\n    a + b + {i}\n}}\n")
    (tmp_path / "src" / "vendor" / "smallvec" / "Cargo.toml").write_text('[package]\nname = "smallvec"\n')
    read: list[str] = []
    real = walk_mod.read_text

    def spy(file):
        read.append(str(getattr(file, "path", file)))
        return real(file)

    monkeypatch.setattr(walk_mod, "read_text", spy)
    real_open = open

    def spy_open(file, *a, **k):
        read.append(str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr("builtins.open", spy_open)
    summary = build_dataset(
        [SourceSpec("all", str(tmp_path / "src")), SourceSpec("reserved-root", str(tmp_path / "src" / "mirrors" / "batteries"))],
        None, negatives=0, exclusions=Exclusions.from_heldout_file(),
    )  # fmt: skip
    monkeypatch.setattr("builtins.open", real_open)
    for rel in forbidden:
        assert not [r for r in read if r.endswith(rel)], rel
    pairs = summary["train_pairs"] + summary["heldout_pairs"]
    paths = {p.origin.path for p in pairs}
    assert paths == set(allowed)
    assert summary["sources_skipped"] == [
        {"name": "reserved-root", "path": str(tmp_path / "src" / "mirrors" / "batteries"), "reason": "reserved benchmark"}]  # fmt: skip
    excluded = sum(v for k, v in summary["sources_used"][0]["stats"].items() if k.startswith("excluded"))
    assert excluded == len(forbidden) + 1  # and vendor/smallvec/Cargo.toml


# ---------------------------------------------------------------------------------------
# end to end: files and CLI
# ---------------------------------------------------------------------------------------


def test_build_writes_train_heldout_summary_and_cli(tmp_path):
    from click.testing import CliRunner

    from codesearch.cli import main

    src = tmp_path / "code"
    shutil.copytree(MINING, src / "mining")
    shutil.copytree(CHUNKING, src / "chunking")
    cfg = tmp_path / "data.yaml"
    cfg.write_text(
        f"negatives: 2\nsources:\n  - name: fx\n    path: {src}\n    max_pairs: 1000\n"
        f"  - name: gone\n    path: {tmp_path / 'missing'}\n"
    )
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["data", "build", "--config", str(cfg), "--out", str(out), "--seed", "0"])
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    train = read_jsonl(out / "train.jsonl")
    held = read_jsonl(out / "heldout.jsonl")
    assert summary["train"]["total"] == len(train) > 20
    assert summary["heldout"]["total"] == len(held)
    assert summary["sources_skipped"][0]["name"] == "gone" and summary["sources_skipped"][0]["reason"] == "missing"
    assert set(summary["train"]["domain"]) <= {"rust", "formal", "general"} and "formal" in summary["train"]["domain"]
    assert all(len(p.negatives) <= 2 for p in train)
    assert "train:" in r.output
    # deterministic: a second build gives the same bytes
    out2 = tmp_path / "out2"
    CliRunner().invoke(main, ["data", "build", "--config", str(cfg), "--out", str(out2)])
    assert (out / "train.jsonl").read_bytes() == (out2 / "train.jsonl").read_bytes()
    assert (out / "heldout.jsonl").read_bytes() == (out2 / "heldout.jsonl").read_bytes()


@pytest.mark.parametrize("config, message", [
    ("sources:\n  - {name: x, path: /tmp, kind: rust}\n", "source x: unknown key 'kind'; the keys are: name, path"),
    ("sources:\n  - {name: x, path: /tmp, domain: lean}\n", "unknown domain 'lean'; one of general, rust, formal"),
    ("sources:\n  - {name: x}\n", "a source needs at least `path`"),
    ("source:\n  - {path: /tmp}\n", "unknown setting 'source'; the settings are: sources,"),
    ("sources: [\n", "not valid YAML"),
    ("sources: []\n", "no pairs mined: the config lists no sources"),
    ("sources:\n  - {name: gone, path: /nonexistent/x}\n", "no pairs mined: 1 of its 1 sources skipped"),
])
def test_data_build_says_what_is_wrong_with_its_config(tmp_path, config, message):
    """A typo in a data config (a key, a domain) was ignored, so a build mined what the user did
    not ask for; a config that gives no pairs wrote empty files and exited 0."""
    from click.testing import CliRunner

    from codesearch.cli import main

    cfg = tmp_path / "data.yaml"
    cfg.write_text(config)
    r = CliRunner().invoke(main, ["data", "build", "--config", str(cfg), "--out", str(tmp_path / "out")])
    assert r.exit_code == 2, r.output
    errors = [line for line in r.output.splitlines() if line.startswith("codesearch: error:")]
    assert len(errors) == 1 and message in errors[0], r.output
