"""`codesearch mcp` end to end: the SDK's own stdio client against a real server subprocess,
on a small real index (real model, real LanceDB, real files; nothing mocked).

One server serves the module (starting one loads the model and indexes: seconds on 2 cores);
each test asks it something different. The workspace is the small fixture repo plus one more
Python file, the home a tmp folder.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from test_lsp_harness import FIXTURES, TIMEOUT, server_env

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

TOOLS = {"search", "chunks", "status", "index"}


def make_workspace(root: Path) -> Path:
    """A git repository: the small fixture repo (Rust, Python, Lean, SMT-LIB, TLA+) and one more Python file."""
    ws = root / "workspace"
    shutil.copytree(FIXTURES / "repo_small", ws)
    shutil.copy(FIXTURES / "chunking" / "lru_cache.py", ws / "src" / "lru_cache.py")
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    return ws


class McpClient:
    """A ClientSession over stdio to `codesearch mcp ROOT`, run on its own event loop thread so
    that module-scoped tests (plain functions) can share it: ``call(coro_fn)`` runs
    ``coro_fn(session)`` there and returns its result."""

    def __init__(self, args: list[str], env: dict, cwd: Path, transcript: list | None = None, roots: list[Path] = (),
                 log_dir: Path | None = None):
        self.params = StdioServerParameters(command=sys.executable, args=["-m", "codesearch.cli", *args],
                                            env=env, cwd=str(cwd))
        self.transcript = transcript
        self.roots = list(roots)
        self.log = (log_dir or cwd) / "server.log"
        self.loop = asyncio.new_event_loop()
        self._jobs: asyncio.Queue | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),), daemon=True)
        self._thread.start()
        if not self._ready.wait(TIMEOUT) or self._error:
            raise RuntimeError(f"the MCP server did not start: {self._error!r}")

    async def _main(self) -> None:
        self._jobs = asyncio.Queue()
        try:
            with open(self.log, "a") as errlog:
                async with stdio_client(self.params, errlog=errlog) as (read, write):
                    async with ClientSession(read, write, list_roots_callback=self._roots if self.roots else None) as session:
                        await session.initialize()
                        self._ready.set()
                        while True:
                            job = await self._jobs.get()
                            if job is None:
                                return
                            fn, fut = job
                            try:
                                fut.set_result(await fn(session))
                            except BaseException as exc:  # noqa: BLE001 - handed to the test
                                fut.set_exception(exc)
        except BaseException as exc:  # noqa: BLE001
            self._error = exc
            self._ready.set()

    async def _roots(self, context):
        import mcp_types

        return mcp_types.ListRootsResult(roots=[mcp_types.Root(uri=r.as_uri(), name=r.name) for r in self.roots])

    def call(self, fn, timeout: float = TIMEOUT):
        import concurrent.futures

        fut: concurrent.futures.Future = concurrent.futures.Future()
        self.loop.call_soon_threadsafe(self._jobs.put_nowait, (fn, fut))
        return fut.result(timeout)

    def tool(self, name: str, args: dict | None = None, progress=None):
        """Call a tool: (is_error, the parsed JSON object, or the error's text)."""
        async def run(session):
            return await session.call_tool(name, args or {}, progress_callback=progress)

        result = self.call(run)
        text = result.content[0].text if result.content else ""
        if self.transcript is not None:
            self.transcript.append(("call", name, args or {}))
            self.transcript.append(("error" if result.is_error else "result", name, text))
        if result.is_error:
            return True, text
        assert result.structured_content is not None
        assert json.loads(text) == result.structured_content
        return False, result.structured_content

    def close(self) -> None:
        if self._jobs is not None:
            self.loop.call_soon_threadsafe(self._jobs.put_nowait, None)
        self._thread.join(30)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(client, workspace, an outside folder, transcript) for one real server on a fresh home."""
    root = tmp_path_factory.mktemp("mcp")
    ws = make_workspace(root)
    outside = root / "elsewhere"
    outside.mkdir()
    (outside / "secret_plan.py").write_text("def plan():\n    return 42\n")
    transcript: list = []
    client = McpClient(["--home", str(root / "home"), "mcp", str(ws)], server_env(root), root, transcript)
    # The server indexes its roots at start; wait for the first run to be done.
    import time

    deadline = time.monotonic() + TIMEOUT
    client.transcript = None  # (not the polling)
    while True:
        _, status = client.tool("status")
        if status.get("chunks") and not status.get("indexing"):
            break
        assert time.monotonic() < deadline, status
        time.sleep(1)
    client.transcript = transcript
    yield client, ws, outside, transcript
    client.close()
    out = root / "transcript.txt"
    out.write_text("\n".join(f"{kind} {name}: {json.dumps(body) if not isinstance(body, str) else body}"[:1500]
                             for kind, name, body in transcript) + "\n")


def test_lists_the_tools_with_their_arguments(served):
    client, *_ = served
    tools = client.call(lambda s: s.list_tools()).tools
    assert {t.name for t in tools} == TOOLS
    search = next(t for t in tools if t.name == "search")
    props = search.input_schema["properties"]
    assert {"query", "lang", "kind", "path", "role", "limit", "method", "explain", "full"} <= set(props)
    assert search.input_schema["required"] == ["query"]
    assert all(t.description for t in tools)


def test_search_finds_the_obvious_declaration_first(served):
    client, ws, *_ = served
    error, reply = client.tool("search", {"query": "check whether a value lies between the lower and upper bound", "limit": 5})
    assert not error, reply
    results = reply["results"]
    assert 1 <= len(results) <= 5
    top = results[0]
    assert top["name"] == "contains" and top["path"] == "src/bounds.rs"
    assert top["abs_path"] == str(ws / "src" / "bounds.rs")
    assert {"start_line", "end_line", "kind", "name", "language", "role", "score", "snippet", "repo"} <= set(top)
    assert top["language"] == "rust" and top["kind"] in ("function", "method")
    assert 1 <= top["start_line"] <= top["end_line"]
    assert "fn contains" in top["snippet"] and len(top["snippet"]) <= 1600
    assert "full" not in top and "matches" not in top
    # Filters and the whole declaration, bounded.
    error, reply = client.tool("search", {"query": "least recently used cache", "lang": "python", "full": True, "limit": 3})
    assert not error, reply
    assert reply["results"] and all(r["language"] == "python" for r in reply["results"])
    first = reply["results"][0]
    lines = (ws / first["path"]).read_text().splitlines()[first["start_line"] - 1:first["end_line"]]
    assert first["full"] == "\n".join(lines)[:20_000] or first["full"].startswith("\n".join(lines[:10]))
    # explain: each result's matches, lexical part and prior, as `search --explain --json` gives them
    error, reply = client.tool("search", {"query": "value within bounds", "limit": 2, "explain": True})
    assert not error, reply
    assert all({"matches", "lexical", "prior"} <= set(r) for r in reply["results"])
    assert set(reply["results"][0]["matches"][0]) == {"query_token", "line", "column", "code_token", "score", "place"}


def test_chunks_of_a_file(served):
    client, ws, *_ = served
    error, reply = client.tool("chunks", {"path": "src/bounds.rs"})
    assert not error, reply
    assert reply["indexed"] and reply["path"] == str(ws / "src" / "bounds.rs")
    names = [c["name"] for c in reply["chunks"]]
    assert {"Interval", "contains", "parse_interval"} <= set(names)
    starts = [c["start_line"] for c in reply["chunks"]]
    assert starts == sorted(starts)
    assert all({"start_line", "end_line", "kind", "name", "language"} == set(c) for c in reply["chunks"])
    same = client.tool("chunks", {"path": str(ws / "src" / "bounds.rs")})[1]
    assert same == reply


def test_status_says_what_is_indexed(served):
    client, ws, *_ = served
    error, status = client.tool("status")
    assert not error, status
    assert status["roots"] == [str(ws)] and status["roots_from"] == "command line"
    assert status["chunks"] > 10 and status["files"] == 6
    assert status["home"].endswith("home") and status["model_fingerprint"]
    assert status["model_fingerprint"] == status["index_model_fingerprint"]
    assert status["last_index_at"] and status["index_updated_at"]
    assert isinstance(status["watching"], bool)


def test_index_sends_progress(served):
    client, ws, *_ = served
    (ws / "src" / "temperature.py").write_text(
        'def fahrenheit_to_celsius(f):\n    """Convert a temperature from Fahrenheit to Celsius."""\n'
        "    return (f - 32) * 5 / 9\n"
    )
    progress: list[tuple] = []

    async def on_progress(value, total, message):
        progress.append((value, total, message))

    error, summary = client.tool("index", {"path": str(ws)}, progress=on_progress)
    assert not error, summary
    assert summary["folders"] == [str(ws)] and summary["total_chunks"] > 10
    assert progress and progress[0][0] == 0 and progress[-1][0] == 100
    assert all(t == 100 for _, t, _ in progress)
    values = [p[0] for p in progress]
    assert all(a < b for a, b in zip(values, values[1:])), progress  # MCP: progress only grows
    error, reply = client.tool("search", {"query": "convert fahrenheit to celsius", "limit": 1})
    assert reply["results"][0]["name"] == "fahrenheit_to_celsius"


def test_bad_requests_get_one_line_errors(served):
    client, *_ = served
    cases = {
        ("search", json.dumps({"query": "  "})): "'query' is empty",
        ("search", json.dumps({"query": "x", "lang": "klingon"})): "rust",  # the valid values are listed
        ("search", json.dumps({"query": "x", "method": "magic"})): "hybrid, multivector, dense, bm25",
        ("search", json.dumps({"query": "x", "limit": 0})): "from 1 to 200",
        ("search", json.dumps({"query": "x", "limit": 500})): "from 1 to 200",
        ("search", json.dumps({"query": "x", "role": "nonsense"})): "lib",
        ("search", json.dumps({"query": "x", "colour": "red"})): "unknown argument 'colour'",
        ("search", json.dumps({})): "missing 'query'",
        ("search", json.dumps({"query": "x", "limit": "many"})): "'limit'",
        ("chunks", json.dumps({"path": "src/no_such_file.rs"})): "no such file",
        ("nosuchtool", json.dumps({})): "unknown tool 'nosuchtool'",
    }
    for (name, args), expected in cases.items():
        error, text = client.tool(name, json.loads(args))
        assert error, (name, args, text)
        assert expected in text, (args, text)
        assert "\n" not in text and "Traceback" not in text, text
    error, text = client.tool("search", {"query": "x", "kind": "function", "lang": "klingon"})
    assert error and "klingon" in text


def test_paths_outside_the_roots_are_refused(served):
    client, ws, outside, _ = served
    target = outside / "secret_plan.py"
    for name, args in (
        ("search", {"query": "plan", "path": str(outside)}),
        ("chunks", {"path": str(target)}),
        ("chunks", {"path": "../elsewhere/secret_plan.py"}),
        ("index", {"path": str(outside)}),
    ):
        error, text = client.tool(name, args)
        assert error, (name, args, text)
        assert "outside the roots" in text and str(ws) in text, text
    # Nothing of it got in.
    _, reply = client.tool("search", {"query": "plan returning 42"})
    assert all(not r["abs_path"].startswith(str(outside)) for r in reply["results"])


def test_the_clients_roots_when_the_command_line_names_none(tmp_path):
    """Without ROOTS on the command line the client's roots (roots/list) are the roots; without
    those, the current directory."""
    ws = make_workspace(tmp_path)
    client = McpClient(["--home", str(tmp_path / "home"), "mcp", "--no-index", "--no-watch"], server_env(tmp_path),
                       tmp_path, roots=[ws])
    try:
        error, status = client.tool("status")
        assert not error, status
        assert status["roots"] == [str(ws)] and status["roots_from"] == "client"
        assert status["chunks"] == 0 and status["index_runs"] == 0  # --no-index: nothing indexed at start
        error, text = client.tool("chunks", {"path": str(tmp_path / "server.log")})
        assert error and "outside the roots" in text and str(ws) in text
        error, reply = client.tool("chunks", {"path": "src/bounds.rs"})
        assert not error and reply["indexed"] is False and "index tool" in reply["note"]
    finally:
        client.close()
    # A client without roots: the current directory.
    client = McpClient(["--home", str(tmp_path / "home"), "mcp", "--no-index", "--no-watch"], server_env(tmp_path), ws,
                       log_dir=tmp_path)
    try:
        error, status = client.tool("status")
        assert not error, status
        assert status["roots"] == [str(ws)] and status["roots_from"] == "current directory"
    finally:
        client.close()
