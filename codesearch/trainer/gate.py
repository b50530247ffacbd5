"""Held-out retrieval evaluation used to gate each training phase.

For each domain: the queries of its held-out pairs search a corpus made of those pairs'
positives and hard negatives, scored with exact MaxSim (no index needed). Documents and
queries are encoded with the adapter that routing assigns to the domain, exactly as the
index does. Metrics are the eval format's P@1, MRR@10 and Recall@5.
"""

from __future__ import annotations

import random
from typing import Sequence

import numpy as np

from codesearch.search import PackedDocs, maxsim_many


def heldout_by_domain(pairs: Sequence[dict], max_queries: int = 300, seed: int = 0) -> dict[str, list[dict]]:
    by: dict[str, list[dict]] = {}
    for p in pairs:
        by.setdefault(p["domain"], []).append(p)
    rng = random.Random(seed)
    for d, items in by.items():
        if len(items) > max_queries:
            by[d] = rng.sample(items, max_queries)
    return by


def evaluate_domain(encoder, pairs: Sequence[dict], adapter: str | None) -> dict:
    corpus: list[str] = []
    index: dict[str, int] = {}
    for p in pairs:
        for text in [p["positive"], *(p.get("negatives") or [])]:
            if text not in index:
                index[text] = len(corpus)
                corpus.append(text)
    previous = encoder.active_adapter
    encoder.use_adapter(adapter)
    try:
        docs, _ = encoder.encode_documents(corpus)
        queries = encoder.encode_queries([p["query"] for p in pairs])
    finally:
        encoder.use_adapter(previous)
    ranks = []
    packed = PackedDocs(docs)
    for p, q in zip(pairs, queries):
        scores = maxsim_many(q, packed)
        order = np.argsort(-scores)[:10]
        target = index[p["positive"]]
        hits = np.nonzero(order == target)[0]
        ranks.append(int(hits[0]) + 1 if len(hits) else None)
    n = len(ranks)
    return {
        "n": n,
        "p@1": round(sum(r == 1 for r in ranks) / n, 4) if n else 0.0,
        "mrr@10": round(sum(1 / r for r in ranks if r) / n, 4) if n else 0.0,
        "recall@5": round(sum(1 for r in ranks if r and r <= 5) / n, 4) if n else 0.0,
        "corpus": len(corpus),
    }


def evaluate_routing(encoder, heldout: dict[str, list[dict]], routing: dict[str, str | None]) -> dict[str, dict]:
    """Metrics per domain, each domain encoded with the adapter routing gives it (None = base)."""
    return {d: evaluate_domain(encoder, pairs, routing.get(d)) for d, pairs in sorted(heldout.items())}
