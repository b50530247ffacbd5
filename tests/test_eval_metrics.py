"""The eval-set reader, the hit rule and the metrics (docs/eval-format.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from codesearch.eval import (
    EvalQuery,
    EvalSetError,
    evaluate,
    first_hit_rank,
    format_report,
    is_hit,
    load_eval_set,
    max_result_lines,
    query_record,
    score_run,
)
from codesearch.eval.evalset import LineRange

ROOT = Path("/corpus/root")  # lexical checks need no files


def S(path: str, a: int, b: int) -> LineRange:
    return LineRange(path, a, b)


# --- a hand-checked run ---------------------------------------------------------------

QUERIES = [
    EvalQuery("r1", "q", "rust", (S("a.rs", 10, 20),)),
    EvalQuery("r2", "q", "rust", (S("b.rs", 5, 8),)),
    EvalQuery("p1", "q", "python", (S("x.py", 1, 3),)),
    EvalQuery("p2", "q", "python", (S("y.py", 10, 12), S("z.py", 30, 40))),
    EvalQuery("c1", "q", "coq", (S("l.v", 100, 200),)),
]
RESULTS = {
    # exact match at rank 1
    "r1": [S("a.rs", 10, 20), S("a.rs", 30, 40)],
    # rank 1: no overlap; rank 2: other file; rank 3: overlaps but 40 lines > max(8, 34) = 34;
    # rank 4: overlaps, 3 lines -> first hit at 4
    "r2": [S("b.rs", 100, 110), S("c.rs", 5, 8), S("b.rs", 1, 40), S("b.rs", 7, 9)],
    # nothing overlaps -> no hit
    "p1": [S("x.py", 50, 60), S("y.py", 1, 3)],
    # rank 2 hits the second relevant span
    "p2": [S("w.py", 1, 2), S("z.py", 35, 36)],
    # six misses (adjacent below the target, other files), then a one-line touch at rank 7
    "c1": [S("l.v", 1, 99)] + [S(f"m{i}.v", 100, 200) for i in range(5)] + [S("l.v", 90, 100)],
}
# ranks: r1=1, r2=4, p1=None, p2=2, c1=7
# rust   (n=2): p@1 = 1/2 = 0.5;  mrr = (1 + 1/4)/2 = 0.625;  recall@5 = 2/2 = 1.0
# python (n=2): p@1 = 0;          mrr = (0 + 1/2)/2 = 0.25;   recall@5 = 1/2 = 0.5
# coq    (n=1): p@1 = 0;          mrr = 1/7;                  recall@5 = 0
# overall (n=5): p@1 = 1/5 = 0.2; mrr = (1 + 1/4 + 0 + 1/2 + 1/7)/5 = 0.378571...; recall@5 = 3/5


def test_hand_checked_ranks():
    ranks = {q.id: first_hit_rank(RESULTS[q.id], q.relevant, ROOT) for q in QUERIES}
    assert ranks == {"r1": 1, "r2": 4, "p1": None, "p2": 2, "c1": 7}


def test_hand_checked_scores():
    ranks = {"r1": 1, "r2": 4, "p1": None, "p2": 2, "c1": 7}
    report = score_run(QUERIES, ranks)
    assert list(report["domains"]) == ["coq", "python", "rust"]
    assert report["domains"]["rust"] == {"n": 2, "p@1": 0.5, "mrr@10": 0.625, "recall@5": 1.0}
    assert report["domains"]["python"] == {"n": 2, "p@1": 0.0, "mrr@10": 0.25, "recall@5": 0.5}
    coq = report["domains"]["coq"]
    assert coq["n"] == 1 and coq["p@1"] == 0.0 and coq["recall@5"] == 0.0
    assert coq["mrr@10"] == pytest.approx(1 / 7)
    overall = report["overall"]
    assert overall["n"] == 5
    assert overall["p@1"] == pytest.approx(0.2)
    assert overall["mrr@10"] == pytest.approx((1 + 0.25 + 0.5 + 1 / 7) / 5)
    assert overall["mrr@10"] == pytest.approx(0.378571, abs=1e-6)
    assert overall["recall@5"] == pytest.approx(0.6)


def test_rank_cutoffs():
    q = EvalQuery("x", "q", "d", (S("a.rs", 1, 5),))
    misses = [S("b.rs", 1, 5)] * 10
    assert first_hit_rank(misses + [S("a.rs", 1, 5)], q.relevant, ROOT) is None  # 11th
    assert first_hit_rank(misses[:9] + [S("a.rs", 1, 5)], q.relevant, ROOT) == 10
    assert first_hit_rank(misses[:2] + [S("a.rs", 1, 5)], q.relevant, ROOT, k=2) is None
    assert first_hit_rank([], q.relevant, ROOT) is None
    # ranks: 5 counts for recall@5, 6 does not; 10 counts for mrr, 11 does not
    qs = [EvalQuery(str(i), "q", "d", (S("a", 1, 1),)) for i in range(4)]
    r = score_run(qs, {"0": 5, "1": 6, "2": 10, "3": 11})["overall"]
    assert r["recall@5"] == 0.25
    assert r["mrr@10"] == pytest.approx((1 / 5 + 1 / 6 + 1 / 10) / 4)
    assert r["p@1"] == 0.0


def test_score_run_rejects_missing_and_bad_ranks():
    with pytest.raises(KeyError, match="'r2'"):
        score_run(QUERIES[:2], {"r1": 1})
    with pytest.raises(ValueError, match="positive integer"):
        score_run(QUERIES[:1], {"r1": 0})


def test_score_run_empty():
    assert score_run([], {}) == {"domains": {}, "overall": {"n": 0, "p@1": 0.0, "mrr@10": 0.0, "recall@5": 0.0}}


# --- rule 3: the size limit -----------------------------------------------------------


@pytest.mark.parametrize(
    "target_lines, limit",
    [(1, 31), (10, 40), (30, 60), (31, 62), (50, 100), (200, 400)],
)
def test_size_limit_boundary(target_lines, limit):
    assert max_result_lines(target_lines) == limit
    target = S("f.rs", 100, 100 + target_lines - 1)
    at_limit = S("f.rs", 100, 100 + limit - 1)  # starts on the target, exactly `limit` lines
    one_more = S("f.rs", 100, 100 + limit)
    assert is_hit(at_limit, target, ROOT)
    assert not is_hit(one_more, target, ROOT)
    # the same with the result extending above the target
    assert is_hit(S("f.rs", 100 + target_lines - limit, 100 + target_lines - 1), target, ROOT)
    assert not is_hit(S("f.rs", 100 + target_lines - limit - 1, 100 + target_lines - 1), target, ROOT)


# --- rule 2: overlap ------------------------------------------------------------------


@pytest.mark.parametrize(
    "result, hit",
    [
        ((10, 20), True),  # identical
        ((20, 25), True),  # touches the last line
        ((5, 10), True),  # touches the first line
        ((21, 25), False),  # adjacent below
        ((5, 9), False),  # adjacent above
        ((12, 14), True),  # inside
        ((1, 40), True),  # contains the 11-line target, 40 <= max(22, 41)
        ((15, 15), True),  # one line inside
    ],
)
def test_overlap(result, hit):
    assert is_hit(S("src/a.rs", *result), S("src/a.rs", 10, 20), ROOT) is hit


# --- rule 1: same file ----------------------------------------------------------------


def test_paths_absolute_and_relative(tmp_path):
    target = S("src/a.rs", 10, 20)
    assert is_hit(S(str(tmp_path / "src" / "a.rs"), 10, 20), target, tmp_path)
    assert is_hit(S("src/a.rs", 10, 20), target, tmp_path)
    assert is_hit(S("src/a.rs", 10, 20), target, str(tmp_path))  # root as a str
    assert not is_hit(S("/elsewhere/src/a.rs", 10, 20), target, tmp_path)
    assert not is_hit(S("src/b.rs", 10, 20), target, tmp_path)
    assert not is_hit(S("src/a.rs.bak", 10, 20), target, tmp_path)
    assert not is_hit(S("a.rs", 10, 20), target, tmp_path)


@pytest.mark.parametrize(
    "result_path",
    ["./src/a.rs", "src/./a.rs", "src//a.rs", "src/x/../a.rs", "../root/src/a.rs", "/corpus/root/src/../src/a.rs"],
)
def test_path_normalisation(result_path):
    assert is_hit(S(result_path, 10, 20), S("src/a.rs", 10, 20), ROOT)
    assert is_hit(S("src/a.rs", 10, 20), S("./" + "src/a.rs", 10, 20), ROOT)


def test_relative_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus").mkdir()
    target = S("a.rs", 1, 3)
    assert is_hit(S(str(tmp_path / "corpus" / "a.rs"), 1, 3), target, Path("corpus"))
    assert is_hit(S("a.rs", 1, 3), target, "corpus/")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_root_through_a_symlink(tmp_path):
    real = tmp_path / "real"
    (real / "src").mkdir(parents=True)
    (real / "src" / "a.rs").write_text("fn a() {}\n")
    link = tmp_path / "link"
    link.symlink_to(real)
    # the eval is run with --root link, the index stored resolved absolute paths
    assert is_hit(S(str(real / "src" / "a.rs"), 1, 1), S("src/a.rs", 1, 1), link)
    assert not is_hit(S(str(real / "src" / "b.rs"), 1, 1), S("src/a.rs", 1, 1), link)


# --- loading --------------------------------------------------------------------------


def _write(tmp_path: Path, lines: list[str]) -> Path:
    p = tmp_path / "set.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def _line(**over) -> str:
    obj = {"id": "q1", "query": "find it", "domain": "rust", "relevant": [{"path": "a.rs", "start_line": 3, "end_line": 5}]}
    obj.update(over)
    return json.dumps(obj)


def test_load_ok_skips_blank_lines_and_ignores_extra_keys(tmp_path):
    p = _write(
        tmp_path,
        [
            _line(name="f", kind="function"),
            "",
            "   ",
            _line(id="q2", domain="coq", relevant=[{"path": "x.v", "start_line": 1, "end_line": 1, "note": 1},
                                                  {"path": "y.v", "start_line": 2, "end_line": 9}]),
        ],
    )
    qs = load_eval_set(p)
    assert qs == [
        EvalQuery("q1", "find it", "rust", (LineRange("a.rs", 3, 5),)),
        EvalQuery("q2", "find it", "coq", (LineRange("x.v", 1, 1), LineRange("y.v", 2, 9))),
    ]
    assert load_eval_set(str(p)) == qs


@pytest.mark.parametrize(
    "bad, message",
    [
        ('{"id": "q3", "query": ', r"set\.jsonl:4: invalid JSON"),
        ('["not", "an", "object"]', r"set\.jsonl:4: expected a JSON object"),
        (json.dumps({"id": "q3", "query": "x", "domain": "rust"}), r"set\.jsonl:4: missing key 'relevant'"),
        (_line(id="q3", query=""), r"set\.jsonl:4: 'query' must be a non-empty string"),
        (_line(id="q3", relevant=[]), r"set\.jsonl:4: 'relevant' is empty"),
        (_line(id="q3", relevant=[{"path": "a.rs", "start_line": 9, "end_line": 5}]),
         r"set\.jsonl:4: relevant\[0\] has start_line 9 > end_line 5"),
        (_line(id="q3", relevant=[{"path": "a.rs", "start_line": 0, "end_line": 5}]),
         r"set\.jsonl:4: relevant\[0\]\.start_line must be >= 1"),
        (_line(id="q3", relevant=[{"path": "a.rs", "start_line": "3", "end_line": 5}]),
         r"set\.jsonl:4: relevant\[0\]\.start_line must be an integer"),
        (_line(id="q3", relevant=[{"path": "a.rs", "start_line": 3, "end_line": 5}, {"path": "b.rs", "start_line": 3}]),
         r"set\.jsonl:4: relevant\[1\] is missing key 'end_line'"),
        (_line(id="q1"), r"set\.jsonl:4: duplicate id 'q1' \(first seen on line 1\)"),
    ],
)
def test_load_errors_name_file_and_line(tmp_path, bad, message):
    p = _write(tmp_path, [_line(), "", _line(id="q2"), bad])  # line 2 is blank: still counted
    with pytest.raises(EvalSetError, match=message):
        load_eval_set(p)


def test_eval_set_error_is_a_value_error():
    assert issubclass(EvalSetError, ValueError)


# --- report and JSON ------------------------------------------------------------------


def test_format_report_exact():
    report = score_run(QUERIES, {"r1": 1, "r2": 4, "p1": None, "p2": 2, "c1": 7})
    expected = (
        "demo\n"
        "domain   n    P@1  MRR@10    R@5\n"
        "-------  -  -----  ------  -----\n"
        "coq      1  0.000   0.143  0.000\n"
        "python   2  0.000   0.250  0.500\n"
        "rust     2  0.500   0.625  1.000\n"
        "overall  5  0.200   0.379  0.600"
    )
    assert format_report(report, title="demo") == expected
    assert format_report(report) == expected.split("\n", 1)[1]


def test_query_record(tmp_path):
    q = QUERIES[0]
    rec = query_record(
        q,
        [(LineRange(str(tmp_path / "src" / "a.rs"), 10, 20), 0.9), (LineRange("./b.rs", 1, 2), 0.5),
         {"path": "c.rs", "start_line": 3, "end_line": 4, "score": 0.25}],
        tmp_path,
        1,
    )
    assert rec == {
        "id": "r1",
        "hit_rank": 1,
        "results": [
            {"path": "src/a.rs", "start_line": 10, "end_line": 20, "score": 0.9},
            {"path": "b.rs", "start_line": 1, "end_line": 2, "score": 0.5},
            {"path": "c.rs", "start_line": 3, "end_line": 4, "score": 0.25},
        ],
    }
    json.dumps(rec)  # serialisable


def test_evaluate_with_a_fake_search():
    by_text = {q.query + q.id: RESULTS[q.id] for q in QUERIES}
    queries = [EvalQuery(q.id, q.query + q.id, q.domain, q.relevant) for q in QUERIES]
    report = evaluate(queries, lambda text: [(s, 1.0 / (i + 1)) for i, s in enumerate(by_text[text])], ROOT)
    assert [r["hit_rank"] for r in report["queries"]] == [1, 4, None, 2, 7]
    assert report["overall"]["p@1"] == pytest.approx(0.2)
    assert report["queries"][1]["results"][3] == {"path": "b.rs", "start_line": 7, "end_line": 9, "score": 0.25}
    json.dumps(report)
