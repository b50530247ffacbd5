"""A damaged index (a data file truncated or deleted) is detected by search, index and doctor,
and ``doctor --fix`` rebuilds it into the index a clean run builds. Real model, real LanceDB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from codesearch.cli import main

QUERIES = ["evict the least recently used entry", "check if a value is within bounds", "counter invariant"]


def cli(home: Path, *args: str):
    return CliRunner().invoke(main, ["--home", str(home), *args], catch_exceptions=False)


def results(home: Path) -> list[list[tuple]]:
    out = []
    for q in QUERIES:
        r = cli(home, "search", "--json", "-n", "5", q)
        assert r.exit_code == 0, r.output
        out.append([(x["path"], x["start_line"], x["end_line"], x["score"]) for x in json.loads(r.stdout)])
    return out


def same_results(a: list[list[tuple]], b: list[list[tuple]]) -> bool:
    places = lambda rs: [[r[:3] for r in q] for q in rs]  # noqa: E731
    scores = [abs(x[3] - y[3]) for qa, qb in zip(a, b) for x, y in zip(qa, qb)]
    return places(a) == places(b) and max(scores, default=0.0) < 1e-3


def truncate_chunks(home: Path) -> str:
    for f in (home / "lance" / "chunks.lance" / "data").glob("*.lance"):
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    return "chunks"


def delete_vectors(home: Path) -> str:
    # The largest data file is the one the compacted table reads (the others are kept
    # versions' files until cleanup).
    files = sorted((home / "lance" / "vectors.lance" / "data").glob("*.lance"), key=lambda f: f.stat().st_size)
    files[-1].unlink()
    return "vectors"


@pytest.mark.parametrize("damage", [truncate_chunks, delete_vectors], ids=["truncated-chunks", "deleted-vectors"])
def test_damaged_table_is_detected_then_rebuilt(small_repo, index_env, damage):
    store, indexer, _ = index_env
    indexer.run([small_repo])
    home = store.home
    clean = results(home)
    n_chunks = store.count_chunks()
    table = damage(home)

    found = cli(home, "search", "evict the least recently used entry")
    assert found.exit_code == 2
    assert found.output.strip() == "codesearch: error: index damaged: run codesearch doctor --fix"

    again = cli(home, "index", "-q", str(small_repo))
    assert again.exit_code == 2 and "Traceback" not in again.output
    assert len(again.output.strip().splitlines()) == 1
    assert "index damaged: run codesearch doctor --fix" in again.output and f"({table}:" in again.output
    assert "Index total" not in again.output

    diag = cli(home, "doctor")
    assert diag.exit_code == 2, diag.output
    assert f"damaged table {table}" in diag.output and "Traceback" not in diag.output
    report = json.loads(cli(home, "doctor", "--json").stdout)
    assert not report["ok"] and list(report["broken"]) == [table]

    fixed = cli(home, "doctor", "--fix", "--json")
    assert fixed.exit_code == 0, fixed.output
    out = json.loads(fixed.stdout)
    assert out["after"]["ok"]
    kept, before = out["rebuilt"][table]["kept"], out["rebuilt"][table]["before"]
    if table == "chunks":
        assert out["fixed"]["embedded"] == 0  # chunk rows cut again from the files; every vector reused
    else:
        assert out["fixed"]["embedded"] == before - kept  # only the lost keys are embedded again

    healthy = cli(home, "doctor")
    assert healthy.exit_code == 0 and "matches the disk" in healthy.output, healthy.output
    assert store.count_chunks() == n_chunks
    assert same_results(results(home), clean)
    assert cli(home, "index", "-q", str(small_repo)).exit_code == 0
