"""Keeping the workspace folders indexed, with work-done progress (``$/progress``).

All index work of a server runs on one daemon thread, one run at a time. Requests to bring
folders up to date (on start, on save, on watched-file changes, on ``codesearch.reindex``)
are coalesced: while a run is going, further requests are merged into the next run. Each run
is incremental (the Indexer only re-reads changed files and only embeds changed chunks) and
reports percentages through a server-created progress token when the client supports it,
plus a ``codesearch/status`` notification that any client can show.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from lsprotocol import types

from codesearch.lsp.worker import Worker

if TYPE_CHECKING:  # pragma: no cover
    from codesearch.lsp.server import CodesearchServer

log = logging.getLogger(__name__)

# Share of the bar for each stage of an index run (the walk has no callback: it ends at 5%).
_STAGES = {"chunking": (5, 25), "embedding": (25, 99)}


class ProgressReporter:
    """Work-done progress for one run, safe to call from any thread (sends on the event loop)."""

    def __init__(self, server: "CodesearchServer", title: str):
        self.server = server
        self.loop = server.loop
        self.title = title
        self.token: str | None = None
        self.percentage = 0
        self._last_sent = 0.0
        self._last_message = ""

    async def begin(self, message: str) -> None:
        if self.server.client_supports_progress():
            token = f"codesearch-index-{uuid.uuid4().hex[:8]}"
            try:
                await asyncio.wait_for(self.server.work_done_progress.create_async(token), timeout=10)
                self.token = token
            except Exception as exc:  # a client that refuses: status notifications still go out
                log.info("no work-done progress: %s", exc)
        if self.token:
            self.server.work_done_progress.begin(
                self.token,
                types.WorkDoneProgressBegin(title=self.title, message=message, percentage=0, cancellable=False),
            )
        self.server.index.progress = {"percentage": 0, "message": message}
        self.server.send_status("indexing", message=message, percentage=0)

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
            self.server.work_done_progress.report(
                self.token, types.WorkDoneProgressReport(message=message, percentage=pct)
            )
        self.server.index.progress = {"percentage": pct, "message": message}
        self.server.send_status("indexing", message=message, percentage=pct)

    def end(self, message: str) -> None:
        if self.token:
            self.server.work_done_progress.end(self.token, types.WorkDoneProgressEnd(message=message))


class IndexService:
    """Brings folders up to date on the index thread; coalesces requests.

    When the watcher (``codesearch.indexer.watch``) is available it keeps the folders
    current between runs: it listens to the file system, and saved or watched files are
    handed to it (``changed``). Without it, a change re-runs the (incremental) index of the
    folder that holds the file.
    """

    def __init__(self, server: "CodesearchServer", debounce: float = 0.3):
        self.server = server
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

    def request(self, folders: Iterable[Path], *, delay: float | None = None) -> asyncio.Future:
        """Index ``folders`` soon; the returned future resolves with the summary of the run
        that covered them (or raises its error)."""
        loop = self.server.loop
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

        server = self.server
        engine = await server.engine_ready()
        folders = [f for f in folders if f.exists()]
        if not folders:
            return {}
        names = ", ".join(f.name for f in folders)
        reporter = ProgressReporter(server, "codesearch: indexing")
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
            server.send_status("error", message=f"indexing failed: {exc}")
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
        server.send_status("ready", message=text, percentage=100)
        server.protocol.notify("codesearch/indexed", result)
        return result

    # ------------------------------------------------------------------ keeping current
    def changed(self, paths: list[str], folders: Iterable[Path]) -> None:
        """Files changed on disk (saved, created, deleted): update them in the index."""
        if self.watcher is not None and self.watcher.running:
            self.watcher.notify(paths)
        else:
            self.request(folders).add_done_callback(lambda f: f.cancelled() or f.exception())

    def watch(self, engine, folders: list[Path]) -> bool:
        """(Re)start the watcher on ``folders``; False when it is not available here."""
        self.unwatch()
        if not folders or not self.server.config.watch:
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
        self.server.loop.call_soon_threadsafe(self._watch_done, info, summary)

    def _watch_done(self, info: dict, summary: dict | None) -> None:
        engine = self.server._engine
        if info.get("damaged"):  # the watcher stopped: retrying cannot repair a table it cannot read
            self.watch_error = info["error"]
            self.server.send_status("error", message=info["error"])
            self.server.show(f"{info['error']}; file changes are not indexed until then", types.MessageType.Error)
            return
        if info.get("error"):
            self.server.send_status("error", message=f"updating the index failed: {info['error']}")
            return
        if summary is None or not (summary.get("files_indexed") or summary.get("files_removed")):
            return
        if engine is not None:
            engine._has_chunks = summary.get("total_chunks", 1) > 0
        result = dict(summary, source="watch", latency_s=info.get("latency_s"))
        self.last_summary = result
        self.server.send_status("ready", message=f"{summary.get('total_chunks')} chunks; updated {summary.get('files_indexed')} files")
        self.server.protocol.notify("codesearch/indexed", result)

    def close(self) -> None:
        self.stop_watching()
        self.worker.close()
