"""A resumed index is the index a clean run builds, vector for vector (issue 18, item 5).

A run that was interrupted and rerun encodes its chunks in other groups and batches than a clean
run: a chunk's vectors must not depend on which batch it was encoded in. Real model (bfloat16 on
CPUs that have it, where padding changed the bits), real LanceDB, real stdlib files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conftest import stdlib_repo


def _vectors(store) -> dict[str, tuple]:
    rows = store.table("vectors").search().select(["key", "n_tokens", "tokens", "pooled"]).limit(None).to_arrow().to_pylist()
    return {r["key"]: (r["n_tokens"], r["tokens"], tuple(r["pooled"])) for r in rows}


def _chunks(store) -> list[tuple]:
    rows = store.table("chunks").search().select(["path", "start_line", "end_line", "key", "kind", "name", "context", "text"]).limit(None).to_arrow().to_pylist()
    return sorted(tuple(r.values()) for r in rows)


def _index(home: Path, encoder, roots, *, batch_chunks: int | None = None, batch_size: int | None = None, exclude=None,
           hold_chunks: int | None = None):
    from codesearch.config import load_settings
    from codesearch.indexer.pipeline import Indexer
    from codesearch.indexer.store import Store

    settings = load_settings(config_file=None, home=str(home))
    if batch_chunks:
        settings.setdefault("index", {})["batch_chunks"] = batch_chunks
    if batch_size:
        settings.setdefault("index", {})["encode_batch_size"] = batch_size
    store = Store(Path(settings["home"]))
    indexer = Indexer(store, encoder, settings, exclude=exclude)
    if hold_chunks is not None:
        indexer.hold_chunks = hold_chunks
    indexer.run(roots)
    return store


def test_resumed_index_equals_a_clean_one_vector_for_vector(tmp_path, encoder):
    """Also when most files' chunks were not held between cutting and embedding them."""
    repo = stdlib_repo(tmp_path / "repo", 6, max_bytes=7_000)
    names = sorted(p.name for p in repo.glob("*.py"))
    later = set(names[::2])  # indexed only by the second (resumed) run
    # Resumed: half the files first, in small commits and batches, then everything (the rest in
    # other groups): different batch-mates, so different padding, than the clean run.
    resumed = _index(tmp_path / "resumed", encoder, [repo], batch_chunks=5, batch_size=3, exclude=lambda f: f.path.name in later)
    first = _vectors(resumed)
    assert first and len(later) < len(names)
    # (and holding the chunks of a few files only: the others are cut again when committed)
    resumed = _index(tmp_path / "resumed", encoder, [repo], batch_chunks=7, batch_size=5, hold_chunks=10)
    clean = _index(tmp_path / "clean", encoder, [repo])
    assert _chunks(resumed) == _chunks(clean)
    got, want = _vectors(resumed), _vectors(clean)
    assert len(want) > len(first) > 0
    assert set(got) == set(want)
    differ = sorted(k for k in want if got[k] != want[k])
    assert not differ, f"{len(differ)} of {len(want)} chunks have other vectors in the resumed index than in the clean one"
    # And decoded, the scores a search computes are the same: bit for bit where OpenBLAS rounds a
    # row alike wherever it lies in a product (the machine of 2026-12-05), within float32 rounding
    # where not (the AMD EPYC of 2026-12-06): the stored bytes above are equal either way.
    keys = sorted(want)
    a, b = resumed.get_vectors(keys), clean.get_vectors(keys)
    assert all(np.allclose(a[k], b[k], rtol=0, atol=1e-6) for k in keys)
