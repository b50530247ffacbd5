"""Language-server figures on a large index (slow; run by hand, prints JSON):

    CODESEARCH_LSP_BENCH_HOME=/path/to/home CODESEARCH_LSP_BENCH_FOLDERS=/src/a:/src/b \\
        python -m pytest -m slow tests/test_lsp_bench.py -s

The folders become the workspace (indexed incrementally into the home first, with progress);
without the variables the Python standard library is indexed into a temporary home (tens of
minutes on a laptop CPU). Measured through the protocol: the warm ``codesearch/search``
round trip (p50/p95 over distinct queries), a 20-keystroke typing burst with cancellation,
and the server's resident memory when idle after indexing.

``CODESEARCH_LSP_BENCH_EDITS=N`` then appends a function to a Rust or Python file of the first
folder N times (it must be a copy you may change), waits until the index holds each, and reports
the idle memory after them: what a day of saves does to the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
import uuid
from pathlib import Path

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled

from test_lsp_harness import SERVER, command, make_client, request, server_env, waiter

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

QUERIES = [
    "check if a value is within bounds", "parse a string into an integer", "iterator over the elements in reverse order",
    "hash map insert or update an entry", "read a file line by line", "split a slice into two at an index",
    "convert bytes to a utf-8 string", "sort a vector by a key", "compare two strings ignoring case",
    "remove duplicates from a list", "format a number with thousands separators", "lock a mutex and update shared state",
    "spawn a thread and wait for it", "parse command line arguments", "encode data as base64",
    "compute a hash of a byte buffer", "binary search in a sorted array", "reverse a linked list",
    "the first element that matches a predicate", "join paths into one", "open a file for appending",
    "send bytes over a tcp socket", "retry an operation with backoff", "swap two elements", "count the set bits",
    "round a float to the nearest integer", "check whether a number is prime", "merge two sorted sequences",
    "trim whitespace from both ends", "create a temporary directory", "current time in seconds",
    "escape special characters in a regex", "deep copy an object", "walk a directory tree recursively",
    "read environment variables", "the smallest element of a collection", "write a string to standard error",
    "decode json into a dictionary", "zip two iterators together", "fill a buffer with zeros",
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("lspbench")
    home = os.environ.get("CODESEARCH_LSP_BENCH_HOME") or str(root / "home")
    folders = [Path(f) for f in os.environ.get("CODESEARCH_LSP_BENCH_FOLDERS", "").split(":") if f]
    if not folders:
        folders = [Path(os.__file__).parent]
    client = make_client()
    await client.start_io(*SERVER, env=server_env(root))
    indexed = waiter(client, "codesearch/indexed")
    started = time.perf_counter()
    await client.initialize_session(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(window=types.WindowClientCapabilities(work_done_progress=True)),
            workspace_folders=[types.WorkspaceFolder(uri=f.as_uri(), name=f.name) for f in folders],
            initialization_options={"home": home},
        )
    )
    summary = await asyncio.wait_for(indexed, 4 * 3600)
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    yield client, summary
    await client.shutdown_session()
    await client.stop()


async def test_figures(bench):
    client, summary = bench
    figures: dict = {"index": {k: summary[k] for k in ("total_chunks", "files_seen", "embedded", "seconds", "wall_s")}}
    reports = [r for rs in client.progress_reports.values() for r in rs]
    figures["progress_notifications"] = len(reports)
    for q in QUERIES[:5]:  # warm the caches and the model
        await request(client, "codesearch/search", {"query": q})
    times = []
    for q in QUERIES[5:]:
        t = time.perf_counter()
        res = await request(client, "codesearch/search", {"query": q, "limit": 10})
        times.append((time.perf_counter() - t) * 1000)
        assert res["results"]
    times.sort()
    figures["search_ms"] = {"n": len(times), "p50": round(statistics.median(times), 1),
                            "p95": round(times[int(0.95 * (len(times) - 1))], 1), "max": round(times[-1], 1)}
    t = time.perf_counter()
    symbols = await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="parse a duration"))
    figures["workspace_symbol_ms"] = round((time.perf_counter() - t) * 1000, 1)
    assert symbols

    # Typing "read a file line by l" keystroke by keystroke, 60 ms apart, cancelling the previous request.
    before = (await request(client, "codesearch/status", None))["searches"]
    query, ids, futures = "read a file line by l", [], []
    for i in range(1, 21):
        if ids:
            client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=ids[-1]))
        ids.append(f"key-{i}")
        futures.append(asyncio.wrap_future(client.protocol.send_request("codesearch/search", {"query": query[:i]}, msg_id=ids[-1])))
        await asyncio.sleep(0.06)
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    after = (await request(client, "codesearch/status", None))["searches"]
    figures["typing_20_keystrokes"] = {
        "answered_cancelled": sum(isinstance(o, JsonRpcRequestCancelled) for o in outcomes),
        "searches_run": after["executed"] - before["executed"],
        "max_running": after["max_running"],
    }
    assert after["max_running"] == 1

    await asyncio.sleep(5)
    status = await request(client, "codesearch/status", None)
    figures["idle_rss_mb"] = status["rssMB"]
    figures["chunks"] = status["chunks"]
    figures["reindex_unchanged_s"] = (await command(client, "codesearch.reindex", timeout=3600))["seconds"]
    edits = int(os.environ.get("CODESEARCH_LSP_BENCH_EDITS", "0"))
    if edits:
        figures["after_edits"] = await _edits(client, Path(summary["folders"][0]), edits)
    print("\n" + json.dumps(figures, indent=2))
    out = os.environ.get("CODESEARCH_LSP_BENCH_OUT")
    if out:
        Path(out).write_text(json.dumps(figures, indent=2) + "\n")


async def _edits(client, folder: Path, n: int) -> dict:
    """Append a function to a file of ``folder`` ``n`` times (the watcher indexes each save),
    each awaited until the index holds its chunk, then a search; then the idle memory."""
    files = sorted(p for p in folder.rglob("*.rs") if "tests" not in p.parts)[::37] or sorted(folder.rglob("*.py"))[::7]
    waits, every = [], {}
    chunks = (await request(client, "codesearch/status", None))["chunks"]
    for i in range(1, n + 1):
        f = files[i % len(files)]
        name = f"bench_edit_{uuid.uuid4().hex[:12]}"
        with f.open("a") as out:
            if f.suffix == ".rs":
                out.write(f"\n/// Clamp value number {i} within the bounds.\npub fn {name}(v: i32, lo: i32, hi: i32) -> i32 {{\n    v.clamp(lo, hi)\n}}\n")
            else:
                out.write(f"\n\ndef {name}(v, lo, hi):\n    \"\"\"Clamp value number {i} within the bounds.\"\"\"\n    return max(lo, min(hi, v))\n")
        t = time.perf_counter()
        while time.perf_counter() - t < 120:  # (each edit adds one chunk)
            now = (await request(client, "codesearch/status", None))["chunks"]
            if now > chunks:
                break
            await asyncio.sleep(0.25)
        else:
            raise AssertionError(f"edit {i} ({f}) not indexed after 120 s")
        waits.append(time.perf_counter() - t)
        chunks = now
        await request(client, "codesearch/search", {"query": QUERIES[i % len(QUERIES)]})
        if i % 25 == 0 and i < n:  # (the trend over a long run of saves, not idle)
            every[i] = (await request(client, "codesearch/status", None))["rssMB"]
    for q in QUERIES[:15]:
        await request(client, "codesearch/search", {"query": q})
    await asyncio.sleep(5)
    status = await request(client, "codesearch/status", None)
    return {"edits": n, "idle_rss_mb": status["rssMB"], "rss_mb_every_25_edits": every,
            "save_to_indexed_s_p50": round(statistics.median(waits), 1)}
