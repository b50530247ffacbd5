"""`codesearch doctor`: differences between the index and the disk are found, reported and repaired."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from codesearch.cli import main
from codesearch.indexer.store import sql_in


def doctor(home: Path, *args: str):
    return CliRunner().invoke(main, ["--home", str(home), "doctor", *args], catch_exceptions=False)


def test_stale_missing_and_orphaned_files_are_reported_then_fixed(small_repo, index_env):
    store, indexer, searcher = index_env
    indexer.run([small_repo])
    home = store.home
    clean = doctor(home)
    assert clean.exit_code == 0 and "matches the disk" in clean.output

    bounds = small_repo / "src" / "bounds.rs"
    bounds.write_text(bounds.read_text() + "\npub fn clamp_to_range(v: i64, lo: i64, hi: i64) -> i64 { v.max(lo).min(hi) }\n")
    (small_repo / "src" / "fib.py").write_text("def fibonacci_numbers(n):\n    a, b = 0, 1\n    for _ in range(n):\n        yield a\n        a, b = b, a + b\n")
    (small_repo / "proofs" / "Counter.tla").unlink()
    (small_repo / ".codesearchignore").write_text("*.lean\n")  # an indexed file that is now excluded

    found = doctor(home, "--json")
    assert found.exit_code == 1
    report = json.loads(found.output)
    rel = lambda paths: sorted(os.path.relpath(p, small_repo) for p in paths)  # noqa: E731
    assert rel(report["stale"]) == ["src/bounds.rs"]
    assert rel(report["missing"]) == ["src/fib.py"]
    assert rel(report["orphaned"]) == ["proofs/Counter.tla", "proofs/Lists.lean"]
    assert report["differences"] == 4 and not report["ok"]

    fixed = doctor(home, "--fix", "--json")
    assert fixed.exit_code == 0, fixed.output
    out = json.loads(fixed.output)
    assert out["after"]["ok"] and out["fixed"]["files_indexed"] == 2 and out["fixed"]["files_removed"] == 2
    assert out["fixed"]["embedded"] == 2  # the new function and the new file; nothing else re-embedded
    assert doctor(home).exit_code == 0
    assert searcher().search("fibonacci sequence generator", limit=1)[0].name == "fibonacci_numbers"


def test_damaged_rows_duplicates_and_lost_vectors_are_repaired(small_repo, index_env):
    store, indexer, searcher = index_env
    indexer.run([small_repo])
    chunks = store.table("chunks")
    cache = str(small_repo / "src" / "cache.py")
    bounds = str(small_repo / "src" / "bounds.rs")
    smt = str(small_repo / "proofs" / "counter.smt2")
    # What a bug or a foreign writer could leave behind:
    dup = chunks.search().where(sql_in("path", [cache])).limit(None).to_arrow()
    chunks.add(dup)  # every chunk of cache.py stored twice
    store.table("files").delete(sql_in("path", [bounds]))  # chunk rows without a file record
    lost = chunks.search().where(sql_in("path", [smt])).select(["key"]).limit(None).to_arrow().column("key").to_pylist()
    store.table("vectors").delete(sql_in("key", lost))  # chunks whose vectors are gone

    report = json.loads(doctor(store.home, "--json").output)
    assert report["duplicate_ids"] and report["dangling"] == [smt]
    assert bounds in report["missing"]  # its rows are there, its record is not: re-indexed
    fixed = doctor(store.home, "--fix")
    assert fixed.exit_code == 0 and "matches the disk" in fixed.output, fixed.output
    ids = chunks.search().select(["id"]).limit(None).to_arrow().column("id").to_pylist()
    assert len(ids) == len(set(ids))
    assert searcher().search("evict the least recently used entry", limit=5)  # every candidate has vectors


def test_deep_check_finds_an_edit_that_kept_size_and_mtime(small_repo, index_env):
    store, indexer, _ = index_env
    indexer.run([small_repo])
    py = small_repo / "src" / "cache.py"
    st = py.stat()
    text = py.read_text()
    py.write_text(text.replace("capacity", "capacitz"))  # same size
    os.utime(py, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert doctor(store.home).exit_code == 0  # size and mtime say nothing changed
    deep = json.loads(doctor(store.home, "--deep", "--json").output)
    assert deep["stale"] == [str(py)]
    assert doctor(store.home, "--deep", "--fix").exit_code == 0
    assert doctor(store.home, "--deep").exit_code == 0
    texts = store.table("chunks").search().where(sql_in("path", [str(py)])).select(["text"]).limit(None).to_arrow()
    assert any("capacitz" in t for t in texts.column("text").to_pylist())


def test_doctor_without_an_index_or_roots(tmp_path):
    assert doctor(tmp_path / "nothing").exit_code == 2


def test_fix_says_what_it_will_embed_and_where_the_time_went(small_repo, index_env, encoder, monkeypatch):
    """As `index` does: the estimate line on stderr before the re-embedding, then the rate and a
    Time line (the two checks, then the indexer's stages) after it; --json has seconds_by_stage."""
    import re

    from codesearch.cli import Context

    monkeypatch.setattr(Context, "encoder", lambda self: encoder)  # the session's real model, loaded once
    store, indexer, _ = index_env
    indexer.run([small_repo])
    (small_repo / "src" / "fib.py").write_text("def fibonacci_numbers(n):\n    a, b = 0, 1\n    for _ in range(n):\n        yield a\n        a, b = b, a + b\n")
    (small_repo / "proofs" / "Counter.tla").unlink()

    fixed = doctor(store.home, "--fix")
    assert fixed.exit_code == 0, fixed.output
    from codesearch.indexer.pipeline import default_rate

    rate = f"{default_rate('cpu'):.0f}"
    assert re.search(rf"^To index: 1 file \(1 KB\), about 1 chunk, about \d+ s at ~{rate} chunks/s \(default for this machine\)\.$",
                     fixed.stderr, re.M), fixed.stderr
    assert "To index" not in fixed.stdout
    repaired = re.search(r"^Repaired: 1 file\(s\) re-indexed, 1 removed, 1 chunk\(s\) embedded at [\d.]+ chunks/s in ([\d.]+)s\.$",
                         fixed.stdout, re.M)
    assert repaired, fixed.stdout
    m = re.search(r"^Time: check ([\d.]+)s, walk ([\d.]+)s, chunk ([\d.]+)s, embed ([\d.]+)s, write ([\d.]+)s, other ([\d.]+)s\.$",
                  fixed.stdout, re.M)
    assert m, fixed.stdout
    check, *stages, other = map(float, m.groups())
    assert min(check, *stages, other) >= 0
    assert check + sum(stages) + other == pytest.approx(float(repaired.group(1)), abs=0.35)  # each rounded to 0.1 s

    (small_repo / "src" / "fib.py").unlink()  # one more difference, nothing to embed: no estimate
    out = doctor(store.home, "--fix", "--json")
    assert out.exit_code == 0, out.output
    assert out.stderr == ""
    report = json.loads(out.stdout)
    assert list(report["seconds_by_stage"]) == ["check", "walk", "chunk", "embed", "write"]
    assert report["seconds_by_stage"]["check"] > 0 and report["seconds_by_stage"]["write"] > 0  # read in full; a removal
    assert report["fixed"]["files_removed"] == 1 and report["fixed"]["embedded"] == 0
