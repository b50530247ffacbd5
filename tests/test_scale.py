"""Crash safety under churn, and the scale machinery (synthetic tables, the ANN path).

The kill-at-random-points run is slow (marked ``slow``; run it with ``-m slow``); the fast
tests check the same convergence once, and the synthetic bench on a small table.
"""

from __future__ import annotations

import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import STDLIB, stdlib_repo

def _state(home: Path) -> tuple[list, list, list]:
    from codesearch.indexer.store import Store

    store = Store(home, create=False)
    chunks = store.table("chunks").search().select(["id", "path", "start_line", "end_line", "key"]).limit(None).to_arrow().to_pylist()
    keys = store.table("vectors").search().select(["key"]).limit(None).to_arrow().column("key").to_pylist()
    files = store.table("files").search().select(["path", "size", "mtime_ns"]).limit(None).to_arrow().to_pylist()
    return chunks, keys, files


def _norm(rows: list) -> list:
    return sorted((c["path"], c["start_line"], c["end_line"], c["key"]) for c in rows)


def _churn(repo: Path, rng: random.Random, pool: list[Path]) -> None:
    """One random user action: edit, create, delete, rename, or an atomic save."""
    files = sorted(p for p in repo.glob("**/*.py") if ".git" not in p.parts)
    action = rng.choice(["edit", "create", "delete", "rename", "atomic", "folder"])
    if action == "edit" and files:
        f = rng.choice(files)
        f.write_text(f.read_text() + f"\n\ndef added_{rng.randrange(10**6)}(x):\n    return x + {rng.randrange(100)}\n")
    elif action == "create":
        src = rng.choice(pool)
        shutil.copy(src, repo / f"new_{rng.randrange(10**6)}_{src.name}")
    elif action == "delete" and len(files) > 5:
        rng.choice(files).unlink()
    elif action == "rename" and files:
        f = rng.choice(files)
        f.rename(f.with_name(f"moved_{rng.randrange(10**6)}_{f.name}"))
    elif action == "atomic" and files:
        f = rng.choice(files)
        tmp = f.with_name(f".{f.name}.tmp")
        tmp.write_text(f.read_text().replace("def ", "def  ", 1))
        os.replace(tmp, f)
    elif action == "folder":
        sub = repo / f"pkg_{rng.randrange(4)}"
        if sub.exists() and rng.random() < 0.5:
            shutil.rmtree(sub)
        else:
            sub.mkdir(exist_ok=True)
            for src in rng.sample(pool, 2):
                shutil.copy(src, sub / src.name)


@pytest.mark.slow
def test_kill_minus_nine_watcher_and_indexer_under_churn_converges(tmp_path):
    """kill -9 the watcher (and the indexer) at random moments while files change, many times;
    a final start converges to exactly the index a clean run builds."""
    pool = sorted(p for p in STDLIB.glob("*.py") if 2_000 < p.stat().st_size < 8_000)[:30]
    repo = stdlib_repo(tmp_path / "repo", 25, max_bytes=20_000)
    home = tmp_path / "home"
    config = tmp_path / "config.yaml"
    config.write_text("index:\n  batch_chunks: 16\n  compact_every: 5\nwatch:\n  debounce_ms: 100\n  max_delay_ms: 500\n")
    base = [sys.executable, "-m", "codesearch.cli", "--home", str(home), "--config", str(config)]
    rng = random.Random(int(os.environ.get("CODESEARCH_CRASH_SEED", "11")))
    kills = int(os.environ.get("CODESEARCH_CRASH_KILLS", "12"))
    for round_ in range(kills):
        if round_ % 3 == 2:
            cmd = [*base, "index", str(repo), "-q"]
        else:
            cmd = [*base, "watch", str(repo), "--json", "--debounce-ms", "100"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + rng.uniform(3.0, 12.0)
        while time.monotonic() < deadline and proc.poll() is None:
            _churn(repo, rng, pool)
            time.sleep(rng.uniform(0.05, 0.8))
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    # Final start: catch up, then a few more changes while watching, then stop cleanly.
    proc = subprocess.Popen([*base, "watch", str(repo), "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(json.loads(line)) for line in proc.stdout], daemon=True).start()
    try:
        first = lines.get(timeout=600)
        assert first["full"] and first["error"] is None
        for _ in range(5):
            _churn(repo, rng, pool)
            time.sleep(0.3)
        while True:  # every batch prints a line: wait for 5 s without one
            try:
                assert lines.get(timeout=5)["error"] is None
            except queue.Empty:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0

    chunks, keys, _ = _state(home)
    assert len({c["id"] for c in chunks}) == len(chunks)  # no duplicated chunk
    assert len(set(keys)) == len(keys)  # no vector embedded twice
    doctor = subprocess.run([*base, "doctor", "--deep", "--json"], capture_output=True, text=True)
    assert doctor.returncode == 0, doctor.stdout[-3000:]
    clean_home = tmp_path / "clean"
    subprocess.run([sys.executable, "-m", "codesearch.cli", "--home", str(clean_home), "index", str(repo), "-q"],
                   check=True, capture_output=True)
    clean_chunks, _, _ = _state(clean_home)
    assert _norm(chunks) == _norm(clean_chunks)


# ---------------------------------------------------------------------------- fast: storage and ANN
def test_token_codecs_keep_dot_products_and_sizes():
    import numpy as np

    from codesearch.indexer.quant import CODECS, TokenCodec

    rng = np.random.default_rng(0)
    scales = np.linspace(3, 0.5, 256)  # a PCA head: variance falls along the dimensions
    docs = rng.standard_normal((400, 256)) * scales
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries = rng.standard_normal((16, 256)) * scales
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    expected = {"float32": (1024, 0.99999), "float16": (512, 0.999), "int8": (258, 0.999), "q2": (64, 0.95), "q2q1": (57, 0.93), "q1": (32, 0.85)}
    for name in CODECS:
        codec = TokenCodec.new(name, 256, split=192 if name == "q2q1" else None)
        codes = codec.encode(docs)
        assert codes.shape == (400, codec.bytes_per_token) and codes.dtype == np.uint8
        size, min_corr = expected[name]
        assert codec.bytes_per_token == size
        approx = codec.query(queries) @ codec.decode(codes).astype(np.float32).T
        assert np.corrcoef(approx.ravel(), (queries @ docs.T).ravel())[0, 1] > min_corr, name
        back = codec.to_original(codec.decode(codes))
        assert np.abs(back - docs).mean() < 0.05, name
    reference = TokenCodec.new("float32", 256)
    assert np.array_equal(reference.decode(reference.encode(docs)), docs.astype(np.float32))  # lossless


def test_a_changed_storage_format_rebuilds_the_index(small_repo, tmp_path, encoder):
    from codesearch.config import load_settings
    from codesearch.indexer.pipeline import Indexer
    from codesearch.indexer.store import Store
    from codesearch.search import Searcher

    settings = load_settings(config_file=None, home=str(tmp_path / "home"))
    store = Store(tmp_path / "home")
    first = Indexer(store, encoder, settings).run([small_repo])
    assert first.embedded == first.total_chunks > 0
    assert Indexer(store, encoder, settings).run([small_repo]).embedded == 0
    # An index written by an older codesearch: search says what to do, index rebuilds it.
    store.write_meta(format=1)
    with pytest.raises(RuntimeError, match="codesearch index"):
        Searcher(Store(tmp_path / "home"), encoder, settings)
    again = Indexer(store, encoder, settings).run([small_repo])
    assert again.embedded == first.embedded and again.total_chunks == first.total_chunks
    # Another token codec: also a clean rebuild, and search works on it.
    settings["index"]["token_codec"] = "float16"
    other = Indexer(store, encoder, settings).run([small_repo])
    assert other.embedded == first.embedded and store.meta()["token_codec"] == "float16"
    assert Searcher(store, encoder, settings).search("check if a value is within bounds", limit=1)[0].name == "contains"


def test_an_index_run_builds_the_ann_index_only_where_searches_use_it(small_repo, tmp_path, encoder):
    """Searches over tables up to ``search.in_memory_max`` score every pooled vector in memory, so
    an index run does not build (and hold memory for) an IVF index they would not read; past it,
    or with the in-memory path switched off, it does, and a search finds the same chunk. The
    build waits for the run's last upkeep, once the encoder is done: one build over every chunk,
    even where the tables were compacted after each commit of a few chunks."""
    from codesearch.config import load_settings
    from codesearch.indexer.pipeline import Indexer
    from codesearch.indexer.store import Store
    from codesearch.search import Searcher

    def run(home, in_memory_max, **index):
        settings = load_settings(config_file=None, home=str(tmp_path / home))
        settings["index"].update({"ann_min_rows": 16, **index})
        settings["search"]["in_memory_max"] = in_memory_max
        store = Store(tmp_path / home)
        Indexer(store, encoder, settings).run([small_repo])
        assert store.count_chunks() > 16
        top = Searcher(store, encoder, settings).search("check if a value is within bounds", limit=1)[0].name
        return store.has_ann_index(), top, store.meta().get("ann_rows") == store.count_chunks()

    assert run("memory", 150_000) == (False, "contains", False)
    assert run("lance", 0) == (True, "contains", True)
    assert run("past", 16) == (True, "contains", True)
    assert run("upkeep", 0, ann_min_rows=1, batch_chunks=4, compact_every=1) == (True, "contains", True)


def test_ann_index_is_built_past_the_threshold_and_matches_exact_candidates(small_repo, tmp_path, encoder):
    """A synthetic table (real vectors plus noise) past ``ann_min_rows`` gets an IVF index on
    the pooled vectors; search through it finds what exact candidates find."""
    from codesearch.bench import build_synthetic
    from codesearch.config import load_settings
    from codesearch.indexer.pipeline import Indexer
    from codesearch.indexer.store import Store
    from codesearch.search import Searcher

    settings = load_settings(config_file=None, home=str(tmp_path / "src"))
    source = Store(tmp_path / "src")
    Indexer(source, encoder, settings).run([small_repo])
    settings["index"]["ann_min_rows"] = 2000
    store = Store(tmp_path / "syn")
    build_synthetic(store, encoder, 3000, source=source, settings=settings, noise=0.5)
    assert store.count_chunks() == 3000 and store.has_ann_index()
    # each synthetic chunk lies in its prototype's vector space (not all in "", where a model with
    # several spaces found no pooled-vector candidates at all)
    def spaces(s):
        return set(s.table("chunks").search().select(["space"]).limit(None).to_arrow().column("space").to_pylist())
    assert spaces(store) <= spaces(source) and len(spaces(store)) == len(spaces(source))
    ann, exact = Searcher(store, encoder, settings), Searcher(store, encoder, settings)
    ann.in_memory_max = 0  # (LanceDB's IVF index, as tables past search.in_memory_max use it)
    exact.use_ann = False
    queries = ["check if a value is within bounds", "evict the least recently used entry", "parse an interval",
               "lemma about list length", "counter invariant"]
    recall = []
    for q in queries:
        a = {(r.path, r.start_line) for r in ann.search(q, limit=10)}
        e = {(r.path, r.start_line) for r in exact.search(q, limit=10)}
        recall.append(len(a & e) / len(e))
    assert sum(recall) / len(recall) >= 0.9, recall


def test_bench_recall_truth_is_exhaustive_maxsim(small_repo, tmp_path, encoder):
    """The bench's recall truth (every chunk scored by MaxSim) agrees with the search path when
    that path scores every chunk too (a table under ``exact_below``), and the candidate path
    of a bigger table is measured against it."""
    from codesearch.bench import _recall, exhaustive_top
    from codesearch.config import load_settings
    from codesearch.indexer.pipeline import Indexer
    from codesearch.indexer.store import Store
    from codesearch.search import Searcher

    settings = load_settings(config_file=None, home=str(tmp_path / "home"))
    store = Store(tmp_path / "home")
    Indexer(store, encoder, settings).run([small_repo])
    n = store.count_chunks()
    queries = ["check if a value is within bounds", "evict the least recently used entry", "lemma about list length"]
    everything = Searcher(store, encoder, settings)
    everything.exact_below = n + 1  # scores every chunk
    truth = exhaustive_top(store, everything, queries, k=5)
    for q, t in zip(queries, truth):
        assert {r.key for r in everything.search(q, limit=5, method="multivector")} == t
    few = Searcher(store, encoder, settings)
    few.exact_below, few.n_lexical = 0, 0
    dense = few._dense_spaces  # a starved candidate path: one candidate per space (search asks for
    few._dense_spaces = lambda encoded, where, n: dense(encoded, where, 1)  # at least 3x the limit)
    assert _recall(few, queries, truth) <= 0.4
    assert _recall(everything, queries, exhaustive_top(store, everything, queries, k=10)) == 1.0


def test_bench_recall_truth_ranks_as_search_does(tmp_path, encoder):
    """The recall truth applies the search's role prior: a test that matches a query best by
    MaxSim, but is ranked below library code by every search, is not a result the candidate
    stage missed (counting it as one put Recall@10 at 0.89 where the candidates missed 0.02)."""
    from codesearch.bench import exhaustive_top
    from codesearch.config import load_settings
    from codesearch.indexer.pipeline import Indexer
    from codesearch.indexer.store import Store
    from codesearch.search import Searcher

    repo = tmp_path / "bounds"
    (repo / "src").mkdir(parents=True)
    (repo / "tests").mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "src" / "lib.rs").write_text(
        "/// Whether a value lies between `lo` and `hi`.\n"
        "pub fn in_range(v: i64, lo: i64, hi: i64) -> bool {\n    lo <= v && v <= hi\n}\n\n"
        "/// The larger of two numbers.\npub fn larger(a: i64, b: i64) -> i64 {\n    if a > b { a } else { b }\n}\n")
    (repo / "tests" / "bounds.rs").write_text(
        "#[test]\nfn value_within_bounds() {\n    assert!(bounds::in_range(5, 1, 10));\n"
        "    assert!(!bounds::in_range(11, 1, 10));\n}\n")
    settings = load_settings(config_file=None, home=str(tmp_path / "home"))
    store = Store(tmp_path / "home")
    Indexer(store, encoder, settings).run([repo])
    query = ["check if a value is within bounds"]
    searcher = Searcher(store, encoder, settings)
    searcher.exact_below = store.count_chunks() + 1  # scores every chunk
    no_prior = Searcher(store, encoder, settings)
    no_prior.role_prior = 1.0
    # (the premise: by MaxSim alone the test comes first)
    [raw] = exhaustive_top(store, no_prior, query, k=1)
    assert [r.rel_path for r in no_prior.search(query[0], limit=1, method="multivector")] == ["tests/bounds.rs"]
    [truth] = exhaustive_top(store, searcher, query, k=1)
    [first] = searcher.search(query[0], limit=1, method="multivector")
    assert first.rel_path == "src/lib.rs" and truth == {first.key} != raw
