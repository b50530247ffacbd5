"""Search handlers: ``codesearch/search``, ``workspace/symbol`` and the ``codesearch.search``
command (the query path itself: ``CodesearchServer.search`` and ``codesearch.lsp.search``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from codesearch.lsp.features import object_argument
from codesearch.lsp.search import Superseded, result_symbol

if TYPE_CHECKING:  # pragma: no cover
    from codesearch.lsp.server import CodesearchServer


async def search(ls: CodesearchServer, params: Any) -> dict:
    results = await ls.search(params)
    return ls.search_reply(results)


async def workspace_symbol(ls: CodesearchServer, params: types.WorkspaceSymbolParams) -> list[types.WorkspaceSymbol]:
    query = (params.query or "").strip()
    if not query:
        return []  # editors ask with "" to fill a picker before anything is typed
    try:
        results = await ls.search({"query": query, "limit": ls.config.symbol_limit}, lane="workspace/symbol")
    except Superseded:
        return []  # a newer keystroke's request is already queued
    return [result_symbol(r) for r in results]


async def cmd_search(ls: CodesearchServer, *args: Any) -> dict:
    if len(args) != 1:
        raise JsonRpcInvalidParams("codesearch.search takes one argument: a query string or {query, limit?, lang?, path?, kind?}")
    params = {"query": args[0]} if isinstance(args[0], str) else object_argument(args[0], "codesearch.search")
    results = await ls.search(params)
    return ls.search_reply(results)
