"""Harness for the language-server tests (no tests here): a pytest-lsp client that keeps custom results as JSON."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

from lsprotocol import types
from pygls.protocol import JsonRPCNotification, JsonRPCResponseMessage, default_converter
from pytest_lsp import LanguageClient
from pytest_lsp.client import register_lsp_features
from pytest_lsp.protocol import LanguageClientProtocol

FIXTURES = Path(__file__).parent / "fixtures"
SERVER = [sys.executable, "-m", "codesearch.cli", "lsp"]
TIMEOUT = 180  # seconds for anything that waits on the model or an index run (2 shared cores)


class RawProtocol(LanguageClientProtocol):
    """pygls turns results of non-standard requests (and params of custom notifications) into
    namedtuples; the tests want the JSON as sent."""

    def structure_message(self, data):
        if "id" in data and "result" in data and "method" not in data and self._result_types.get(data["id"]) is None:
            self._result_types.pop(data["id"], None)
            return JsonRPCResponseMessage(id=data["id"], jsonrpc=data["jsonrpc"], result=data["result"])
        if "id" not in data and str(data.get("method", "")).startswith("codesearch/"):
            return JsonRPCNotification(method=data["method"], jsonrpc=data["jsonrpc"], params=data.get("params"))
        return super().structure_message(data)


def make_client() -> LanguageClient:
    client = LanguageClient(protocol_cls=RawProtocol, converter_factory=default_converter)
    register_lsp_features(client)
    client.statuses = []  # type: ignore[attr-defined]

    @client.feature("codesearch/status")
    def _status(ls, params):
        ls.statuses.append(params)

    @client.feature("codesearch/indexed")
    def _indexed(ls, params):
        pass

    return client


def make_workspace(root: Path) -> Path:
    """A git repository with the small fixture repo plus a few more real-looking files."""
    ws = root / "workspace"
    shutil.copytree(FIXTURES / "repo_small", ws)
    for name in ("ring_buffer.rs", "lru_cache.py", "server.go", "hashmap.c"):
        shutil.copy(FIXTURES / "chunking" / name, ws / "src" / name)
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    return ws


def server_env(root: Path) -> dict:
    env = dict(os.environ)
    env["XDG_CONFIG_HOME"] = str(root / "config")  # no user settings file from the machine
    env.pop("CODESEARCH_HOME", None)
    env.pop("CODESEARCH_MODEL", None)
    env["HF_HUB_OFFLINE"] = "1"
    return env


def init_params(ws: Path, options: dict | None = None, **capabilities) -> types.InitializeParams:
    return types.InitializeParams(
        capabilities=types.ClientCapabilities(
            window=types.WindowClientCapabilities(work_done_progress=True),
            workspace=types.WorkspaceClientCapabilities(
                configuration=capabilities.get("configuration", True),
                workspace_folders=True,
                symbol=types.WorkspaceSymbolClientCapabilities(),
            ),
        ),
        workspace_folders=[types.WorkspaceFolder(uri=ws.as_uri(), name=ws.name)],
        root_uri=ws.as_uri(),
        initialization_options=options,
    )


def waiter(client: LanguageClient, method: str) -> asyncio.Future:
    """A future for the next notification ``method``: create it *before* triggering it."""
    return asyncio.wrap_future(client.protocol.wait_for_notification(method))


async def request(client: LanguageClient, method: str, params, timeout: float = TIMEOUT):
    return await asyncio.wait_for(client.protocol.send_request_async(method, params), timeout)


async def command(client: LanguageClient, name: str, *args, timeout: float = TIMEOUT):
    return await asyncio.wait_for(
        client.workspace_execute_command_async(types.ExecuteCommandParams(command=name, arguments=list(args))),
        timeout,
    )
