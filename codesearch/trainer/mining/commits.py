"""Commit pairs' git history: a commit's subject as a query (:func:`commit_query`) and, per
file, the commits that wrote the lines it has now (:func:`line_commits`, git blame)."""

from __future__ import annotations

import functools
import os
import re
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from codesearch.trainer.doc_queries import looks_like_prose

MAX_COMMITS = 500  # per file: the commits that wrote its lines, the most recent first

_CONVENTIONAL = re.compile(
    r"^(?:feat|feature|fix|bugfix|chore|docs|doc|refactor|perf|test|tests|style|build|ci|revert)(?:\([^)]*\))?!?:\s*",
    re.I,
)
_NOISE_SUBJECT = re.compile(
    r"^(?:merge|revert|wip\b|fixup!|squash!|amend!|bump|release|version|v?\d+\.\d+|update (?:changelog|readme|deps|dependencies)"
    r"|cargo fmt|rustfmt|run (?:black|rustfmt|prettier)|format|reformat|typo|initial commit|first commit|lint|clippy)",
    re.I,
)


def commit_query(subject: str) -> str | None:
    """A commit subject as a query, or None for merges, releases, formatting and the like."""
    s = subject.strip()
    s = re.sub(r"^(?:\[[^\]]*\]\s*)+", "", s)
    s = _CONVENTIONAL.sub("", s)
    s = re.sub(r"\s*\((?:#\d+|closes?[^)]*|fixes[^)]*)\)\s*$", "", s, flags=re.I)
    s = re.sub(r"\s*(?:#\d+|\bGH-\d+)\s*$", "", s).strip().rstrip(".")
    if not s or _NOISE_SUBJECT.match(s):
        return None
    words = s.split()
    if len(words) < 3 or len(words) > 30 or not looks_like_prose(s):
        return None
    return s


def _git(repo: Path, *args: str, timeout: float = 120) -> str | None:
    try:
        r = subprocess.run(
            ["git", "-c", "core.quotepath=off", "-C", str(repo), *args],
            capture_output=True, timeout=timeout, check=False,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    if r.returncode != 0:
        return None
    return r.stdout.decode("utf-8", "replace")


@dataclass
class CommitChange:
    sha: str
    subject: str
    ranges: list[tuple[int, int]]  # 1-based inclusive line ranges of the current file version


_BLAME_HEADER = re.compile(r"^([0-9a-f]{40}) \d+ (\d+)(?: (\d+))?$")
_UNCOMMITTED = "0" * 40


def line_commits(repo: Path, rel_path: str, max_commits: int = MAX_COMMITS, timeout: float = 60) -> list[CommitChange]:
    """The commits that wrote the lines file ``rel_path`` (relative to ``repo``) has now, each
    with its subject and the ranges of those lines (``git blame -w`` of the work-tree file), the
    ``max_commits`` most recent at most. Lines not committed yet, and a shallow clone's boundary
    commit (it stands for all the history cut off; a root commit is none), belong to none. Empty
    outside git.

    Each line goes to the commit that last changed it, however old: a declaration written by
    "Add a pager to echo" and later touched by a reformat still gets the first for the lines the
    reformat left alone."""
    cut = _cut_commits(str(repo))
    if cut is None:  # (asked once per folder: a source that is no repository costs no git call a file)
        return []
    out = _git(repo, "blame", "--root", "-w", "--porcelain", "--", rel_path, timeout=timeout)
    if not out:
        return []
    lines: dict[str, list[int]] = defaultdict(list)
    subject: dict[str, str] = {}
    when: dict[str, int] = {}
    sha = ""
    for line in out.split("\n"):
        if line.startswith("\t"):
            continue
        m = _BLAME_HEADER.match(line)
        if m:
            sha = m.group(1)
            lines[sha].append(int(m.group(2)))
        elif line.startswith("summary "):
            subject[sha] = line[8:]
        elif line.startswith("committer-time "):
            when[sha] = int(line.split()[1])
    shas = [s for s in lines if s != _UNCOMMITTED and s not in cut]
    shas.sort(key=lambda s: -when.get(s, 0))
    return [CommitChange(s, subject.get(s, ""), _ranges(lines[s])) for s in shas[:max_commits]]


@functools.lru_cache(maxsize=64)
def _cut_commits(repo: str) -> frozenset[str] | None:
    """The commits where a shallow clone's history was cut (git's ``shallow`` file; none in a
    full clone), or None when ``repo`` is in no git work tree. Blame gives each cut commit every
    line older than the cut."""
    where = _git(Path(repo), "rev-parse", "--git-path", "shallow")
    if not where:
        return None
    path = Path(repo) / where.strip()
    try:
        return frozenset(path.read_text().split())
    except OSError:
        return frozenset()


def _ranges(numbers: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for n in sorted(numbers):
        if out and n == out[-1][1] + 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out
