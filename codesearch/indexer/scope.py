"""What the walker would index at and below some paths, without walking everything else.

The watcher and ``doctor --fix`` know which paths changed; re-walking every root for each
saved file would cost a full directory scan. :func:`walk_paths` applies exactly the rules of
:func:`codesearch.indexer.walk.walk` (ignore files of every folder above the path, nested
repositories, excluded folders, secrets, sizes, binary names, symlinks) but only lists the
folders on the way from the root down to each path, and the whole subtree below a path that
is a folder.

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


class _Entry:
    """The parts of ``os.DirEntry`` the walker uses, for a path named directly."""

    __slots__ = ("path", "name")

    def __init__(self, path: str):
        self.path = path
        self.name = os.path.basename(path)

    def is_dir(self) -> bool:
        try:
            return os.path.isdir(self.path)
        except OSError:
            return False

    def is_symlink(self) -> bool:
        return os.path.islink(self.path)

    def stat(self) -> os.stat_result:
        return os.stat(self.path)


class _PartialWalker(walker._Walker):
    def __init__(self, roots: list[str], max_file_bytes: int, secrets_allow=None):
        super().__init__(roots, max_file_bytes, secrets_allow=secrets_allow)
        self._frames: dict[str, object] = {}  # folder -> _Frame, or None when not walked into

    def frame(self, folder: str, root: str):
        if folder in self._frames:
            return self._frames[folder]
        out = None
        if folder == root:
            try:
                st = os.stat(root)
            except OSError:
                st = None
            if st is not None and os.path.isdir(root):
                out = self._enter(root, "", "", Path(root), 0, walker._NO_LAYERS, (), (st.st_dev, st.st_ino), True)
        else:
            parent = self.frame(os.path.dirname(folder), root)
            if isinstance(parent, walker._Frame):
                entry = _Entry(folder)
                if entry.is_dir():
                    out = self._subdir(entry, parent)
        if not isinstance(out, walker._Frame):
            out = None
        self._frames[folder] = out
        return out

    def subtree(self, frame) -> Iterable[walker.SourceFile | walker.Skipped]:
        """Everything below an entered folder, exactly as ``walk`` lists it."""
        return self.descend(frame)

    def target(self, path: str, root: str) -> Iterable[walker.SourceFile | walker.Skipped]:
        if path == root:
            if os.path.isdir(root):
                frame = self.frame(root, root)
                if frame is not None:
                    yield from self.subtree(frame)
            elif os.path.lexists(root):
                out = self._file_root(root)
                if out is not None:
                    yield out
            return
        parent = self.frame(os.path.dirname(path), root)
        if parent is None or not os.path.lexists(path):
            return
        entry = _Entry(path)
        if entry.is_dir():
            out = self._subdir(entry, parent)
            if isinstance(out, walker._Frame):
                self._frames[path] = out
                yield from self.subtree(out)
            elif out is not None:
                yield out
        else:
            out = self._file(entry, parent)
            if out is not None:
                yield out


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
    if max_file_bytes is None:
        from codesearch.settings import IndexSettings

        max_file_bytes = IndexSettings.defaults().max_file_bytes
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
    pw = _PartialWalker(root_list, max_file_bytes, secrets_allow)
    for t in kept:
        root = owning_root(t, root_list)
        if root is None:
            continue
        scope.covered.append(t)
        for item in pw.target(t, root):
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
