"""The hit rule and the metrics of docs/eval-format.md.

A result (path, start_line, end_line) hits a relevant span when
1. it is the same file (paths compared after resolving against the corpus root),
2. the line ranges overlap, and
3. ``result_lines <= max(2 * target_lines, target_lines + 30)``.

Per query the rank of the first hit among the top 10 decides p@1, mrr@10 and recall@5;
they are reported per domain and overall (mean over queries) with the query count n.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from .evalset import EvalQuery, LineRange

__all__ = [
    "TOP_K",
    "METRICS",
    "max_result_lines",
    "is_hit",
    "first_hit_rank",
    "score_run",
    "format_report",
    "query_record",
    "evaluate",
]

TOP_K = 10
METRICS = ("p@1", "mrr@10", "recall@5")


def max_result_lines(target_lines: int) -> int:
    """The largest result (in lines) that may still hit a target of ``target_lines`` lines."""
    return max(2 * target_lines, target_lines + 30)


@lru_cache(maxsize=1 << 16)
def _lexical_key(root: str, path: str) -> str:
    # abspath() joins relative roots to the cwd and normalises "./", "..", "//" lexically.
    return os.path.abspath(os.path.join(root, path))


@lru_cache(maxsize=1 << 16)
def _real_key(root: str, path: str) -> str:
    return os.path.realpath(os.path.join(root, path))


def _same_file(a: str, b: str, root: str) -> bool:
    """Are a and b (each absolute, or relative to root) the same file?

    Lexical normalisation first (no filesystem access); symlinks are resolved only when the
    lexical forms differ, so a root given through a symlink still matches real paths.
    """
    if _lexical_key(root, a) == _lexical_key(root, b):
        return True
    return _real_key(root, a) == _real_key(root, b)


def is_hit(result: LineRange, target: LineRange, root: Path | str) -> bool:
    """Does ``result`` hit ``target`` under the three rules of the eval format?

    ``result.path`` may be absolute or relative to ``root``; ``target.path`` is relative
    to ``root``.
    """
    if result.end_line < target.start_line or target.end_line < result.start_line:
        return False  # rule 2: no overlap (cheapest test first)
    result_lines = result.end_line - result.start_line + 1
    target_lines = target.end_line - target.start_line + 1
    if result_lines > max_result_lines(target_lines):
        return False  # rule 3: a chunk much larger than the target does not count
    return _same_file(result.path, target.path, os.fspath(root))  # rule 1


def first_hit_rank(
    results: Sequence[LineRange], relevant: Sequence[LineRange], root: Path | str, k: int = TOP_K
) -> int | None:
    """1-based rank of the first of the top ``k`` results that hits any relevant span."""
    for rank, result in enumerate(results[:k], start=1):
        if any(is_hit(result, target, root) for target in relevant):
            return rank
    return None


def _aggregate(ranks: Iterable[int | None]) -> dict[str, Any]:
    ranks = list(ranks)
    n = len(ranks)
    if n == 0:
        return {"n": 0, "p@1": 0.0, "mrr@10": 0.0, "recall@5": 0.0}
    p1 = sum(1 for r in ranks if r is not None and r == 1) / n
    mrr = sum(1.0 / r for r in ranks if r is not None and r <= 10) / n
    r5 = sum(1 for r in ranks if r is not None and r <= 5) / n
    return {"n": n, "p@1": p1, "mrr@10": mrr, "recall@5": r5}


def score_run(queries: Sequence[EvalQuery], ranks: Mapping[str, int | None]) -> dict[str, Any]:
    """Metrics per domain (sorted by name) and overall, from each query's first-hit rank.

    ``ranks`` maps every query id to the 1-based rank of its first hit, or None when there
    was no hit in the top 10. Ranks above 10 count as misses. A query without an entry in
    ``ranks`` is an error (a silently dropped query would inflate the scores).
    """
    missing = [q.id for q in queries if q.id not in ranks]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5])
        raise KeyError(f"no rank for {len(missing)} quer{'y' if len(missing) == 1 else 'ies'}: {shown}")
    for qid, r in ranks.items():
        if r is not None and (isinstance(r, bool) or not isinstance(r, int) or r < 1):
            raise ValueError(f"rank of query {qid!r} must be a positive integer or None, got {r!r}")
    by_domain: dict[str, list[int | None]] = {}
    for q in queries:
        by_domain.setdefault(q.domain, []).append(ranks[q.id])
    return {
        "domains": {d: _aggregate(by_domain[d]) for d in sorted(by_domain)},
        "overall": _aggregate(ranks[q.id] for q in queries),
    }


def format_report(report: Mapping[str, Any], title: str | None = None) -> str:
    """A plain aligned table: one row per domain, then "overall"; n, P@1, MRR@10, R@5."""
    rows = [(name, m) for name, m in report.get("domains", {}).items()]
    rows.append(("overall", report["overall"]))
    header = ("domain", "n", "P@1", "MRR@10", "R@5")
    body = [
        (name, str(m["n"]), f"{m['p@1']:.3f}", f"{m['mrr@10']:.3f}", f"{m['recall@5']:.3f}")
        for name, m in rows
    ]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def fmt(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "  ".join([first, *rest])

    lines = [title] if title else []
    lines.append(fmt(header))
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(fmt(r) for r in body)
    return "\n".join(lines)


def _unpack_result(item: Any) -> tuple[LineRange, float | None]:
    """Accept (span, score) pairs, objects with path/start_line/end_line[/score], or dicts."""
    if isinstance(item, tuple) and len(item) == 2 and not isinstance(item[0], (str, int)):
        span_like, score = item
    else:
        span_like, score = item, None
    if isinstance(span_like, Mapping):
        get = span_like.get
    else:
        get = lambda key, default=None: getattr(span_like, key, default)  # noqa: E731
    span = LineRange(str(get("path")), int(get("start_line")), int(get("end_line")))
    if score is None:
        score = get("score")
    return span, (None if score is None else float(score))


def _relative_path(path: str, root: Path | str) -> str:
    root_abs = os.path.abspath(os.fspath(root))
    full = os.path.abspath(os.path.join(root_abs, path))
    rel = os.path.relpath(full, root_abs)
    if rel == ".." or rel.startswith(".." + os.sep):
        return full.replace(os.sep, "/")  # outside the root: keep it absolute
    return rel.replace(os.sep, "/")


def query_record(
    q: EvalQuery, results_with_scores: Sequence[Any], root: Path | str, hit_rank: int | None
) -> dict[str, Any]:
    """One entry of ``codesearch eval --json``'s "queries" list.

    ``results_with_scores``: (LineRange, score) pairs, or result objects/dicts carrying
    path, start_line, end_line and score. Paths are written relative to ``root``.
    """
    out = []
    for item in results_with_scores:
        span, score = _unpack_result(item)
        out.append(
            {
                "path": _relative_path(span.path, root),
                "start_line": span.start_line,
                "end_line": span.end_line,
                "score": score,
            }
        )
    return {"id": q.id, "hit_rank": hit_rank, "results": out}


def evaluate(
    queries: Sequence[EvalQuery],
    search: Callable[[str], Sequence[Any]],
    root: Path | str,
    k: int = TOP_K,
) -> dict[str, Any]:
    """Run ``search(query_text)`` for every query and score it.

    Returns ``{"domains", "overall", "queries"}``, the shape ``codesearch eval --json``
    prints. ``search`` returns results best first, in any form query_record accepts;
    only the top ``k`` are kept.
    """
    ranks: dict[str, int | None] = {}
    records = []
    for q in queries:
        items = list(search(q.query))[:k]
        spans = [_unpack_result(it)[0] for it in items]
        rank = first_hit_rank(spans, q.relevant, root, k=k)
        ranks[q.id] = rank
        records.append(query_record(q, items, root, rank))
    report = score_run(queries, ranks)
    report["queries"] = records
    return report


def evaluate_search(
    queries: Sequence[EvalQuery],
    searcher: Any,
    root: Path | str,
    method: str | None = None,
    on_query: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """``codesearch eval``: every query searched within ``root`` (the top TOP_K, with
    ``searcher``, a codesearch.search.Searcher) and scored as :func:`evaluate` scores."""
    from codesearch.search import Filters

    filters = Filters(under=str(root))

    def run(text: str):
        if on_query:
            on_query()
        return searcher.search(text, limit=TOP_K, filters=filters, method=method)

    return evaluate(queries, run, root)
