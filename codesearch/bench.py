"""`codesearch bench`: indexing throughput, warm query latency, watcher latency, index size.

Measured in-process. ``--synthetic N`` builds a throw-away index of N chunks whose token and
pooled vectors are real ones (sampled from the current index, or from freshly embedded
Python stdlib code when there is none) with noise, so that latency at 100k or 1M chunks can be
measured without embedding that much code; see :func:`run_synthetic`.
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

# Queries of the kind people type; the rest are drawn from the index (names of real chunks).
SAMPLE_QUERIES = [
    "check if a value is within bounds",
    "parse a string into an integer",
    "iterator over the elements in reverse order",
    "lemma about the length of appending two lists",
    "hash map insert or update an entry",
    "read a file line by line",
    "the invariant holds after each step",
    "split a slice into two at an index",
    "convert bytes to a utf-8 string",
    "sort a vector by a key",
]


def run_bench(ctx, n_queries: int = 100, index_paths: tuple[str, ...] = (), watch_edits: int = 0) -> dict:
    from codesearch.search import Searcher

    figures: dict = {}
    encoder = ctx.loaded_index_encoder()  # (what `index` embeds with: torch-free where documents run in 8 bits)
    if index_paths:
        from codesearch.indexer.pipeline import Indexer

        summary = Indexer(ctx.store(create=True), encoder, ctx.settings).run(list(index_paths))
        figures["indexed_chunks"] = summary.chunks
        figures["embedded_chunks"] = summary.embedded
        figures["index_seconds"] = round(summary.seconds, 2)
        figures["chunks_per_second"] = round(summary.embedded / summary.seconds, 1) if summary.embedded else None
        # (the index run's own peak; peak_rss_mb below is the whole bench's, searchers included)
        figures["index_peak_rss_mb"] = _peak_rss_mb()
    store = ctx.store(create=False)
    searcher = Searcher(store, encoder, ctx.settings)
    n_chunks = store.count_chunks()
    figures["chunks_in_index"] = n_chunks
    queries = _queries(store, n_queries)
    for method in ("hybrid", "multivector"):
        searcher.search(queries[0], method=method)  # warm up: model, caches, file handles
        times = []
        for q in queries:
            t0 = time.perf_counter()
            searcher.search(q, method=method)
            times.append((time.perf_counter() - t0) * 1000)
        figures[f"{method}_query_ms_p50"] = round(float(np.percentile(times, 50)), 1)
        figures[f"{method}_query_ms_p95"] = round(float(np.percentile(times, 95)), 1)
    figures.update(_explain_figures(searcher, queries))
    figures.update(_ann_figures(store, encoder, ctx.settings, queries))
    figures.update(_size_figures(store, n_chunks))
    if watch_edits:
        with tempfile.TemporaryDirectory(prefix="codesearch-bench-") as tmp:
            from codesearch.indexer.store import Store

            figures.update(watch_latency(Store(Path(tmp) / "home"), encoder, ctx.settings, Path(tmp) / "live", watch_edits))
    figures["peak_rss_mb"] = _peak_rss_mb()
    return figures


def _explain_figures(searcher, queries: list[str]) -> dict:
    """What ``search --explain`` adds to a hybrid search of 10 results: each query searched with
    and without it, alternated (ABBA: drift in the machine's load falls on both alike)."""
    searcher.search(queries[0], explain=True)  # warm up
    extra = []
    for i, q in enumerate(queries):
        took = {}
        for explain in ((False, True, True, False) if i % 2 == 0 else (True, False, False, True)):
            t0 = time.perf_counter()
            searcher.search(q, limit=10, explain=explain)
            took.setdefault(explain, []).append((time.perf_counter() - t0) * 1000)
        extra.append(sum(took[True]) / 2 - sum(took[False]) / 2)
    return {"explain_extra_ms_p50": _pct(extra, 50), "explain_extra_ms_p95": _pct(extra, 95)}


def _queries(store, n_queries: int) -> list[str]:
    names = store.values("chunks", "name", limit=5000)
    rng = random.Random(0)
    pool = [n.replace("_", " ") for n in names if n and len(n) > 3]
    return [SAMPLE_QUERIES[i % len(SAMPLE_QUERIES)] if i % 2 == 0 or not pool else rng.choice(pool) for i in range(n_queries)]


def _timed(searcher, queries: list[str], **kw) -> tuple[list[float], list[list[str]]]:
    searcher.search(queries[0], **kw)  # warm up: model, caches, file handles
    times, ids = [], []
    for q in queries:
        t0 = time.perf_counter()
        results = searcher.search(q, **kw)
        times.append((time.perf_counter() - t0) * 1000)
        ids.append([r.key for r in results])  # content, not location: copies of a chunk are equivalent
    return times, ids


def _peak_rss_mb() -> int:
    """This process's peak resident memory so far, in MB (Linux reports ru_maxrss in KB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _pct(times: list[float], q: int) -> float:
    return round(float(np.percentile(times, q)), 1)


def _ann_figures(store, encoder, settings, queries: list[str], n_exact: int | None = None) -> dict:
    """Recall@10 of the search paths against exhaustive MaxSim, and latency of the flat path.

    The truth is :func:`exhaustive_top`: what the search returns when every chunk of the index is
    its candidate (MaxSim against each, then the same role prior and places). Both candidate
    paths are scored against it with ``method="multivector"`` (MaxSim only, so the truth is
    well defined): the ANN path (IVF index on the pooled vectors, when the index has one) and
    the flat path (exact nearest pooled vectors). Recall counts chunk contents (keys):
    identical chunks at several paths tie, so locations would not do.
    """
    from codesearch.search import Searcher

    default = Searcher(store, encoder, settings)
    out: dict = {"ann_index": store.has_ann_index(),
                 # where the default search finds its pooled-vector candidates: "memory" (exact, in
                 # numpy: the flat path's candidates, so its recall) or LanceDB's "ann" / "flat"
                 "candidates": "memory" if default._resident_pooled() is not None else "ann" if store.has_ann_index() else "flat"}
    exact_q = queries[: n_exact or len(queries)]
    truth = exhaustive_top(store, default, exact_q, k=10)
    flat = Searcher(store, encoder, settings)
    flat.use_ann = False
    out["flat_recall_at_10"] = _recall(flat, exact_q, truth)
    if out["ann_index"]:
        ann = Searcher(store, encoder, settings)
        ann.in_memory_max = 0  # (LanceDB's IVF index, as tables past search.in_memory_max use it)
        out["ann_recall_at_10"] = _recall(ann, exact_q, truth)
        flat_times, _ = _timed(flat, exact_q, limit=10)
        ann_times, _ = _timed(ann, exact_q, limit=10)
        out["flat_query_ms_p50"] = _pct(flat_times, 50)
        out["flat_query_ms_p95"] = _pct(flat_times, 95)
        out["ann_query_ms_p50_same_queries"] = _pct(ann_times, 50)
    return out


def _recall(searcher, queries: list[str], truth: list[set[str]]) -> float | None:
    found = []
    for q, t in zip(queries, truth):
        if t:
            keys = {r.key for r in searcher.search(q, limit=10, method="multivector")}
            found.append(len(keys & t) / len(t))
    return round(float(np.mean(found)), 4) if found else None


def exhaustive_top(store, searcher, queries: list[str], k: int = 10, pool: int = 100) -> list[set[str]]:
    """For each query, the keys of the ``k`` results a multi-vector search would return if its
    candidate stage held every chunk of the index.

    Every stored token matrix is decoded and scored by MaxSim (each in its own space, as search
    does): seconds for 100k distinct chunks, which is what the candidate stages exist to avoid.
    The best ``pool`` contents of each query are then finished as ``searcher`` finishes its
    candidates (role prior, one result per place), so the truth differs from a search's own
    results only by what its candidate stage missed. (Ranking the raw MaxSim top ``k`` instead
    counted every test file the role prior moves down as a miss: 0.89 at 40k real chunks where
    the candidates missed far fewer; docs/speed.md.) The prior only lowers scores, so a chunk
    outside the ``pool`` best cannot pass the ``k`` kept unless most of the pool is demoted or
    overlapping.
    """
    from codesearch.indexer.store import CHUNK_META_COLUMNS, sql_in
    from codesearch.roles import named_roles
    from codesearch.scoring import PackedDocs, maxsim_many
    from codesearch.search import Filters

    chunks = store.read("chunks", ["key", "space"])
    space_of = dict(zip(chunks.column("key").to_pylist(), chunks.column("space").to_pylist()))
    spaces = searcher._spaces_for(Filters())
    q_tokens = {
        space: [store.scoring_query(searcher._encode_query(q, space)[0]).astype(np.float32) for q in queries]
        for space in spaces
    }
    best: list[list[tuple[float, str]]] = [[] for _ in queries]
    for data in store.iter_all_vectors(scoring=True):
        by_space: dict[str, list[str]] = {}
        for key in data:
            space = space_of.get(key) or ""
            if space in q_tokens:
                by_space.setdefault(space, []).append(key)
        for space, group in by_space.items():
            packed = PackedDocs([data[key] for key in group])
            for i, q in enumerate(q_tokens[space]):
                scores = maxsim_many(q, packed) / len(q)
                top = np.argsort(-scores)[:pool]
                best[i] = sorted(best[i] + [(float(scores[j]), group[j]) for j in top], reverse=True)[:pool]
    out = []
    for query, b in zip(queries, best):
        score_of = {key: s for s, key in b}
        rows = store.read("chunks", CHUNK_META_COLUMNS, where=sql_in("key", list(score_of))).to_pylist() if b else []
        results = searcher._finish(rows, [score_of[r["key"]] for r in rows], k, None, named_roles(query))
        out.append({r.key for r in results})
    return out


def _size_figures(store, n_chunks: int) -> dict:
    size = store.disk_bytes()
    live = store.live_bytes()
    return {
        "index_bytes": size,
        "bytes_per_chunk": round(size / max(n_chunks, 1)),  # on disk now (old versions kept <= 60 s included)
        "live_bytes_per_chunk": round(live / max(n_chunks, 1)),  # the current version's data and indexes
    }


# ---------------------------------------------------------------------------- watcher latency
def watch_latency(store, encoder, settings, folder: Path, edits: int = 20) -> dict:
    """Save-to-searchable: time from a file write returning to a search returning the new code.

    Runs a watcher on ``folder`` (created, with a few files) indexing into ``store``; each edit
    adds a function with a unique name to one file, then a search polls every 20 ms.
    """
    from codesearch.indexer.watch import Watcher
    from codesearch.search import Searcher

    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / f"module_{i}.py" for i in range(5)]
    for i, f in enumerate(files):
        f.write_text(f"def helper_{_letters(i)}(x):\n    return x * {i}\n")
    watcher = Watcher(store, encoder, settings, [folder]).start()
    run = random.Random().randrange(26**6)  # fresh names: an earlier run's chunks must not answer
    try:
        if not watcher.wait_idle(600):
            raise RuntimeError("the watcher did not finish its first pass")
        searcher = Searcher(store, encoder, settings)
        times: list[float] = []
        missed = 0
        for k in range(edits):
            word = "zq" + _letters(run) + _letters(k)
            target = files[k % len(files)]
            code = target.read_text() + f"\n\ndef checksum_{word}(data):\n    return sum(data) % 65521\n"
            t0 = time.monotonic()
            target.write_text(code)
            found = False
            while time.monotonic() - t0 < 20:
                hits = searcher.search(f"checksum {word}", limit=10)
                if any(r.name == f"checksum_{word}" and r.path == str(target) for r in hits):
                    found = True
                    break
                time.sleep(0.02)
            if found:
                times.append(time.monotonic() - t0)
            else:
                missed += 1
            watcher.wait_idle(30)
    finally:
        watcher.stop()
        _forget_folder(store, encoder, settings, folder)
    return {
        "watch_edits": edits,
        "save_to_searchable_s_p50": round(float(np.percentile(times, 50)), 3) if times else None,
        "save_to_searchable_s_p95": round(float(np.percentile(times, 95)), 3) if times else None,
        "save_to_searchable_missed": missed,
    }


def _forget_folder(store, encoder, settings, folder: Path) -> None:
    """Take the bench's scratch folder out of the index again (files and recorded root)."""
    from codesearch.indexer.pipeline import Indexer

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    Indexer(store, encoder, settings).update([folder], [folder])
    roots = [r for r in store.meta().get("roots", []) if r != str(folder.absolute())]
    store.write_meta(roots=roots)


def _letters(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 26)
        out = chr(97 + r) + out
        if n == 0:
            return out


# ---------------------------------------------------------------------------- synthetic scale
# 2: chunks carry their prototype's vector space (1 put every chunk in space "", where a model
# with several spaces searched none of them).
SYNTHETIC_FORMAT = 2


def run_synthetic(
    ctx,
    n: int,
    *,
    n_queries: int = 100,
    distinct: int | None = None,
    folder: str | None = None,
    watch_edits: int = 0,
    n_exact: int = 30,
    progress=None,
) -> dict:
    """Build (or reuse) a synthetic index of ``n`` chunks and measure search on it.

    The index lives in ``folder`` (default: ``$TMPDIR/codesearch-synthetic-N``) and is reused
    by the next run with the same N and model. ``distinct``: how many distinct token-vector
    matrices back the N chunks (default min(N, 100,000)); identical chunks share one row of the
    vectors table in real indexes too, and this keeps a 1M-chunk table within a few GB.
    """
    from codesearch.indexer.store import Store
    from codesearch.search import Searcher
    from codesearch.settings import IndexSettings

    encoder = ctx.loaded_index_encoder()  # (what `index` embeds with: torch-free where documents run in 8 bits)
    distinct = min(n, distinct or 100_000)
    dest = Path(folder) if folder else Path(tempfile.gettempdir()) / f"codesearch-synthetic-{n}"
    figures: dict = {"synthetic_chunks": n, "distinct_token_matrices": distinct}
    store = Store(dest) if dest.exists() else None
    meta = store.meta() if store else {}
    if not (meta.get("synthetic") == n and meta.get("distinct") == distinct and meta.get("synthetic_format") == SYNTHETIC_FORMAT
            and meta.get("model_fingerprint") == encoder.fingerprint and meta.get("complete")):
        shutil.rmtree(dest, ignore_errors=True)
        store = Store(dest)
        t0 = time.monotonic()
        source = _source_store(ctx)
        build_synthetic(store, encoder, n, source=source, distinct=distinct, settings=ctx.settings, progress=progress)
        figures["build_seconds"] = round(time.monotonic() - t0, 1)
    store.ann_min_rows = IndexSettings.from_settings(ctx.settings).ann_min_rows
    figures["home"] = str(dest)
    queries = _queries(store, n_queries)
    searcher = Searcher(store, encoder, ctx.settings)
    times, _ = _timed(searcher, queries)
    figures["hybrid_query_ms_p50"] = _pct(times, 50)
    figures["hybrid_query_ms_p95"] = _pct(times, 95)
    figures.update(_ann_figures(store, encoder, ctx.settings, queries, n_exact=n_exact))
    figures.update(_size_figures(store, n))
    if watch_edits:  # a folder outside the index home (the watcher ignores its own home)
        with tempfile.TemporaryDirectory(prefix="codesearch-bench-live-") as live:
            figures.update(watch_latency(store, encoder, ctx.settings, Path(live), watch_edits))
    figures["peak_rss_mb"] = _peak_rss_mb()
    return figures


def _source_store(ctx):
    """The current index if it has real chunks to sample, else None."""
    from codesearch.indexer.store import Store

    try:
        store = Store(ctx.home, create=False)
        if store.has_index() and store.count_chunks() >= 200 and store.meta().get("model_fingerprint") == ctx.query_encoder().fingerprint:
            return store
    except (FileNotFoundError, ValueError):
        pass
    return None


def _prototypes(source, encoder, rng: np.random.Generator, limit: int = 5000) -> list[dict]:
    """Real chunks with their token and pooled vectors: from ``source``, else embedded here."""
    columns = ["key", "space", "language", "kind", "name", "context", "text", "search_text"]
    if source is not None:
        rows = source.read("chunks", columns).to_pylist()
        rows = [rows[i] for i in rng.permutation(len(rows))[:limit]]
        tokens = source.get_vectors([r["key"] for r in rows])
        pooled = source.get_pooled([r["key"] for r in rows])
        for r in rows:
            r["tokens"], r["pooled"] = tokens[r["key"]].astype(np.float32), pooled[r["key"]].astype(np.float32)
        return [r for r in rows if len(r["tokens"])]
    # No index to sample: cut and embed some Python stdlib code (about a minute on 2 cores).
    from codesearch.indexer.chunking import chunk_text
    from codesearch.indexer.store import search_text_of

    stdlib = Path(os.__file__).parent
    chunks = []
    for f in sorted(stdlib.glob("*.py"))[:80]:
        try:
            chunks.extend(chunk_text(f.name, f.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError):
            continue
    chunks = chunks[: min(limit, 600)]
    space = encoder.space_for("python")
    tokens, pooled = encoder.encode_documents([c.encoder_text() for c in chunks], space=space)
    return [
        {
            "space": space or "", "language": c.language, "kind": c.kind, "name": c.name, "context": c.context, "text": c.text[:8000],
            "search_text": search_text_of(c.path, c.name, c.context, c.text),
            "tokens": t, "pooled": p,
        }
        for c, t, p in zip(chunks, tokens, pooled)
    ]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-8)


def _noisy(v: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """Unit vectors moved by Gaussian noise of norm ~``scale`` (cosine to the original ~1/sqrt(1+scale^2))."""
    out = v + rng.standard_normal(v.shape).astype(np.float32) * (scale / np.sqrt(v.shape[-1]))
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def build_synthetic(store, encoder, n: int, *, source=None, distinct: int | None = None, settings: dict | None = None,
                    seed: int = 0, batch: int = 20_000, noise: float = 0.7, progress=None) -> None:
    """Write ``n`` synthetic chunks (and their vectors) into an empty ``store``, then optimize it
    (full-text index; the ANN index when ``n`` reaches ``ann_min_rows``)."""
    import pyarrow as pa

    from codesearch.indexer.pipeline import Indexer
    from codesearch.settings import IndexSettings

    rng = np.random.default_rng(seed)
    distinct = min(n, distinct or n)
    Indexer(store, encoder, settings).prepare()  # model fingerprint, dimensions, storage format
    # the ANN index from index.ann_min_rows on, whatever search.in_memory_max: bench measures that
    # path (the one searches over tables past in_memory_max take) on its synthetic homes
    store.ann_min_rows = IndexSettings.from_settings(settings).ann_min_rows
    protos = _prototypes(source, encoder, rng)
    if not protos:
        raise RuntimeError("no chunks to sample vectors from")
    dim = encoder.dim
    store.write_meta(synthetic=n, distinct=distinct, synthetic_format=SYNTHETIC_FORMAT, complete=False, roots=[])
    # Noise is added in the codec's rotated space (the rotation is orthogonal: Gaussian noise
    # stays Gaussian), which saves rotating every synthetic token vector.
    rotated = [store.scoring_query(p["tokens"]) for p in protos]
    # A real pooled vector is the mean of the chunk's token states, projected: close to the
    # mean direction of its token vectors (cosine ~0.93 measured on Rust std), plus a rest.
    # A synthetic chunk keeps its prototype's rest and moves with its own noisy tokens, so
    # that pooled candidates relate to MaxSim as they do in a real index (pooled vectors
    # noised apart from the tokens made the candidate stage look far worse than it is).
    rest = [store.scoring_query(p["pooled"][None])[0] - _unit(r.mean(axis=0)) for p, r in zip(protos, rotated)]
    key_proto = rng.integers(len(protos), size=distinct)
    key_pooled = np.empty((distinct, dim), np.float16)
    vbatch = 2_000  # token matrices in memory at once (~100 tokens x dim floats each)
    for start in range(0, distinct, vbatch):
        idx = range(start, min(start + vbatch, distinct))
        items = []
        for v in idx:
            k = key_proto[v]
            tokens = _noisy(rotated[k], rng, noise)
            pooled = store.codec.to_original(_unit(_unit(tokens.mean(axis=0)) + rest[k])[None])[0]
            key_pooled[v] = pooled
            items.append((f"syn{v:08d}", tokens, pooled))
        store.add_vectors(items, rotated=True)
        if progress:
            progress("vectors", min(start + vbatch, distinct), distinct)
    schema = store._schema("chunks")
    pooled_type = schema.field("pooled").type
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        i = np.arange(start, stop)
        v = i % distinct
        ps = [protos[k] for k in key_proto[v]]
        rel = [f"src/m{(j // 8) % 5000:04d}/file{j // 8:07d}.x" for j in i]
        repo = [f"/synthetic/repo{j // 50_000:03d}" for j in i]
        pooled = key_pooled[v].astype(np.float32)
        copies = i >= distinct  # chunks sharing token vectors: near-duplicates, not exact copies
        if copies.any():
            pooled[copies] = _noisy(pooled[copies], rng, 0.3)
        flat = pooled.astype(pooled_type.value_type.to_pandas_dtype()).reshape(-1)
        columns = {
            "id": [f"syn-{j:09d}" for j in i],
            "key": [f"syn{k:08d}" for k in v],
            # each chunk in its prototype's space: its vectors are that space's (a search meets
            # a chunk in its own space; all in "" left a model with several spaces no candidates)
            "space": [p.get("space") or "" for p in ps],
            "repo": repo,
            "path": [f"{r}/{x}" for r, x in zip(repo, rel)],
            "rel_path": rel,
            "start_line": pa.array(1 + (i % 8) * 20, pa.int32()),
            "end_line": pa.array(19 + (i % 8) * 20, pa.int32()),
            "pooled": pa.FixedSizeListArray.from_arrays(pa.array(flat, pooled_type.value_type), dim),
        }
        for col in ("language", "kind", "name", "context", "text", "search_text"):
            columns[col] = [p[col] for p in ps]
        store.table("chunks").add(pa.table({f.name: columns[f.name] for f in schema}, schema=schema))
        if progress:
            progress("chunks", stop, n)
    store.optimize(keep_versions_seconds=0)  # nobody reads this fresh index yet: drop old versions now
    store.write_meta(complete=True)
