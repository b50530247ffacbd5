"""A language server's whole index runs happen in its embedding process (codesearch.lsp.embedder),
so that what their writes leave with LanceDB and the allocator ends with that process
(issue 19: an idle server under 600 MB after indexing 20k chunks; docs/speed.md).

Real model, real LanceDB, real files; the engine is the one `codesearch lsp` builds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codesearch.indexer.store import IndexLocked
from codesearch.lsp.config import LspConfig
from codesearch.lsp.embedder import EmbedderError
from codesearch.lsp.engine import Engine, SearchRequest
from test_lsp_harness import make_workspace

QUERY = "check if a value is within bounds"


@pytest.fixture
def engine(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no user settings file
    monkeypatch.delenv("CODESEARCH_HOME", raising=False)
    monkeypatch.delenv("CODESEARCH_MODEL", raising=False)
    config, problems = LspConfig.parse({"home": str(tmp_path / "home"), "ignore": ["proofs/"]})
    assert not problems
    eng = Engine(config)
    yield eng
    eng.encoder.release()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (ended, not yet reaped by its parent) is gone as far as memory goes
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def test_an_index_run_goes_to_the_embedding_process_and_its_results_are_searched(engine, tmp_path, monkeypatch):
    ws = make_workspace(tmp_path)

    def not_here(*args, **kwargs):
        raise AssertionError("the index run ran in the server")

    monkeypatch.setattr(engine.indexer, "run", not_here)
    stages: list[tuple[str, int, int]] = []
    summary = engine.index([ws], progress=lambda stage, done, total: stages.append((stage, done, total)))
    assert summary.total_chunks > 10 and summary.embedded == summary.total_chunks
    # The server's progress bar moved through the child's stages, up to their ends.
    assert {"chunking", "embedding"} <= {s for s, _, _ in stages}
    assert any(s == "embedding" and done == total for s, done, total in stages)
    # The editor's ignore patterns travelled with the run: nothing under proofs/ was indexed.
    assert engine.chunks_of(str(ws / "proofs" / "Counter.tla")) == []
    assert engine.chunks_of(str(ws / "src" / "bounds.rs"))
    # What the child wrote is what the server searches.
    top = engine.search(SearchRequest(QUERY, 3), [ws])
    assert top and top[0].name == "contains"
    # A second run finds nothing to embed, in the same process.
    pid = engine.encoder._torch.pid
    again = engine.index([ws])
    assert again.embedded == 0 and again.total_chunks == summary.total_chunks
    assert engine.encoder._torch.pid == pid


def test_a_run_refused_by_the_write_lock_raises_index_locked_for_the_retry(engine, tmp_path):
    ws = make_workspace(tmp_path)
    engine.store.home.mkdir(parents=True, exist_ok=True)
    with engine.store.lock():  # another writer (a `codesearch index`, the watcher)
        with pytest.raises(IndexLocked, match="another codesearch process is writing the index"):
            engine.index([ws])
    assert engine.index([ws]).total_chunks > 10  # once it is free, the run goes through


@pytest.mark.slow  # (14 s: .ci/run's second step, with the other stops mid-index)
def test_a_child_killed_mid_run_fails_that_run_and_the_next_starts_a_new_one(engine, tmp_path):
    ws = make_workspace(tmp_path)
    killed: list[int] = []

    def kill_while_embedding(stage, done, total):
        if stage == "embedding" and not killed:
            killed.append(engine.encoder._torch.pid)
            os.kill(killed[0], 9)

    with pytest.raises(EmbedderError, match="the embedding process is gone"):
        engine.index([ws], progress=kill_while_embedding)
    summary = engine.index([ws])
    assert engine.encoder._torch.pid != killed[0]
    assert summary.total_chunks > 10
    assert engine.search(SearchRequest(QUERY, 3), [ws])[0].name == "contains"


def test_an_embedding_process_whose_pipe_broke_is_gone_before_it_has_exited():
    """A child killed mid-run closes its pipes a moment before it has exited (CI once saw the
    next run write to it and fail: "gone (exit None): Broken pipe"). Here a child that closes
    its output and stays alive stands for that moment: once a read found the pipe closed, the
    process counts as gone, so the engine's next use starts a new one."""
    import threading

    from codesearch.lsp.embedder import EmbedderProcess

    proc = EmbedderProcess.__new__(EmbedderProcess)  # (its model load is not what is tested)
    proc.spec, proc._lock, proc._gone = "default", threading.Lock(), False
    proc._proc = subprocess.Popen(["sh", "-c", "exec 1>&-; exec sleep 30"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.alive
        with pytest.raises(EmbedderError, match="the embedding process is gone"):
            proc.encode_documents(["fn main() {}"])
        assert proc._proc.poll() is None  # (still running: only its pipe is closed)
        assert not proc.alive
    finally:
        proc._proc.kill()
        proc._proc.wait()


@pytest.mark.slow  # (8 s: .ci/run's second step)
def test_the_embedding_process_ends_with_its_server_even_mid_run(tmp_path):
    """A server that dies (kill -9, a crash) in the middle of an index run leaves no process
    holding the model behind."""
    ws = make_workspace(tmp_path)
    script = (
        "import os, sys\n"
        "from codesearch.lsp.embedder import EmbedderProcess\n"
        "p = EmbedderProcess('default')\n"
        "def progress(stage, done, total):\n"
        "    if stage == 'embedding':\n"
        "        print(p.pid, flush=True)\n"
        "        os._exit(0)\n"  # no close: as if killed
        "p.run_index({'home': sys.argv[1]}, [sys.argv[2]], progress=progress)\n"
    )
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"), HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "home"), str(ws)],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    child = int(out.stdout.split()[0])
    deadline = time.monotonic() + 10
    while _alive(child):
        assert time.monotonic() < deadline, f"the embedding process {child} outlived its server"
        time.sleep(0.1)
