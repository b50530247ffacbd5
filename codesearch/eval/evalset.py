"""Eval sets: the JSON Lines format of docs/eval-format.md, read strictly.

One line per query::

    {"id": "rust-17", "query": "Returns the number of elements in the set.", "domain": "rust",
     "relevant": [{"path": "src/set.rs", "start_line": 239, "end_line": 244}]}

Paths in ``relevant`` are relative to the corpus root the eval is run against; lines are
1-based and inclusive. Extra keys (``name``, ``kind``, ...) are allowed and ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

__all__ = ["LineRange", "EvalQuery", "EvalSetError", "load_eval_set", "dump_eval_set", "query_to_json", "check_root"]


@dataclass(frozen=True)
class LineRange:
    """A line range of one file; lines are 1-based and inclusive."""

    path: str
    start_line: int
    end_line: int

    @property
    def n_lines(self) -> int:
        return self.end_line - self.start_line + 1


@dataclass(frozen=True)
class EvalQuery:
    id: str
    query: str
    domain: str
    relevant: tuple[LineRange, ...]


class EvalSetError(ValueError):
    """A malformed eval set; the message names the file, the line number and the problem."""


def _is_int(value: Any) -> bool:
    # bool is an int subclass; `true` is not a line number.
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_span(obj: Any, where: str, index: int) -> LineRange:
    if not isinstance(obj, dict):
        raise EvalSetError(f"{where}: relevant[{index}] must be an object, got {type(obj).__name__}")
    for key in ("path", "start_line", "end_line"):
        if key not in obj:
            raise EvalSetError(f"{where}: relevant[{index}] is missing key {key!r}")
    path, start, end = obj["path"], obj["start_line"], obj["end_line"]
    if not isinstance(path, str) or not path.strip():
        raise EvalSetError(f"{where}: relevant[{index}].path must be a non-empty string")
    for key, value in (("start_line", start), ("end_line", end)):
        if not _is_int(value):
            raise EvalSetError(f"{where}: relevant[{index}].{key} must be an integer, got {value!r}")
        if value < 1:
            raise EvalSetError(f"{where}: relevant[{index}].{key} must be >= 1 (lines are 1-based), got {value}")
    if start > end:
        raise EvalSetError(f"{where}: relevant[{index}] has start_line {start} > end_line {end}")
    return LineRange(path, start, end)


def _parse_query(obj: Any, where: str) -> EvalQuery:
    if not isinstance(obj, dict):
        raise EvalSetError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for key in ("id", "query", "domain", "relevant"):
        if key not in obj:
            raise EvalSetError(f"{where}: missing key {key!r}")
    qid, text, domain, relevant = obj["id"], obj["query"], obj["domain"], obj["relevant"]
    if isinstance(qid, bool) or not isinstance(qid, (str, int)) or str(qid) == "":
        raise EvalSetError(f"{where}: 'id' must be a non-empty string, got {qid!r}")
    if not isinstance(text, str) or not text.strip():
        raise EvalSetError(f"{where}: 'query' must be a non-empty string")
    if not isinstance(domain, str) or not domain.strip():
        raise EvalSetError(f"{where}: 'domain' must be a non-empty string")
    if not isinstance(relevant, list):
        raise EvalSetError(f"{where}: 'relevant' must be a list of spans")
    if not relevant:
        raise EvalSetError(f"{where}: 'relevant' is empty (a query needs at least one target span)")
    spans = tuple(_parse_span(s, where, i) for i, s in enumerate(relevant))
    return EvalQuery(str(qid), text, domain, spans)


def load_eval_set(path: str | Path) -> list[EvalQuery]:
    """Read an eval set; blank lines are skipped, anything malformed raises EvalSetError."""
    path = Path(path)
    queries: list[EvalQuery] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise EvalSetError(f"{where}: invalid JSON: {e.msg} (column {e.colno})") from None
            q = _parse_query(obj, where)
            if q.id in seen:
                raise EvalSetError(f"{where}: duplicate id {q.id!r} (first seen on line {seen[q.id]})")
            seen[q.id] = lineno
            queries.append(q)
    return queries


def check_root(queries: Iterable[EvalQuery], root: str | Path) -> tuple[int, list[str]]:
    """The files the relevant spans name, and those missing under ``root``: (total, missing).

    Raises EvalSetError when every one is missing (the wrong ``--root`` scores 0.000 silently
    otherwise), naming a subfolder of ``root`` that holds them when there is one.
    """
    root = Path(root)
    files = sorted({s.path for q in queries for s in q.relevant})
    missing = [f for f in files if not (root / f).is_file()]
    if files and len(missing) == len(files):
        hint = ""
        try:
            subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        except OSError:
            subdirs = []
        for d in subdirs:
            if sum((d / f).is_file() for f in files[:20]) > 0:
                hint = f" (they are under {d}: try --root {d})"
                break
        raise EvalSetError(
            f"none of the {len(files)} files the eval set names exist under {root} (e.g. {root / files[0]}){hint}"
        )
    return len(files), missing


def query_to_json(q: EvalQuery, **extra: Any) -> dict[str, Any]:
    """The JSON object of one eval-set line; ``extra`` keys come after the required ones."""
    obj: dict[str, Any] = {
        "id": q.id,
        "query": q.query,
        "domain": q.domain,
        "relevant": [{"path": s.path, "start_line": s.start_line, "end_line": s.end_line} for s in q.relevant],
    }
    obj.update(extra)
    return obj


def dump_eval_set(lines: Iterable[dict[str, Any]], path: str | Path) -> None:
    """Write eval-set objects (see query_to_json), one compact JSON object per line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for obj in lines:
            f.write(json.dumps(obj, ensure_ascii=False) + "\n")
