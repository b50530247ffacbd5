"""The language server's handlers, one module per group; ``codesearch.lsp.server.create_server``
registers them on the server.

- ``lifecycle``: initialize, initialized, shutdown, exit, ``codesearch/status``
- ``workspace``: settings, workspace folders, saved and watched files, ``codesearch.reindex``
- ``search``: ``codesearch/search``, ``workspace/symbol``, ``codesearch.search``
- ``feedback``: ``codesearch.feedback``, ``codesearch.personalEval`` (the personal eval set)

Handlers are plain module-level functions whose first parameter is the server (``ls``); they
use only its public methods and attributes.
"""

from __future__ import annotations

from typing import Any

from pygls.exceptions import JsonRpcInvalidParams


def object_argument(arg: Any, name: str) -> dict:
    """The one object argument of command ``name`` (anything else is invalid params)."""
    if not isinstance(arg, dict):
        raise JsonRpcInvalidParams(f"{name} takes one object argument, got {type(arg).__name__}")
    return arg
