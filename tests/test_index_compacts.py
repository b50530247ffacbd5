"""`codesearch index` leaves the index compacted: the versions its commits wrote are dropped
at the end of the run when that pays, so the size on disk is what `codesearch gc` leaves."""

from __future__ import annotations

from pathlib import Path

import pytest

from codesearch.indexer import store as store_mod
from conftest import stdlib_repo


def _versions(store, name: str) -> int:
    return len(store.table(name).list_versions())


def test_index_leaves_what_gc_would(tmp_path, index_env, monkeypatch):
    # A small corpus frees less than the 4 MB floor: lower it (and the grace) to see it work.
    monkeypatch.setattr(store_mod, "SUPERSEDED_MIN_BYTES", 0)
    monkeypatch.setattr(store_mod, "SUPERSEDED_GRACE_S", 0.1)
    store, indexer, _ = index_env
    indexer.batch_chunks = 16  # many commits, as a large run makes
    repo = stdlib_repo(tmp_path / "repo", 12, 12_000)
    summary = indexer.run([repo])
    assert summary.embedded > 100 and summary.compacted_bytes > 0
    after_index = store.disk_bytes()
    versions = {n: _versions(store, n) for n in ("vectors", "chunks", "files")}
    assert all(v <= 3 for v in versions.values()), versions  # not one per commit

    store.gc()
    store.optimize(keep_versions_seconds=0)  # what `codesearch gc` does a minute later
    after_gc = store.disk_bytes()
    assert after_index <= 1.1 * after_gc + 64 * 1024, (after_index, after_gc)


def test_small_run_does_not_wait(small_repo, index_env):
    store, indexer, _ = index_env
    summary = indexer.run([small_repo])  # frees far less than SUPERSEDED_MIN_BYTES: no grace wait
    assert summary.compacted_bytes == 0 and summary.seconds < 60


def _segments(store, table: str) -> dict[str, list[int]]:
    """Rows of each segment of each index of ``table``, oldest segment first."""
    ds = store.table(table).to_lance()
    rows = {f.fragment_id: f.metadata.physical_rows for f in ds.get_fragments()}
    return {ix.name: [n for _, n in sorted((s.dataset_version_at_last_update, sum(rows[f] for f in s.fragment_ids)) for s in ix.segments)]
            for ix in ds.describe_indices()}


@pytest.mark.slow  # (over 15 s: .ci/run's slow step)
def test_upkeep_leaves_full_fragments_and_big_segments_alone(tmp_path, index_env, encoder, monkeypatch):
    """Compaction and index upkeep read only what is new (their memory is bounded by
    FRAGMENT_ROWS and SEGMENT_MERGE_ROWS, not by the index), and searches answer as from one
    index built whole: the same results and scores."""
    from codesearch.config import load_settings
    from codesearch.indexer.pipeline import Indexer
    from codesearch.indexer.store import Store
    from codesearch.search import Searcher

    # Small enough that a few hundred chunks make several full fragments and segments.
    monkeypatch.setattr(store_mod, "FRAGMENT_ROWS", 64)
    monkeypatch.setattr(store_mod, "SEGMENT_MERGE_ROWS", 160)
    monkeypatch.setattr(store_mod, "SEGMENT_MERGE_AT", 3)
    store, indexer, searcher = index_env
    indexer.batch_chunks, indexer.compact_every = 16, 2  # an optimize every 32 chunks, as every 5k in a big run
    repo = stdlib_repo(tmp_path / "repo", 24, 12_000)
    indexer.run([repo])
    full = {t: {f.fragment_id for f in store.table(t).to_lance().get_fragments() if f.metadata.physical_rows >= 64}
            for t in ("vectors", "chunks")}
    assert all(len(ids) >= 2 for ids in full.values()), full

    more = stdlib_repo(tmp_path / "more", 34, 12_000)  # ten more modules (the first 24 are the same)
    for p in sorted(more.glob("*.py")):
        if not (repo / p.name).exists():
            (repo / p.name).write_bytes(p.read_bytes())
    summary = indexer.run([repo])
    assert summary.embedded > 50
    for t, ids in full.items():  # the full fragments were not read and rewritten by the later compactions
        now = {f.fragment_id for f in store.table(t).to_lance().get_fragments()}
        assert ids <= now, (t, ids - now)
    n = store.count_chunks()
    for t in ("vectors", "chunks"):
        for name, sizes in _segments(store, t).items():
            assert sum(sizes) == store.table(t).count_rows(), (t, name, sizes)  # every row indexed
            assert len(sizes) <= 2 * n // 160 + 3, (t, name, sizes)  # merged as they come
            assert all(s <= 160 for s in sizes[1:]) and len(sizes) > 1, (t, name, sizes)

    # One index built whole from the same files, its full-text index in one segment.
    monkeypatch.undo()
    settings = load_settings(config_file=None, home=str(tmp_path / "whole"))
    whole = Store(Path(settings["home"]))
    Indexer(whole, encoder, settings).run([repo])
    assert len(_segments(whole, "chunks")["search_text_idx"]) == 1
    a, b = searcher(), Searcher(whole, encoder, settings)
    for s in (a, b):
        s.in_memory_max, s.use_ann = 0, False  # LanceDB's full-text index and exact pooled candidates
    for query in ("parse a date from a string", "wrap text to a given width", "compare two sequences", "HTMLParser"):
        ra, rb = a.search(query, limit=10), b.search(query, limit=10)
        assert [(r.rel_path, r.start_line) for r in ra] == [(r.rel_path, r.start_line) for r in rb], query
        assert all(abs(x.score - y.score) < 1e-5 for x, y in zip(ra, rb)), query
