"""What the walker would index at and below some paths, without walking everything else.

The watcher and ``doctor --fix`` know which paths changed; re-walking every root for each
saved file would cost a full directory scan. :func:`walk_paths` applies exactly the rules of
:func:`codesearch.indexer.walk.walk` (ignore files of every folder above the path, nested
repositories, excluded folders, secrets, sizes, binary names, symlinks) through the walker's
public :class:`codesearch.indexer.walk.PathWalker`, which only lists the folders on the way
from the root down to each path, and the whole subtree below a path that is a folder.

The answer is authoritative for the *covered* paths: a recorded file at a covered path, or
below a covered path, that is not among the returned sources is no longer to be indexed
(deleted, renamed away, now ignored, now a secret or too large, ...).

Known differences with a full walk (``codesearch doctor`` finds and fixes them): a file
reachable through two paths (hard link, symlink inside the roots) is deduplicated within one
call only; a folder symlink is followed even when its target is also walked elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from codesearch.indexer import walk as walker

__all__ = ["Scope", "walk_paths", "owning_root", "under"]


@dataclass
class Scope:
    sources: list[walker.SourceFile] = field(default_factory=list)
    skipped: list[walker.Skipped] = field(default_factory=list)
    covered: list[str] = field(default_factory=list)  # absolute paths (files or folders)


def under(path: str, prefixes: Iterable[str]) -> bool:
    """Whether ``path`` is one of ``prefixes`` or lies below one of them."""
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def owning_root(path: str, roots: Sequence[str]) -> str | None:
    """The outermost of ``roots`` at or above ``path`` (the one whose walk reaches it)."""
    best = None
    for r in roots:
        if path == r or path.startswith(r.rstrip("/") + "/"):
            if best is None or len(r) < len(best):
                best = r
    return best


def walk_paths(
    roots: Sequence[str | Path],
    paths: Iterable[str | Path],
    *,
    max_file_bytes: int | None = None,
    secrets_allow=None,
) -> Scope:
    """Sources and skips at and below ``paths`` (absolute), as ``walk(roots)`` would give them.

    Paths outside every root are ignored. A path that no longer exists is covered and yields
    nothing, so whatever was recorded there is to be removed. ``max_file_bytes`` None: the
    default ``index.max_file_bytes`` (config/default.yaml).
    """
    root_list = [os.path.abspath(os.fspath(r)) for r in roots]
    scope = Scope()
    targets = sorted({os.path.abspath(os.fspath(p)) for p in paths})
    # A path below another target is covered by that target's subtree walk.
    kept: list[str] = []
    kept_set: set[str] = set()
    for t in targets:  # sorted: a folder comes before the paths below it
        if any(a in kept_set for a in _self_and_ancestors(t)):
            continue
        kept.append(t)
        kept_set.add(t)
    pw = walker.PathWalker(root_list, max_file_bytes=max_file_bytes, secrets_allow=secrets_allow)
    for t in kept:
        root = owning_root(t, root_list)
        if root is None:
            continue
        scope.covered.append(t)
        for item in pw.walk_path(t, root):
            if isinstance(item, walker.Skipped):
                scope.skipped.append(item)
            else:
                scope.sources.append(item)
    return scope


def _self_and_ancestors(path: str) -> Iterable[str]:
    while True:
        yield path
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent
