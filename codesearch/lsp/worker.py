"""One daemon thread running submitted callables in order: the index runs and the searches of
the language server each get one (daemon: exiting the server never waits on them)."""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Any, Callable


class Worker:
    """``submit(fn)`` returns a Future; a job whose Future was cancelled before it started
    never runs. ``initializer`` runs first on the thread (e.g. to tune it); its failure is
    ignored, as a tuning hook must not stop the work."""

    def __init__(self, name: str, initializer: Callable[[], None] | None = None):
        self._queue: "queue.SimpleQueue[tuple[Future, Callable[[], Any]] | None]" = queue.SimpleQueue()
        self._initializer = initializer
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        if self._initializer is not None:
            try:
                self._initializer()
            except Exception:  # noqa: BLE001
                pass
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn = item
            if not future.set_running_or_notify_cancel():
                self._cancelled()
                continue
            try:
                result = fn()
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
                future.set_exception(exc)
            else:
                future.set_result(result)

    def _cancelled(self) -> None:
        """Called on the thread for each job cancelled before it started."""

    def submit(self, fn: Callable[[], Any]) -> Future:
        future: Future = Future()
        self._queue.put((future, fn))
        return future

    def close(self) -> None:
        self._queue.put(None)
