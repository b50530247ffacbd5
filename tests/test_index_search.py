"""Indexing and searching real files with the real model and a real LanceDB index."""

from __future__ import annotations

import os
from pathlib import Path

from codesearch.search import Filters


def _chunk_rows(store):
    return store.table("chunks").search().select(["id", "path", "start_line", "end_line", "name"]).limit(None).to_arrow().to_pylist()


def test_search_finds_the_described_function(small_repo, index_env):
    store, indexer, searcher = index_env
    summary = indexer.run([small_repo.parent])
    assert summary.repos == 1 and summary.files_seen == 5
    assert summary.embedded == summary.chunks > 0
    results = searcher().search("check if a value is within bounds", limit=3)
    assert results[0].name == "contains"
    assert results[0].path == str(small_repo / "src" / "bounds.rs")
    top = searcher().search("evict the least recently used entry", limit=3)
    # Both the LRU class (whose doc says it evicts) and its `put` (which evicts) answer this.
    assert top[0].name in ("put", "LRUCache") and top[0].rel_path == "src/cache.py"


def test_second_run_embeds_nothing(small_repo, index_env):
    store, indexer, _ = index_env
    first = indexer.run([small_repo])
    again = indexer.run([small_repo])
    assert first.embedded > 0
    assert again.embedded == 0 and again.files_indexed == 0 and again.files_unchanged == 5
    assert again.total_chunks == first.total_chunks


def test_an_index_cut_by_another_chunker_version_is_cut_again_once(small_repo, index_env):
    from codesearch.indexer.chunking import CHUNKER_VERSION

    store, indexer, _ = index_env
    first = indexer.run([small_repo])
    assert store.meta()["chunker"] == CHUNKER_VERSION
    store.write_meta(chunker=CHUNKER_VERSION - 1)  # as an index built before this version
    again = indexer.run([small_repo])
    assert again.files_indexed == 5 and again.files_unchanged == 0  # every file cut again ...
    assert again.embedded == 0 and again.total_chunks == first.total_chunks  # ... same chunks keep their vectors
    assert store.meta()["chunker"] == CHUNKER_VERSION
    third = indexer.run([small_repo])
    assert third.files_indexed == 0 and third.files_unchanged == 5


def test_changed_and_deleted_files_are_updated(small_repo, index_env):
    store, indexer, searcher = index_env
    indexer.run([small_repo])
    before = {r["id"] for r in _chunk_rows(store)}
    py = small_repo / "src" / "cache.py"
    py.write_text(py.read_text() + '\n\ndef fibonacci_numbers(n):\n    """Yield the first n Fibonacci numbers."""\n    a, b = 0, 1\n    for _ in range(n):\n        yield a\n        a, b = b, a + b\n')
    os.utime(py, ns=(py.stat().st_atime_ns, py.stat().st_mtime_ns + 10**9))
    (small_repo / "proofs" / "Counter.tla").unlink()
    summary = indexer.run([small_repo])
    assert summary.files_removed == 1 and summary.files_indexed == 1
    # Only the new function needed the model; the file's other chunks were reused.
    assert summary.embedded == 1
    rows = _chunk_rows(store)
    assert not any(r["path"].endswith("Counter.tla") for r in rows)
    assert len({r["id"] for r in rows}) == len(rows)
    assert searcher().search("fibonacci sequence generator", limit=1)[0].name == "fibonacci_numbers"
    assert before - {r["id"] for r in rows}  # the deleted file's chunks are gone


def test_identical_files_in_two_repos_are_embedded_once(small_repo, index_env, tmp_path):
    import shutil

    store, indexer, _ = index_env
    clone = small_repo.parent / "clone"
    shutil.copytree(small_repo, clone)
    summary = indexer.run([small_repo.parent])
    assert summary.repos == 2
    assert summary.chunks == 2 * summary.embedded
    assert store.table("vectors").count_rows() == summary.embedded


def test_filters(small_repo, index_env):
    _, indexer, searcher = index_env
    indexer.run([small_repo])
    s = searcher()
    q = "length of a list or interval"
    assert {r.language for r in s.search(q, filters=Filters(lang=["lean"]))} == {"lean"}
    assert {r.kind for r in s.search(q, filters=Filters(kind=["theorem"]))} == {"theorem"}
    by_glob = s.search(q, filters=Filters(path="src/*.rs"))
    assert by_glob and all(r.rel_path == "src/bounds.rs" for r in by_glob)
    by_prefix = s.search(q, filters=Filters(path="proofs/"))
    assert by_prefix and all(r.rel_path.startswith("proofs/") for r in by_prefix)
    assert s.search(q, filters=Filters(repo="small")) and not s.search(q, filters=Filters(repo="other"))


def test_every_method_ranks_the_obvious_answer_first(small_repo, index_env):
    _, indexer, searcher = index_env
    indexer.run([small_repo])
    s = searcher()
    for method in ("hybrid", "multivector", "dense", "bm25"):
        results = s.search("parse lo..hi into an interval", method=method, limit=3)
        assert results[0].name == "parse_interval", method


def test_file_that_turns_binary_or_ignored_leaves_the_index(small_repo, index_env):
    store, indexer, _ = index_env
    indexer.run([small_repo])
    py = small_repo / "src" / "cache.py"
    py.write_bytes(b"\x00\x01binary now" * 50)
    (small_repo / ".codesearchignore").write_text("proofs/\n")
    summary = indexer.run([small_repo])
    assert summary.skipped["binary"] == 1
    paths = {r["path"] for r in _chunk_rows(store)}
    assert paths == {str(small_repo / "src" / "bounds.rs")}
    assert indexer.run([small_repo]).embedded == 0


def test_fetched_token_vectors_do_not_keep_their_whole_batch_alive(tmp_path):
    """The searcher's cache counts each matrix's bytes against its cap: a matrix must not be a
    view that keeps the decoded matrices of every other key fetched with it in memory."""
    import numpy as np

    from codesearch.indexer.quant import TokenCodec
    from codesearch.indexer.store import Store

    store = Store(tmp_path / "home", dim=256)
    store.set_codec(TokenCodec.new("q2", 256))
    rng = np.random.default_rng(0)
    items = [(f"k{i}", rng.standard_normal((20 + i, 256)).astype(np.float32), rng.standard_normal(256)) for i in range(8)]
    store.add_vectors(items)
    for fetch in (store.get_scoring_vectors, store.get_vectors):
        got = fetch([k for k, _, _ in items])
        assert sorted(got) == sorted(k for k, _, _ in items)
        for k, v in got.items():
            assert v.base is None or v.base.nbytes == v.nbytes, k  # owns its memory, nothing more
            assert len(v) == 20 + int(k[1:])


def test_a_long_lived_reader_lets_go_of_old_versions_cached_reads(small_repo, index_env, monkeypatch):
    # A language server reads each version an edit makes; LanceDB's caches kept what every one
    # of them needed (1-2 MB an edit at 20k chunks). Past a budget the reader starts them again.
    # (Reads now go through Lance's own session; the same holds.)
    import codesearch.indexer.store as store_mod
    from codesearch.config import load_settings
    from codesearch.indexer.store import Store
    from codesearch.search import Searcher

    store, indexer, _ = index_env
    indexer.run([small_repo])
    reader = Store(store.home)
    searcher = Searcher(reader, indexer.encoder, load_settings(config_file=None, home=str(store.home)))
    searcher.prepare()
    assert searcher.search("check if a value is within bounds", limit=1)[0].name == "contains"
    session = reader._session

    def edit(name: str, doc: str) -> None:
        py = small_repo / "src" / "cache.py"
        py.write_text(py.read_text() + f'\n\ndef {name}(n):\n    """{doc}"""\n    return n\n')
        os.utime(py, ns=(py.stat().st_atime_ns, py.stat().st_mtime_ns + 10**9))
        indexer.run([small_repo])

    # Within the budget: the same connection reads the new version.
    edit("fibonacci_numbers", "Yield the first n Fibonacci numbers.")
    searcher.prepare()
    assert searcher.search("fibonacci sequence generator", limit=1)[0].name == "fibonacci_numbers"
    assert reader._session is session
    assert reader._db is None  # (a store that only reads never connects LanceDB: reads go through Lance)
    grown = reader._session.size_bytes()
    assert grown > 0
    # Past it: a new connection with empty caches, which reads the new version alike.
    monkeypatch.setattr(store_mod, "READ_CACHE_RENEW_BYTES", grown // 2)
    edit("collatz_steps", "Count the steps of the Collatz sequence from n down to one.")
    searcher.prepare()
    assert reader._session is not session
    assert searcher.search("steps of the collatz sequence", limit=1)[0].name == "collatz_steps"
    assert searcher.search("fibonacci sequence generator", limit=1)[0].name == "fibonacci_numbers"
    assert reader._session.size_bytes() < session.size_bytes()  # (the old caches held two versions' reads)


def test_a_searcher_finds_the_words_of_a_function_written_since_its_last_search(small_repo, index_env):
    # The full-text half takes its candidates' paths and lines from the rows the searcher holds
    # in memory (those of the version its last search read), and reads the rows of chunks
    # written since by their row id: results as a fresh searcher gives them.
    from codesearch.config import load_settings
    from codesearch.indexer.store import Store
    from codesearch.search import Searcher

    store, indexer, _ = index_env
    indexer.run([small_repo])
    settings = load_settings(config_file=None, home=str(store.home))
    settings["search"]["exact_below"] = 0  # (candidates as in a big index: the path with rows held)
    searcher = Searcher(Store(store.home), indexer.encoder, settings)
    assert searcher.search("check if a value is within bounds", limit=1)[0].name == "contains"

    rs = small_repo / "src" / "bounds.rs"
    rs.write_text(rs.read_text() + "\npub fn zygomorphic_quux_total(v: &[u64]) -> u64 {\n    v.iter().sum()\n}\n")
    indexer.run([small_repo])

    def shown(s, method):
        return [(r.rel_path, r.name, r.start_line, r.end_line, r.score) for r in s.search("zygomorphic quux total", method=method)]

    fresh = Searcher(Store(store.home), indexer.encoder, settings)
    for method in ("bm25", "hybrid", "bm25"):  # (bm25 first: the rows held are still the last version's)
        got = shown(searcher, method)
        assert got[0][:2] == ("src/bounds.rs", "zygomorphic_quux_total")
        assert got == shown(fresh, method)
