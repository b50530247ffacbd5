"""Files that git tracks are indexed even when a .gitignore pattern matches them (as git
keeps them); every file an ignore file leaves out is counted in the summary."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from codesearch.indexer.scope import walk_paths
from codesearch.indexer.doctor import diagnose
from codesearch.indexer.walk import SourceFile, Skipped, walk

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                   check=True, capture_output=True)


@pytest.fixture
def star_repo(small_repo: Path) -> Path:
    """small_repo, all committed (README and docs/notes.txt too), then a .gitignore that
    ignores everything and re-includes Rust; scratch.txt is untracked and ignored."""
    (small_repo / "README").write_text("The frobnicator computes widget checksums.\n")
    (small_repo / "docs").mkdir()
    (small_repo / "docs" / "notes.txt").write_text("Design notes on the frobnicator queue.\n")
    git(small_repo, "add", "-A")
    git(small_repo, "commit", "-q", "-m", "init")
    (small_repo / ".gitignore").write_text("*\n!*.rs\n!.gitignore\n")
    (small_repo / "scratch.txt").write_text("untracked scratch notes, ignored\n")
    return small_repo


def test_walk_keeps_tracked_files_that_gitignore_matches(star_repo):
    items = list(walk([star_repo]))
    files = {s.rel_path for s in items if isinstance(s, SourceFile)}
    skipped = {str(s.path.relative_to(star_repo)): s.reason for s in items if isinstance(s, Skipped)}
    assert {"README", "docs/notes.txt"} <= files
    assert "scratch.txt" not in files
    assert skipped["scratch.txt"] == "ignored (.gitignore)"
    # Every file git lists (tracked, or untracked and not ignored) is walked.
    listed = subprocess.run(["git", "-C", str(star_repo), "ls-files", "-co", "--exclude-standard"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert {p for p in listed if not p.endswith(".gitignore")} <= files


def test_codesearchignore_still_excludes_tracked_files(star_repo):
    (star_repo / ".codesearchignore").write_text("README\n")
    items = list(walk([star_repo]))
    assert Skipped(star_repo / "README", "ignored (.codesearchignore)") in items
    assert "docs/notes.txt" in {s.rel_path for s in items if isinstance(s, SourceFile)}


def test_ignored_folder_is_counted_once_and_not_entered(star_repo):
    (star_repo / ".gitignore").write_text("out/\n")
    (star_repo / "out" / "deep").mkdir(parents=True)
    for i in range(5):
        (star_repo / "out" / "deep" / f"gen{i}.rs").write_text("fn g() {}\n")
    items = list(walk([star_repo]))
    assert [s for s in items if isinstance(s, Skipped)] == [
        Skipped(star_repo / "out", "ignored folder (.gitignore)")]


def test_tracked_file_in_ignored_folder_is_kept_untracked_sibling_is_not(star_repo):
    (star_repo / "gen").mkdir()
    (star_repo / "gen" / "kept.rs").write_text("fn kept() {}\n")
    (star_repo / "gen" / "dropped.rs").write_text("fn dropped() {}\n")
    (star_repo / ".gitignore").write_text("gen/\n")
    git(star_repo, "add", "-f", "gen/kept.rs")
    items = list(walk([star_repo]))
    files = {s.rel_path for s in items if isinstance(s, SourceFile)}
    assert "gen/kept.rs" in files and "gen/dropped.rs" not in files
    assert Skipped(star_repo / "gen" / "dropped.rs", "ignored (.gitignore)") in items
    # The watcher's partial walk agrees.
    scope = walk_paths([star_repo], [star_repo / "gen"])
    assert {s.rel_path for s in scope.sources} == {"gen/kept.rs"}


def test_index_counts_ignored_and_indexes_tracked(star_repo, index_env):
    store, indexer, searcher = index_env
    summary = indexer.run([star_repo])
    assert summary.skipped == {"ignored (.gitignore)": 1}
    assert summary.skipped_examples["ignored (.gitignore)"] == str(star_repo / "scratch.txt")
    records = store.file_records([star_repo])
    assert str(star_repo / "README") in records and str(star_repo / "docs" / "notes.txt") in records
    assert str(star_repo / "scratch.txt") not in records
    hits = searcher().search("frobnicator widget checksums", limit=3)
    assert any(h.path.endswith("README") for h in hits)
    assert diagnose(store, [star_repo], deep=True).ok


def test_not_a_repository_keeps_todays_behaviour(tmp_path):
    (tmp_path / ".gitignore").write_text("*.txt\n")
    (tmp_path / "a.txt").write_text("a\n")
    (tmp_path / "b.rs").write_text("fn b() {}\n")
    items = list(walk([tmp_path]))
    assert {s.rel_path for s in items if isinstance(s, SourceFile)} == {"b.rs"}
    assert Skipped(tmp_path / "a.txt", "ignored (.gitignore)") in items
