"""An idle language server does not keep the torch model (issue 19: idle server under 600 MB).

Searches and the index keys need only the numpy query encoder; the torch encoder that embeds
documents runs in a child process, started for index runs and watcher updates and ended
``lsp.model_idle_s`` seconds after the last one. First the hand-over rules on a stand-in
model (no torch, no process), then a real `codesearch lsp` process with the setting at 1 s.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
from lsprotocol import types

from codesearch.lsp import engine as engine_mod
from codesearch.lsp.engine import ModelHandle, model_idle_s
from test_lsp_harness import SERVER, TIMEOUT, init_params, make_client, make_workspace, request, server_env, waiter


# ---------------------------------------------------------------------------- the handle (no torch)
class FakeQueries:
    fingerprint = "fp"
    dim = 4
    spaces = [None]

    def routes(self):
        return {"rust": None}

    def space_for(self, lang):
        return None

    def space_fingerprints(self):
        return {None: "fp"}


class FakeTorch:
    device = "cpu"
    fingerprint = "fp"

    def __init__(self, gate: threading.Event | None = None):
        self.gate = gate
        self.closed = False

    def close(self):
        self.closed = True

    def encode_documents(self, texts, batch_size=32, space=None):
        if self.gate is not None:
            self.gate.wait(5)
        return [np.zeros((1, 4), np.float32) for _ in texts], np.zeros((len(texts), 4), np.float32)


@pytest.fixture
def fake_loads(monkeypatch):
    """start_embedder replaced by a stand-in that records each start."""
    loads: list[FakeTorch] = []

    def start(spec):
        loads.append(FakeTorch(getattr(start, "gate", None)))
        return loads[-1]

    monkeypatch.setattr(engine_mod, "start_embedder", start)
    return start, loads


def wait_for(cond, timeout=5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_the_query_side_never_loads_torch(fake_loads):
    _, loads = fake_loads
    h = ModelHandle("m", FakeQueries(), idle_s=0.1)
    assert (h.fingerprint, h.dim, h.spaces, h.routes(), h.space_for("rust"), h.space_fingerprints()) == \
        ("fp", 4, [None], {"rust": None}, None, {None: "fp"})
    assert not loads and not h.loaded


def test_where_no_embedding_process_starts_a_run_stays_here_and_loads_the_model_only_to_embed(monkeypatch):
    """Where no child process can start, an index run goes back to the server (run_index says
    None), and the model is loaded in the server only once there is something to embed."""
    def no_process(spec):
        raise OSError("no subprocesses here")

    loads: list[str] = []
    monkeypatch.setattr(engine_mod, "start_embedder", no_process)
    monkeypatch.setattr(engine_mod, "load_encoder_once", lambda spec, fresh=False: loads.append(spec) or FakeTorch())
    h = ModelHandle("m", FakeQueries(), idle_s=0.1)
    h.start_soon()
    assert h.run_index({"home": "/nowhere"}, []) is None
    time.sleep(0.2)  # (start_soon's thread has given up by now)
    assert not loads and not h.loaded
    tokens, _ = h.encode_documents(["a"])
    assert len(tokens) == 1 and loads == ["m"]


def test_torch_is_loaded_to_embed_and_dropped_after_the_idle_time(fake_loads):
    _, loads = fake_loads
    h = ModelHandle("m", FakeQueries(), idle_s=0.2)
    tokens, pooled = h.encode_documents(["a", "b"])
    assert len(tokens) == 2 and pooled.shape == (2, 4)
    assert h.loaded and len(loads) == 1 and h.device == "cpu"
    first = loads[0]
    gone = weakref.ref(first)
    assert wait_for(lambda: not h.loaded)
    assert first.closed  # the process is ended
    del first
    loads.clear()
    gc.collect()
    assert gone() is None  # no reference left anywhere
    h.encode_documents(["c"])  # started again on demand
    assert h.loaded and h.loads == 2 and h.releases == 1


def test_never_dropped_during_a_run_or_an_embedding(fake_loads):
    load, loads = fake_loads
    h = ModelHandle("m", FakeQueries(), idle_s=0.05)
    with h.busy():  # a whole index run: idle gaps between batches do not drop the model
        h.encode_documents(["a"])
        time.sleep(0.3)
        assert h.loaded
        h.encode_documents(["b"])
    assert h.loads == 1
    assert wait_for(lambda: not h.loaded)
    # A long embedding on another thread is not cut short by the timer or by release().
    load.gate = threading.Event()
    t = threading.Thread(target=h.encode_documents, args=(["slow"],))
    t.start()
    assert wait_for(lambda: h.loaded)
    h.release()
    time.sleep(0.2)
    assert h.loaded
    load.gate.set()
    t.join(5)
    assert wait_for(lambda: not h.loaded)


def test_a_model_changed_on_disk_is_not_used_to_embed(fake_loads):
    start, loads = fake_loads
    h = ModelHandle("m", FakeQueries(), idle_s=10)
    FakeTorch.fingerprint = "other"
    try:
        with pytest.raises(RuntimeError, match="changed on disk"):
            h.encode_documents(["a"])
    finally:
        FakeTorch.fingerprint = "fp"
    assert not h.loaded and loads[0].closed


def test_without_a_child_process_the_model_is_loaded_in_the_server(fake_loads, monkeypatch):
    start, loads = fake_loads
    in_process = FakeTorch()

    def fail(spec):
        raise OSError("no subprocesses here")

    def load(spec, fresh=False):
        engine_mod._ENCODERS[spec] = in_process
        return in_process

    monkeypatch.setattr(engine_mod, "start_embedder", fail)
    monkeypatch.setattr(engine_mod, "load_encoder_once", load)
    monkeypatch.setattr(engine_mod, "_ENCODERS", {})
    h = ModelHandle("m", FakeQueries(), idle_s=0)
    tokens, _ = h.encode_documents(["a"])
    assert len(tokens) == 1 and h.loads == 1
    assert not h.loaded and "m" not in engine_mod._ENCODERS  # idle_s 0: dropped after the call, cache entry too


def test_the_setting():
    assert model_idle_s({}) == 120
    assert model_idle_s({"lsp": {"model_idle_s": 1}}) == 1
    assert model_idle_s({"lsp": {"model_idle_s": None}}) is None  # keep the model loaded
    assert model_idle_s({"lsp": {"model_idle_s": -1}}) is None
    assert model_idle_s({"lsp": {"model_idle_s": "soon"}}) == 120  # a bad value: the default


# ---------------------------------------------------------------------------- a real server
QUERY = "check if a value is within bounds"


@pytest.mark.slow  # (a real server over stdio, 40 s: .ci/run's second step)
def test_idle_server_drops_the_model_and_still_searches_and_indexes(tmp_path):
    asyncio.run(_idle_server(tmp_path))


async def _status(client) -> dict:
    return await request(client, "codesearch/status", None)


async def _wait_unloaded(client, timeout=30.0) -> dict:
    deadline = time.monotonic() + timeout
    while (status := await _status(client))["modelLoaded"]:
        assert time.monotonic() < deadline, "the torch encoder was not dropped"
        await asyncio.sleep(0.1)
    return status


async def _idle_server(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    cfg = tmp_path / "codesearch.yaml"
    cfg.write_text("lsp:\n  model_idle_s: 1\n")
    client = make_client()
    await client.start_io(*SERVER, env=server_env(tmp_path))
    try:
        indexed = waiter(client, "codesearch/indexed")
        await asyncio.wait_for(client.initialize_session(
            init_params(ws, {"home": str(tmp_path / "home"), "configFile": str(cfg), "watch": False})), 60)
        first = await asyncio.wait_for(indexed, TIMEOUT)
        assert first["embedded"] > 20
        before = (await request(client, "codesearch/search", {"query": QUERY, "limit": 5}))["results"]
        loaded_rss = (await _status(client))["rssMB"]
        idle = await _wait_unloaded(client)
        print(f"\nrss {loaded_rss} MB after indexing {first['total_chunks']} chunks, {idle['rssMB']} MB once the model was dropped")
        # Searches answer as before, without loading the model again.
        after = (await request(client, "codesearch/search", {"query": QUERY, "limit": 5}))["results"]
        assert [(r["path"], r["startLine"], r["score"]) for r in after] == [(r["path"], r["startLine"], r["score"]) for r in before]
        assert after[0]["name"] == "contains"
        status = await _status(client)
        assert not status["modelLoaded"] and not status["torchImported"]  # torch never entered the server
        # An edit after the drop is embedded (the model comes back), then dropped again.
        py = ws / "src" / "cache.py"
        py.write_text(py.read_text() + '\n\ndef fibonacci_numbers(n):\n    """Yield the first n Fibonacci numbers."""\n'
                      "    a, b = 0, 1\n    for _ in range(n):\n        yield a\n        a, b = b, a + b\n")
        indexed = waiter(client, "codesearch/indexed")
        client.text_document_did_save(types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=py.as_uri())))
        summary = await asyncio.wait_for(indexed, TIMEOUT)
        assert summary["files_indexed"] == 1 and summary["embedded"] == 1
        top = (await request(client, "codesearch/search", {"query": "fibonacci sequence generator", "limit": 1}))["results"][0]
        assert top["name"] == "fibonacci_numbers"
        await _wait_unloaded(client)
    finally:
        await asyncio.wait_for(client.shutdown_session(), 30)
        await client.stop()
