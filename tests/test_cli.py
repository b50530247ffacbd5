"""The command line as a user runs it: real model, real LanceDB, real files."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from codesearch.cli import main
from conftest import stdlib_repo


def run_cli(*args: str, home: Path) -> "click.testing.Result":
    result = CliRunner().invoke(main, ["--home", str(home), *args], catch_exceptions=False)
    return result


def test_index_then_search_json(small_repo, tmp_path):
    home = tmp_path / "home"
    out = run_cli("index", str(small_repo), "-q", home=home)
    assert out.exit_code == 0, out.output
    assert "Indexed 5 files in 1 repository" in out.output
    res = run_cli("search", "check if a value is within bounds", "--json", "--limit", "3", home=home)
    assert res.exit_code == 0, res.output
    results = json.loads(res.output)
    assert len(results) == 3
    first = results[0]
    assert {"path", "start_line", "end_line", "score", "language", "kind", "name", "snippet"} <= set(first)
    assert first["path"] == str(small_repo / "src" / "bounds.rs") and first["name"] == "contains"
    assert (first["start_line"], first["end_line"]) == (11, 14)
    assert "pub fn contains" in first["snippet"]
    text = run_cli("search", "check if a value is within bounds", "--limit", "1", home=home)
    assert f"{small_repo / 'src' / 'bounds.rs'}:11-14" in text.output


def test_clear_errors_on_bad_input(tmp_path):
    home = tmp_path / "home"
    missing = run_cli("index", str(tmp_path / "nope"), home=home)
    assert missing.exit_code == 2 and "does not exist" in missing.output
    no_index = run_cli("search", "anything", home=tmp_path / "empty-home")
    assert no_index.exit_code == 2 and "codesearch index" in no_index.output
    empty = run_cli("search", "   ", home=home)
    assert empty.exit_code == 2 and "empty" in empty.output


def test_bad_files_are_skipped_with_reasons_and_the_rest_is_indexed(small_repo, tmp_path):
    home = tmp_path / "home"
    (small_repo / "blob.dat").write_bytes(b"\x00\x01\x02binary" * 100)
    # A real-world file that is UTF-8 except for one Latin-1 byte in a comment: indexed, byte replaced.
    body = "def cafe_price(order):\n    total = sum(item.price for item in order.items)\n    return round(total * 1.2, 2)\n" * 3
    (small_repo / "latin1.py").write_bytes(body.encode() + b"# caf\xe9 au lait\n")
    (small_repo / "huge.js").write_text("x=1;" * (5 * 1024 * 1024 // 4))
    (small_repo / "loop").symlink_to(small_repo)
    (small_repo / ".env").write_text("SECRET_TOKEN=hunter2\n")
    (small_repo / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    out = run_cli("index", str(small_repo), "-q", home=home)
    assert out.exit_code == 0, out.output
    summary = out.output
    for reason in ("binary", "too large", "symlink loop", "secret"):
        assert reason in summary, summary
    found = json.loads(run_cli("search", "cafe price", "--json", home=home).output)
    assert any(r["path"].endswith("latin1.py") for r in found)
    everything = json.loads(run_cli("search", "SECRET_TOKEN hunter2 private key", "--json", "--limit", "50", home=home).output)
    assert not any(r["path"].endswith((".env", "id_rsa")) for r in everything)
    assert any(r["name"] == "contains" for r in json.loads(run_cli("search", "value within bounds", "--json", home=home).output))

def _index_state(home: Path) -> tuple[list, list]:
    from codesearch.indexer.store import Store

    store = Store(home, create=False)
    chunks = store.table("chunks").search().select(["id", "path", "start_line", "end_line", "key"]).limit(None).to_arrow().to_pylist()
    keys = store.table("vectors").search().select(["key"]).limit(None).to_arrow().column("key").to_pylist()
    return chunks, keys


@pytest.mark.slow  # (about 50 s: .ci/run runs it in its slow step)
def test_kill_minus_nine_then_rerun_converges(tmp_path):
    """Killing the indexer at random moments and running it again gives exactly the clean index."""
    repo = stdlib_repo(tmp_path / "repo", 15, max_bytes=30_000)
    home = tmp_path / "home"
    cmd = [sys.executable, "-m", "codesearch.cli", "--home", str(home), "index", str(repo), "-q"]
    rng = random.Random(7)
    for _ in range(1):  # (more kills, at random points under churn: test_scale.py, slow)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(rng.uniform(3.0, 7.0))  # start-up (imports, model) takes ~3 s, then commits begin
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    chunks, keys = _index_state(home)
    assert len({c["id"] for c in chunks}) == len(chunks)  # no duplicated chunk
    assert len(set(keys)) == len(keys)  # no vector embedded twice
    clean_home = tmp_path / "clean"
    subprocess.run([*cmd[:3], "--home", str(clean_home), *cmd[5:]], check=True, capture_output=True)
    clean_chunks, _ = _index_state(clean_home)
    norm = lambda rows: sorted((c["path"], c["start_line"], c["end_line"], c["key"]) for c in rows)  # noqa: E731
    assert norm(chunks) == norm(clean_chunks)
    again = subprocess.run(cmd[:-1] + ["--json"], capture_output=True, text=True, check=True)
    assert json.loads(again.stdout)["embedded"] == 0


def test_eval_command_scores_a_hand_checked_set(small_repo, tmp_path):
    home = tmp_path / "home"
    evalset = tmp_path / "tiny.jsonl"
    lines = [
        {"id": "a", "query": "check if a value is within bounds", "domain": "rust",
         "relevant": [{"path": "src/bounds.rs", "start_line": 11, "end_line": 14}]},
        {"id": "b", "query": "evict the least recently used entry when the cache is full", "domain": "python",
         "relevant": [{"path": "src/cache.py", "start_line": 20, "end_line": 25}]},
        {"id": "c", "query": "a query whose target file does not exist", "domain": "python",
         "relevant": [{"path": "src/missing.py", "start_line": 1, "end_line": 3}]},
    ]
    evalset.write_text("\n".join(json.dumps(l) for l in lines) + "\n")
    out = run_cli("eval", str(evalset), "--root", str(small_repo), "--json", home=home)
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["domains"]["rust"] == {"n": 1, "p@1": 1.0, "mrr@10": 1.0, "recall@5": 1.0}
    assert report["overall"]["n"] == 3
    by_id = {q["id"]: q for q in report["queries"]}
    # Per domain, the metrics follow from each query's rank (query c cannot be found).
    rank_b = by_id["b"]["hit_rank"]
    assert rank_b is not None and rank_b <= 5  # the put method, among the cache's five chunks
    python = report["domains"]["python"]
    assert python["n"] == 2 and python["p@1"] == (0.5 if rank_b == 1 else 0.0)
    assert python["mrr@10"] == pytest.approx((1 / rank_b) / 2) and python["recall@5"] == 0.5
    assert by_id["a"]["hit_rank"] == 1 and by_id["c"]["hit_rank"] is None
    assert by_id["a"]["results"][0] == {"path": "src/bounds.rs", "start_line": 11, "end_line": 14, "score": by_id["a"]["results"][0]["score"]}
    table = run_cli("eval", str(evalset), "--root", str(small_repo), "--method", "bm25", "-q", home=home)
    assert "overall" in table.output and "P@1" in table.output


def test_an_unknown_document_runtime_stops_an_index_run_with_one_line(small_repo, tmp_path, monkeypatch):
    monkeypatch.setenv("CODESEARCH_DOCUMENT_RUNTIME", "fast")
    out = run_cli("index", str(small_repo), "-q", home=tmp_path / "home")
    assert out.exit_code == 2
    errors = [line for line in out.output.splitlines() if "error" in line]
    assert len(errors) == 1 and "CODESEARCH_DOCUMENT_RUNTIME='fast': choose one of auto, torch, int8" in errors[0]
