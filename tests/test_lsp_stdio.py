"""The server's stdout carries LSP frames and nothing else, whatever prints; exit codes follow the spec."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from test_lsp_harness import TIMEOUT, server_env

# The server, with code that writes to stdout after start-up the way a careless library would
# (Python print, a raw write to file descriptor 1).
STRAY = (
    "import os, codesearch.lsp.server as s\n"
    "orig = s.create_server\n"
    "def noisy(config):\n"
    "    print('STRAY PRINT'); os.write(1, b'STRAY RAW WRITE\\n')\n"
    "    return orig(config)\n"
    "s.create_server = noisy\n"
    "s.main()\n"
)


class Frames:
    """Reads Content-Length framed messages; anything else on the stream is an error."""

    def __init__(self, stream):
        self.stream = stream
        self.messages: list[dict] = []
        self.garbage: list[bytes] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            headers = {}
            while True:
                line = self.stream.readline()
                if not line:
                    return
                if line == b"\r\n":
                    break
                if b":" not in line or not line.endswith(b"\r\n"):
                    self.garbage.append(line)
                    continue
                k, v = line.decode().split(":", 1)
                headers[k.strip().lower()] = v.strip()
            body = self.stream.read(int(headers["content-length"]))
            with self.cond:
                self.messages.append(json.loads(body))
                self.cond.notify_all()

    def wait(self, pred, timeout: float = TIMEOUT) -> dict:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for m in self.messages:
                    if pred(m):
                        return m
                left = deadline - time.monotonic()
                assert left > 0, f"timed out; got {[m.get('method', m.get('id')) for m in self.messages]}"
                self.cond.wait(left)


def send(proc, obj: dict) -> None:
    body = json.dumps(obj).encode()
    proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    proc.stdin.flush()


def test_stdout_has_only_lsp_frames_and_exit_codes(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "util.py").write_text('def clamp(x, lo, hi):\n    """Limit x to the range lo..hi."""\n    return max(lo, min(x, hi))\n')
    proc = subprocess.Popen(
        [sys.executable, "-c", STRAY],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=server_env(tmp_path),
    )
    err_lines: list[bytes] = []
    threading.Thread(target=lambda: err_lines.extend(proc.stderr), daemon=True).start()
    frames = Frames(proc.stdout)
    try:
        send(proc, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "processId": None, "rootUri": ws.as_uri(), "capabilities": {},
            "initializationOptions": {"home": str(tmp_path / "home")}}})
        init = frames.wait(lambda m: m.get("id") == 1)
        assert init["result"]["serverInfo"]["name"] == "codesearch"
        send(proc, {"jsonrpc": "2.0", "method": "initialized", "params": {}})
        frames.wait(lambda m: m.get("method") == "codesearch/indexed")
        send(proc, {"jsonrpc": "2.0", "id": 2, "method": "codesearch/search", "params": {"query": "keep a number in a range"}})
        found = frames.wait(lambda m: m.get("id") == 2)
        assert found["result"]["results"][0]["name"] == "clamp"
        send(proc, {"jsonrpc": "2.0", "id": 3, "method": "shutdown"})
        frames.wait(lambda m: m.get("id") == 3)
        send(proc, {"jsonrpc": "2.0", "method": "exit"})
        assert proc.wait(timeout=30) == 0  # exit after shutdown: 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert frames.garbage == []
    assert all(m.get("jsonrpc") == "2.0" for m in frames.messages)
    stderr = b"".join(err_lines).decode(errors="replace")
    assert "STRAY PRINT" in stderr and "STRAY RAW WRITE" in stderr  # it went to the log instead


def test_exit_without_shutdown_is_code_1(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "codesearch.cli", "lsp"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=server_env(tmp_path),
    )
    send(proc, {"jsonrpc": "2.0", "method": "exit"})
    assert proc.wait(timeout=60) == 1
    assert proc.stdout.read() == b""


def send_raw(proc, body: bytes) -> None:
    proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    proc.stdin.flush()


def start_bare(tmp_path):
    """A server that was initialized but not `initialized` (no model, no index): enough for the protocol."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "codesearch.cli", "lsp"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=server_env(tmp_path),
    )
    err_lines: list[bytes] = []
    threading.Thread(target=lambda: err_lines.extend(proc.stderr), daemon=True).start()
    frames = Frames(proc.stdout)
    send(proc, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "processId": None, "rootUri": tmp_path.as_uri(), "capabilities": {},
        "initializationOptions": {"home": str(tmp_path / "home")}}})
    frames.wait(lambda m: m.get("id") == 1)
    return proc, frames, err_lines


def stop(proc, frames) -> None:
    try:
        send(proc, {"jsonrpc": "2.0", "id": 99, "method": "shutdown"})
        frames.wait(lambda m: m.get("id") == 99)
        send(proc, {"jsonrpc": "2.0", "method": "exit"})
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_body_that_is_not_json_gets_a_parse_error_and_the_server_reads_on(tmp_path):
    proc, frames, _ = start_bare(tmp_path)
    try:
        send_raw(proc, b'{"jsonrpc": "2.0", "id": 2, "method": ')  # cut short
        err = frames.wait(lambda m: "error" in m and m.get("id", "absent") is None)
        assert err["error"]["code"] == -32700 and "not JSON" in err["error"]["message"]
        assert "data" not in err["error"]
        send(proc, {"jsonrpc": "2.0", "id": 3, "method": "codesearch/status", "params": None})
        status = frames.wait(lambda m: m.get("id") == 3)
        assert status["result"]["state"] == "starting"
        assert not any(m.get("method") == "window/showMessage" for m in frames.messages)
    finally:
        stop(proc, frames)
    assert frames.garbage == []


def test_non_string_method_is_an_invalid_request_without_a_traceback(tmp_path):
    proc, frames, err_lines = start_bare(tmp_path)
    try:
        send(proc, {"jsonrpc": "2.0", "id": 2, "method": 5, "params": {}})
        reply = frames.wait(lambda m: m.get("id") == 2)
        assert reply["error"]["code"] == -32600  # Invalid Request, not -32603
        assert "'method' must be a string" in reply["error"]["message"]
        send_raw(proc, b"[1, 2]")  # a batch: LSP has none
        batch = frames.wait(lambda m: "error" in m and m.get("id", "absent") is None)
        assert batch["error"]["code"] == -32600
        send(proc, {"jsonrpc": "2.0", "id": 4, "method": "codesearch/status", "params": None})
        assert frames.wait(lambda m: m.get("id") == 4)["result"]["version"]
    finally:
        stop(proc, frames)
    replies = json.dumps(frames.messages)
    assert "Traceback" not in replies and "traceback" not in replies and ".py" not in replies


# The real server, with hooks that make "in the middle of an index run" deterministic:
# the embedding stage of an index run pauses after its first commit until the file named by
# CODESEARCH_TEST_GATE exists, and with CODESEARCH_TEST_HOLD_UPDATES set, every update the
# watcher applies creates ``<gate>.update`` and then never finishes (a very long embed).
GATED = (
    "import os, time, codesearch.lsp.scheduler as p, codesearch.indexer.pipeline as pl, codesearch.lsp.server as s\n"
    "gate = os.environ['CODESEARCH_TEST_GATE']\n"
    "stage_ = p.ProgressReporter.stage\n"
    "def stage(self, name, done, total):\n"
    "    paused = name == 'embedding' and 0 < done < total and not os.path.exists(gate)\n"
    "    if paused:\n"
    "        self._last_sent = 0.0  # report this point however soon after the previous one\n"
    "    stage_(self, name, done, total)\n"
    "    while paused and not os.path.exists(gate):\n"
    "        time.sleep(0.02)\n"
    "p.ProgressReporter.stage = stage\n"
    "update_ = pl.Indexer.update\n"
    "def update(self, *a, **k):\n"
    "    if os.environ.get('CODESEARCH_TEST_HOLD_UPDATES'):\n"
    "        open(gate + '.update', 'w').close()\n"
    "        while True:\n"
    "            time.sleep(1)\n"
    "    return update_(self, *a, **k)\n"
    "pl.Indexer.update = update\n"
    "s.main()\n"
)


def gated_workspace(tmp_path: Path, modules: int = 48) -> Path:
    """A git repository of ``modules`` files of 8 functions: with 48, two commit groups of
    the embedding stage (256 new chunks each at most), so the gate pauses a run half-way."""
    ws = tmp_path / "ws"
    (ws / "pkg").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    verbs = ["parse", "render", "merge", "split", "encode", "decode", "sort", "filter"]
    nouns = ["invoice", "packet", "matrix", "schedule", "ledger", "route", "sensor", "palette"]
    for i in range(modules):
        funcs = []
        for j in range(8):
            verb, noun = verbs[(i + j) % 8], nouns[(i * 3 + j) % 8]
            funcs.append(
                f"def {verb}_{noun}_{i}_{j}(items, limit={i + j}):\n"
                f'    """{verb.title()} the {noun} records of batch {i}, step {j}."""\n'
                f"    out = [x for x in items if x is not None][:limit]\n"
                f"    return sorted(out, key=lambda x: (x, {j}))\n"
            )
        (ws / "pkg" / f"mod_{i:03d}.py").write_text("\n\n".join(funcs))
    return ws


def start_gated(tmp_path: Path, ws: Path, *, open_gate: bool = False, hold_updates: bool = False, watch: bool = True):
    gate = tmp_path / "gate"
    if open_gate:
        gate.touch()
    env = dict(server_env(tmp_path), CODESEARCH_TEST_GATE=str(gate))
    if hold_updates:
        env["CODESEARCH_TEST_HOLD_UPDATES"] = "1"
    proc = subprocess.Popen([sys.executable, "-c", GATED], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    err_lines: list[bytes] = []
    threading.Thread(target=lambda: err_lines.extend(proc.stderr), daemon=True).start()
    frames = Frames(proc.stdout)
    send(proc, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "processId": None, "rootUri": ws.as_uri(), "capabilities": {},
        "initializationOptions": {"home": str(tmp_path / "home"), "watch": watch}}})
    frames.wait(lambda m: m.get("id") == 1)
    send(proc, {"jsonrpc": "2.0", "method": "initialized", "params": {}})
    return proc, frames, gate, err_lines


def mid_embedding(m: dict) -> bool:
    return (m.get("method") == "codesearch/status" and m["params"]["state"] == "indexing"
            and 25 < m["params"].get("percentage", 0) < 99)


@pytest.mark.slow  # (over 15 s: .ci/run's slow step)
def test_search_during_the_first_index_says_indexing(tmp_path):
    """A search sent while the first index run is embedding is answered with what is indexed
    so far, and says so (``indexing: true`` with the run's progress). The run is held half-way
    (after its first commit) until the search is answered: no race with the run's end."""
    proc, frames, gate, _ = start_gated(tmp_path, gated_workspace(tmp_path), watch=False)
    try:
        # Some chunks are committed (past the start of the embedding stage, 25%), the run is not over.
        frames.wait(mid_embedding)
        send(proc, {"jsonrpc": "2.0", "id": 2, "method": "codesearch/search", "params": {"query": "merge the ledger records"}})
        reply = frames.wait(lambda m: m.get("id") == 2)["result"]
        assert not [m for m in frames.messages if m.get("method") == "codesearch/indexed"]
        assert reply["indexing"] is True
        assert 25 < reply["progress"]["percentage"] < 100 and "embedding" in reply["progress"]["message"]
        assert reply["results"]  # what is indexed so far, not an empty answer
        send(proc, {"jsonrpc": "2.0", "id": 3, "method": "codesearch/status", "params": None})
        status = frames.wait(lambda m: m.get("id") == 3)["result"]
        assert status["state"] == "indexing" and status["indexing"] is True
        gate.touch()  # let the run finish
        frames.wait(lambda m: m.get("method") == "codesearch/indexed")
        send(proc, {"jsonrpc": "2.0", "id": 4, "method": "codesearch/search", "params": {"query": "merge the ledger records"}})
        after = frames.wait(lambda m: m.get("id") == 4)["result"]
        assert "indexing" not in after and after["results"]
        statuses = [m["params"]["state"] for m in frames.messages if m.get("method") == "codesearch/status"]
        assert "ready" not in statuses[: statuses.index("indexing")]  # never "ready" before the first run
        assert statuses[-1] == "ready"
    finally:
        gate.touch()
        stop(proc, frames)


def shutdown_and_exit_seconds(proc, frames) -> float:
    started = time.monotonic()
    send(proc, {"jsonrpc": "2.0", "id": 90, "method": "shutdown"})
    frames.wait(lambda m: m.get("id") == 90, timeout=30)
    send(proc, {"jsonrpc": "2.0", "method": "exit"})
    assert proc.wait(timeout=30) == 0
    return time.monotonic() - started


@pytest.mark.slow  # (11 s: .ci/run's slow step)
def test_shutdown_and_exit_are_prompt_in_the_middle_of_an_index_run(tmp_path):
    proc, frames, gate, _ = start_gated(tmp_path, gated_workspace(tmp_path))
    try:
        frames.wait(mid_embedding)  # the run is held half-way, as a long embed would be
        assert shutdown_and_exit_seconds(proc, frames) < 3  # measured: ~0.1 s
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow  # (10 s; the CLI's watch is held to the same bound in the default run)
def test_shutdown_and_exit_are_prompt_while_the_watcher_applies_an_update(tmp_path):
    """The watcher is stopped on exit as `codesearch watch` stops it: an update still running
    after 0.5 s is abandoned (redone by the next run), not waited for (was up to 30 s)."""
    ws = gated_workspace(tmp_path, modules=2)
    proc, frames, gate, _ = start_gated(tmp_path, ws, open_gate=True, hold_updates=True)
    try:
        frames.wait(lambda m: m.get("method") == "codesearch/indexed")
        send(proc, {"jsonrpc": "2.0", "id": 2, "method": "codesearch/status", "params": None})
        if not frames.wait(lambda m: m.get("id") == 2)["result"]["watching"]:
            pytest.skip("the file watcher is not available here")
        (ws / "pkg" / "mod_000.py").write_text("def added(x):\n    return x + 1\n")
        marker = Path(str(gate) + ".update")
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert time.monotonic() < deadline, "the watcher never started the update"
            time.sleep(0.05)
        assert shutdown_and_exit_seconds(proc, frames) < 3  # measured: ~0.6 s
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow  # (10 s: .ci/run's slow step)
def test_a_damaged_index_found_by_the_watcher_is_reported_not_a_crash(tmp_path):
    """An update that cannot read a table stops the watcher; the client is told that the index
    is damaged and what to run (status and showMessage), and the server keeps answering."""
    ws = gated_workspace(tmp_path, modules=2)
    proc, frames, gate, err_lines = start_gated(tmp_path, ws, open_gate=True)
    try:
        frames.wait(lambda m: m.get("method") == "codesearch/indexed")
        send(proc, {"jsonrpc": "2.0", "id": 2, "method": "codesearch/status", "params": None})
        if not frames.wait(lambda m: m.get("id") == 2)["result"]["watching"]:
            pytest.skip("the file watcher is not available here")
        for f in (tmp_path / "home" / "lance" / "chunks.lance" / "data").glob("*.lance"):  # as test_damage.py
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
        (ws / "pkg" / "mod_000.py").write_text("def added(x):\n    return x + 1\n")
        shown = frames.wait(lambda m: m.get("method") == "window/showMessage"
                            and "index damaged: run codesearch doctor --fix" in m["params"]["message"])
        assert shown["params"]["type"] == 1  # Error
        send(proc, {"jsonrpc": "2.0", "id": 3, "method": "codesearch/status", "params": None})
        status = frames.wait(lambda m: m.get("id") == 3)["result"]
        assert status["state"] == "error" and status["message"].startswith("index damaged: run codesearch doctor --fix")
        assert status["watchError"].startswith("index damaged") and not status["watching"]
        shutdown_and_exit_seconds(proc, frames)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in b"".join(err_lines).decode(errors="replace")
