"""`search --explain`: why a result matched, from the real model's MaxSim on a real index."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

QUERIES = ["check if a value is within bounds", "evict the least recently used entry", "counter increments by one",
           "append two lists"]


def _check_places(results):
    """Every code place names a token that is on that line at that column of the file."""
    seen = 0
    for r in results:
        lines = open(r.path, encoding="utf-8").read().splitlines()
        for m in r.matches:
            if m["place"] == "code":
                line = lines[m["line"] - 1]
                assert line[m["column"] - 1 : m["column"] - 1 + len(m["code_token"])] == m["code_token"], (r.path, m)
                assert r.start_line <= m["line"] <= r.end_line
                seen += 1
    return seen


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, encoder):
    """One real index of the small repository, shared by the tests that only search it."""
    import shutil
    from pathlib import Path

    from codesearch.config import load_settings
    from codesearch.indexer.pipeline import Indexer
    from codesearch.indexer.store import Store
    from codesearch.search import Searcher

    from conftest import FIXTURES

    root = tmp_path_factory.mktemp("explain")
    repo = root / "repos" / "small"
    shutil.copytree(FIXTURES / "repo_small", repo)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    settings = load_settings(config_file=None, home=str(root / "home"))
    store = Store(Path(settings["home"]))
    Indexer(store, encoder, settings).run([repo])
    return repo, Path(settings["home"]), Searcher(store, encoder, settings)


def _parts(r) -> float:
    return sum(m["score"] for m in r.matches) + (r.lexical["score"] if r.lexical else 0.0) + r.prior


@pytest.mark.parametrize("method", ["hybrid", "multivector"])
def test_explained_places_are_real_tokens_and_the_shares_sum_to_the_score(indexed, method):
    s = indexed[2]
    seen = 0
    for q in QUERIES:
        plain = s.search(q, limit=5, method=method)
        results = s.search(q, limit=5, method=method, explain=True)
        # explaining changes nothing of the ranking
        assert [(r.path, r.start_line, r.score) for r in results] == [(r.path, r.start_line, r.score) for r in plain]
        assert all(r.matches is None for r in plain)
        for r in results:
            assert r.matches, r
            assert abs(_parts(r) - r.score) < 2e-3, (q, r.name, _parts(r), r.score)
            assert (r.lexical is not None) == (method == "hybrid")
            assert [m["score"] for m in r.matches] == sorted((m["score"] for m in r.matches), reverse=True)
        seen += _check_places(results)
    assert seen > 20


def test_explain_names_the_words_that_met_and_those_matched_as_words(indexed):
    s = indexed[2]
    top = s.search("check if a value is within bounds", limit=1, explain=True)[0]
    assert top.name == "contains"
    words = {m["query_token"] for m in top.matches}
    assert {"check", "value", "within", "bounds"} <= words
    value = next(m for m in top.matches if m["query_token"] == "value")
    assert value["place"] == "code" and value["code_token"] == "value"  # the parameter, or the doc's `value`
    assert "value" in top.lexical["words"] and "within" not in top.lexical["words"]
    # the word pieces of one word come back as that word (camelCase split by the model)
    r = s.search("leastRecently used entry", limit=3, explain=True)
    assert any(m["query_token"] == "least" for x in r for m in x.matches)
    assert not any((m["query_token"] or "").startswith("##") for x in r for m in x.matches)


def test_rows_indexed_before_groups_were_recorded_are_explained_too(small_repo, index_env):
    """An index whose vectors table has no token groups (written by an earlier version): the
    places are worked out again; the next index run adds the column and records new rows."""
    store, indexer, searcher = index_env
    indexer.run([small_repo])
    tbl = store.table("vectors")
    old = tbl.to_arrow().drop_columns(["groups"])
    merged_any = any(g for g in tbl.to_arrow().column("groups").to_pylist())
    assert merged_any  # (the default index merges near-identical tokens: the hard case is covered)
    store.db.drop_table("vectors")
    store._tables.pop("vectors", None)
    store.db.create_table("vectors", data=old)
    assert "groups" not in store.table("vectors").schema.names
    s = searcher()
    seen = 0
    for q in QUERIES:
        results = s.search(q, limit=5, explain=True)
        assert all(all(m["place"] is not None for m in r.matches) for r in results)
        seen += _check_places(results)
    assert seen > 20
    (small_repo / "src" / "more.rs").write_text("/// Clamp x into lo..=hi.\npub fn clamp_into(x: i64, lo: i64, hi: i64) -> i64 {\n    x.max(lo).min(hi)\n}\n")
    from codesearch.indexer.store import Store

    fresh = Store(store.home)  # (a new process: the column is added by the first write)
    indexer.store = fresh
    indexer.run([small_repo])
    data = fresh.table("vectors").to_arrow()
    assert "groups" in data.column_names
    assert data.column("groups").null_count == old.num_rows  # old rows stay unrecorded, the new one is


def test_search_explain_from_the_terminal(indexed):
    small_repo, home = indexed[0], indexed[1]
    run = lambda *a: subprocess.run([sys.executable, "-m", "codesearch.cli", "--home", str(home), *a],
                                    capture_output=True, text=True, timeout=300)
    plain = json.loads(run("search", "check if a value is within bounds", "--json", "-n", "2").stdout)
    assert "matches" not in plain[0]  # --json without --explain is as documented before
    out = run("search", "check if a value is within bounds", "--json", "--explain", "-n", "2")
    data = json.loads(out.stdout)
    m = data[0]["matches"][0]
    assert set(m) == {"query_token", "line", "column", "code_token", "score", "place"}
    assert set(data[0]["lexical"]) == {"score", "words"} and "prior" in data[0]
    text = run("search", "check if a value is within bounds", "--explain", "-n", "1").stdout
    assert "«" in text and "»" in text and "why: " in text and "\x1b[" not in text  # markers, not colour, in a pipe
    marked = text.split("«", 1)[1].split("»", 1)[0]
    assert marked and marked in (small_repo / "src" / "bounds.rs").read_text()


def test_merge_groups_say_which_stored_vector_each_token_is():
    from codesearch.indexer.quant import merge_token_groups

    rng = np.random.default_rng(0)
    base = rng.standard_normal((5, 16)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    v = np.concatenate([base, base[:2] + 1e-3])
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    merged, labels = merge_token_groups(v, 0.9)
    assert len(merged) == 5 and list(labels) == [0, 1, 2, 3, 4, 0, 1]
    assert merge_token_groups(base, 0.9)[1] is None  # nothing merged: the identity, not stored


@pytest.mark.parametrize("labels", [None, np.array([0, 1, 0, 2]), np.arange(600) % 300])
def test_token_groups_are_stored_in_a_byte_a_token_and_read_back(labels):
    from codesearch.indexer.store import pack_groups, unpack_groups

    raw = pack_groups(labels)
    expect = np.arange(4) if labels is None else labels
    assert list(unpack_groups(raw, 4)) == list(expect)
    assert len(raw) == (0 if labels is None else 1 + len(labels) * (1 if labels.max() < 256 else 2))


@pytest.mark.parametrize("text", ["checkNeverMatches x", "HTTPServer", "fooBarBaz_qux", "parseHTTPRequest2Go", "", "a", "ℕ.succ_leQ"])
def test_the_split_with_its_map_is_the_models_split_and_maps_back(text):
    """explain's copy of split_identifiers (with the spaces it inserts) must cut as the model does."""
    from codesearch.identifiers import split_identifiers, split_identifiers_with_map

    split, inserted = split_identifiers_with_map(text)
    assert split == split_identifiers(text)
    assert all(split[k] == " " for k in inserted)
    assert "".join(ch for k, ch in enumerate(split) if k not in set(inserted)) == text
