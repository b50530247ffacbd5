"""Keeping the workspace folders indexed, with work-done progress (``$/progress``).

All index work of a server runs on one daemon thread, one run at a time. Requests to bring
folders up to date (on start, on save, on watched-file changes, on ``codesearch.reindex``)
are coalesced: while a run is going, further requests are merged into the next run. Each run
is incremental (the Indexer only re-reads changed files and only embeds changed chunks) and
reports percentages through a server-created progress token when the client supports it,
plus a ``codesearch/status`` notification that any client can show.

The scheduler knows nothing of the server object: what it needs from it (the event loop, the
engine, the settings it reads, status and progress messages to the client) comes as
``SchedulerHooks`` at construction, and the server uses only ``IndexService``'s public methods
and attributes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable

from lsprotocol import types

from codesearch.lsp.worker import Worker

if TYPE_CHECKING:  # pragma: no cover
    from pygls.progress import Progress

    from codesearch.lsp.engine import Engine

log = logging.getLogger(__name__)

# Share of the bar for each stage of an index run (the walk has no callback: it ends at 5%).
_STAGES = {"chunking": (5, 25), "embedding": (25, 99)}


@dataclass(frozen=True)
class SchedulerHooks:
    """What the scheduler needs from the server. Each is called when needed, so it sees the
    server's state at that moment (the loop exists from ``initialize`` on, settings change)."""

    loop: Callable[[], asyncio.AbstractEventLoop]  # the server's event loop
    engine_ready: Callable[[], Awaitable["Engine"]]  # the loaded engine (loading it on first use)
    current_engine: Callable[[], "Engine | None"]  # the loaded engine, None while there is none
    watch_enabled: Callable[[], bool]  # the ``watch`` setting now
    send_status: Callable[..., None]  # a codesearch/status notification: (state, message="", percentage=None)
    notify: Callable[[str, Any], None]  # a notification to the client (codesearch/indexed)
    show: Callable[[str, types.MessageType], None]  # window/showMessage
    supports_progress: Callable[[], bool]  # does the client take work-done progress?
    progress: Callable[[], "Progress"]  # pygls' work-done progress (create_async, begin, report, end)


class ProgressReporter:
    """Work-done progress for one run, safe to call from any thread (sends on the event loop)."""

    def __init__(self, hooks: SchedulerHooks, title: str, on_progress: Callable[[dict], None]):
        self.hooks = hooks
        self.loop = hooks.loop()
        self.title = title
        self.on_progress = on_progress  # the run's {"percentage", "message"}, on the event loop
        self.token: str | None = None
        self.percentage = 0
        self._last_sent = 0.0
        self._last_message = ""

    async def begin(self, message: str) -> None:
        if self.hooks.supports_progress():
            token = f"codesearch-index-{uuid.uuid4().hex[:8]}"
            try:
                await asyncio.wait_for(self.hooks.progress().create_async(token), timeout=10)
                self.token = token
            except Exception as exc:  # a client that refuses: status notifications still go out
                log.info("no work-done progress: %s", exc)
        if self.token:
            self.hooks.progress().begin(
                self.token,
                types.WorkDoneProgressBegin(title=self.title, message=message, percentage=0, cancellable=False),
            )
        self.on_progress({"percentage": 0, "message": message})
        self.hooks.send_status("indexing", message=message, percentage=0)

    def stage(self, stage: str, done: int, total: int) -> None:
        """The Indexer's progress callback (called on the index thread)."""
        lo, hi = _STAGES.get(stage, (0, 99))
        pct = hi if total <= 0 else lo + (hi - lo) * min(done, total) // total
        pct = max(self.percentage, int(pct))
        unit = "files" if stage == "chunking" else "chunks"
        message = f"{stage} {done}/{total} {unit}"
        now = time.monotonic()
        if pct == self.percentage and now - self._last_sent < 0.5:
            return
        if now - self._last_sent < 0.1 and done < total:
            return
        self.percentage = pct
        self._last_sent = now
        self.loop.call_soon_threadsafe(self._report, message, pct)

    def _report(self, message: str, pct: int) -> None:
        if self.token:
            self.hooks.progress().report(
                self.token, types.WorkDoneProgressReport(message=message, percentage=pct)
            )
        self.on_progress({"percentage": pct, "message": message})
        self.hooks.send_status("indexing", message=message, percentage=pct)

    def end(self, message: str) -> None:
        if self.token:
            self.hooks.progress().end(self.token, types.WorkDoneProgressEnd(message=message))


class IndexService:
    """Brings folders up to date on the index thread; coalesces requests.

    When the watcher (``codesearch.indexer.watch``) is available it keeps the folders
    current between runs: it listens to the file system, and saved or watched files are
    handed to it (``changed``). Without it, a change re-runs the (incremental) index of the
    folder that holds the file.

    For the server: ``request``/``schedule`` (index folders soon), ``changed`` (files changed
    on disk), ``watch``/``unwatch``/``stop_watching``, ``submit`` (a job on the index thread),
    ``close``; and, read-only, ``indexing``, ``progress``, ``runs``, ``last_summary``,
    ``watching`` and ``watch_error``.
    """

    def __init__(self, hooks: SchedulerHooks, debounce: float = 0.3):
        self.hooks = hooks
        self.debounce = debounce
        self.worker = Worker("codesearch-index")
        self._pending: set[Path] = set()
        self._driver: asyncio.Task | None = None
        self._waiters: list[asyncio.Future] = []
        self.runs = 0
        self.last_summary: dict | None = None
        self.running = False
        self.progress: dict | None = None  # {"percentage", "message"} of the run under way
        self.watcher = None
        self.watch_error: str | None = None

    @property
    def indexing(self) -> bool:
        """An index run is under way or queued (waiting for the model or the debounce)."""
        return self.running or bool(self._pending) or (self._driver is not None and not self._driver.done())

    @property
    def watching(self) -> bool:
        """The watcher is running (files are kept current between index runs)."""
        return bool(self.watcher and self.watcher.running)

    def submit(self, fn: Callable[[], Any]) -> Future:
        """Run ``fn`` on the index thread, after the index work queued before it."""
        return self.worker.submit(fn)

    def schedule(self, folders: Iterable[Path], *, delay: float | None = None) -> None:
        """``request`` without waiting: a failed run is reported by the service (status, log)."""
        self.request(folders, delay=delay).add_done_callback(lambda f: f.cancelled() or f.exception())

    def request(self, folders: Iterable[Path], *, delay: float | None = None) -> asyncio.Future:
        """Index ``folders`` soon; the returned future resolves with the summary of the run
        that covered them (or raises its error)."""
        loop = self.hooks.loop()
        self._pending.update(folders)
        waiter = loop.create_future()
        self._waiters.append(waiter)
        if self._driver is None or self._driver.done():
            self._driver = loop.create_task(self._drive(self.debounce if delay is None else delay))
        return waiter

    async def _drive(self, delay: float) -> None:
        while self._pending:
            if delay:
                await asyncio.sleep(delay)
            folders, self._pending = sorted(self._pending), set()
            waiters, self._waiters = self._waiters, []
            try:
                summary = await self._run(folders)
            except Exception as exc:
                for w in waiters:
                    if not w.done():
                        w.set_exception(exc)
            else:
                for w in waiters:
                    if not w.done():
                        w.set_result(summary)
            delay = self.debounce

    async def _run(self, folders: list[Path]) -> dict:
        from codesearch.indexer.store import IndexLocked

        hooks = self.hooks
        engine = await hooks.engine_ready()
        folders = [f for f in folders if f.exists()]
        if not folders:
            return {}
        names = ", ".join(f.name for f in folders)
        reporter = ProgressReporter(hooks, "codesearch: indexing", self._set_progress)
        await reporter.begin(f"scanning {names}")
        self.running = True
        started = time.monotonic()
        try:
            for attempt in range(3):
                try:
                    summary = await asyncio.wrap_future(
                        self.worker.submit(lambda: engine.index(folders, progress=reporter.stage))
                    )
                    break
                except IndexLocked:
                    if attempt == 2:
                        raise
                    await asyncio.sleep(2.0)
        except Exception as exc:
            reporter.end(f"failed: {exc}")
            hooks.send_status("error", message=f"indexing failed: {exc}")
            log.warning("indexing %s failed: %s", names, exc)
            raise
        finally:
            self.running = False
            self.progress = None
        self.runs += 1
        result = summary.as_dict()
        result["folders"] = [str(f) for f in folders]
        self.last_summary = result
        text = (
            f"{summary.total_chunks} chunks; {summary.files_indexed} files updated, "
            f"{summary.embedded} chunks embedded in {time.monotonic() - started:.1f}s"
        )
        reporter.end(text)
        hooks.send_status("ready", message=text, percentage=100)
        hooks.notify("codesearch/indexed", result)
        return result

    def _set_progress(self, progress: dict) -> None:
        self.progress = progress

    # ------------------------------------------------------------------ keeping current
    def changed(self, paths: list[str], folders: Iterable[Path]) -> None:
        """Files changed on disk (saved, created, deleted): update them in the index."""
        if self.watching:
            self.watcher.notify(paths)
        else:
            self.schedule(folders)

    def watch(self, engine, folders: list[Path]) -> bool:
        """(Re)start the watcher on ``folders``; False when it is not available here."""
        self.unwatch()
        if not folders or not self.hooks.watch_enabled():
            return False
        try:
            from codesearch.indexer.watch import Watcher

            watcher = Watcher(
                engine.store, engine.encoder, engine.settings, folders,
                on_update=self._on_watch_update, initial_sync=False, exclude=engine.excluded_source,
            )
            engine.hold_model_during(watcher.indexer)  # the model is not dropped mid-update
            self.watcher = watcher.start()
        except Exception as exc:  # no watchdog, inotify limits, an older codesearch: save-driven updates
            self.watcher, self.watch_error = None, f"{type(exc).__name__}: {exc}"
            log.info("file watching unavailable (%s): updating on save instead", self.watch_error)
            return False
        self.watch_error = None
        return True

    def unwatch(self) -> None:
        watcher, self.watcher = self.watcher, None
        if watcher is not None:
            threading.Thread(target=watcher.stop, name="codesearch-unwatch", daemon=True).start()

    def stop_watching(self) -> None:
        """On exit: stop the watcher within ``STOP_TIMEOUT`` (0.5 s), as `codesearch watch`
        does; an update still running then is abandoned (safe as kill -9: each commit is
        atomic) and redone by the next run."""
        watcher, self.watcher = self.watcher, None
        if watcher is not None:
            from codesearch.indexer.watch import STOP_TIMEOUT

            watcher.stop(timeout=STOP_TIMEOUT)

    def _on_watch_update(self, update) -> None:
        """Called on the watcher's thread after each applied batch."""
        info = update.as_dict()
        summary = update.summary.as_dict() if update.summary is not None else None
        self.hooks.loop().call_soon_threadsafe(self._watch_done, info, summary)

    def _watch_done(self, info: dict, summary: dict | None) -> None:
        hooks = self.hooks
        engine = hooks.current_engine()
        if info.get("damaged"):  # the watcher stopped: retrying cannot repair a table it cannot read
            self.watch_error = info["error"]
            hooks.send_status("error", message=info["error"])
            hooks.show(f"{info['error']}; file changes are not indexed until then", types.MessageType.Error)
            return
        if info.get("error"):
            hooks.send_status("error", message=f"updating the index failed: {info['error']}")
            return
        if summary is None or not (summary.get("files_indexed") or summary.get("files_removed")):
            return
        if engine is not None:
            engine.note_total_chunks(summary.get("total_chunks", 1))
        result = dict(summary, source="watch", latency_s=info.get("latency_s"))
        self.last_summary = result
        hooks.send_status("ready", message=f"{summary.get('total_chunks')} chunks; updated {summary.get('files_indexed')} files")
        hooks.notify("codesearch/indexed", result)

    def close(self) -> None:
        self.stop_watching()
        self.worker.close()
