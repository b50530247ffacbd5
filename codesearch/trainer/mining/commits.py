"""Commit pairs' git history: a commit's subject as a query (:func:`commit_query`) and, per
file, the recent commits whose changed lines still describe the file at HEAD
(:func:`commit_changes`)."""

from __future__ import annotations

import os
import re
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from codesearch.trainer.doc_queries import looks_like_prose
from codesearch.trainer.mining.exclusions import Exclusions

MAX_COMMITS = 500

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")
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


def commit_changes(
    repo: Path, max_commits: int = MAX_COMMITS, exclusions: Exclusions | None = None
) -> dict[str, list[CommitChange]]:
    """Per file (path relative to ``repo``): the recent commits whose changes still describe
    the current file, i.e. the file's blob after the commit is its blob at HEAD and the work
    tree has not changed it since. Empty when ``repo`` is not in a git work tree."""
    top = _git(repo, "rev-parse", "--show-toplevel")
    if top is None:
        return {}
    top_path = Path(top.strip())
    try:
        prefix = Path(os.path.realpath(repo)).relative_to(os.path.realpath(top_path)).as_posix()
    except ValueError:
        return {}
    prefix = "" if prefix == "." else prefix + "/"
    head = _git(repo, "ls-tree", "-r", "-z", "--full-tree", "HEAD")
    if head is None:
        return {}
    blobs: dict[str, str] = {}
    for entry in head.split("\0"):
        if "\t" in entry:
            meta, path = entry.split("\t", 1)
            parts = meta.split()
            if len(parts) == 3 and parts[1] == "blob":
                blobs[path] = parts[2]
    status = _git(repo, "status", "--porcelain", "-z", "--untracked-files=no") or ""
    dirty = {e[3:] for e in status.split("\0") if len(e) > 3}
    spec = ["."] + (exclusions.git_excludes() if exclusions is not None else [])
    out_text = _git(
        repo, "log", "--no-merges", f"-n{max_commits}", "--no-renames", "--no-color", "--no-ext-diff",
        "--unified=0", "--format=%x1e%H%x1f%s", "-p", "--", *spec, timeout=300,
    )  # fmt: skip
    if not out_text:
        return {}
    result: dict[str, list[CommitChange]] = defaultdict(list)
    for record in out_text.split("\x1e")[1:]:
        header, _, body = record.partition("\n")
        sha, _, subject = header.partition("\x1f")
        path: str | None = None
        new_blob = ""
        ranges: list[tuple[int, int]] = []

        def flush() -> None:
            if path is None or not ranges or path in dirty or not path.startswith(prefix):
                return
            full = blobs.get(path)
            if full is None or not new_blob or not full.startswith(new_blob):
                return
            result[path[len(prefix) :]].append(CommitChange(sha, subject, list(ranges)))

        for line in body.split("\n"):
            if line.startswith("diff --git "):
                flush()
                path, new_blob, ranges = None, "", []
            elif line.startswith("index "):
                m = re.match(r"index [0-9a-f]+\.\.([0-9a-f]+)", line)
                new_blob = m.group(1) if m else ""
            elif line.startswith("+++ "):
                target = line[4:].rstrip("\t")
                path = target[2:] if target.startswith("b/") else None
            elif line.startswith("@@"):
                m = _HUNK.match(line)
                if m:
                    start, count = int(m.group(1)), int(m.group(2) if m.group(2) is not None else 1)
                    ranges.append((max(start, 1), start + count - 1) if count > 0 else (max(start, 1), max(start, 1)))
        flush()
    return dict(result)
