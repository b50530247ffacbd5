"""`codesearch bench` on a real index: the figures a user reads, from the real CLI, model and LanceDB."""

from __future__ import annotations

import json

from click.testing import CliRunner

from codesearch.cli import main
from codesearch.indexer.store import Store


def bench(home, *args):
    return CliRunner().invoke(main, ["--home", str(home), "bench", *args], catch_exceptions=False)


def test_bench_indexes_a_folder_then_times_searches_over_it(small_repo, tmp_path):
    home = tmp_path / "home"
    out = bench(home, "--index", str(small_repo), "--queries", "5", "--json")
    assert out.exit_code == 0, out.output
    figures = json.loads(out.stdout)
    n = figures["chunks_in_index"]
    assert n > 10 and figures["indexed_chunks"] == n == Store(home).count_chunks()
    assert 0 < figures["embedded_chunks"] <= n and figures["chunks_per_second"] > 0
    for method in ("hybrid", "multivector"):
        assert 0 < figures[f"{method}_query_ms_p50"] <= figures[f"{method}_query_ms_p95"]
    # a table this small is scored whole (search.exact_below): its candidates are exhaustive MaxSim
    assert figures["candidates"] == "memory" and figures["flat_recall_at_10"] == 1.0
    assert figures["bytes_per_chunk"] > 0 and figures["index_bytes"] >= figures["bytes_per_chunk"] * n * 0.99
    # the index run's own peak, and the whole bench's (searchers and the recall truth after it)
    assert 0 < figures["index_peak_rss_mb"] <= figures["peak_rss_mb"]

    again = bench(home, "--queries", "3", "--json")  # the current index, nothing indexed
    assert again.exit_code == 0, again.output
    current = json.loads(again.stdout)
    assert current["chunks_in_index"] == n and "indexed_chunks" not in current and "index_peak_rss_mb" not in current


def test_bench_refuses_what_it_cannot_measure(tmp_path):
    none = bench(tmp_path / "empty", "--queries", "3")
    assert none.exit_code != 0 and "no index at" in none.output and "codesearch index" in none.output
    zero = bench(tmp_path / "empty", "--queries", "0")
    assert zero.exit_code == 2 and "--queries" in zero.output and "x>=1" in zero.output
