"""One result per place, and path roles: real stdlib files, the real model, a real LanceDB index."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import codesearch.search as search_mod
from codesearch.roles import ROLES, role_of
from codesearch.search import Filters, Searcher, pick_places

STDLIB = Path(os.__file__).parent


def _overlap(a, b) -> bool:
    return a.path == b.path and a.start_line <= b.end_line and b.start_line <= a.end_line


def _raw(searcher: Searcher, query: str, limit: int, monkeypatch, **kw):
    """The ranking before places are de-duplicated (the plain top ``limit`` by score)."""
    with monkeypatch.context() as m:
        m.setattr(search_mod, "pick_places", lambda places, scores, n, tie=0.0: sorted(range(len(places)), key=lambda i: -scores[i])[:n])
        return searcher.search(query, limit=limit, **kw)


@pytest.fixture
def difflib_repo(tmp_path) -> Path:
    """difflib.py: SequenceMatcher.find_longest_match has a long docstring, so the method is
    cut into overlapping 40-line windows that all carry its name."""
    repo = tmp_path / "repos" / "diffs"
    repo.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    shutil.copy(STDLIB / "difflib.py", repo / "difflib.py")
    return repo


def test_overlapping_windows_come_back_once(difflib_repo, index_env, monkeypatch):
    _, indexer, searcher = index_env
    indexer.run([difflib_repo])
    s = searcher()
    query = "find the longest matching block of two sequences"
    raw = _raw(s, query, 40, monkeypatch)
    # The premise: the raw top 8 (the limit below) hold overlapping windows of one method.
    top_pairs = [(a, b) for i, a in enumerate(raw[:8]) for b in raw[i + 1 : 8] if _overlap(a, b)]
    assert top_pairs and any(a.name == b.name == "find_longest_match" for a, b in top_pairs)

    results = s.search(query, limit=8)
    assert len(results) == 8  # the candidates hold more than 8 places: the limit is still met
    for i, a in enumerate(results):
        for b in results[i + 1 :]:
            assert not _overlap(a, b), (a, b)
    # The better-scoring window is the one kept (the windows are all 40 lines: no tie rule).
    assert (results[0].start_line, results[0].end_line, results[0].score) == (raw[0].start_line, raw[0].end_line, raw[0].score)
    # Every raw result that would have made the list but is missing overlaps a kept result that
    # scores at least as well (or within the tie and is smaller).
    kept = {(r.path, r.start_line, r.end_line) for r in results}
    floor = min(r.score for r in results)
    for r in raw:
        if r.score >= floor and (r.path, r.start_line, r.end_line) not in kept:
            assert any(
                _overlap(r, k) and (k.score >= r.score or r.score - k.score <= s.overlap_tie and k.end_line - k.start_line < r.end_line - r.start_line)
                for k in results
            ), r
    # Scores stay sorted best first.
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


def test_near_tie_keeps_the_smaller_span():
    # A function (lines 10-40) and a one-line span inside it.
    places = [("a.py", 10, 40), ("a.py", 12, 12), ("a.py", 50, 60), ("b.py", 1, 30)]
    assert pick_places(places, [0.800, 0.797, 0.700, 0.600], 10, tie=0.005) == [1, 2, 3]
    assert pick_places(places, [0.800, 0.780, 0.700, 0.600], 10, tie=0.005) == [0, 2, 3]
    assert pick_places(places, [0.780, 0.800, 0.700, 0.600], 10, tie=0.005) == [1, 2, 3]  # better and smaller
    # A full list may still swap a place for its smaller near-tie, and fills up past dropped ones.
    assert pick_places(places, [0.800, 0.797, 0.700, 0.600], 1, tie=0.005) == [1]
    assert pick_places(places, [0.800, 0.790, 0.700, 0.600], 2, tie=0.005) == [0, 2]


def test_role_of_paths():
    assert role_of("src/lib.rs") == "lib"
    assert role_of("bytes-1.2.1/tests/test_buf.rs") == "test"
    assert role_of("pkg/server_test.go") == "test"
    assert role_of("Lib/test_x.py") == "test" and role_of("Lib/contest.py") == "lib"
    assert role_of("benches/buf.rs") == "bench"
    assert role_of("examples/iris.rs") == "example"
    assert role_of("docs/guide.md") == "doc" and role_of("README.md") == "doc"
    assert role_of("vendor/foo/tests/a.rs") == "vendor"  # the first rule that matches wins
    assert role_of("api/service_pb2.py") == "generated"
    assert role_of("cedar-lean/Cedar/Spec/Value.lean") == "lib"


@pytest.fixture
def roles_repo(tmp_path) -> Path:
    """textwrap.py as library code, and the same file again as a test and as an example."""
    repo = tmp_path / "repos" / "wrapping"
    for rel in ("src/wrapping.py", "tests/test_wrapping.py", "examples/wrap_demo.py"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(STDLIB / "textwrap.py", repo / rel)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo


def test_roles_show_filter_and_prior(roles_repo, index_env, encoder, tmp_path):
    from codesearch.config import load_settings

    store, indexer, searcher = index_env
    indexer.run([roles_repo])
    query = "wrap text chunks into lines of a given width"
    s = searcher()
    assert s.role_prior == 0.8  # shipped setting (docs/chunking.md, "Path roles")
    settings = load_settings(config_file=None, home=str(store.home))
    settings["search"]["role_prior"] = 1.0
    results = Searcher(store, encoder, settings).search(query, limit=10)  # no prior
    assert {r.role for r in results} == {"lib", "test", "example"}
    assert all(r.role == role_of(r.rel_path) for r in results)

    only_tests = s.search(query, limit=10, filters=Filters(role=["test"]))
    assert only_tests and all(r.rel_path.startswith("tests/") and r.role == "test" for r in only_tests)
    lib_or_example = s.search(query, limit=10, filters=Filters(role=["lib", "example"]))
    assert lib_or_example and {r.role for r in lib_or_example} == {"lib", "example"}
    assert not s.search(query, filters=Filters(role=["vendor"]))
    with pytest.raises(ValueError, match="lib, test, bench"):
        s.search(query, filters=Filters(role=["tests"]))

    # The default prior: non-library copies of the best chunk scaled by role_prior, the library one first.
    best = results[0]
    same = [r for r in results if (r.start_line, r.end_line) == (best.start_line, best.end_line)]
    assert {r.role for r in same} == {"lib", "test", "example"}
    prior = s.search(query, limit=30)
    spans = [r for r in prior if (r.start_line, r.end_line) == (best.start_line, best.end_line)]
    assert spans[0].role == "lib" and prior[0].role == "lib"
    before = {r.role: r.score for r in same}
    after = {r.role: r.score for r in spans}
    assert after["lib"] == before["lib"]
    assert after["test"] == pytest.approx(0.8 * before["test"], abs=2e-4)
    assert after["example"] == pytest.approx(0.8 * before["example"], abs=2e-4)


def test_the_prior_puts_library_code_before_prose_docs_but_not_before_a_spec_in_docs(tmp_path, index_env, encoder):
    """The role prior scales prose (Markdown, text) in docs/, and leaves code there alone: a
    specification under docs/spec is what a formal-methods user searches for."""
    from codesearch.config import load_settings

    repo = tmp_path / "repos" / "wrapping"
    for rel in ("src/wrapping.py", "docs/spec/wrapping.py"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(STDLIB / "textwrap.py", repo / rel)
    (repo / "docs" / "guide.md").write_text(
        "# Wrapping text\n\nTo wrap text into lines of a given width, call `wrap` with the text and the width.\n"
        "It returns the lines without final newlines; `fill` joins them into one string.\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    store, indexer, searcher = index_env
    indexer.run([repo])
    query = "wrap text into lines of a given width"
    settings = load_settings(config_file=None, home=str(store.home))
    settings["search"]["role_prior"] = 1.0
    plain = {(r.rel_path, r.start_line): r for r in Searcher(store, encoder, settings).search(query, limit=30)}
    default = {(r.rel_path, r.start_line): r for r in searcher().search(query, limit=30)}
    prose = [k for k in default if k[0] == "docs/guide.md"]
    spec = [k for k in default if k[0] == "docs/spec/wrapping.py"]
    assert prose and spec and all(default[k].role == "doc" for k in prose + spec)
    for k in prose:
        assert default[k].score == pytest.approx(0.8 * plain[k].score, abs=2e-4)
    for k in spec:
        assert default[k].score == plain[k].score


def test_the_prior_leaves_alone_the_role_a_query_names(tmp_path, index_env, encoder):
    """A query that asks for tests ("tests that wrap text ...") is not answered with library code
    first: the prior leaves the test role alone for it, and still scales the others."""
    from codesearch.config import load_settings
    from codesearch.roles import named_roles

    assert named_roles("Tests that wrap text") == {"test"}
    assert named_roles("test_wrap_width; see the docs") == {"test", "doc"}
    assert named_roles("the latest contest attestation") == frozenset()  # whole words only
    repo = tmp_path / "repos" / "wrapping"
    for rel in ("src/wrapping.py", "tests/test_wrapping.py", "examples/wrapping.py"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(STDLIB / "textwrap.py", repo / rel)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    store, indexer, searcher = index_env
    indexer.run([repo])
    settings = load_settings(config_file=None, home=str(store.home))
    settings["search"]["role_prior"] = 1.0
    off = Searcher(store, encoder, settings)
    for query, scaled, kept in (("wrap text into lines of a given width", {"test", "example"}, set()),
                                ("tests that wrap text into lines of a given width", {"example"}, {"test"})):
        plain = {(r.rel_path, r.start_line): r.score for r in off.search(query, limit=500)}
        default = searcher().search(query, limit=500)
        seen = {r.role for r in default}
        assert scaled | kept <= seen, (query, seen)
        # (one result per place: where a chunk and the one enclosing it score within rounding of
        # each other, scaling both by 0.8 may keep the other one; on the AMD EPYC of 2026-12-06 one
        # of 62 places did)
        matched = [r for r in default if (r.rel_path, r.start_line) in plain]
        assert len(matched) >= 0.9 * len(default), (query, len(matched), len(default))
        for r in matched:
            factor = 0.8 if r.role in scaled else 1.0
            assert r.score == pytest.approx(factor * plain[(r.rel_path, r.start_line)], abs=2e-4), (query, r.rel_path)


def test_cli_role_option_and_json(roles_repo, tmp_path):
    from click.testing import CliRunner

    from codesearch.cli import main

    home = tmp_path / "cli-home"

    def cli(*args):
        return CliRunner().invoke(main, ["--home", str(home), *args], catch_exceptions=False)

    assert cli("index", str(roles_repo), "-q").exit_code == 0
    out = cli("search", "wrap text into lines", "--json", "--role", "test,example")
    assert out.exit_code == 0, out.output
    results = json.loads(out.output)
    assert results and {r["role"] for r in results} <= {"test", "example"}
    assert {"path", "rel_path", "start_line", "end_line", "score", "language", "kind", "name", "snippet"} <= set(results[0])
    repeated = json.loads(cli("search", "wrap text into lines", "--json", "--role", "lib", "--role", "bench").output)
    assert repeated and all(r["role"] == "lib" for r in repeated)
    text = cli("search", "wrap text into lines", "--limit", "1", "--role", "example")
    assert text.exit_code == 0 and "[python, example, " in text.output
    bad = cli("search", "wrap", "--role", "tests")
    assert bad.exit_code == 2 and "unknown role 'tests'" in bad.output and ", ".join(ROLES) in bad.output
