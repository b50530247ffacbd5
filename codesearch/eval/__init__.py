"""Retrieval evaluation: the eval-set format, the hit rule and the metrics.

See docs/eval-format.md for the contract; an independent benchmark uses exactly the
same format and hit rule.
"""

from .evalset import EvalQuery, EvalSetError, LineRange, check_root, dump_eval_set, load_eval_set, query_to_json
from .metrics import (
    METRICS,
    TOP_K,
    evaluate,
    evaluate_search,
    first_hit_rank,
    format_report,
    is_hit,
    max_result_lines,
    query_record,
    score_run,
)

__all__ = [
    "LineRange",
    "EvalQuery",
    "EvalSetError",
    "load_eval_set",
    "check_root",
    "dump_eval_set",
    "query_to_json",
    "TOP_K",
    "METRICS",
    "max_result_lines",
    "is_hit",
    "first_hit_rank",
    "score_run",
    "format_report",
    "query_record",
    "evaluate",
    "evaluate_search",
]
