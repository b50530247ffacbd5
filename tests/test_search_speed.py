"""The faster arithmetic of queries and index runs gives the results the plain one gave (issue 19)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fnmatch import fnmatchcase

import numpy as np
import pytest

from codesearch.indexer.quant import CODECS, TokenCodec
from codesearch.model import DEFAULT_MODEL_DIR
from codesearch.model.query import QueryEncoder
from codesearch.roles import _COMPILED, LIB, role_of
from codesearch.scoring import PackedDocs, maxsim_many
from codesearch.search import one_blas_thread


def test_maxsim_many_equals_the_plain_product():
    # flat @ q.T is 3-4 times faster than q @ flat.T. With some OpenBLAS kernels the two sum in
    # the same order (bit-identical on the machine of 2026-12-03); with others (the AMD EPYC of
    # 2026-12-06, OpenBLAS 0.3.31) they differ by float32 rounding, at most 2.2e-7 relative.
    rng = np.random.default_rng(0)
    for _ in range(20):
        docs = [rng.standard_normal((int(rng.integers(1, 90)), 64)).astype(rng.choice([np.float16, np.float32]))
                for _ in range(int(rng.integers(1, 60)))]
        q = rng.standard_normal((int(rng.integers(1, 30)), 64)).astype(np.float32)
        flat = np.concatenate(docs).astype(np.float32)
        starts = np.concatenate([[0], np.cumsum([len(d) for d in docs])[:-1]])
        plain = np.maximum.reduceat(q @ flat.T, starts, axis=1).sum(axis=0)
        np.testing.assert_allclose(maxsim_many(q, docs), plain, rtol=2e-6, atol=2e-6 * np.abs(plain).max())
        assert np.array_equal(maxsim_many(q, PackedDocs(docs)), maxsim_many(q, docs))


@pytest.mark.parametrize("products", [True, False], ids=["onnxruntime", "numpy"])
def test_pooled_candidates_from_int8_codes_are_the_exact_best_rows(monkeypatch, products):
    """Candidates scored from int8 codes, then exactly where their error bound says they may be
    among the best, are the best rows of the exact float32 scores: the same rows, scores and
    order (ties in the given order), with near-duplicate vectors, exact duplicates, masks, two
    spaces and the product split in halves; with the query in 8 bits too and ONNX Runtime's
    integer products (the default where it runs), and with numpy's float product."""
    import codesearch.search
    from codesearch.search import PooledScores

    rng = np.random.default_rng(7)
    dim = 64
    centres = rng.standard_normal((30, dim))
    # clusters of near-duplicates (their int8 scores are in a different order from the exact
    # ones), exact duplicates, and scattered rows
    near = centres[rng.integers(0, 30, 2000)] + 0.02 * rng.standard_normal((2000, dim))
    stored = np.concatenate([near, near[:300], rng.standard_normal((700, dim))]).astype(np.float16)
    stored[5] = 0  # (a zero vector scores 0)
    stored = stored[rng.permutation(len(stored))]
    tie = rng.permutation(len(stored))
    exact = stored.astype(np.float32) / np.maximum(np.linalg.norm(stored.astype(np.float32), axis=1), 1e-30)[:, None]
    if not products:  # (what a user who keeps queries in numpy gets)
        monkeypatch.setenv("CODESEARCH_QUERY_RUNTIME", "numpy")
    pooled = PooledScores(stored)
    assert (pooled.products is not None) == products and pooled.stored is stored  # (ONNX Runtime's kernel is exact here)
    codes = pooled.products.codes.T if products else pooled.codes
    assert codes.dtype == np.int8 and np.abs(codes[:, 0::2].astype(int) + codes[:, 1::2]).max() <= 128
    split = (0, 1800, len(stored))
    for split_rows in (50_000, 500):
        monkeypatch.setattr(codesearch.search, "_SPLIT_ROWS", split_rows)
        for trial in range(12):
            qs = [centres[rng.integers(0, 30)] + 0.01 * rng.standard_normal(dim) for _ in range(2)]
            qs = [(q / np.linalg.norm(q)).astype(np.float32) for q in qs]
            blocks = [(split[0], split[1], qs[0]), (split[1], split[2], qs[1])]
            mask = rng.random(len(stored)) < 0.7 if trial % 3 == 0 else None
            want = np.concatenate([(exact[a:b] * q).sum(axis=1) for a, b, q in blocks])
            if mask is not None:
                want = np.where(mask, want, -np.inf)
            for n in (1, 10, 150, 400, len(stored) + 5):
                order = np.lexsort((tie, -want))
                order = order[np.isfinite(want[order])][:n]
                rows, scores = pooled.top(blocks, n, tie, mask)
                assert np.array_equal(rows, order), (split_rows, trial, n)
                assert np.array_equal(scores, want[order]), (split_rows, trial, n)
    # the int8 scores alone would have put other rows first: the bound is what makes it exact,
    # and it holds for every row
    a, b, q = 0, len(stored), qs[0]
    approx, bound = pooled.approximate(a, b, q)
    want = (exact * q).sum(axis=1)
    assert set(np.argsort(-approx)[:150]) != set(np.argsort(-want)[:150])
    assert np.all(np.abs(approx - want) <= bound)


@pytest.mark.parametrize("name", CODECS)
def test_float32_decoding_gives_the_float16_values(name):
    codec = TokenCodec.new(name, 64)
    x = np.random.default_rng(1).standard_normal((300, 64)).astype(np.float32)
    codes = codec.encode(x / np.linalg.norm(x, axis=1, keepdims=True))
    wide = codec.decode_float32(codes)
    assert wide.dtype == np.float32 and np.array_equal(wide, codec.decode(codes).astype(np.float32))


def test_role_of_matches_each_glob_as_fnmatch_does():
    def plain(rel_path: str) -> str:
        path = rel_path.replace("\\", "/").lower()
        for role, globs in _COMPILED:
            if any(fnmatchcase(path, g) for g in globs):
                return role
        return LIB

    paths = ["src/lib.rs", "Vendor/x/tests/a.rs", "a\\tests\\b.rs", "x/y_pb2.py", "a.min.js", "README.MD",
             "foo/target/x.rs", "tests.rs", "a/b.spec.ts", "x\ny/tests/a", "benches/b.rs", "lib/contest.py",
             "examples/e.rs", "docs/a.txt", "crates/a/src/tests_util.rs", "node_modules/a/index.js"]
    assert [role_of(p) for p in paths] == [plain(p) for p in paths]


def test_one_blas_thread_nests_and_restores():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    with one_blas_thread():
        with one_blas_thread():
            pass
        inside = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas" and "torch" not in i["filepath"]]
        assert all(n == 1 for n in inside)
    assert [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"] == before


def test_token_merge_equals_the_plain_greedy_loop_bit_for_bit():
    from codesearch.indexer.quant import merge_token_groups

    def plain(v, threshold):  # the first version: every earlier leader, then np.add.at
        sims, labels, leaders = v @ v.T, np.empty(len(v), np.int64), []
        for i in range(len(v)):
            if leaders and sims[i, leaders].max() > threshold:
                labels[i] = int(np.argmax(sims[i, leaders]))
                continue
            labels[i] = len(leaders)
            leaders.append(i)
        if len(leaders) == len(v):
            return v, None
        sums = np.zeros((len(leaders), v.shape[1]), np.float32)
        np.add.at(sums, labels, v)
        return sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-8), labels

    rng = np.random.default_rng(2)
    merged = 0
    for _ in range(300):
        v = rng.standard_normal((int(rng.integers(2, 80)), 8)).astype(np.float32)  # 8 dims: many merges
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        for threshold in (0.5, 0.9):
            (got, labels), (want, want_labels) = merge_token_groups(v, threshold), plain(v, threshold)
            assert np.array_equal(got, want)
            assert (labels is None) == (want_labels is None) and (labels is None or np.array_equal(labels, want_labels))
            merged += labels is not None
    assert merged > 300


def test_an_index_run_does_its_numpy_work_at_one_blas_thread_with_the_same_vectors(small_repo, tmp_path, encoder):
    """The head's, the token merge's and the codec's products are small: OpenBLAS's second thread
    made them several times slower beside torch (docs/speed.md). One thread changes the vectors by
    float32 rounding at most."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from codesearch.config import load_settings
    from codesearch.indexer.pipeline import Indexer
    from codesearch.indexer.quant import merge_token_groups
    from codesearch.indexer.store import Store

    def numpy_blas_threads() -> set[int]:
        return {i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas" and "torch" not in i["filepath"]}

    seen: set[int] = set()
    settings = load_settings(config_file=None, home=str(tmp_path / "home"))
    Indexer(Store(tmp_path / "home"), encoder, settings).run([small_repo], progress=lambda *_: seen.update(numpy_blas_threads()))
    assert seen == {1}

    texts = [p.read_text() for p in sorted(small_repo.rglob("*")) if p.is_file() and ".git" not in p.parts]
    codec = TokenCodec.new("q2q1", encoder.dim)
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        tokens, pooled = encoder.encode_documents(texts)
        wide = [(merge_token_groups(v, 0.9), codec.encode(v)) for v in tokens]
    with one_blas_thread():
        tokens1, pooled1 = encoder.encode_documents(texts)
        narrow = [(merge_token_groups(v, 0.9), codec.encode(v)) for v in tokens]
    # Bit for bit with some OpenBLAS kernels (the machine of 2026-12-05); with others (the AMD EPYC
    # of 2026-12-06, OpenBLAS 0.3.31) the head's product splits its rows over two threads with
    # other rounding, within float32's.
    np.testing.assert_allclose(pooled, pooled1, atol=1e-6)
    for a, b in zip(tokens, tokens1):
        np.testing.assert_allclose(a, b, atol=1e-6)
    for ((m, labels), codes), ((m1, labels1), codes1) in zip(wide, narrow):
        np.testing.assert_allclose(m, m1, atol=1e-6)
        assert np.array_equal(codes, codes1)
        assert (labels is None and labels1 is None) or np.array_equal(labels, labels1)


def test_spaces_encoded_in_one_pass_match_each_space_alone():
    lean = QueryEncoder.load(DEFAULT_MODEL_DIR)
    spaces = [None] + sorted(s for s in lean.spaces if s)
    for query in ["check if a value is within bounds", "HashMap::entry or_insert_with", "x" * 300, "a"]:
        together = lean.encode_query_spaces(query, spaces)
        assert list(together) == spaces
        for space in spaces:
            tokens, pooled = lean.encode_queries_pooled([query], space=space)
            # (the same products, batched: equal to float32 rounding)
            np.testing.assert_allclose(together[space][0], tokens[0], atol=2e-6)
            np.testing.assert_allclose(together[space][1], pooled[0], atol=2e-6)


def test_snippets_read_by_row_id_and_by_id_alike(small_repo, tmp_path, encoder):
    """Results' texts are read by the candidates' row ids; a row id that no longer holds its
    chunk (a commit in between) falls back to reading by id, with the same snippets."""
    from codesearch.config import load_settings
    from codesearch.indexer.pipeline import Indexer
    from codesearch.indexer.store import Store
    from codesearch.search import Searcher

    settings = load_settings(config_file=None, home=str(tmp_path / "home"))
    store = Store(tmp_path / "home")
    Indexer(store, encoder, settings).run([small_repo])
    searcher = Searcher(store, encoder, settings)
    searcher.exact_below = 0  # candidates from the pooled vectors and the full-text index
    query = "evict the least recently used entry"
    results = searcher.search(query)
    assert results and all(r.snippet for r in results)
    searcher._texts_by_row = lambda by_row: {}  # every row moved since the candidates were read
    assert [(r.path, r.start_line, r.snippet) for r in searcher.search(query)] == [(r.path, r.start_line, r.snippet) for r in results]
    searcher2 = Searcher(store, encoder, settings)
    searcher2.exact_below = 0
    wrong = searcher2._texts_by_row
    searcher2._texts_by_row = lambda by_row: wrong({row + 1: id_ for row, id_ in by_row.items()})  # rows of other chunks
    assert [(r.path, r.start_line, r.snippet) for r in searcher2.search(query)] == [(r.path, r.start_line, r.snippet) for r in results]


def _indexed_with_stdlib(small_repo, tmp_path, encoder, n_files=6):
    """A real index of the small repository plus some Python stdlib modules (about a hundred
    chunks in two spaces), and its settings."""
    from conftest import stdlib_repo

    from codesearch.config import load_settings
    from codesearch.indexer.pipeline import Indexer
    from codesearch.indexer.store import Store

    settings = load_settings(config_file=None, home=str(tmp_path / "home"))
    store = Store(tmp_path / "home")
    Indexer(store, encoder, settings).run([small_repo, stdlib_repo(tmp_path / "repos" / "py", n_files, 8_000)])
    return store, settings


def _places(results):
    return [(r.path, r.start_line, r.end_line, r.score) for r in results]


def test_candidates_found_in_memory_equal_lancedbs(small_repo, tmp_path, encoder, monkeypatch):
    """The pooled vectors scored in memory give the same results, scores included, as LanceDB's
    search over the same table, for every method that uses them and with filters; also when each
    space's product is split in two halves side by side (as it is past 50k chunks)."""
    import codesearch.search
    from codesearch.search import Filters, Searcher

    monkeypatch.setattr(codesearch.search, "_SPLIT_ROWS", 2)

    store, settings = _indexed_with_stdlib(small_repo, tmp_path, encoder)
    assert store.count_chunks() > 60 and len(store.meta()["spaces"]) > 1
    memory, lance = Searcher(store, encoder, settings), Searcher(store, encoder, settings)
    lance.in_memory_max = 0
    for s in (memory, lance):
        s.exact_below, s.n_dense, s.n_lexical = 0, 20, 5  # candidates are a choice, not every chunk
    queries = ["check if a value is within bounds", "evict the least recently used entry", "lemma about list length",
               "parse a date from a string", "join path components"]
    for method in ("hybrid", "multivector", "dense"):
        for q in queries:
            assert _places(memory.search(q, method=method)) == _places(lance.search(q, method=method)), (method, q)
    for filters in (Filters(lang=["python"]), Filters(lang=["rust", "lean"]), Filters(path="proofs/"), Filters(repo="py")):
        for q in queries[:3]:
            got = memory.search(q, filters=filters)
            assert got and _places(got) == _places(lance.search(q, filters=filters)), (filters, q)
    assert memory._resident is not None and lance._resident is None


def test_a_changed_index_is_read_again_and_a_big_one_is_left_to_lancedb(small_repo, tmp_path, encoder):
    """A searcher that holds the pooled vectors finds a chunk added after its first search; a
    table past search.in_memory_max is searched through LanceDB, with the same results."""
    from codesearch.indexer.pipeline import Indexer
    from codesearch.search import Searcher

    store, settings = _indexed_with_stdlib(small_repo, tmp_path, encoder, n_files=1)
    searcher = Searcher(store, encoder, settings)
    searcher.exact_below = 0
    query = "compute the levenshtein edit distance between two words"
    before = searcher.search(query, method="dense")
    assert all(r.name != "levenshtein" for r in before)
    (small_repo / "edit.py").write_text(
        "def levenshtein(a: str, b: str) -> int:\n"
        '    """Compute the Levenshtein edit distance between two words."""\n'
        "    prev = list(range(len(b) + 1))\n"
        "    for i, ca in enumerate(a, 1):\n"
        "        cur = [i]\n"
        "        for j, cb in enumerate(b, 1):\n"
        "            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))\n"
        "        prev = cur\n"
        "    return prev[-1]\n"
    )
    Indexer(store, encoder, settings).run([small_repo])
    after = searcher.search(query, method="dense")
    assert after[0].name == "levenshtein"
    assert searcher._resident.version == store.table("chunks").version
    small = Searcher(store, encoder, settings)
    small.exact_below, small.in_memory_max = 0, store.count_chunks() - 1
    assert _places(small.search(query, method="dense")) == _places(after) and small._resident is None


def _rewrite_removing_old_files(store, table: str, key: str, snapshot) -> None:
    """Table ``table`` with the same rows in new files (one row deleted and added again, then all
    compacted), and the data files of ``snapshot`` (an older version) that the new one does not
    use removed, as a clean-up of old versions does."""
    import os

    files = lambda ds: {f.path for frag in ds.get_fragments() for f in frag.data_files()}  # noqa: E731
    one = snapshot.to_table(limit=1).column(key)[0].as_py()
    row = snapshot.to_table(filter=f"{key} = '{one}'")
    store.table(table).delete(f"{key} = '{one}'")
    store.table(table).add(row)
    store._lance(table).optimize.compact_files(materialize_deletions_threshold=0.0)
    gone = files(snapshot) - files(store._lance(table))
    assert gone
    for name in gone:
        os.remove(store.home / "lance" / f"{table}.lance" / "data" / name)


def test_candidates_token_vectors_read_by_position_as_by_key_also_once_their_version_is_gone(small_repo, tmp_path, encoder):
    """The in-memory path reads its candidates' token vectors by their position in one version
    of the vectors table (its ``tokens`` column alone: a quarter of the time of reading them by
    key at 100k chunks): the same vectors and results, scores included. Keys that version does
    not hold are read by key. When that version's files are gone (a compaction, then a clean-up
    of old versions), searches still answer the same, and the keys are placed again."""
    from codesearch.search import Searcher

    store, settings = _indexed_with_stdlib(small_repo, tmp_path, encoder)
    by_position, by_key = Searcher(store, encoder, settings, cache_bytes=0), Searcher(store, encoder, settings, cache_bytes=0)
    for s in (by_position, by_key):
        s.exact_below, s.n_dense, s.n_lexical = 0, 20, 5  # candidates are a choice, not every chunk
    queries = ["check if a value is within bounds", "evict the least recently used entry", "lemma about list length",
               "parse a date from a string", "join path components"]
    by_key.search(queries[0])
    by_key._resident.vector_rows = None  # (read by key, as past search.in_memory_max)
    expected = {(q, m): _places(by_key.search(q, method=m)) for q in queries for m in ("hybrid", "multivector")}
    for (q, m), places in expected.items():
        assert _places(by_position.search(q, method=m)) == places, (q, m)
    rows = by_position._resident.vector_rows
    assert not rows.stale
    keys = store.values("chunks", "key", limit=30)
    placed = store.get_scoring_vectors(keys + ["0" * 32, "not a key"], rows=rows)
    by_keys = store.get_scoring_vectors(keys)
    assert sorted(placed) == sorted(set(keys)) == sorted(by_keys)
    assert all(np.array_equal(placed[k], by_keys[k]) for k in by_keys)

    # The vectors table rewritten with the same rows, and the files of the version the searcher
    # placed its keys in removed, as a clean-up of old versions does.
    _rewrite_removing_old_files(store, "vectors", "key", rows.dataset)
    for (q, m), places in expected.items():
        assert _places(by_position.search(q, method=m)) == places, (q, m)
        assert by_position._resident.vector_rows is not rows  # placed again, in the newest version
    assert rows.stale and not by_position._resident.vector_rows.stale


def test_results_texts_read_back_by_position_are_the_tables(small_repo, tmp_path, encoder):
    """The shown results' texts are read back by position from the version of the chunks table
    the candidates came from: each is the text that table holds for that place, also after that
    version's files are gone (then read from the newest version)."""
    from codesearch.search import Searcher

    store, settings = _indexed_with_stdlib(small_repo, tmp_path, encoder)
    searcher = Searcher(store, encoder, settings, cache_bytes=0)
    searcher.exact_below = 0
    queries = ["check if a value is within bounds", "parse a date from a string", "join path components"]

    def table_texts():
        data = store.read("chunks", ["path", "start_line", "end_line", "text"])
        return {(p, a, b): t for p, a, b, t in zip(*(data.column(c).to_pylist() for c in data.column_names))}

    def assert_texts_are_the_tables():
        texts = table_texts()
        for q in queries:
            for method in ("hybrid", "multivector"):
                results = searcher.search(q, method=method)
                assert results and all(r.text and r.text == texts[(r.path, r.start_line, r.end_line)] for r in results), (q, method)

    assert_texts_are_the_tables()
    old = searcher._resident
    assert old._by_rowid is not None  # (they were read by position)
    by_row = dict(zip(old.rows.column("_rowid").to_pylist()[:5], old.rows.column("id").to_pylist()[:5]))
    assert set(old.texts(by_row)) == set(by_row.values())
    _rewrite_removing_old_files(store, "chunks", "id", old.snapshot)
    with pytest.raises((OSError, RuntimeError, ValueError)):
        old.texts(by_row)
    assert_texts_are_the_tables()
    assert searcher._resident is not old


def test_one_blas_thread_limits_a_blas_loaded_after_its_first_use():
    """A BLAS library loaded after the first search or index run (scipy's comes with the model's
    imports) is held at one thread too: the libraries were looked for once, at the first use,
    and in a fresh process that was before numpy's own was loaded."""
    pytest.importorskip("threadpoolctl")
    pytest.importorskip("scipy")
    code = (
        "import threadpoolctl\n"
        "from codesearch.blas import one_blas_thread\n"
        "with one_blas_thread():\n    pass\n"
        "import numpy, scipy.linalg\n"
        "with one_blas_thread():\n"
        "    inside = {i['filepath']: i['num_threads'] for i in threadpoolctl.threadpool_info()\n"
        "              if i['user_api'] == 'blas' and 'torch' not in i['filepath']}\n"
        "print(sorted(set(inside.values())), len(inside))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "OPENBLAS_NUM_THREADS": "2"}).stdout.split()
    assert out[0] == "[1]" and int(out[1]) >= 2, out


def test_an_index_run_connects_lancedb_in_its_write_stage_and_reading_a_fresh_home_creates_nothing(small_repo, tmp_path, encoder):
    """Reads need only Lance: on a fresh home they find no table and create none, so LanceDB (about
    1 s to import here) is connected where the run starts writing, and its summary counts that in
    "write", not in "walk" as the first read of the file records did."""
    from codesearch.config import load_settings
    from codesearch.indexer.pipeline import Indexer
    from codesearch.indexer.store import Store

    store = Store(tmp_path / "home")
    assert store.file_records([small_repo]) == {} and store.existing_keys(["k"]) == set()
    assert store.table_names() == set() and store._db is None
    walked: list = []

    class Watched(Store):
        def open_writes(self):
            walked.append(self._db is None)  # (connected here, not before)
            super().open_writes()

    writer = Watched(tmp_path / "home")
    run = Indexer(writer, encoder, load_settings(config_file=None, home=str(writer.home))).run([small_repo])
    assert run.total_chunks > 0 and writer._db is not None and walked == [True]
    again = Watched(tmp_path / "home")
    assert Indexer(again, encoder, load_settings(config_file=None, home=str(again.home))).run([small_repo]).embedded == 0
    assert again._db is None and walked == [True]  # (nothing to write: never connected)


def test_reading_processes_never_import_lancedb_and_writers_import_it_without_its_rest_client(small_repo, tmp_path, encoder):
    """`codesearch search` with no service, `status` and an `index` run with nothing to do read
    through Lance itself and never import LanceDB's Python package (0.7-1.0 s of its 1.0 s
    import, docs/speed.md). A writer imports it without the REST namespace client's API modules
    (1.4 s more), whose classes still load when named. The search answers as before."""
    from codesearch.config import load_settings
    from codesearch.indexer.pipeline import Indexer
    from codesearch.indexer.store import Store

    home = tmp_path / "home"
    Indexer(Store(home), encoder, load_settings(config_file=None, home=str(home))).run([small_repo])
    code = (
        "import json, sys\n"
        "from codesearch.cli import main\n"
        "args = json.loads(sys.argv[2])\n"
        "try:\n"
        "    main(['--home', sys.argv[1], *args], standalone_mode=False)\n"
        "finally:\n"
        "    sys.stdout.flush()\n"
        "seen = {'lancedb': 'lancedb' in sys.modules, 'lance': 'lance' in sys.modules}\n"
        "from codesearch.lance_import import lancedb\n"
        "lancedb()\n"
        "seen['api_before'] = sorted(m for m in sys.modules if m.startswith('lance_namespace_urllib3_client.api'))\n"
        "import lance_namespace_urllib3_client as client\n"
        "seen.update(named=client.TableApi.__name__, version=client.__version__)\n"
        "print(json.dumps(seen))\n"
    )
    env = dict(os.environ, CODESEARCH_NO_SERVICE="1")
    commands = {
        "search": ["search", "evict the least recently used entry", "--json"],
        "status": ["status"],
        "index": ["index", str(small_repo)],
    }
    for name, args in commands.items():
        out = subprocess.run([sys.executable, "-c", code, str(home), json.dumps(args)], capture_output=True, text=True,
                             env=env, check=True).stdout
        lines = out.strip().splitlines()
        seen = json.loads(lines[-1])
        assert seen["lance"] and not seen["lancedb"], (name, seen)
        assert seen["api_before"] == [], name
        assert seen["named"] == "TableApi" and seen["version"]
        if name == "search":
            results = json.loads("\n".join(lines[:-1]))
            assert any(r["path"].endswith("cache.py") for r in results[:3]), results
        elif name == "index":
            assert "0 new or changed" in out, out
