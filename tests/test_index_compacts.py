"""`codesearch index` leaves the index compacted: the versions its commits wrote are dropped
at the end of the run when that pays, so the size on disk is what `codesearch gc` leaves."""

from __future__ import annotations

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
