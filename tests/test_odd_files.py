"""Odd files never abort a run: a file name that is not UTF-8, a FIFO, a file the chunker or the
model chokes on. Real model, real LanceDB, real files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from codesearch.cli import main
from codesearch.indexer import pipeline
from codesearch.indexer.doctor import diagnose
from codesearch.indexer.walk import real_path, stored_path

BAD_NAME = b"bad\xffname.rs"  # 0xff never occurs in UTF-8
ODD_FN = "pub fn checksum_of_frame(frame: &[u8]) -> u32 {\n    frame.iter().fold(0u32, |acc, b| acc.rotate_left(5) ^ *b as u32)\n}\n"


def cli(home: Path, *args: str):
    return CliRunner().invoke(main, ["--home", str(home), *args], catch_exceptions=False)


def write_odd(folder: Path, text: str = ODD_FN) -> str:
    """Create the non-UTF-8 name through bytes; return the path as Python lists it (surrogates)."""
    raw = os.path.join(os.fsencode(folder), BAD_NAME)
    with open(raw, "wb") as fh:
        fh.write(text.encode())
    return os.fsdecode(raw)


def test_a_file_name_that_is_not_utf8_is_indexed_and_maps_back_to_the_file(small_repo, index_env):
    store, indexer, searcher = index_env
    odd = write_odd(small_repo / "src")
    assert "\udcff" in odd and os.path.exists(odd)

    summary = indexer.run([small_repo])
    assert summary.files_indexed == summary.files_seen == 6 and not summary.skipped
    top = searcher().search("checksum of a frame of bytes", limit=1)[0]
    assert top.name == "checksum_of_frame"
    assert top.path == stored_path(odd) == str(small_repo / "src" / "bad\\xffname.rs")  # valid UTF-8
    assert real_path(top.path) == odd and Path(real_path(top.path)).read_text() == ODD_FN
    assert searcher().search("clamp a value into bounds", limit=3)  # the normal files are there too

    found = cli(store.home, "search", "--json", "checksum of a frame of bytes")
    assert found.exit_code == 0, found.output
    assert json.loads(found.output)[0]["path"] == top.path
    assert cli(store.home, "search", "checksum of a frame of bytes").exit_code == 0

    assert diagnose(store, [small_repo], deep=True).ok
    clean = cli(store.home, "doctor")
    assert clean.exit_code == 0 and "matches the disk" in clean.output, clean.output
    assert indexer.run([small_repo]).files_unchanged == 6  # nothing re-indexed on the next run

    os.unlink(odd)  # gone from disk: doctor sees it orphaned, --fix removes it
    report = json.loads(cli(store.home, "doctor", "--json").output)
    assert report["orphaned"] == [top.path]
    fixed = cli(store.home, "doctor", "--fix", "--json")
    assert fixed.exit_code == 0 and json.loads(fixed.output)["after"]["ok"], fixed.output
    assert all(r.name != "checksum_of_frame" for r in searcher().search("checksum of a frame of bytes", limit=3))


def test_watch_indexes_and_forgets_a_file_name_that_is_not_utf8(small_repo, tmp_path, encoder):
    from codesearch.config import load_settings
    from codesearch.indexer.store import Store
    from codesearch.indexer.watch import Watcher
    from codesearch.search import Searcher

    settings = load_settings(config_file=None, home=str(tmp_path / "home"))
    settings["watch"] = {"debounce_ms": 200, "max_delay_ms": 1000, "optimize_idle_s": 3600}
    store, updates = Store(tmp_path / "home"), []
    watcher = Watcher(store, encoder, settings, [small_repo], on_update=updates.append)
    watcher.start()
    try:
        assert watcher.wait_idle(120)
        odd = write_odd(small_repo / "src")
        assert watcher.wait_idle(60)
        assert not any(u.error for u in updates), [u.error for u in updates if u.error]
        top = Searcher(store, encoder, settings).search("checksum of a frame of bytes", limit=1)[0]
        assert top.name == "checksum_of_frame" and real_path(top.path) == odd
        assert diagnose(store, [small_repo], deep=True).ok
        os.unlink(odd)
        assert watcher.wait_idle(60)
        assert not any(u.error for u in updates), [u.error for u in updates if u.error]
        assert diagnose(store, [small_repo], deep=True).ok
        assert stored_path(odd) not in store.file_records([small_repo])
    finally:
        watcher.stop()


def test_fifos_are_skipped_and_counted(small_repo, index_env):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    store, indexer, _ = index_env
    os.mkfifo(small_repo / "src" / "pipe.rs")
    summary = indexer.run([small_repo])
    assert summary.skipped == {"not a regular file": 1} and summary.files_indexed == 5
    assert summary.skipped_examples["not a regular file"] == str(small_repo / "src" / "pipe.rs")
    assert diagnose(store, [small_repo]).ok


def test_a_file_that_cannot_be_chunked_or_embedded_is_skipped_and_counted(small_repo, index_env, monkeypatch):
    store, indexer, searcher = index_env
    real_chunk_text = pipeline.chunk_text

    def chunk_text(rel_path, text, *a, **kw):
        if rel_path.endswith("cache.py"):
            raise RecursionError("a chunker bug")
        return real_chunk_text(rel_path, text, *a, **kw)

    encode = indexer.encoder.encode_documents

    def encode_documents(texts, *a, **kw):
        if any("bounds.rs" in t for t in texts):
            raise RuntimeError("the model choked")
        return encode(texts, *a, **kw)

    monkeypatch.setattr(pipeline, "chunk_text", chunk_text)
    monkeypatch.setattr(indexer.encoder, "encode_documents", encode_documents)
    summary = indexer.run([small_repo])
    assert summary.skipped == {"chunking failed": 1, "embedding failed": 1}
    indexed = set(store.file_records([small_repo]))
    assert str(small_repo / "src" / "bounds.rs") not in indexed  # not recorded: tried again next run
    assert len(indexed) == 4 and summary.total_chunks > 0

    monkeypatch.undo()
    again = indexer.run([small_repo])
    assert again.skipped == {} and again.files_indexed == 1  # bounds.rs, now embedded
    assert searcher().search("clamp a value into bounds", limit=1)[0].rel_path == "src/bounds.rs"


def test_the_language_server_links_a_name_that_is_not_utf8_to_the_real_file(tmp_path):
    import os
    from urllib.parse import unquote_to_bytes

    from codesearch.indexer.walk import stored_path
    from codesearch.lsp.search import file_uri

    real = os.fsdecode(os.fsencode(str(tmp_path)) + b"/bad\xffname.rs")
    with open(real, "w") as f:
        f.write("fn x() {}\n")
    uri = file_uri(stored_path(real))
    assert uri.startswith("file://") and unquote_to_bytes(uri[len("file://"):]) == os.fsencode(real)
