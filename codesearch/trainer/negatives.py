"""Hard negatives: same-language code that looks relevant to a query but is not its answer.

* :func:`mine_bm25_negatives`: BM25 (``bm25s``, words from
  :func:`codesearch.indexer.store.code_words`) over the positives of one language in one
  split; run it on the train and held-out pairs separately so that nothing crosses the split.
* :func:`mine_model_negatives`: the same with the current model's pooled vectors (cosine),
  for the trainer to refresh negatives between phases.

Both exclude, for each pair, its own positive, any positive from the same origin file and
name (windows, cfg twins), and any positive whose own query is the same text; and both drop
likely false negatives: candidates scoring at least ``threshold`` (0.95) times the positive's
score for that query. Negatives are written into ``pair.negatives`` in place.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from codesearch.trainer.pairs import Pair


def _norm_query(q: str) -> str:
    return " ".join(q.lower().rstrip(".!? ").split())


class _LanguagePool:
    """The distinct positives of one language, with what excludes each from a pair."""

    def __init__(self, pairs: list[Pair]):
        self.docs: list[str] = []
        self.index: dict[str, int] = {}
        self.by_origin: dict[tuple[str, str, str], list[int]] = defaultdict(list)
        self.by_query: dict[str, list[int]] = defaultdict(list)
        for p in pairs:
            i = self.index.get(p.positive)
            if i is None:
                i = self.index[p.positive] = len(self.docs)
                self.docs.append(p.positive)
                self.by_origin[(p.origin.corpus, p.origin.path, p.origin.name)].append(i)
            q = _norm_query(p.query)
            if not self.by_query[q] or self.by_query[q][-1] != i:
                self.by_query[q].append(i)

    def excluded(self, p: Pair) -> list[int]:
        out = [self.index[p.positive]]
        if p.origin.name:
            out.extend(self.by_origin.get((p.origin.corpus, p.origin.path, p.origin.name), ()))
        out.extend(self.by_query.get(_norm_query(p.query), ()))
        return out


def _language_pools(pairs: Sequence[Pair]) -> Iterator[tuple[str, list[Pair], "_LanguagePool"]]:
    """(language, its pairs, their document pool) per language, in a fixed order: negatives
    only ever come from the same language."""
    by_lang: dict[str, list[Pair]] = defaultdict(list)
    for p in pairs:
        by_lang[p.language].append(p)
    for language in sorted(by_lang):
        yield language, by_lang[language], _LanguagePool(by_lang[language])


def _select(
    scores: np.ndarray, pos: int, excluded: list[int], k: int, threshold: float, floor: float | None
) -> list[int]:
    """Top-k candidates below threshold * the positive's score (and above ``floor``)."""
    s = scores.astype(np.float64, copy=True)
    ps = float(s[pos])
    s[excluded] = -np.inf
    limit = threshold * ps if ps > 0 else ps
    s[s >= limit] = -np.inf
    if floor is not None:
        s[s <= floor] = -np.inf
    finite = np.flatnonzero(np.isfinite(s))
    if len(finite) == 0:
        return []
    if len(finite) > k:
        part = np.argpartition(-s[finite], k - 1)[:k]
        finite = finite[part]
    return [int(i) for i in sorted(finite, key=lambda i: (-s[i], i))]


def _fill_random(chosen: list[int], n_docs: int, excluded: list[int], k: int, rng: random.Random) -> list[int]:
    if len(chosen) >= k or n_docs <= 1:
        return chosen
    banned = set(excluded) | set(chosen)
    tries = 0
    while len(chosen) < k and tries < 10 * k:
        tries += 1
        j = rng.randrange(n_docs)
        if j not in banned:
            banned.add(j)
            chosen.append(j)
    return chosen


def mine_bm25_negatives(
    pairs: list[Pair],
    k: int = 3,
    threshold: float = 0.95,
    seed: int = 0,
    fill_random: bool = True,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Set ``pair.negatives`` to up to ``k`` BM25 hard negatives of the same language.

    Candidates are the distinct positives of ``pairs`` in the pair's language. With
    ``fill_random``, a pair that gets fewer than ``k`` (no lexical overlap, tiny language)
    is topped up with random same-language positives (still never excluded ones).
    Returns counts: pairs, BM25 negatives, random fill-ins, pairs with none.
    """
    import logging

    import bm25s

    from codesearch.indexer.store import code_words

    logging.getLogger("bm25s").setLevel(logging.WARNING)

    stats: Counter[str] = Counter()
    for language, group, pool in _language_pools(pairs):
        rng = random.Random(f"{seed}:{language}")
        retriever = None
        if len(pool.docs) > 1:
            retriever = bm25s.BM25()
            retriever.index([code_words(d) for d in pool.docs], show_progress=False)
        for p in group:
            excluded = pool.excluded(p)
            chosen: list[int] = []
            q = code_words(p.query)
            if retriever is not None and q:
                scores = np.asarray(retriever.get_scores(q))
                chosen = _select(scores, pool.index[p.positive], excluded, k, threshold, floor=0.0)
            stats["bm25"] += len(chosen)
            if fill_random:
                before = len(chosen)
                chosen = _fill_random(chosen, len(pool.docs), excluded, k, rng)
                stats["random"] += len(chosen) - before
            if not chosen:
                stats["pairs without negatives"] += 1
            p.negatives = [pool.docs[i] for i in chosen]
            stats["pairs"] += 1
            if progress is not None:
                progress(1)
    return dict(stats)


def mine_model_negatives(
    pairs: list[Pair],
    encoder: Any,
    k: int = 3,
    threshold: float = 0.95,
    batch_size: int = 32,
    merge: bool = False,
    block: int = 1024,
) -> dict[str, Any]:
    """Set ``pair.negatives`` to the ``k`` same-language positives that ``encoder`` scores
    highest for the pair's query (cosine of pooled vectors), below ``threshold`` times the
    positive's own score, with the same exclusions as BM25 mining.

    ``encoder`` needs ``encode_documents(texts, batch_size=...) -> (token_vectors, pooled)``
    and ``encode_queries_pooled(queries, batch_size=...) -> (token_vectors, pooled)`` with unit
    pooled rows (as :class:`codesearch.model.encoder.Encoder`). With ``merge``, the model's
    negatives come first and the pair's existing ones fill up to ``k``. Each block of queries
    keeps its best few candidates in one partial sort; a row whose few are all excluded or
    above the threshold is searched whole, so the result is that of a full sort.
    """
    stats: Counter[str] = Counter()
    for language, group, pool in _language_pools(pairs):
        if len(pool.docs) < 2:
            continue
        _, doc_vecs = encoder.encode_documents(pool.docs, batch_size=batch_size)
        doc_vecs = np.asarray(doc_vecs, dtype=np.float32)
        _, query_vecs = encoder.encode_queries_pooled([p.query for p in group], batch_size=batch_size)
        query_vecs = np.asarray(query_vecs, dtype=np.float32)
        few = min(len(pool.docs), k + 32)
        for start in range(0, len(group), block):
            sims = query_vecs[start : start + block] @ doc_vecs.T
            tops = np.argpartition(-sims, few - 1, axis=1)[:, :few] if few < len(pool.docs) else None
            for row, p in enumerate(group[start : start + block]):
                pos, excluded = pool.index[p.positive], pool.excluded(p)
                chosen = _select_few(sims[row], tops[row], pos, excluded, k, threshold) if tops is not None else None
                if chosen is None:
                    chosen = _select(sims[row], pos, excluded, k, threshold, floor=None)
                new = [pool.docs[i] for i in chosen]
                if merge:
                    new += [n for n in p.negatives if n not in new]
                    new = new[:k]
                stats["model"] += len(chosen)
                stats["pairs"] += 1
                p.negatives = new
    return dict(stats)


def _select_few(scores: np.ndarray, few: np.ndarray, pos: int, excluded: list[int], k: int, threshold: float) -> list[int] | None:
    """:func:`_select` over the row's best few candidates; None when fewer than ``k`` of them
    qualify (then only the whole row can say)."""
    ps = float(scores[pos])
    limit = threshold * ps if ps > 0 else ps
    banned = set(excluded)
    ok = [int(i) for i in few if int(i) not in banned and float(scores[i]) < limit]
    if len(ok) < k:
        return None
    chosen = sorted(ok, key=lambda i: (-float(scores[i]), i))[:k]
    if float(scores[chosen[-1]]) <= float(scores[few].min()):
        return None  # a tie at the edge of the few: the whole row decides which one (lowest index)
    return chosen


def negatives_are_valid(pairs: Sequence[Pair]) -> bool:
    """Every negative differs from its pair's positive (a cheap invariant for callers)."""
    return all(n != p.positive for p in pairs for n in p.negatives)
