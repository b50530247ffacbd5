"""Pair mining: (query, code) training pairs from the code on this machine.

One module per job; the overview of a whole run is in :mod:`codesearch.trainer.mining.dataset`.

    sources.py      what to mine: SourceSpec, the data config (config/data.yaml), personal_sources
    exclusions.py   contamination checks: held-out eval sources, reserved repositories, pathspecs
    decls.py        a file's chunks grouped into declarations (MinedDecl), positives, name queries
    testpairs.py    test names as queries, linked to the declaration a test most likely covers
    commits.py      git history: commit subjects as queries for the code they still describe
    one_file.py     the doc, name and augmented pairs of one file (mine_text)
    one_source.py   mining one source: file order, cap, then test and commit pairs
    dataset.py      the whole dataset: dedup, split, hard negatives, files; codesearch data build

The names below are the miner's public API.
"""

from __future__ import annotations

from codesearch.trainer.mining.commits import MAX_COMMITS, CommitChange, commit_query, line_commits
from codesearch.trainer.mining.dataset import build_dataset, build_from_config
from codesearch.trainer.mining.decls import (
    CONTAINER_KINDS,
    MAX_POSITIVE_LINES,
    MINED_LANGUAGES,
    NO_NAME_KINDS,
    NOT_DECLS,
    TRIVIAL_NAMES,
    MinedDecl,
    declarations,
    file_chunks,
    good_name_words,
    mining_language,
    name_query,
    positive_chunk,
)
from codesearch.trainer.mining.exclusions import (
    FALLBACK_HELDOUT,
    HELDOUT_FILE,
    RESERVED_REPOS,
    UPSTREAMS_OF_EVAL_SOURCES,
    Exclusions,
)
from codesearch.trainer.mining.one_file import MAX_NAME_PAIRS_PER_FILE, MAX_PAIRS_PER_FILE, FileMined, mine_text
from codesearch.trainer.mining.one_source import (
    DEFAULT_MAX_PAIRS,
    MAX_DECLS_PER_COMMIT,
    MAX_PAIRS_PER_COMMIT,
    NAME_SHARE,
    SourceResult,
    list_files,
    mine_source,
)
from codesearch.trainer.mining.sources import (
    REPO_ROOT,
    SourceSpec,
    default_config_path,
    expand_path,
    load_data_config,
    personal_sources,
)
from codesearch.trainer.mining.testpairs import is_test_decl, test_query

__all__ = [
    "CONTAINER_KINDS", "DEFAULT_MAX_PAIRS", "FALLBACK_HELDOUT", "HELDOUT_FILE", "MAX_COMMITS",
    "MAX_DECLS_PER_COMMIT", "MAX_NAME_PAIRS_PER_FILE", "MAX_PAIRS_PER_COMMIT", "MAX_PAIRS_PER_FILE",
    "MAX_POSITIVE_LINES", "MINED_LANGUAGES", "NAME_SHARE", "NOT_DECLS", "NO_NAME_KINDS", "REPO_ROOT",
    "RESERVED_REPOS", "TRIVIAL_NAMES", "UPSTREAMS_OF_EVAL_SOURCES", "CommitChange", "Exclusions", "FileMined",
    "MinedDecl", "SourceResult", "SourceSpec", "build_dataset", "build_from_config", "line_commits",
    "commit_query", "declarations", "default_config_path", "expand_path", "file_chunks", "good_name_words",
    "is_test_decl", "list_files", "load_data_config", "mine_source", "mine_text", "mining_language",
    "name_query", "personal_sources", "positive_chunk", "test_query",
]  # fmt: skip
