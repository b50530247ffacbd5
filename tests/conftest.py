"""Shared fixtures: the real model (loaded once), real LanceDB in tmp folders, small real files."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LANCE_LOG", "error")
os.environ.setdefault("CODESEARCH_NO_SERVICE", "1")  # no background search services from CLI tests (tests/test_service.py starts its own)

FIXTURES = Path(__file__).parent / "fixtures"
# Fixtures are files to index and mine, not tests (tests/fixtures/mining/test_geometry.py is a
# user's test file that the miner reads).
collect_ignore = ["fixtures"]
STDLIB = Path(os.__file__).parent


def stdlib_repo(dest: Path, n_files: int, max_bytes: int) -> Path:
    """A git repository of ``n_files`` real Python stdlib modules of 2 KB to ``max_bytes``."""
    dest.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(dest)], check=True)
    files = sorted(p for p in STDLIB.glob("*.py") if 2_000 < p.stat().st_size < max_bytes)[:n_files]
    for p in files:
        shutil.copy(p, dest / p.name)
    return dest


@pytest.fixture(scope="session")
def encoder():
    from codesearch.model import load_encoder

    return load_encoder("default")


@pytest.fixture
def small_repo(tmp_path) -> Path:
    """A git repository with a few real-looking Rust, Python, Lean, SMT-LIB and TLA+ files."""
    repo = tmp_path / "repos" / "small"
    shutil.copytree(FIXTURES / "repo_small", repo)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo


@pytest.fixture
def index_env(tmp_path, encoder):
    """(store, indexer, searcher factory) on a fresh index home."""
    from codesearch.config import load_settings
    from codesearch.indexer.pipeline import Indexer
    from codesearch.indexer.store import Store
    from codesearch.search import Searcher

    settings = load_settings(config_file=None, home=str(tmp_path / "home"))
    store = Store(Path(settings["home"]))
    indexer = Indexer(store, encoder, settings)
    return store, indexer, lambda: Searcher(store, encoder, settings)
