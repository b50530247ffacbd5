"""The personal eval set: what the user told the editor about results (the language server
records it, `finetune --personal` trains on it: neither layer owns it).

``codesearch.feedback`` appends one event per judgement to ``HOME/personal/feedback.jsonl``
(the log, never rewritten) and regenerates ``HOME/personal/eval.jsonl`` from it, in the
format of docs/eval-format.md (domain ``personal``):

    {"id": "personal-3f2a...", "query": "retry with backoff", "domain": "personal",
     "relevant": [{"path": "src/net.rs", "start_line": 10, "end_line": 42, "name": "retry", ...}],
     "root": "/home/me/src/myservice",
     "negatives": [{"path": "src/http.rs", "start_line": 5, "end_line": 9, "name": "get"}],
     "source": "editor", "updated": "2025-01-01T12:00:00+00:00"}

- A ``good`` verdict, or a result the user opened (``chosen``), makes its span relevant; a
  ``bad`` verdict makes it a negative (kept for the trainer's hard negatives). The last
  explicit verdict on a result wins; opening a result never overrides an explicit ``bad``.
- Paths are relative to ``root`` (an extra key: the result's repository, or the common
  folder of several), so ``codesearch eval eval.jsonl --root ROOT`` runs a one-repository
  set as is. Queries with only bad results have no target span and stay in the log only.

``run_personal_eval`` scores the set with the eval module (same hit rule and metrics as
every other eval) through the server's search path, and lists the queries the model misses.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from codesearch.eval import EvalQuery, LineRange, evaluate, load_eval_set, score_run
from codesearch.home import IndexHome

VERDICTS = ("good", "bad", "chosen")


def query_key(query: str) -> str:
    return " ".join(query.split()).lower()


def query_id(query: str) -> str:
    return "personal-" + hashlib.sha1(query_key(query).encode()).hexdigest()[:12]


class FeedbackStore:
    """The feedback log and the eval set derived from it, in one index home."""

    _lock = threading.Lock()  # one writer per process; appends are atomic lines across processes

    def __init__(self, home: Path):
        home = IndexHome(home)
        self.dir = home.personal_dir
        self.log_path = home.feedback_log
        self.eval_path = home.personal_eval
        self.last_eval_path = home.last_eval

    def record(self, query: str, verdict: str, result: dict) -> dict:
        """Append one judgement; regenerate the eval set. ``result``: path (absolute),
        start_line, end_line, and when known repo, rel_path, name, kind, language."""
        event = {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "query": " ".join(query.split()),
            "verdict": verdict,
            "result": result,
        }
        with self._lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(event, ensure_ascii=False) + "\n")
            lines = self.build()
            _write_atomic(self.eval_path, lines)
        mine = next((l for l in lines if l["id"] == query_id(query)), None)
        return {
            "id": query_id(query),
            "recorded": verdict,
            "inEvalSet": mine is not None,
            "relevant": len(mine["relevant"]) if mine else 0,
            "negatives": len(mine.get("negatives", [])) if mine else sum(
                1 for e in self.events() if query_key(e["query"]) == query_key(query) and e["verdict"] == "bad"
            ),
            "queries": len(lines),
            "file": str(self.eval_path),
        }

    def events(self) -> list[dict]:
        if not self.log_path.exists():
            return []
        out = []
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line of a killed writer
            if isinstance(event, dict) and event.get("verdict") in VERDICTS and isinstance(event.get("result"), dict):
                out.append(event)
        return out

    def build(self) -> list[dict]:
        """The eval-set lines, one per query with at least one relevant span, oldest first."""
        by_query: dict[str, dict] = {}
        for e in self.events():
            r = e["result"]
            try:
                span_key = (str(r["path"]), int(r["start_line"]), int(r["end_line"]))
            except (KeyError, TypeError, ValueError):
                continue
            q = by_query.setdefault(query_key(e["query"]), {"query": e["query"], "spans": {}, "updated": e["time"]})
            q["updated"] = e["time"]
            previous = q["spans"].get(span_key)
            if e["verdict"] == "chosen" and previous is not None:
                continue  # an explicit verdict (or an earlier open) stands
            q["spans"][span_key] = (e["verdict"], r)
        lines = []
        for q in by_query.values():
            good = [(k, r, v) for k, (v, r) in q["spans"].items() if v in ("good", "chosen")]
            bad = [(k, r, v) for k, (v, r) in q["spans"].items() if v == "bad"]
            if not good:
                continue
            repos = [str(r.get("repo") or os.path.dirname(k[0])) for k, r, _ in good]
            root = repos[0] if len(set(repos)) == 1 else os.path.commonpath(repos)
            lines.append(
                {
                    "id": query_id(q["query"]),
                    "query": q["query"],
                    "domain": "personal",
                    "relevant": [_span(k, r, root, signal=v) for k, r, v in good],
                    "root": root,
                    "negatives": [_span(k, r, root) for k, r, _ in bad],
                    "source": "editor",
                    "updated": q["updated"],
                }
            )
        return lines

    def load(self) -> tuple[list[EvalQuery], dict[str, dict]]:
        """The eval set through the strict reader, plus each line's extra keys by id."""
        if not self.eval_path.exists():
            return [], {}
        queries = load_eval_set(self.eval_path)
        extra = {}
        for line in self.eval_path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                obj = json.loads(line)
                extra[str(obj["id"])] = obj
        return queries, extra


def _span(key: tuple[str, int, int], r: dict, root: str, signal: str | None = None) -> dict:
    path, start, end = key
    rel = os.path.relpath(path, root)
    span: dict[str, Any] = {"path": path if rel.startswith("..") else rel, "start_line": start, "end_line": end}
    for k in ("name", "kind", "language"):
        if r.get(k):
            span[k] = r[k]
    if signal:
        span["signal"] = signal
    return span


def _write_atomic(path: Path, lines: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="\n") as f:
        for obj in lines:
            f.write(json.dumps(obj, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- personal eval
def reanchor(query: EvalQuery, extra: dict, chunks_of: Callable[[str], list[dict]]) -> EvalQuery:
    """Follow relevant spans that moved: a span recorded with a name whose lines no longer
    hold a chunk of that name takes the lines of the file's current chunk of that name."""
    root = extra.get("root") or ""
    spans = []
    raw = extra.get("relevant") or []
    for i, s in enumerate(query.relevant):
        name = raw[i].get("name") if i < len(raw) and isinstance(raw[i], dict) else None
        if name:
            full = os.path.join(root, s.path)
            rows = [c for c in chunks_of(full) if c["name"] == name]
            if rows and not any(c["start_line"] == s.start_line and c["end_line"] == s.end_line for c in rows):
                best = min(rows, key=lambda c: abs(c["start_line"] - s.start_line))
                s = LineRange(s.path, int(best["start_line"]), int(best["end_line"]))
        spans.append(s)
    return EvalQuery(query.id, query.query, query.domain, tuple(spans))


def run_personal_eval(
    store: FeedbackStore,
    search: Callable[[str, Path], Sequence[Any]],
    chunks_of: Callable[[str], list[dict]] | None = None,
    *,
    show_misses: int = 20,
) -> dict:
    """Score the personal eval set. ``search(query, root)`` returns results best first
    (objects with path, start_line, end_line, score, name)."""
    queries, extra = store.load()
    if not queries:
        return {
            "n": 0, "p@1": 0.0, "mrr@10": 0.0, "recall@5": 0.0, "misses": [], "queries": [],
            "file": str(store.eval_path),
            "message": "the personal eval set is empty: mark results good (thumbs up) or open them to add queries",
        }
    if chunks_of is not None:
        queries = [reanchor(q, extra.get(q.id, {}), chunks_of) for q in queries]
    by_root: dict[str, list[EvalQuery]] = {}
    for q in queries:
        by_root.setdefault(extra.get(q.id, {}).get("root") or "/", []).append(q)
    ranks: dict[str, int | None] = {}
    records: dict[str, dict] = {}
    for root, group in by_root.items():
        report = evaluate(group, lambda text, root=root: search(text, Path(root)), root)
        for rec in report["queries"]:
            ranks[rec["id"]] = rec["hit_rank"]
            records[rec["id"]] = rec
    scores = score_run(queries, ranks)
    overall = scores["overall"]
    misses = []
    for q in queries:
        if ranks[q.id] is not None:
            continue
        root = extra.get(q.id, {}).get("root") or "/"
        misses.append(
            {
                "id": q.id,
                "query": q.query,
                "root": root,
                "expected": [_abs_span(s, root) for s in q.relevant],
                "got": records[q.id]["results"][:3],
            }
        )
    result = {
        "n": overall["n"],
        "p@1": round(overall["p@1"], 4),
        "mrr@10": round(overall["mrr@10"], 4),
        "recall@5": round(overall["recall@5"], 4),
        "misses": misses[:show_misses],
        "missCount": len(misses),
        "queries": [{"id": q.id, "query": q.query, "hitRank": ranks[q.id]} for q in queries],
        "file": str(store.eval_path),
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return result


def _abs_span(s: LineRange, root: str) -> dict:
    return {"path": os.path.normpath(os.path.join(root, s.path)), "start_line": s.start_line, "end_line": s.end_line}


def summary_line(result: dict, previous: dict | None = None) -> str:
    """One line for a message: the metrics, with the change since ``previous``."""
    def part(key: str, label: str) -> str:
        now = result.get(key, 0.0)
        if previous and previous.get("n"):
            return f"{label} {previous.get(key, 0.0):.2f} → {now:.2f}"
        return f"{label} {now:.2f}"

    return (
        f"personal eval ({result.get('n', 0)} queries): {part('p@1', 'P@1')}, {part('mrr@10', 'MRR@10')}, "
        f"{part('recall@5', 'Recall@5')}; {result.get('missCount', 0)} missed"
    )
