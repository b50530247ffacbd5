"""The personal eval set: ``codesearch.feedback`` records a verdict on a result,
``codesearch.personalEval`` scores the recorded queries (as the server also does after a
fine-tune re-embedded the index, to tell the user how the model moved)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pygls.exceptions import JsonRpcInvalidParams
from pygls.uris import from_fs_path

from codesearch.eval.feedback import VERDICTS, FeedbackStore, run_personal_eval as score_personal_eval, summary_line
from codesearch.lsp.engine import Engine, SearchRequest
from codesearch.lsp.features import object_argument
from codesearch.lsp.search import RequestError, to_path

if TYPE_CHECKING:  # pragma: no cover
    from codesearch.lsp.server import CodesearchServer

log = logging.getLogger("codesearch.lsp")


async def cmd_feedback(ls: CodesearchServer, *args: Any) -> dict:
    if len(args) != 1:
        raise JsonRpcInvalidParams("codesearch.feedback takes one argument: {query, result, verdict}")
    params = object_argument(args[0], "codesearch.feedback")
    unknown = sorted(set(params) - {"query", "result", "verdict"})
    if unknown:
        raise JsonRpcInvalidParams(f"unknown parameter(s) {', '.join(map(repr, unknown))}: expected query, result, verdict")
    query, verdict, result = params.get("query"), params.get("verdict"), params.get("result")
    if not isinstance(query, str) or not query.strip():
        raise JsonRpcInvalidParams("missing 'query': the query the result was found for")
    if verdict not in VERDICTS:
        raise JsonRpcInvalidParams(f"'verdict' must be one of {', '.join(VERDICTS)}, got {verdict!r}")
    engine = await ls.engine_ready()
    record = await asyncio.to_thread(feedback_result, ls, engine, result)  # reads the index: off the event loop
    return await asyncio.to_thread(FeedbackStore(engine.home).record, query, verdict, record)


async def cmd_personal_eval(ls: CodesearchServer, *args: Any) -> dict:
    if args and not (len(args) == 1 and isinstance(args[0], dict) and not args[0]):
        raise JsonRpcInvalidParams("codesearch.personalEval takes no arguments")
    return await run_personal_eval(ls)


async def run_personal_eval(ls: CodesearchServer, engine: Engine | None = None) -> dict:
    """Score the personal eval set with ``engine`` (the server's) and keep the result as the last eval."""
    engine = engine or await ls.engine_ready()
    store = FeedbackStore(engine.home)
    limit = 10

    def search(text: str, root: Path):
        req = SearchRequest(query=text, limit=limit)
        # One search at a time: each query waits its turn on the search thread.
        return ls.searches.submit(lambda: engine.search(req, [root])).result()

    result = await asyncio.to_thread(score_personal_eval, store, search, engine.chunks_of)
    for miss in result["misses"]:
        for s in miss["expected"]:
            s["uri"] = from_fs_path(s["path"])
    if result.get("n"):
        store.dir.mkdir(parents=True, exist_ok=True)
        _write_json(store.last_eval_path, {k: v for k, v in result.items() if k != "queries"})
    return result


async def summarise_personal_eval(ls: CodesearchServer, engine: Engine) -> None:
    """After a model change: score the personal eval set and show how it moved since the last eval."""
    store = FeedbackStore(engine.home)
    previous = _read_json(store.last_eval_path)
    try:
        result = await run_personal_eval(ls, engine)
    except Exception as exc:
        log.warning("personal eval failed: %s", exc)
        return
    if result.get("n"):
        ls.show("model updated; " + summary_line(result, previous))


def feedback_result(ls: CodesearchServer, engine: Engine, result: Any) -> dict:
    """The judged result as the feedback log stores it (path, lines, repo, name, ...)."""
    if not isinstance(result, dict):
        raise JsonRpcInvalidParams("'result' must be a result object of codesearch/search ({uri, range, ...})")
    where = result.get("uri") or result.get("path")
    if not isinstance(where, str) or not where:
        raise JsonRpcInvalidParams("'result' needs 'uri' (or 'path')")
    try:
        path = os.path.abspath(to_path(where))
    except RequestError as exc:
        raise JsonRpcInvalidParams(f"'result': {exc}") from None
    if isinstance(result.get("startLine"), int) and isinstance(result.get("endLine"), int):
        start, end = result["startLine"], result["endLine"]
    elif isinstance(result.get("start_line"), int) and isinstance(result.get("end_line"), int):
        start, end = result["start_line"], result["end_line"]
    else:
        rng = result.get("range")
        try:
            start = int(rng["start"]["line"]) + 1
            end_pos = rng["end"]
            end = int(end_pos["line"]) + (0 if end_pos.get("character", 0) == 0 and end_pos["line"] >= start else 1)
        except (TypeError, KeyError, ValueError):
            raise JsonRpcInvalidParams("'result' needs 'range' (an LSP range) or startLine/endLine") from None
    if start < 1 or end < start:
        raise JsonRpcInvalidParams(f"'result' has a bad line range {start}-{end}: lines are 1-based, start <= end")
    indexed = engine.chunks_of(path)
    if ls.folder_of(path) is None:
        if ls.folders and ls.config.scope == "workspace":
            raise JsonRpcInvalidParams(f"'result' {path} is outside the workspace folders")
        if not indexed:
            raise JsonRpcInvalidParams(f"'result' {path} is outside the workspace folders and not in the index")
    if not os.path.isfile(path):
        raise JsonRpcInvalidParams(f"'result' {path} does not exist (or is not a file)")
    lines = count_lines(path)
    if end > lines:
        raise JsonRpcInvalidParams(
            f"'result' lines {start}-{end} are past the end of {path}, which has {lines} line{'s' * (lines != 1)}"
        )
    row = engine.chunk_at(path, start, end)
    record: dict[str, Any] = {"path": path, "start_line": start, "end_line": end}
    if row is not None:
        record.update(repo=row["repo"], rel_path=row["rel_path"], name=row["name"], kind=row["kind"], language=row["language"])
    else:
        folder = ls.folder_of(path)
        record["repo"] = str(folder) if folder else os.path.dirname(path)
        for key in ("name", "kind", "language"):
            if isinstance(result.get(key), str):
                record[key] = result[key]
    return record


def count_lines(path: str) -> int:
    """Lines of a file as editors number them (a last line without a newline counts)."""
    n, last = 0, b"\n"
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                n += block.count(b"\n")
                last = block[-1:]
    except OSError as exc:
        raise JsonRpcInvalidParams(f"'result' {path} cannot be read: {exc.strerror or exc}") from None
    return n + (last != b"\n")


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)
