"""The search requests: ``codesearch/search``, ``workspace/symbol`` and the ``codesearch.search`` command.

Params are checked strictly (a typo in a parameter name is an error, not a silently ignored
filter), results carry LSP locations. Searches run one at a time on a worker thread
(``SearchRunner``): a search that a client cancelled before it started never runs, and a
``workspace/symbol`` request that a newer one overtook while it waited is answered empty, so
typing a query keystroke by keystroke never piles up work.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, Sequence

from lsprotocol import types
from pygls.uris import from_fs_path, to_fs_path

from codesearch.lsp.config import MAX_LIMIT, METHODS
from codesearch.lsp.engine import SearchRequest, containing_folder
from codesearch.lsp.worker import Worker
from codesearch.search import SearchResult

SEARCH_PARAMS = ("query", "limit", "lang", "path", "kind", "method", "role", "explain")


class RequestError(ValueError):
    """A bad request: sent back as an LSP InvalidParams error with this message."""


# ---------------------------------------------------------------------------- params
def _strings(name: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise RequestError(f"'{name}' must be a string or a list of strings")
    return tuple(v.strip().lower() for v in value)


def to_path(value: str) -> str:
    """A file URI or a path as a path (URIs are decoded)."""
    if value.startswith("file:"):
        path = to_fs_path(value)
        if not path:
            raise RequestError(f"not a file URI: {value!r}")
        return path
    if "://" in value:
        raise RequestError(f"only file URIs are supported, got {value!r}")
    return value


def single_thread_torch() -> None:
    """Encode queries on one intra-op thread (a per-thread setting).

    A query is a few tokens: splitting its matrix products over the cores costs more in thread
    hand-offs than it saves, and on a loaded machine (an editor, a build, the index thread)
    the threads wait for each other: measured here with the machine busy, 470 ms per query
    with 2 threads against 67 ms with 1. The index thread keeps every core.

    Only when torch is imported already: queries are encoded in numpy (importing torch here
    would add hundreds of MB to an idle server), and a Searcher that encodes with the torch
    encoder sets its own thread count (``search.query_threads``).
    """
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def parse_search_params(params: Any, folders: Sequence[Path], default_limit: int, *, scope: str = "workspace",
                        names: tuple[str, str] = ("the workspace", "the workspace folders")) -> SearchRequest:
    """Check ``codesearch/search`` params: {query, limit?, lang?, path?, kind?, method?, role?, explain?}.
    ``names``: what errors call the place and ``folders`` (the MCP server: "the roots" for both)."""
    if params is None:
        raise RequestError("missing params: expected an object with at least 'query'")
    if not isinstance(params, dict):
        raise RequestError(f"params must be an object, got {type(params).__name__}")
    unknown = sorted(set(params) - set(SEARCH_PARAMS))
    if unknown:
        raise RequestError(
            f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}: "
            f"expected {', '.join(SEARCH_PARAMS)}"
        )
    query = params.get("query")
    if query is None:
        raise RequestError("missing 'query': the text to search for")
    if not isinstance(query, str):
        raise RequestError(f"'query' must be a string, got {type(query).__name__}")
    if not query.strip():
        raise RequestError("'query' is empty")
    limit = params.get("limit")
    if limit is None:
        limit = default_limit
    elif isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise RequestError(f"'limit' must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    method = params.get("method")
    if method is not None and method not in METHODS:
        raise RequestError(f"'method' must be one of {', '.join(METHODS)}, got {method!r}")
    path = params.get("path")
    if path is not None:
        if not isinstance(path, str) or not path.strip():
            raise RequestError(f"'path' must be a non-empty string (a glob, a prefix or a path inside {names[0]})")
        path = to_path(path.strip())
        if os.path.isabs(path):
            path = os.path.normpath(path)
            if scope == "workspace" and folders and containing_folder(Path(path), folders) is None:
                raise RequestError(
                    f"path {path} is outside {names[1]} ({', '.join(str(f) for f in folders)})"
                )
    return SearchRequest(
        query=query.strip(),
        limit=limit,
        lang=_languages(params.get("lang")),
        kind=_strings("kind", params.get("kind")),
        path=path,
        method=method,
        role=_roles(params.get("role")),
        explain=_flag("explain", params.get("explain")),
    )


def _flag(name: str, value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RequestError(f"'{name}' must be true or false, got {value!r}")
    return value


def _languages(value: Any) -> tuple[str, ...]:
    from codesearch.filters_check import check_languages

    try:
        return check_languages(_strings("lang", value))
    except ValueError as exc:
        raise RequestError(str(exc)) from None


def _roles(value: Any) -> tuple[str, ...]:
    from codesearch.roles import check_roles

    try:
        return check_roles(_strings("role", value))
    except ValueError as exc:
        raise RequestError(str(exc)) from None


# ---------------------------------------------------------------------------- results
def file_uri(stored: str) -> str:
    """The URI of the file an indexed path names (a name that is not UTF-8 is stored with
    ``\\xNN`` escapes: the URI quotes its real bytes)."""
    from urllib.parse import quote

    from codesearch.indexer.walk import real_path

    path = real_path(stored)
    try:
        return from_fs_path(path)
    except UnicodeEncodeError:
        return "file://" + quote(os.fsencode(path))


def lsp_range(start_line: int, end_line: int) -> dict:
    """1-based inclusive lines -> an LSP range over those whole lines (end exclusive)."""
    return {"start": {"line": start_line - 1, "character": 0}, "end": {"line": end_line, "character": 0}}


def result_json(r: SearchResult) -> dict:
    return {
        "uri": file_uri(r.path),
        "range": lsp_range(r.start_line, r.end_line),
        "score": r.score,
        "name": r.name,
        "kind": r.kind,
        "language": r.language,
        "role": r.role,
        "snippet": r.snippet,
        # Convenience for clients that show paths and lines (1-based, inclusive).
        "path": r.path,
        "relPath": r.rel_path,
        "repo": r.repo,
        "startLine": r.start_line,
        "endLine": r.end_line,
        **(explained_json(r) if r.matches is not None else {}),
    }


def explained_json(r: SearchResult) -> dict:
    """With ``explain``: each query word's share and the code token it met (``range``: where that
    token is in the file, for highlighting), the full-text part and words, the role prior's part.
    Columns are characters (Python's), as the snippet's."""
    matches = []
    for m in r.matches or []:
        item = {"queryToken": m["query_token"], "codeToken": m["code_token"], "place": m["place"],
                "line": m["line"], "column": m["column"], "score": m["score"]}
        if m["place"] == "code":
            start = {"line": m["line"] - 1, "character": m["column"] - 1}
            item["range"] = {"start": start, "end": {"line": m["line"] - 1, "character": m["column"] - 1 + len(m["code_token"])}}
        matches.append(item)
    return {"matches": matches, "lexical": r.lexical, "prior": r.prior}


_SYMBOL_KINDS = {
    "function": types.SymbolKind.Function,
    "method": types.SymbolKind.Method,
    "constructor": types.SymbolKind.Constructor,
    "class": types.SymbolKind.Class,
    "struct": types.SymbolKind.Struct,
    "record": types.SymbolKind.Struct,
    "union": types.SymbolKind.Struct,
    "enum": types.SymbolKind.Enum,
    "interface": types.SymbolKind.Interface,
    "trait": types.SymbolKind.Interface,
    "impl": types.SymbolKind.Class,
    "type": types.SymbolKind.TypeParameter,
    "typedef": types.SymbolKind.TypeParameter,
    "module": types.SymbolKind.Module,
    "mod": types.SymbolKind.Module,
    "namespace": types.SymbolKind.Namespace,
    "field": types.SymbolKind.Field,
    "variable": types.SymbolKind.Variable,
    "constant": types.SymbolKind.Constant,
    "const": types.SymbolKind.Constant,
    "static": types.SymbolKind.Constant,
    "operator": types.SymbolKind.Operator,
    "macro": types.SymbolKind.Function,
    "theorem": types.SymbolKind.Function,
    "lemma": types.SymbolKind.Function,
    "axiom": types.SymbolKind.Constant,
    "spec": types.SymbolKind.Function,  # verified Rust: Verus spec/proof functions, Kani harnesses
    "proof": types.SymbolKind.Function,
    "harness": types.SymbolKind.Function,
    "broadcast_group": types.SymbolKind.Namespace,
    "macro_call": types.SymbolKind.Object,
    "window": types.SymbolKind.File,
}


def symbol_kind(kind: str) -> types.SymbolKind:
    k = kind.lower()
    if k in _SYMBOL_KINDS:
        return _SYMBOL_KINDS[k]
    if k.startswith("define") or k.startswith("declare"):  # SMT-LIB define-fun, declare-const, ...
        return types.SymbolKind.Function if "fun" in k else types.SymbolKind.Constant
    return types.SymbolKind.Object


def result_symbol(r: SearchResult) -> types.WorkspaceSymbol:
    name = r.name or f"{r.rel_path}:{r.start_line}"
    return types.WorkspaceSymbol(
        name=name,
        kind=symbol_kind(r.kind),
        location=types.Location(
            uri=file_uri(r.path),
            range=types.Range(
                start=types.Position(line=r.start_line - 1, character=0),
                end=types.Position(line=r.end_line, character=0),
            ),
        ),
        container_name=f"{r.rel_path} · {r.kind} · {r.score:.2f}",
    )


# ---------------------------------------------------------------------------- running
class Superseded(Exception):
    """A queued request that a newer one of the same lane made pointless."""


class SearchRunner(Worker):
    """Runs searches one at a time on one daemon thread.

    ``await run(fn)``: if the awaiting task is cancelled (``$/cancelRequest``) before ``fn``
    starts, ``fn`` never runs. With ``lane``, a job that a newer job of the same lane
    overtook while queued raises ``Superseded`` instead of running.
    """

    def __init__(self, name: str = "codesearch-search", initializer: Callable[[], None] | None = None):
        self._lock = threading.Lock()
        self._latest: dict[str, int] = {}
        self.stats = {"submitted": 0, "executed": 0, "cancelled": 0, "superseded": 0,
                      "running": 0, "max_running": 0, "last_ms": None}
        super().__init__(name, initializer)

    def _cancelled(self) -> None:
        with self._lock:
            self.stats["cancelled"] += 1

    def submit(self, fn: Callable[[], Any], lane: str | None = None) -> Future:
        with self._lock:
            self.stats["submitted"] += 1
            gen = None
            if lane is not None:
                gen = self._latest[lane] = self._latest.get(lane, 0) + 1

        def job():
            if lane is not None and self._latest.get(lane) != gen:
                with self._lock:
                    self.stats["superseded"] += 1
                raise Superseded(lane)
            with self._lock:
                self.stats["running"] += 1
                self.stats["max_running"] = max(self.stats["max_running"], self.stats["running"])
            started = time.perf_counter()
            try:
                return fn()
            finally:
                with self._lock:
                    self.stats["running"] -= 1
                    self.stats["executed"] += 1
                    self.stats["last_ms"] = round((time.perf_counter() - started) * 1000, 1)

        return super().submit(job)

    async def run(self, fn: Callable[[], Any], lane: str | None = None) -> Any:
        return await asyncio.wrap_future(self.submit(fn, lane))
