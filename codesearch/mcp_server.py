"""`codesearch mcp`: a Model Context Protocol server over stdio (tools for coding agents).

Tools: ``search`` (semantic search of the roots), ``chunks`` (how one file is cut into
declarations), ``status`` (what is indexed, how fresh) and ``index`` (bring a folder up to
date, with progress notifications). See docs/mcp.md.

It is the language server's engine behind another protocol, not a second implementation:
the same :class:`~codesearch.lsp.engine.Engine` (one home, the numpy query encoder, the torch
encoder in a child process only while embedding), the same request checks
(:func:`~codesearch.lsp.search.parse_search_params`), the same one-at-a-time search thread
(:class:`~codesearch.lsp.search.SearchRunner`) and the same index scheduler and watcher
(:class:`~codesearch.lsp.scheduler.IndexService`, which takes what it needs from a server as
``SchedulerHooks``), so a search here returns what ``codesearch/search`` returns for the
same request and roots.

Built on the official SDK's high-level server, ``mcp.server.mcpserver.MCPServer`` (mcp 2.x;
it is ``FastMCP`` of mcp 1.x renamed): tools are plain typed functions, from which the SDK
writes the input schemas, and ``Context`` gives progress notifications and the client's
session (roots). The low-level ``mcp.server.Server`` would mean hand-written schemas and
dispatch for no gain. Two things are added on top (``_Server.call_tool``): an argument the
tool does not take is refused (the SDK ignores it silently), and argument errors are one
line instead of pydantic's multi-line report.

Roots: the folders on the command line; without any, the client's roots (``roots/list``,
asked once the session is initialized, again after ``roots/list_changed``), else the current
directory. Searches, ``chunks`` and ``index`` are limited to them, as the language server
limits itself to the workspace folders.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
import warnings
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field, ValidationError

from codesearch import __version__
from codesearch.lsp.config import MAX_LIMIT, METHODS, LspConfig
from codesearch.lsp.engine import Engine, containing_folder
from codesearch.lsp.scheduler import IndexService, SchedulerHooks
from codesearch.lsp.search import RequestError, SearchRunner, parse_search_params, single_thread_torch, to_path
from codesearch.search import MATCH_FIELDS, SearchResult
from codesearch.settings import SearchSettings

log = logging.getLogger("codesearch.mcp")

# What one result may put into an agent's context.
SNIPPET_LINES = 20
SNIPPET_CHARS = 1500
FULL_LINES = 200
FULL_CHARS = 20_000
CLIENT_ROOTS_TIMEOUT = 10.0

Strings = str | list[str] | None  # (module level: the SDK evaluates the tools' annotations here)


class _Server(MCPServer):
    """MCPServer, strict about tool arguments and with one-line argument errors."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context=None):
        tool = self._tool_manager.get_tool(name)
        if tool is None:
            known = ", ".join(t.name for t in self._tool_manager.list_tools())
            raise ToolError(f"unknown tool {name!r}: this server has {known}")
        allowed = set(tool.parameters.get("properties", {}))
        unknown = sorted(set(arguments or {}) - allowed)
        if unknown:
            raise ToolError(
                f"{name}: unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}: "
                f"expected {', '.join(sorted(allowed))}"
            )
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError:
            raise  # a crash: the SDK logs the traceback and tells the client only the tool's name
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                raise ToolError(f"{name}: {_validation_line(cause)}") from None
            message = str(exc)
            prefix = f"Error executing tool {name}: "
            raise ToolError(f"{name}: {message[len(prefix):] if message.startswith(prefix) else message}") from None


def _validation_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if not isinstance(p, int)) or "arguments"
        what = err.get("msg", "invalid")
        if err.get("type") == "missing":
            parts.append(f"missing {where!r}")
        else:
            parts.append(f"{where!r}: {what}, got {err.get('input')!r}"[:200])
    return "; ".join(dict.fromkeys(parts))


class Backend:
    """The state the tools share: roots, the engine, the search thread, the index service."""

    def __init__(self, config: LspConfig, roots: list[Path], *, explicit_roots: bool,
                 index_on_start: bool = True, watch: bool = True):
        self.config = replace(config, watch=watch)
        self.cli_roots = sorted({Path(os.path.abspath(r)) for r in roots})
        self.explicit_roots = explicit_roots
        self.client_roots: list[Path] | None = None  # None: the client sent none (or cannot)
        self.index_on_start = index_on_start
        self.loop: asyncio.AbstractEventLoop | None = None
        self.searches = SearchRunner(name="codesearch-mcp-search", initializer=single_thread_torch)
        self.index = IndexService(SchedulerHooks(
            loop=lambda: self.loop,
            engine_ready=self.engine_ready,
            current_engine=lambda: self._engine,
            watch_enabled=lambda: self.config.watch,
            send_status=self._status_changed,
            notify=self._notified,  # codesearch/indexed: after each index run and watcher update
            show=lambda message, kind: log.warning("%s", message),
            supports_progress=lambda: False,  # progress goes to the index tool's caller instead
            progress=lambda: None,
        ))
        self._engine: Engine | None = None
        self._engine_task: asyncio.Task | None = None
        self._engine_error: str | None = None
        self._progress_sinks: list[asyncio.Queue] = []
        self._roots_task: asyncio.Task | None = None
        self.state, self.state_message = "starting", ""
        self.started = time.time()
        self.last_index_at: float | None = None

    # ------------------------------------------------------------------ roots
    @property
    def folders(self) -> list[Path]:
        """The roots: command-line folders, else the client's roots, else the current directory."""
        if self.explicit_roots or not self.client_roots:
            return list(self.cli_roots)
        return list(self.client_roots)

    async def sync_client_roots(self, session, *, first: bool = False) -> None:
        """Ask the client for its roots (when it has the capability) and start on the new folders
        (``first``: at start, when every root is new)."""
        before = None if first else self.folders
        caps = getattr(session, "client_capabilities", None)
        if caps is not None and getattr(caps, "roots", None) is not None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # roots are deprecated from protocol 2026-07-28
                    result = await asyncio.wait_for(session.list_roots(), CLIENT_ROOTS_TIMEOUT)
                roots = []
                for root in result.roots:
                    uri = str(root.uri)
                    if uri.startswith("file:"):
                        roots.append(Path(os.path.abspath(to_path(uri))))
                self.client_roots = sorted(set(roots)) or None
                log.info("client roots: %s", ", ".join(map(str, self.client_roots or [])) or "none")
            except Exception as exc:  # noqa: BLE001 - a client that cannot answer: the other roots stand
                log.info("roots/list failed: %s", exc)
        await self._start_on(before)

    async def _start_on(self, before: list[Path] | None) -> None:
        """Load the engine, watch the roots and index new ones (as the language server does on start)."""
        folders = self.folders
        if before is not None and folders == before and self._engine is not None:
            return
        added = [f for f in folders if before is None or f not in before]
        if self.index_on_start and added:
            self.index.schedule(added, delay=0)
        try:
            engine = await self.engine_ready()
        except Exception:  # noqa: BLE001 - reported by status and by every tool call
            return
        if self.config.watch and folders:
            await asyncio.to_thread(self.index.watch, engine, folders)

    def start(self, session=None) -> None:
        """Begin (on ``initialized``, once): the client's roots, then the engine, the watcher and
        the first index run, as the language server does on ``initialized``."""
        if self._roots_task is not None:
            return
        self.loop = asyncio.get_running_loop()
        if session is not None and not self.explicit_roots:
            coro = self.sync_client_roots(session, first=True)
        else:
            coro = self._start_on(None)
        self._roots_task = self.loop.create_task(coro)

    async def ready(self, ctx: Context | None = None) -> Engine:
        """The engine, after the roots are known (a tool call waits for the start to settle)."""
        if self._roots_task is None:  # a client that never sent `initialized`
            self.start(ctx.session if ctx is not None else None)
        await asyncio.shield(self._roots_task)
        try:
            return await self.engine_ready()
        except Exception as exc:
            raise ToolError(f"codesearch could not start: {exc}") from None

    # ------------------------------------------------------------------ the engine
    async def engine_ready(self) -> Engine:
        if self._engine is not None:
            return self._engine
        if self._engine_task is None or (self._engine_task.done() and self._engine_task.exception()):
            self._engine_task = asyncio.ensure_future(self._load_engine())
        return await asyncio.shield(self._engine_task)

    async def _load_engine(self) -> Engine:
        self._status_changed("loading", "loading the model")
        try:
            # On the index thread, as the language server does: nothing else writes meanwhile.
            engine = await asyncio.wrap_future(self.index.submit(lambda: Engine(self.config)))
        except Exception as exc:
            self._engine_error = str(exc)
            self._status_changed("error", f"could not load: {exc}")
            raise
        self._engine, self._engine_error = engine, None
        self._status_changed("indexing" if self.index.indexing else "ready", f"index at {engine.home}")
        return engine

    def _status_changed(self, state: str, message: str = "", percentage: int | None = None) -> None:
        """The scheduler's status hook (on the event loop): kept for ``status``, and an index
        run's percentages go to every ``index`` call waiting on the service."""
        self.state, self.state_message = state, message
        if percentage is not None:
            for q in self._progress_sinks:
                q.put_nowait((percentage, message))

    def _notified(self, method: str, params: Any) -> None:
        if method == "codesearch/indexed":
            self.last_index_at = time.time()

    # ------------------------------------------------------------------ tools
    async def search(self, ctx: Context, params: dict, *, explain: bool, full: bool) -> dict:
        engine = await self.ready(ctx)
        folders = self.folders
        limit = engine.config.limit or SearchSettings.from_settings(engine.settings).limit
        try:
            req = parse_search_params(params, folders, limit, scope=engine.config.scope, names=("the roots", "the roots"))
        except RequestError as exc:
            raise ToolError(str(exc)) from None
        req = replace(req, explain=explain)
        try:
            results = await self.searches.run(lambda: engine.search(req, folders))
        except Exception as exc:  # a damaged index, a table being replaced: one line (the traceback: the log)
            log.warning("search %r failed", req.query, exc_info=True)
            raise ToolError(f"failed: {exc}") from None
        out: dict[str, Any] = {"results": [self.result(r, folders, explain=explain, full=full) for r in results]}
        if self.index.indexing:
            out["indexing"] = True  # results are what is indexed so far
            if self.index.progress:
                out["progress"] = dict(self.index.progress)
        return out

    def result(self, r: SearchResult, folders: list[Path], *, explain: bool, full: bool) -> dict:
        root = containing_folder(Path(r.path), folders)
        d: dict[str, Any] = {
            "path": os.path.relpath(r.path, root) if root is not None else r.rel_path,
            "abs_path": r.path,
            "repo": r.repo,
            "start_line": r.start_line,
            "end_line": r.end_line,
            "kind": r.kind,
            "name": r.name,
            "language": r.language,
            "role": r.role,
            "score": round(float(r.score), 4),
            "snippet": bounded(r.snippet, SNIPPET_LINES, SNIPPET_CHARS),
        }
        if r.context:
            d["context"] = r.context
        if full:  # the indexed declaration (the file's lines where the result carries no text)
            d["full"] = bounded(r.text, FULL_LINES, FULL_CHARS) if r.text else declaration_text(r.path, r.start_line, r.end_line)
        if explain and r.matches is not None:  # as `codesearch search --explain --json` gives them
            d["matches"] = _plain([{k: m[k] for k in MATCH_FIELDS} for m in r.matches])
            d["lexical"] = _plain(r.lexical)
            d["prior"] = round(float(r.prior), 4)
        return d

    async def chunks(self, ctx: Context, path: str) -> dict:
        engine = await self.ready(ctx)
        file = self.resolve(path, want="file")
        rows = await self.searches.run(lambda: engine.chunks_of(str(file)))
        rows.sort(key=lambda r: (r["start_line"], r["end_line"]))
        out: dict[str, Any] = {
            "path": str(file),
            "indexed": bool(rows),
            "chunks": [{"start_line": r["start_line"], "end_line": r["end_line"], "kind": r["kind"],
                        "name": r["name"], "language": r["language"]} for r in rows],
        }
        if not rows:
            out["note"] = ("not in the index: not indexed yet (see the index tool), ignored "
                           "(.gitignore, .codesearchignore), or not a text file")
        return out

    async def status(self, ctx: Context) -> dict:
        try:
            engine = await self.ready(ctx)
        except ToolError:
            engine = None
        folders = self.folders
        out: dict[str, Any] = {
            "version": __version__,
            "state": self.state,
            "message": self.state_message,
            "roots": [str(f) for f in folders],
            "roots_from": "command line" if self.explicit_roots else ("client" if self.client_roots else "current directory"),
            "home": str(engine.home) if engine else self.config.home,
            "error": self._engine_error,
        }
        if engine is None:
            return out

        def counts() -> dict:
            from codesearch.home import IndexHome
            from codesearch.indexer.store import sql_like_prefix

            store = engine.store
            if not store.has_index():
                return {"chunks": 0, "files": 0, "chunks_in_home": 0}
            where = " OR ".join(sql_like_prefix("path", str(f).rstrip("/") + "/") for f in folders) or None
            meta_file = IndexHome(engine.home).index_meta
            updated = os.stat(meta_file).st_mtime if os.path.exists(meta_file) else None
            return {
                "chunks": store.count_chunks(where) if where else 0,
                "files": len(store.file_states(under=folders)) if folders else 0,
                "chunks_in_home": store.count_chunks(),
                "index_updated_at": _iso(updated),
                "index_model_fingerprint": store.meta().get("model_fingerprint"),
            }

        try:
            out.update(await self.searches.run(counts))
        except Exception as exc:  # noqa: BLE001 - a damaged table: say so, the rest still answers
            out["error"] = f"cannot read the index: {exc}"
        out.update({
            "state": self.state,  # (again: it may have changed while the counts were read)
            "message": self.state_message,
            "model": engine.model_spec,
            "model_fingerprint": engine.encoder.fingerprint,
            "model_loaded": engine.model_loaded(),
            "indexing": self.index.indexing,
            "progress": self.index.progress,
            "index_runs": self.index.runs,
            "last_index_at": _iso(self.last_index_at),
            "last_index": self.index.last_summary,
            "watching": self.index.watching,
            "watch_error": self.index.watch_error,
            "server_started_at": _iso(self.started),
        })
        return out

    async def run_index(self, ctx: Context, path: str | None) -> dict:
        await self.ready(ctx)
        folders = [self.resolve(path, want="folder")] if path else self.folders
        if not folders:
            raise ToolError("there is no root to index: start the server with a folder")
        sink: asyncio.Queue = asyncio.Queue()
        self._progress_sinks.append(sink)
        started = time.monotonic()
        sent = -1

        async def report(pct: int, message: str) -> None:
            nonlocal sent
            if pct > sent:  # MCP: each notification's progress must be larger than the last
                sent = pct
                await ctx.report_progress(pct, 100, message)

        try:
            await report(0, f"indexing {', '.join(f.name for f in folders)}")
            waiter = self.index.request(folders, delay=0)
            while not waiter.done():
                getter = asyncio.ensure_future(sink.get())
                try:
                    await asyncio.wait({getter, waiter}, return_when=asyncio.FIRST_COMPLETED)
                finally:  # (a cancelled call: the run goes on, as a cancelled reindex does in the LSP)
                    got = getter.done()
                    if not got:
                        getter.cancel()
                if got:
                    await report(*getter.result())
            try:
                summary = waiter.result()
            except Exception as exc:
                raise ToolError(f"indexing failed: {exc}") from None
            await report(100, "done")
        finally:
            self._progress_sinks.remove(sink)
        summary = dict(summary or {})
        summary["seconds"] = round(time.monotonic() - started, 2)
        return summary

    def resolve(self, path: str, *, want: str) -> Path:
        """``path`` (absolute, a file URI, or relative to a root) inside the roots, else a ToolError."""
        if not isinstance(path, str) or not path.strip():
            raise ToolError("'path' must be a non-empty string")
        try:
            p = to_path(path.strip())
        except RequestError as exc:
            raise ToolError(str(exc)) from None
        folders = self.folders
        if os.path.isabs(p):
            candidates = [Path(os.path.normpath(p))]
        else:
            candidates = [Path(os.path.normpath(f / p)) for f in folders]
        inside = [c for c in candidates if containing_folder(c, folders) is not None]
        if not inside:
            raise ToolError(f"path {candidates[0] if candidates else p} is outside the roots ({_names(folders)})")
        for c in inside:
            if (c.is_file() if want == "file" else c.is_dir()):
                return c
        raise ToolError(f"no such {want} in the roots: {p}")

    def close(self) -> None:
        self.index.close()
        self.searches.close()


def _plain(value: Any) -> Any:
    """JSON types only (numpy scalars become numbers)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def _names(folders) -> str:
    return ", ".join(str(f) for f in folders) or "none"


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds") if ts else None


def bounded(text: str, max_lines: int, max_chars: int) -> str:
    """``text`` cut to ``max_lines`` lines and ``max_chars`` characters, with a marker saying so."""
    lines = text.splitlines()
    out, cut = lines[:max_lines], len(lines) > max_lines
    body = "\n".join(out)
    if len(body) > max_chars:
        body, cut = body[:max_chars].rstrip(), True
    if cut:
        body += f"\n[... truncated: {len(lines)} lines, {len(text)} characters in all]"
    return body


def declaration_text(path: str, start_line: int, end_line: int) -> str | None:
    """The declaration's lines as on disk now (bounded), or None when the file cannot be read."""
    from codesearch.indexer.walk import real_path

    try:
        with open(real_path(path), encoding="utf-8", errors="replace") as f:
            lines = [line for i, line in enumerate(f, 1) if start_line <= i <= end_line]
    except OSError:
        return None
    return bounded("".join(lines).rstrip("\n"), FULL_LINES, FULL_CHARS)


def _reply(value: dict) -> CallToolResult:
    """Compact JSON text (an agent's context is small) plus the same object as structured content."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=value)


# ---------------------------------------------------------------------------- the server
def create_server(backend: Backend) -> MCPServer:
    @asynccontextmanager
    async def lifespan(_server):
        backend.loop = asyncio.get_running_loop()
        try:
            yield None
        finally:
            backend.index.stop_watching()

    server = _Server(
        "codesearch",
        version=__version__,
        instructions=(
            "Semantic code search over local folders (the server's roots). Use `search` with a "
            "plain-words description of the code you want; `chunks` shows a file's declarations; "
            "`status` what is indexed; `index` brings a folder up to date."
        ),
        lifespan=lifespan,
        log_level="WARNING",
    )

    async def initialized(ctx, params) -> None:
        backend.start(ctx.session)

    async def roots_changed(ctx, params) -> None:
        if not backend.explicit_roots and backend.loop is not None:
            backend.loop.create_task(backend.sync_client_roots(ctx.session))

    import mcp_types as types

    low = server._lowlevel_server
    low.add_notification_handler("notifications/initialized", types.NotificationParams, initialized)
    low.add_notification_handler("notifications/roots/list_changed", types.NotificationParams, roots_changed)

    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(annotations=read_only)
    async def search(
        query: Annotated[str, Field(description="What the code does, in plain words (or an identifier).")],
        ctx: Context,
        lang: Annotated[Strings, Field(description="Only these languages: rust, python, lean, tlaplus, smtlib, coq, go, c, java, javascript, typescript, ... (aliases: rs, py, ...).")] = None,
        kind: Annotated[Strings, Field(description="Only these kinds: function, method, struct, theorem, lemma, operator, spec, proof, ...")] = None,
        path: Annotated[str | None, Field(description="Only paths matching this glob ('src/*.rs'), this prefix, or below this absolute path inside the roots.")] = None,
        role: Annotated[Strings, Field(description="Only these path roles: lib, test, bench, example, doc, generated, vendor.")] = None,
        limit: Annotated[int | None, Field(description=f"How many results, 1 to {MAX_LIMIT} (default 10).")] = None,
        method: Annotated[str | None, Field(description=f"Ranking: {', '.join(METHODS)} (default hybrid).")] = None,
        explain: Annotated[bool, Field(description="Add each result's token matches and lexical score, when available.")] = False,
        full: Annotated[bool, Field(description=f"Add each result's whole declaration (up to {FULL_LINES} lines).")] = False,
    ) -> CallToolResult:
        """Search the indexed code of the roots by meaning. Returns the best declarations first:
        path (relative to its root) and abs_path, start_line/end_line (1-based, inclusive), kind,
        name, language, role, score and a snippet (at most 20 lines / 1,500 characters)."""
        params = {k: v for k, v in {"query": query, "lang": lang, "kind": kind, "path": path, "role": role,
                                     "limit": limit, "method": method}.items() if v is not None}
        return _reply(await backend.search(ctx, params, explain=explain, full=full))

    @server.tool(annotations=read_only)
    async def chunks(
        path: Annotated[str, Field(description="A file: absolute, or relative to a root.")],
        ctx: Context,
    ) -> CallToolResult:
        """How a file is cut into declarations in the index: each chunk's start_line/end_line, kind,
        name and language, in file order."""
        return _reply(await backend.chunks(ctx, path))

    @server.tool(annotations=read_only)
    async def status(ctx: Context) -> CallToolResult:
        """What is indexed and how fresh: roots, chunks and files under them, last index time,
        whether the watcher runs, the model and its fingerprint, the index home."""
        return _reply(await backend.status(ctx))

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True,
                                             open_world_hint=False))
    async def index(
        ctx: Context,
        path: Annotated[str | None, Field(description="A folder inside the roots (absolute or relative to a root); default: every root.")] = None,
    ) -> CallToolResult:
        """Bring a folder's index up to date (incremental: only changed files are read again and only
        changed code embedded), sending progress notifications while it runs. Returns the run's summary."""
        return _reply(await backend.run_index(ctx, path))

    return server


def main(config: LspConfig, roots: list[str], *, index_on_start: bool = True, watch: bool = True,
         log_level: str = "WARNING", log_file: str | None = None) -> int:
    """Serve MCP on stdin/stdout until the client closes the stream."""
    from codesearch.heap import arrow_on_system_allocator, limit_arenas

    limit_arenas()  # (before the server's threads, as the language server does)
    arrow_on_system_allocator()
    for key, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"),
                       ("TOKENIZERS_PARALLELISM", "false"), ("LANCE_LOG", "error")):
        os.environ.setdefault(key, value)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers, force=True)
    backend = Backend(config, [Path(r) for r in roots] or [Path.cwd()], explicit_roots=bool(roots),
                      index_on_start=index_on_start, watch=watch)
    server = create_server(backend)
    try:
        # The SDK's stdio transport points fd 1 at stderr while it serves: nothing else can
        # write into the protocol stream.
        server.run("stdio")
    except KeyboardInterrupt:
        pass
    sys.stderr.flush()
    # Daemon threads may be mid-way through a search or an index commit; the index is safe
    # to interrupt at any point (as for the language server), and exiting must not wait.
    os._exit(0)
