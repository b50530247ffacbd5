"""Held-out retrieval evaluation used to gate each training phase.

For each domain (and each language that has an adapter of its own): the queries of its
held-out pairs search a corpus made of those pairs' positives and hard negatives, scored with
exact MaxSim (no index needed). Documents are encoded with the adapter that routing assigns to
their language, exactly as the index does, and a query meets each document in that document's
space, as search does (scores of different spaces compared as they are). Metrics are the eval
format's P@1, MRR@10 and Recall@5.
"""

from __future__ import annotations

import random
from typing import Callable, Sequence

import numpy as np

from codesearch.eval.metrics import METRICS
from codesearch.model.routing import DOMAINS, domain_adapter, domain_of_language
from codesearch.scoring import PackedDocs, maxsim_many


def heldout_by_domain(pairs: Sequence[dict], max_queries: int = 300, seed: int = 0) -> dict[str, list[dict]]:
    """Held-out pairs keyed by domain, at most ``max_queries`` of each (a seeded sample)."""
    return _sample_groups(pairs, lambda p: p["domain"], max_queries, seed)


def heldout_by_language(pairs: Sequence[dict], languages: Sequence[str], max_queries: int = 300, seed: int = 0) -> dict[str, list[dict]]:
    """Held-out pairs of each of ``languages`` (a phase that trains one language's adapter is
    gated on that language's pairs), keyed by language."""
    wanted = set(languages)
    return _sample_groups(pairs, lambda p: p.get("language") if p.get("language") in wanted else None, max_queries, seed)


def _sample_groups(pairs: Sequence[dict], key, max_queries: int, seed: int) -> dict[str, list[dict]]:
    by: dict[str, list[dict]] = {}
    for p in pairs:
        k = key(p)
        if k is not None:
            by.setdefault(k, []).append(p)
    rng = random.Random(seed)
    for k, items in by.items():
        if len(items) > max_queries:
            by[k] = rng.sample(items, max_queries)
    return by


def evaluate_domain(encoder, pairs: Sequence[dict], adapter: str | None, by_language: dict[str, str | None] | None = None,
                    subsets: dict[str, Callable[[dict], bool]] | None = None) -> dict:
    """Metrics of ``pairs``, encoded with ``adapter``; a pair whose language has an entry in
    ``by_language`` is encoded with that adapter instead (its documents and, for them, its
    query). ``subsets`` names groups of the pairs whose metrics are wanted too, ranked in the
    same corpus: they come back under ``"subsets"``."""
    by_language = by_language or {}
    corpus: list[str] = []
    space_of: list[str | None] = []
    index: dict[str, int] = {}
    for p in pairs:
        space = by_language.get(p.get("language"), adapter)
        for text in [p["positive"], *(p.get("negatives") or [])]:
            if text not in index:
                index[text] = len(corpus)
                corpus.append(text)
                space_of.append(space)
    spaces = sorted(set(space_of), key=lambda s: s or "")
    rows = {s: [i for i, x in enumerate(space_of) if x == s] for s in spaces}
    packed, queries = {}, {}
    previous = encoder.active_adapter
    try:
        for s in spaces:
            encoder.use_adapter(s)
            docs, _ = encoder.encode_documents([corpus[i] for i in rows[s]])
            packed[s] = PackedDocs(docs)
            queries[s] = encoder.encode_queries([p["query"] for p in pairs])
    finally:
        encoder.use_adapter(previous)
    ranks = []
    for n, p in enumerate(pairs):
        scores = np.empty(len(corpus), dtype=np.float32)
        for s in spaces:
            scores[rows[s]] = maxsim_many(queries[s][n], packed[s])
        order = np.argsort(-scores)[:10]
        target = index[p["positive"]]
        hits = np.nonzero(order == target)[0]
        ranks.append(int(hits[0]) + 1 if len(hits) else None)
    out = {**_metrics(ranks), "corpus": len(corpus)}
    if subsets:
        out["subsets"] = {name: _metrics([r for p, r in zip(pairs, ranks) if keep(p)]) for name, keep in subsets.items()}
    return out


def _metrics(ranks: list[int | None]) -> dict:
    """n, P@1, MRR@10 and Recall@5 of the ranks of the positives (None: not in the top 10)."""
    n = len(ranks)
    return {
        "n": n,
        "p@1": round(sum(r == 1 for r in ranks) / n, 4) if n else 0.0,
        "mrr@10": round(sum(1 / r for r in ranks if r) / n, 4) if n else 0.0,
        "recall@5": round(sum(1 for r in ranks if r and r <= 5) / n, 4) if n else 0.0,
    }


def evaluate_routing(encoder, heldout: dict[str, list[dict]], routing: dict[str, str | None]) -> dict[str, dict]:
    """Metrics per held-out group (a domain, or a language with an adapter of its own): each
    pair encoded with the adapter the index would give it (``routing.adapter_for``): its
    language's, else its domain's, else the general adapter (None = base)."""
    by_language = {k: v or None for k, v in routing.items() if k not in DOMAINS}
    out = {}
    for key, pairs in sorted(heldout.items()):
        domain = key if key in DOMAINS else domain_of_language(key)
        out[key] = evaluate_domain(encoder, pairs, domain_adapter(routing, domain), by_language)
    return out


def curve_point(target: str, metrics: dict) -> dict:
    """A point of a phase's eval curve (train_phase writes it to eval.jsonl): which held-out
    group, its size and its metrics."""
    return {"target": target, "n": metrics["n"], **{k: metrics[k] for k in METRICS}}
