"""`codesearch bench`: indexing throughput and warm query latency, measured in-process."""

from __future__ import annotations

import random
import resource
import time

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


def run_bench(ctx, n_queries: int = 100, index_paths: tuple[str, ...] = ()) -> dict:
    from codesearch.search import Searcher

    figures: dict = {}
    encoder = ctx.encoder()
    if index_paths:
        from codesearch.cli import _run_index

        summary = _run_index(ctx, list(index_paths), quiet=True)
        figures["indexed_chunks"] = summary.chunks
        figures["embedded_chunks"] = summary.embedded
        figures["index_seconds"] = round(summary.seconds, 2)
        figures["chunks_per_second"] = round(summary.embedded / summary.seconds, 1) if summary.embedded else None
    store = ctx.store(create=False)
    searcher = Searcher(store, encoder, ctx.settings)
    n_chunks = store.count_chunks()
    figures["chunks_in_index"] = n_chunks
    names = store.table("chunks").search().select(["name"]).limit(5000).to_arrow().column("name").to_pylist()
    rng = random.Random(0)
    pool = [n.replace("_", " ") for n in names if n and len(n) > 3]
    queries = [SAMPLE_QUERIES[i % len(SAMPLE_QUERIES)] if i % 2 == 0 or not pool else rng.choice(pool) for i in range(n_queries)]
    for method in ("hybrid", "multivector"):
        searcher.search(queries[0], method=method)  # warm up: model, caches, file handles
        times = []
        for q in queries:
            t0 = time.perf_counter()
            searcher.search(q, method=method)
            times.append((time.perf_counter() - t0) * 1000)
        figures[f"{method}_query_ms_p50"] = round(float(np.percentile(times, 50)), 1)
        figures[f"{method}_query_ms_p95"] = round(float(np.percentile(times, 95)), 1)
    size = store.disk_bytes()
    figures["index_bytes"] = size
    figures["bytes_per_chunk"] = round(size / max(n_chunks, 1))
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return figures
