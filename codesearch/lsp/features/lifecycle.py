"""Lifecycle handlers: initialize, initialized, shutdown, exit, and ``codesearch/status``."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from codesearch import __version__
from codesearch.lsp.features.workspace import register_file_watching

if TYPE_CHECKING:  # pragma: no cover
    from codesearch.lsp.server import CodesearchServer

log = logging.getLogger("codesearch.lsp")


def initialize(ls: CodesearchServer, params: types.InitializeParams) -> None:
    ls.loop = asyncio.get_running_loop()
    uris = [f.uri for f in params.workspace_folders or []]
    if not uris and (params.root_uri or params.root_path):
        uris = [params.root_uri or params.root_path]
    ls.set_folders(uris)
    ls.apply_config(params.initialization_options, layer="init")
    if params.process_id:
        watch_parent(params.process_id)


async def initialized(ls: CodesearchServer, params: types.InitializedParams) -> None:
    await ls.pull_config()
    await register_file_watching(ls)
    if ls.config.index_on_startup and ls.folders:
        ls.index.schedule(ls.folders, delay=0)  # errors are shown by the service
    else:
        task = asyncio.ensure_future(ls.engine_ready())
        task.add_done_callback(lambda f: f.cancelled() or f.exception())


def shutdown(ls: CodesearchServer, params: None) -> None:
    ls.exit_code = 0
    ls.index.stop_watching()  # within 0.5 s, as `codesearch watch` stops: a longer update is redone next run


def exit_(ls: CodesearchServer, params: None) -> None:
    ls.searches.close()
    ls.index.close()


async def status(ls: CodesearchServer, params: Any) -> dict:
    engine = ls.engine
    return {
        "state": ls.state,
        "message": ls.state_message,
        "version": __version__,
        "folders": [str(f) for f in ls.folders],
        "home": str(engine.home) if engine else None,
        "model": engine.model_spec if engine else None,
        "chunks": engine.count_chunks() if engine else None,
        "indexing": ls.index.indexing,
        "progress": ls.index.progress,
        "indexRuns": ls.index.runs,
        "watching": ls.index.watching,
        "watchError": ls.index.watch_error,
        "lastIndex": ls.index.last_summary,
        "searches": dict(ls.searches.stats),
        "config": ls.config.as_json(),
        "rssMB": rss_mb(),
        "modelLoaded": engine.model_loaded() if engine else False,  # the torch encoder (see lsp.model_idle_s)
        "torchImported": "torch" in sys.modules,  # in this process (documents are embedded in a child)
        "error": ls.engine_error,
    }


def rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def watch_parent(pid: int) -> None:
    """Exit when the editor that started us is gone (LSP's processId).

    Only if that process is visible from here: an editor outside our PID namespace (a
    container) has an id that means nothing to us."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        log.info("client process %s is not visible from here: not watching it", pid)
        return
    except PermissionError:
        pass

    def loop():
        while True:
            time.sleep(5)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                log.warning("the client process %s is gone: exiting", pid)
                os._exit(1)
            except PermissionError:
                pass

    threading.Thread(target=loop, name="codesearch-parent-watch", daemon=True).start()
