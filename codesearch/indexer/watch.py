"""`codesearch watch`: keep the index of some roots up to date while files change.

A :class:`Watcher` listens to file-system events (watchdog's inotify observer on Linux:
the kernel wakes it, nothing polls), turns each event into the path to re-check, and
coalesces bursts: a batch is applied once no event came for ``debounce`` seconds (300 ms
by default), or ``max_delay`` (2 s) after its first event at the latest, so an editor's
save (temp file + rename), a formatter touching ten files or a ``git checkout`` rewriting
thousands each become a few incremental updates.

Each batch runs :meth:`Indexer.update` on exactly those paths: the walker's rules decide
what is indexed (ignore files, secrets, binaries, sizes), only files whose size, mtime or
repository changed are re-chunked, and only chunks whose text the index has never seen are
embedded. A changed ``.gitignore``/``.ignore``/``.codesearchignore`` (or
``.git/info/exclude``, or a new ``.git``) re-checks the whole folder it governs. A batch of
more than ``mass_change`` paths (a branch switch, a pull) re-walks the roots concerned
instead. Searches keep answering meanwhile: a file's new chunks replace the old ones in one
LanceDB commit, so a reader sees the file either before or after, never a mix.

On start the watcher first brings the index up to date with a full incremental run (what
changed while nothing was watching), listening already, so nothing saved meanwhile is lost.
Killing it at any moment is safe: the next start converges to the same index.

Use from a thread (the language server does)::

    watcher = Watcher(store, encoder, settings, [root], on_update=print).start()
    ...
    watcher.stop()
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from codesearch.indexer import walk as walker
from codesearch.indexer.pipeline import IndexSummary, Indexer
from codesearch.indexer.scope import owning_root, under
from codesearch.indexer.store import IndexLocked, Store, damage_message
from codesearch.settings import Settings, WatchSettings

log = logging.getLogger(__name__)

__all__ = ["STOP_TIMEOUT", "WatchUpdate", "Watcher", "damage_message"]

# How long `codesearch watch` and the language server wait, when they stop, for an update
# still being applied: past this it is abandoned (as after kill -9; each commit is atomic)
# and the next run redoes it.
STOP_TIMEOUT = 0.5



@dataclass
class WatchUpdate:
    """What one applied batch did (passed to ``on_update``)."""

    paths: list[str]  # the paths checked (files or folders); all roots for a full pass
    summary: IndexSummary | None
    full: bool = False  # a full incremental pass over the roots (start, mass change, recovery)
    first_event: float | None = None  # time.monotonic() of the batch's first event
    finished: float = 0.0  # time.monotonic() when the index held the update
    error: str | None = None
    damaged: bool = False  # the error is a damaged index: the watcher stopped (run doctor --fix)

    @property
    def latency(self) -> float | None:
        """Seconds from the first event of the batch to searchable (None for the initial pass)."""
        return None if self.first_event is None else self.finished - self.first_event

    def as_dict(self) -> dict:
        return {
            "paths": len(self.paths),
            "full": self.full,
            "latency_s": None if self.latency is None else round(self.latency, 3),
            "error": self.error,
            **({"damaged": True} if self.damaged else {}),
            **({"summary": self.summary.as_dict()} if self.summary else {}),
        }


@dataclass
class _Pending:
    paths: set[str] = field(default_factory=set)
    first: float | None = None
    last: float = 0.0


class Watcher:
    """Watches ``roots`` and applies changes to the index of ``store``; see the module doc."""

    def __init__(
        self,
        store: Store,
        encoder,
        settings: dict | Settings | None = None,
        roots: Sequence[str | Path] = (),
        *,
        on_update: Callable[[WatchUpdate], None] | None = None,
        initial_sync: bool = True,
        exclude: Callable | None = None,
    ):
        opts = WatchSettings.from_settings(settings)  # watch.* (defaults: config/default.yaml)
        self.store = store
        self.indexer = Indexer(store, encoder, settings, exclude=exclude)
        self.roots = [os.path.abspath(os.path.expanduser(os.fspath(r))) for r in roots]
        if not self.roots:
            raise ValueError("nothing to watch: give at least one folder")
        for r in self.roots:
            if not os.path.isdir(r):
                raise FileNotFoundError(f"{r} is not a folder")
        self.on_update = on_update
        self.initial_sync = initial_sync
        self.debounce = opts.debounce_ms / 1000
        self.max_delay = opts.max_delay_ms / 1000
        self.mass_change = opts.mass_change_files
        self.optimize_idle = opts.optimize_idle_s
        self.retry_s = opts.retry_s
        self._home = str(Path(store.home).absolute())
        self._cond = threading.Condition()
        self._pending = _Pending()
        self._full_pending = False
        self._busy = False
        self._synced = not initial_sync
        self._stopping = False
        self._dirty_since: float | None = None  # commits not yet compacted, since when
        self._failures = 0
        self._retry_at = 0.0  # after a failure: not before this time
        self._observer = None
        self._thread: threading.Thread | None = None
        self.updates = 0
        self.latencies: list[float] = []  # seconds, event -> searchable, for every batch
        self.last_error: str | None = None
        self.damaged: str | None = None  # set when the index turned out damaged: the watcher stopped

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "Watcher":
        """Start listening and updating (returns at once; work happens in background threads)."""
        from watchdog.events import (
            DirAttribEvent,
            DirCreatedEvent,
            DirDeletedEvent,
            DirMovedEvent,
            FileAttribEvent,
            FileClosedEvent,
            FileCreatedEvent,
            FileDeletedEvent,
            FileModifiedEvent,
            FileMovedEvent,
        )
        from watchdog.observers import Observer

        if self._thread is not None:
            raise RuntimeError("this watcher was started already")
        # Not DirModifiedEvent (every create/delete also "modifies" its folder) and not
        # opened/closed-without-writing (our own reads would wake us up).
        kinds = [
            FileCreatedEvent, DirCreatedEvent, FileDeletedEvent, DirDeletedEvent,
            FileMovedEvent, DirMovedEvent, FileModifiedEvent, FileClosedEvent,
            FileAttribEvent, DirAttribEvent,
        ]
        handler = _Handler(self)
        observer = Observer()
        try:
            for root in self.roots:
                observer.schedule(handler, root, recursive=True, event_filter=kinds)
            observer.start()
        except OSError as exc:
            observer.stop()
            if exc.errno == 28:  # ENOSPC from inotify_add_watch
                raise OSError(
                    exc.errno,
                    "the system's limit on watched folders was reached; raise it with "
                    "`sudo sysctl fs.inotify.max_user_watches=524288` (or watch fewer folders)",
                ) from exc
            raise
        self._observer = observer
        self._thread = threading.Thread(target=self._loop, name="codesearch-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 30) -> None:
        """Stop listening; an update in progress is finished first if it takes less than
        ``timeout`` seconds (in all), else left running in its (daemon) thread: a process
        that exits then abandons it, which is safe (each commit is atomic, as after kill -9;
        the next run redoes the rest)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        left = lambda: None if deadline is None else max(0.0, deadline - time.monotonic())  # noqa: E731
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._observer is not None:
            self._observer.stop()
        if self._thread is not None:
            self._thread.join(left())
        if self._observer is not None:
            self._observer.join(left())

    def __enter__(self) -> "Watcher":
        return self.start() if self._thread is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait_idle(self, timeout: float | None = None, settle: float | None = None) -> bool:
        """Block until the initial pass is done and no change is pending or being applied.

        ``settle``: also require that no new event arrived for this long, so that events
        still on their way are counted. The default is the debounce window, and at least
        watchdog's hold on a rename (half a second, plus a quarter for a busy machine): its
        reader can take the "moved from" half of an editor's atomic save before the "moved
        to" half is queued, and then sleeps out the whole hold before passing the pair on
        (570 ms on this 2-core machine under load, in 6 of 60 saves).
        """
        settle = max(self.debounce, _rename_hold_s()) if settle is None else settle
        called = time.monotonic()
        deadline = None if timeout is None else called + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                idle = self._synced and not self._busy and not self._pending.paths and not self._full_pending
                quiet_since = max(self._pending.last, called)
                if idle and now - quiet_since >= settle:
                    return True
                if not self.running:
                    return idle
                if deadline is not None and now >= deadline:
                    return False
                wait = quiet_since + settle - now if idle else None
                if deadline is not None:
                    wait = deadline - now if wait is None else min(wait, deadline - now)
                self._cond.wait(wait)

    # ------------------------------------------------------------------ events in
    def notify(self, paths: Iterable[str | Path]) -> None:
        """Re-check these paths (files or folders) as if they had changed on disk."""
        now = time.monotonic()
        added = False
        with self._cond:
            for p in paths:
                target = self._target(os.path.abspath(os.fspath(p)))
                if target is not None:
                    self._pending.paths.add(target)
                    added = True
            if added:
                if self._pending.first is None:
                    self._pending.first = now
                self._pending.last = now
                self._cond.notify_all()

    def _target(self, path: str) -> str | None:
        """The path to re-check for an event on ``path``, or None when it cannot matter."""
        root = owning_root(path, self.roots)
        if root is None or under(path, [self._home]):
            return None
        # The walker's rules say what a change can alter: an ignore file its folder, a .git
        # entry or info/exclude the repository, nothing inside excluded folders. A git index
        # (git add, rm --cached, checkout) stands for the files whose tracked state changed,
        # worked out when the batch is applied (see _expand_git_index).
        return walker.recheck_path(path, root)

    # ------------------------------------------------------------------ the worker
    def _loop(self) -> None:
        if self.initial_sync:
            self._apply_full(list(self.roots), None)
            with self._cond:
                self._synced = True
                self._cond.notify_all()
        while True:
            with self._cond:
                batch, full, first = self._next_batch()
                if batch is None:
                    return
                self._busy = True
            try:
                batch = self._expand_git_index(batch)
                if not batch and not full and first is not None:
                    pass  # only git index rewrites that changed nothing tracked
                elif not batch and not full:
                    self._maintain()
                elif full or len(batch) > self.mass_change:
                    roots = self.roots if full else sorted({owning_root(p, self.roots) for p in batch} - {None})
                    self._apply_full(roots, first)
                else:
                    self._apply_paths(sorted(batch), first)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _next_batch(self) -> tuple[set[str] | None, bool, float | None]:
        """Wait (under the lock) for the next batch: (paths, full pass?, first event time).

        Returns (None, False, None) on stop, and (set(), False, None) when the tables are due
        for compaction. Waits without a timeout while nothing is pending: an idle watcher
        costs no CPU.
        """
        while True:
            if self._stopping:
                return None, False, None
            if self._pending.paths or self._full_pending:
                now = time.monotonic()
                due = min(self._pending.last + self.debounce, (self._pending.first or now) + self.max_delay)
                if self._retry_at > now:
                    due = max(due, self._retry_at)
                if now >= due:
                    batch, first, full = self._pending.paths, self._pending.first, self._full_pending
                    self._pending = _Pending(last=self._pending.last)
                    self._full_pending = False
                    return batch, full, first
                self._cond.wait(due - now)
                continue
            if self._dirty_since is not None:
                due = self._dirty_since + self.optimize_idle
                now = time.monotonic()
                if now >= due:
                    return set(), False, None
                self._cond.wait(due - now)
                continue
            self._cond.wait()


    @staticmethod
    def _expand_git_index(batch: set[str]) -> set[str]:
        """Replace each ``<repo>/.git/index`` of the batch by the files of that repository
        that became tracked or untracked (a file git tracks is indexed even when a .gitignore
        matches it): ``git ls-files`` runs once per changed index, the walker reuses it."""
        out = set()
        for p in batch:
            if p.endswith("/.git/index") and os.path.basename(os.path.dirname(p)) == ".git":
                repo = os.path.dirname(os.path.dirname(p))
                try:
                    changed = walker.tracked_changes(repo)
                except Exception:  # noqa: BLE001 - git missing or failing: nothing to add
                    changed = None
                out.update(os.path.join(repo, rel) for rel in changed or ())
            else:
                out.add(p)
        return out

    def _requeue(self, paths: Iterable[str], full: bool, first: float | None, error: str) -> None:
        self._failures += 1
        delay = min(self.retry_s * 2 ** (self._failures - 1), 60.0)
        with self._cond:
            self._pending.paths.update(paths)
            self._full_pending = self._full_pending or full
            if self._pending.first is None:
                self._pending.first = first if first is not None else time.monotonic()
            self._retry_at = time.monotonic() + delay
            self._cond.notify_all()
        self.last_error = error

    def _apply_paths(self, paths: list[str], first: float | None) -> None:
        try:
            summary = self.indexer.update(self.roots, paths)
        except IndexLocked as exc:  # another indexer is writing: try again shortly
            log.info("index busy, retrying: %s", exc)
            self._requeue(paths, False, first, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - keep watching; a full pass repairs later
            if damage_message(exc) is None:
                log.exception("update failed")
            self._after_failure(exc, first)
            return
        self._done(WatchUpdate(paths, summary, False, first, time.monotonic()))

    def _apply_full(self, roots: list[str], first: float | None) -> None:
        try:
            summary = self.indexer.run(roots)
        except IndexLocked as exc:
            log.info("index busy, retrying: %s", exc)
            self._requeue([], True, first, str(exc))
            return
        except Exception as exc:  # noqa: BLE001
            if damage_message(exc) is None:
                log.exception("full pass failed")
            self._after_failure(exc, first)
            return
        self._done(WatchUpdate(list(roots), summary, True, first, time.monotonic()), compacted=True)

    def _after_failure(self, exc: Exception, first: float | None) -> None:
        """A failed update is retried as a full pass (which re-checks everything), with backoff;
        except on a damaged index (a table that cannot be read): retrying cannot help, so the
        watcher stops and says what to run (``doctor --fix``)."""
        damaged = damage_message(exc)
        if damaged is not None:
            self.damaged = self.last_error = damaged
            with self._cond:
                self._stopping = True
                self._cond.notify_all()
            self._emit(WatchUpdate([], None, True, first, time.monotonic(), error=damaged, damaged=True))
            return
        error = f"{type(exc).__name__}: {exc}"
        self._requeue([], True, first, error)
        self._emit(WatchUpdate([], None, True, first, time.monotonic(), error=error))

    def _maintain(self) -> None:
        try:
            self.indexer.maintain()
        except IndexLocked:
            with self._cond:
                self._dirty_since = time.monotonic()
            return
        except Exception as exc:  # noqa: BLE001
            if damage_message(exc) is not None:
                self._after_failure(exc, None)
                return
            log.exception("compaction failed")
        with self._cond:
            self._dirty_since = None

    def _done(self, update: WatchUpdate, compacted: bool = False) -> None:
        self._failures = 0
        self._retry_at = 0.0
        self.last_error = None
        self.updates += 1
        s = update.summary
        wrote = s is not None and (s.files_indexed or s.files_removed)
        with self._cond:
            if compacted:
                self._dirty_since = None
            elif wrote and self._dirty_since is None:
                self._dirty_since = time.monotonic()
        if update.latency is not None:
            self.latencies.append(update.latency)
        self._emit(update)

    def _emit(self, update: WatchUpdate) -> None:
        if self.on_update is None:
            return
        try:
            self.on_update(update)
        except Exception:  # noqa: BLE001 - a broken callback must not stop the watcher
            log.exception("on_update callback failed")


def _rename_hold_s() -> float:
    """How late watchdog may pass on a rename: its inotify reader holds an unpaired "moved
    from" event this long (InotifyMoveEventGrouper.delay in watchdog 7; 0.5 s, as the older
    InotifyBuffer.delay), plus 0.25 s for the threads to get the CPU back on a loaded machine."""
    try:
        from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper

        hold = float(InotifyMoveEventGrouper.delay)
    except (ImportError, AttributeError, TypeError, ValueError):
        hold = 0.5
    return hold + 0.25


class _Handler:
    """watchdog calls ``dispatch`` on its observer thread: only record paths, return fast."""

    def __init__(self, watcher: Watcher):
        self.watcher = watcher

    def dispatch(self, event) -> None:
        paths = [event.src_path]
        dest = getattr(event, "dest_path", "")
        if dest:
            paths.append(dest)
        self.watcher.notify(os.fsdecode(p) for p in paths if p)
