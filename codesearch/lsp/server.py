"""`codesearch lsp`: the language server (pygls 2, stdio).

On ``initialize`` it takes the workspace folders and the ``codesearch`` settings
(``initializationOptions``, then ``workspace/configuration``), loads the model once and brings
the folders' index up to date (incremental, with ``$/progress``). It serves:

- ``codesearch/search`` {query, limit?, lang?, path?, kind?, method?} -> {results: [...]}
- ``workspace/symbol``: the same search as ``WorkspaceSymbol``s, for editors without a plug-in
- ``workspace/executeCommand``: ``codesearch.search``, ``codesearch.reindex``,
  ``codesearch.feedback``, ``codesearch.personalEval``
- ``codesearch/status`` -> what the server is doing (index state, chunks, search counters, memory)

and sends ``codesearch/status`` and ``codesearch/indexed`` notifications. Files are kept current
on ``textDocument/didSave`` and ``workspace/didChangeWatchedFiles`` (each brings the folder up
to date: only changed files are re-read and only changed chunks embedded).

Nothing but LSP messages is ever written to stdout: ``main`` moves the real stdout aside for
the protocol and points file descriptor 1 at stderr, so a stray print (ours, a library's, or C
code's) lands in the log instead of corrupting the stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInternalError,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcParseError,
)
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.protocol.json_rpc import JsonRPCRequestMessage, ResponseError
from pygls.uris import from_fs_path, to_fs_path

from codesearch import __version__
from codesearch.indexer.walk import EXCLUDED_DIRS
from codesearch.lsp.config import LspConfig
from codesearch.lsp.engine import Engine, SearchRequest, containing_folder
from codesearch.eval.feedback import VERDICTS, FeedbackStore, run_personal_eval, summary_line
from codesearch.lsp.scheduler import IndexService
from codesearch.lsp.search import (
    RequestError,
    SearchRunner,
    Superseded,
    parse_search_params,
    result_json,
    result_symbol,
    single_thread_torch,
    to_path,
)
from codesearch.settings import SearchSettings

log = logging.getLogger("codesearch.lsp")

SEARCH = "codesearch/search"
STATUS = "codesearch/status"
COMMANDS = ("codesearch.search", "codesearch.reindex", "codesearch.feedback", "codesearch.personalEval")
# Folders whose changes never concern the index: those the walker never descends into.
_NOISE_DIRS = EXCLUDED_DIRS


class _BadMessage:
    """A message that is not a valid JSON-RPC message: answered with ``error`` (when it has
    an id to answer), never dispatched."""

    def __init__(self, msg_id: Any, error: JsonRpcException, *, answer: bool = True) -> None:
        self.id, self.error, self.answer = msg_id, error, answer


def _valid_id(value: Any) -> bool:
    return value is None or isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


class CodesearchProtocol(LanguageServerProtocol):
    """pygls' protocol with these changes.

    - Custom requests keep their params as plain JSON (pygls turns unknown params into
      namedtuples, losing the key names that error messages must quote).
    - ``workspace/executeCommand`` runs our commands as coroutines under the request's own id,
      so that ``$/cancelRequest`` reaches them, and reports bad commands clearly.
    - Messages that are not valid JSON-RPC (a non-string method, a bad id, an array, a
      scalar) are answered with -32600 Invalid Request instead of an internal error; a body
      that is not JSON gets -32700 (see ``CodesearchServer.report_server_error``).
    - No error reply carries a Python traceback: tracebacks go to the server's log.
    """

    RAW_PARAMS = frozenset({SEARCH, STATUS})

    def structure_message(self, data: dict[str, Any]):
        # json.loads calls this for every object, inner ones included: only JSON-RPC envelopes
        # (those with "jsonrpc", as pygls decides) are checked; anything else is returned as is.
        if not isinstance(data, dict) or "jsonrpc" not in data and not ("id" in data and "method" in data):
            return data
        problem = _envelope_problem(data)
        msg_id = data.get("id") if _valid_id(data.get("id")) else None
        if problem:
            return _BadMessage(msg_id, JsonRpcInvalidRequest(f"Invalid Request: {problem}"), answer="method" in data or "id" in data)
        if data.get("method") in self.RAW_PARAMS and "id" in data:
            return JsonRPCRequestMessage(
                id=data["id"], method=data["method"], jsonrpc=data.get("jsonrpc", "2.0"), params=data.get("params")
            )
        if "method" in data and "params" not in data:
            data = {**data, "params": None}  # JSON-RPC: params may be omitted
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            return _BadMessage(msg_id, exc, answer="id" in data and "method" in data)

    def handle_message(self, message: Any):
        if isinstance(message, _BadMessage):
            log.warning("invalid message (id %r): %s", message.id, message.error.message)
            if message.answer:
                self._send_response(message.id, None, message.error.to_response_error())
            return
        if not hasattr(message, "jsonrpc"):  # an array (a batch: LSP has none), a scalar, an object without "jsonrpc"
            msg_id = message.get("id") if isinstance(message, dict) and _valid_id(message.get("id")) else None
            what = "batches are not supported" if isinstance(message, list) else (
                "missing 'jsonrpc': \"2.0\"" if isinstance(message, dict) else f"expected an object, got {type(message).__name__}"
            )
            log.warning("invalid message: %s", what)
            self._send_response(msg_id, None, JsonRpcInvalidRequest(f"Invalid Request: {what}").to_response_error())
            return
        super().handle_message(message)

    def _send_response(self, msg_id: Any, result: Any | None = None, error: ResponseError | None = None):
        if error is not None and isinstance(error.data, dict) and "traceback" in error.data:
            # pygls puts the traceback of an unexpected exception into the reply: log it instead.
            tb = error.data.get("traceback")
            log.error("request %r failed: %s\n%s", msg_id, error.message, "".join(tb) if isinstance(tb, list) else tb)
            rest = {k: v for k, v in error.data.items() if k != "traceback"}
            error = ResponseError(code=error.code, message=error.message, data=rest or None)
        if error is not None and msg_id is None:
            # JSON-RPC 2.0: an error for a message whose id is unknown has "id": null, which the
            # converter would drop.
            body = {"code": error.code, "message": error.message}
            if error.data is not None:
                body["data"] = error.data
            self._send_data({"jsonrpc": "2.0", "id": None, "error": body})
            return
        super()._send_response(msg_id, result, error)

    @lsp_method(types.WORKSPACE_EXECUTE_COMMAND)
    async def lsp_workspace__execute_command(self, params: types.ExecuteCommandParams) -> Any:
        handler = self.fm.commands.get(params.command)
        if handler is None:
            raise JsonRpcInvalidParams(
                f"unknown command {params.command!r}: this server runs {', '.join(sorted(self.fm.commands))}"
            )
        return await handler(*(params.arguments or []))


def _envelope_problem(data: dict) -> str | None:
    """Why ``data`` is not a JSON-RPC 2.0 request, notification or response (None: it is)."""
    if data.get("jsonrpc") != "2.0":
        return f"'jsonrpc' must be \"2.0\", got {data.get('jsonrpc')!r}"
    if "id" in data and not _valid_id(data["id"]):
        return f"'id' must be a string, an integer or null, got {type(data['id']).__name__}"
    if "method" in data:
        if not isinstance(data["method"], str):
            return f"'method' must be a string, got {type(data['method']).__name__}"
        if data.get("params") is not None and not isinstance(data["params"], (dict, list)):
            return f"'params' must be an object or an array, got {type(data['params']).__name__}"
    elif "id" not in data or not ("result" in data or "error" in data):
        return "missing 'method'"
    return None


class CodesearchServer(LanguageServer):
    def __init__(self, config: LspConfig | None = None) -> None:
        super().__init__(
            "codesearch",
            __version__,
            protocol_cls=CodesearchProtocol,
            text_document_sync_kind=types.TextDocumentSyncKind.None_,
        )
        self._base_config = config or LspConfig()
        self._layers: dict[str, Any] = {}
        self.config = self._base_config
        self.folders: list[Path] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.searches = SearchRunner(initializer=single_thread_torch)
        self.index = IndexService(self)
        self._engine: Engine | None = None
        self._engine_task: asyncio.Task | None = None
        self._engine_error: str | None = None
        self.state = "starting"
        self.state_message = ""
        self.exit_code = 1
        self.started = time.monotonic()
        self._model_lock = asyncio.Lock()

    # ------------------------------------------------------------------ helpers
    def client_supports_progress(self) -> bool:
        caps = self.client_capabilities
        return bool(caps and caps.window and caps.window.work_done_progress)

    def client_supports_configuration(self) -> bool:
        caps = self.client_capabilities
        return bool(caps and caps.workspace and caps.workspace.configuration)

    def send_status(self, state: str, message: str = "", percentage: int | None = None) -> None:
        self.state, self.state_message = state, message
        payload: dict[str, Any] = {"state": state, "message": message}
        if percentage is not None:
            payload["percentage"] = percentage
        self.protocol.notify(STATUS, payload)

    def report_server_error(self, error: Exception, source: Any) -> None:
        """Errors outside any request. A body that is not JSON is answered with -32700 (id
        null, as JSON-RPC 2.0 says) and the server reads on; the traceback is in the log."""
        if isinstance(error, (ValueError, RecursionError)) and source is JsonRpcException:
            log.warning("a message that is not JSON: %s", error)
            err = JsonRpcParseError(f"Parse error: the message body is not JSON ({error})")
            self.protocol._send_response(None, None, err.to_response_error())
            return
        super().report_server_error(error, source)

    def show(self, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
        self.window_show_message(types.ShowMessageParams(type=kind, message=f"codesearch: {message}"))

    def log_to_client(self, message: str, kind: types.MessageType = types.MessageType.Log) -> None:
        self.window_log_message(types.LogMessageParams(type=kind, message=message))

    # ------------------------------------------------------------------ the engine
    async def engine_ready(self) -> Engine:
        """The loaded engine (loading it on the index thread on first use)."""
        if self._engine is not None:
            return self._engine
        if self._engine_task is None or (self._engine_task.done() and self._engine_task.exception()):
            self._engine_task = asyncio.ensure_future(self._load_engine(self.config))
        return await asyncio.shield(self._engine_task)

    async def _load_engine(self, config: LspConfig, fresh_model: bool = False) -> Engine:
        self.send_status("loading", message="loading the model")
        try:
            engine = await asyncio.wrap_future(self.index.worker.submit(lambda: Engine(config, fresh_model=fresh_model)))
        except Exception as exc:
            self._engine_error = str(exc)
            self.send_status("error", message=f"could not load: {exc}")
            self.show(f"could not start: {exc}", types.MessageType.Error)
            raise JsonRpcInternalError(f"codesearch could not start: {exc}") from exc
        self._engine, self._engine_error = engine, None
        if self.folders and self.config.reindex_on_save:
            await asyncio.to_thread(self.index.watch, engine, list(self.folders))
        self.send_status("indexing" if self.index.indexing else "ready", message=f"index at {engine.home}")
        return engine

    def apply_config(self, raw: Any, *, layer: str = "workspace") -> None:
        """Set one layer of settings and recompute: command-line flags <- initializationOptions
        <- workspace/configuration (each pull replaces the last, so a removed key falls back).
        Reloads the engine and re-indexes when the model or the index home changed."""
        self._layers[layer] = raw
        config = self._base_config
        for name in ("init", "workspace"):
            config, problems = LspConfig.parse(self._layers.get(name), config)
            if name == layer:
                for p in problems:
                    log.warning("%s", p)
                    self.show(p, types.MessageType.Warning)
        old, self.config = self.config, config
        if self._engine is None and self._engine_task is None:
            return
        if config.engine_key() != old.engine_key():
            self.index.unwatch()  # the old model must not write into the new index
            self._engine = None
            self._engine_task = asyncio.ensure_future(self._load_engine(config))
            if config.index_on_startup and self.folders:
                self.index.request(self.folders, delay=0).add_done_callback(lambda f: f.cancelled() or f.exception())
        elif self._engine is not None:
            self._engine.config = config  # limits, ignore patterns, scope: read at each search
            if (config.watch, config.reindex_on_save) != (old.watch, old.reindex_on_save):
                if config.watch and config.reindex_on_save and self.folders:
                    asyncio.ensure_future(asyncio.to_thread(self.index.watch, self._engine, list(self.folders)))
                else:
                    self.index.unwatch()
            if config.ignore != old.ignore and self.folders and config.reindex_on_save:
                # Newly ignored files leave the index, files no longer ignored come back.
                self.index.request(self.folders, delay=0).add_done_callback(lambda f: f.cancelled() or f.exception())

    async def pull_config(self) -> None:
        if not self.client_supports_configuration():
            return
        try:
            items = await asyncio.wait_for(
                self.workspace_configuration_async(
                    types.ConfigurationParams(items=[types.ConfigurationItem(section="codesearch")])
                ),
                timeout=10,
            )
        except Exception as exc:
            log.info("workspace/configuration failed: %s", exc)
            return
        if items:
            self.apply_config(items[0], layer="workspace")

    async def check_model(self, engine: Engine) -> Engine:
        """After a fine-tune re-embedded the index with a new model: load it, score the
        personal eval set and tell the user how it moved."""
        async with self._model_lock:  # concurrent searches: one reload, the others wait for it
            if self._engine is not None and self._engine is not engine:
                return self._engine
            if not engine.model_changed():
                return engine
            return await self._reload_model()

    async def _reload_model(self) -> Engine:
        self.log_to_client("the index was re-embedded with a new model: reloading it", types.MessageType.Info)
        fresh = await self._load_engine(self.config, fresh_model=True)
        fp = fresh.store.meta().get("model_fingerprint")
        if fp != fresh.encoder.fingerprint:
            self.show(
                "the index was rebuilt with a model this server cannot load from its settings "
                f"(model: {fresh.model_spec}); restart the server with that model",
                types.MessageType.Warning,
            )
            return fresh
        asyncio.ensure_future(self._summarise_personal_eval(fresh))
        return fresh

    async def _summarise_personal_eval(self, engine: Engine) -> None:
        store = FeedbackStore(engine.home)
        previous = _read_json(store.last_eval_path)
        try:
            result = await self.run_personal_eval(engine)
        except Exception as exc:
            log.warning("personal eval failed: %s", exc)
            return
        if result.get("n"):
            self.show("model updated; " + summary_line(result, previous))

    # ------------------------------------------------------------------ searching
    async def search(self, params: Any, *, lane: str | None = None) -> list:
        engine = await self.engine_ready()
        engine = await self.check_model(engine)
        limit = engine.config.limit or SearchSettings.from_settings(engine.settings).limit
        try:
            req = parse_search_params(params, self.folders, limit, scope=self.config.scope)
        except RequestError as exc:
            raise JsonRpcInvalidParams(str(exc)) from None
        return await self.searches.run(lambda: engine.search(req, self.folders), lane=lane)

    def search_reply(self, results: list) -> dict:
        """The reply of codesearch/search: the results, and while an index run is under way
        (the first one included) ``indexing: true`` and its progress: the results are what
        is indexed so far."""
        reply: dict[str, Any] = {"results": [result_json(r) for r in results]}
        if self.index.indexing:
            reply["indexing"] = True
            if self.index.progress:
                reply["progress"] = dict(self.index.progress)
        return reply

    async def run_personal_eval(self, engine: Engine | None = None) -> dict:
        engine = engine or await self.engine_ready()
        store = FeedbackStore(engine.home)
        limit = 10

        def search(text: str, root: Path):
            req = SearchRequest(query=text, limit=limit)
            # One search at a time: each query waits its turn on the search thread.
            return self.searches.submit(lambda: engine.search(req, [root])).result()

        result = await asyncio.to_thread(run_personal_eval, store, search, engine.chunks_of)
        for miss in result["misses"]:
            for s in miss["expected"]:
                s["uri"] = from_fs_path(s["path"])
        if result.get("n"):
            store.dir.mkdir(parents=True, exist_ok=True)
            _write_json(store.last_eval_path, {k: v for k, v in result.items() if k != "queries"})
        return result

    # ------------------------------------------------------------------ folders
    def folder_of(self, path: str) -> Path | None:
        return containing_folder(Path(path), self.folders)

    def set_folders(self, uris: list[str]) -> None:
        folders = []
        for uri in uris:
            path = to_fs_path(uri) if uri.startswith("file:") else uri
            if path:
                folders.append(Path(os.path.abspath(path)))
        self.folders = sorted(set(folders))


def _read_json(path: Path) -> dict | None:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, obj: dict) -> None:
    import json

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def _to_params(arg: Any, name: str) -> dict:
    if not isinstance(arg, dict):
        raise JsonRpcInvalidParams(f"{name} takes one object argument, got {type(arg).__name__}")
    return arg


# ---------------------------------------------------------------------------- features
def create_server(config: LspConfig | None = None) -> CodesearchServer:
    """The server; ``config``: defaults that the client's settings override (command-line flags)."""
    server = CodesearchServer(config)

    @server.feature(types.INITIALIZE)
    def initialize(ls: CodesearchServer, params: types.InitializeParams) -> None:
        ls.loop = asyncio.get_running_loop()
        uris = [f.uri for f in params.workspace_folders or []]
        if not uris and (params.root_uri or params.root_path):
            uris = [params.root_uri or params.root_path]
        ls.set_folders(uris)
        ls.apply_config(params.initialization_options, layer="init")
        if params.process_id:
            _watch_parent(params.process_id)

    @server.feature(types.INITIALIZED)
    async def initialized(ls: CodesearchServer, params: types.InitializedParams) -> None:
        await ls.pull_config()
        await _register_file_watching(ls)
        if ls.config.index_on_startup and ls.folders:
            waiter = ls.index.request(ls.folders, delay=0)
            waiter.add_done_callback(lambda f: f.cancelled() or f.exception())  # errors are shown by the service
        else:
            task = asyncio.ensure_future(ls.engine_ready())
            task.add_done_callback(lambda f: f.cancelled() or f.exception())

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: CodesearchServer, params: None) -> None:
        ls.exit_code = 0
        ls.index.stop_watching()  # within 0.5 s, as `codesearch watch` stops: a longer update is redone next run

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(ls: CodesearchServer, params: types.DidChangeConfigurationParams) -> None:
        if ls.client_supports_configuration():
            await ls.pull_config()
        else:
            ls.apply_config(params.settings, layer="workspace")

    @server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    def did_change_folders(ls: CodesearchServer, params: types.DidChangeWorkspaceFoldersParams) -> None:
        before = set(ls.folders)
        ls.set_folders([f.uri for f in ls.workspace.folders.values()])
        added = [f for f in ls.folders if f not in before]
        if ls._engine is not None and set(ls.folders) != before and ls.config.reindex_on_save:
            asyncio.ensure_future(asyncio.to_thread(ls.index.watch, ls._engine, list(ls.folders)))
        if added and ls.config.index_on_startup:
            ls.index.request(added).add_done_callback(lambda f: f.cancelled() or f.exception())

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE, types.SaveOptions(include_text=False))
    def did_save(ls: CodesearchServer, params: types.DidSaveTextDocumentParams) -> None:
        _changed(ls, [params.text_document.uri])

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched(ls: CodesearchServer, params: types.DidChangeWatchedFilesParams) -> None:
        _changed(ls, [c.uri for c in params.changes])

    @server.feature(SEARCH)
    async def search(ls: CodesearchServer, params: Any) -> dict:
        results = await ls.search(params)
        return ls.search_reply(results)

    @server.feature(types.WORKSPACE_SYMBOL)
    async def workspace_symbol(ls: CodesearchServer, params: types.WorkspaceSymbolParams) -> list[types.WorkspaceSymbol]:
        query = (params.query or "").strip()
        if not query:
            return []  # editors ask with "" to fill a picker before anything is typed
        try:
            results = await ls.search({"query": query, "limit": ls.config.symbol_limit}, lane="workspace/symbol")
        except Superseded:
            return []  # a newer keystroke's request is already queued
        return [result_symbol(r) for r in results]

    @server.feature(STATUS)
    async def status(ls: CodesearchServer, params: Any) -> dict:
        engine = ls._engine
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
            "watching": bool(ls.index.watcher and ls.index.watcher.running),
            "watchError": ls.index.watch_error,
            "lastIndex": ls.index.last_summary,
            "searches": dict(ls.searches.stats),
            "config": ls.config.as_json(),
            "rssMB": _rss_mb(),
            "modelLoaded": engine.model_loaded() if engine else False,  # the torch encoder (see lsp.model_idle_s)
            "torchImported": "torch" in sys.modules,  # in this process (documents are embedded in a child)
            "error": ls._engine_error,
        }

    # -------------------------------------------------------------- commands
    @server.command("codesearch.search")
    async def cmd_search(ls: CodesearchServer, *args: Any) -> dict:
        if len(args) != 1:
            raise JsonRpcInvalidParams("codesearch.search takes one argument: a query string or {query, limit?, lang?, path?, kind?}")
        params = {"query": args[0]} if isinstance(args[0], str) else _to_params(args[0], "codesearch.search")
        results = await ls.search(params)
        return ls.search_reply(results)

    @server.command("codesearch.reindex")
    async def cmd_reindex(ls: CodesearchServer, *args: Any) -> dict:
        if len(args) > 1:
            raise JsonRpcInvalidParams("codesearch.reindex takes at most one argument: {paths?: [folder URI or path]}")
        opts = _to_params(args[0], "codesearch.reindex") if args else {}
        unknown = sorted(set(opts) - {"paths"})
        if unknown:
            raise JsonRpcInvalidParams(f"unknown parameter(s) {', '.join(map(repr, unknown))}: expected 'paths'")
        folders = list(ls.folders)
        if "paths" in opts:
            paths = opts["paths"]
            if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
                raise JsonRpcInvalidParams("'paths' must be a list of folder URIs or paths")
            try:
                wanted = [Path(os.path.abspath(to_path(p))) for p in paths]
            except RequestError as exc:
                raise JsonRpcInvalidParams(str(exc)) from None
            for p in wanted:
                if ls.folder_of(str(p)) is None:
                    raise JsonRpcInvalidParams(f"{p} is outside the workspace folders")
            folders = wanted
        if not folders:
            raise JsonRpcInvalidParams("there is no workspace folder to index: open a folder first")
        try:
            return await ls.index.request(folders, delay=0)
        except JsonRpcException:
            raise
        except Exception as exc:
            raise JsonRpcInternalError(f"indexing failed: {exc}") from None

    @server.command("codesearch.feedback")
    async def cmd_feedback(ls: CodesearchServer, *args: Any) -> dict:
        if len(args) != 1:
            raise JsonRpcInvalidParams("codesearch.feedback takes one argument: {query, result, verdict}")
        params = _to_params(args[0], "codesearch.feedback")
        unknown = sorted(set(params) - {"query", "result", "verdict"})
        if unknown:
            raise JsonRpcInvalidParams(f"unknown parameter(s) {', '.join(map(repr, unknown))}: expected query, result, verdict")
        query, verdict, result = params.get("query"), params.get("verdict"), params.get("result")
        if not isinstance(query, str) or not query.strip():
            raise JsonRpcInvalidParams("missing 'query': the query the result was found for")
        if verdict not in VERDICTS:
            raise JsonRpcInvalidParams(f"'verdict' must be one of {', '.join(VERDICTS)}, got {verdict!r}")
        engine = await ls.engine_ready()
        record = await asyncio.to_thread(_feedback_result, ls, engine, result)  # reads the index: off the event loop
        return await asyncio.to_thread(FeedbackStore(engine.home).record, query, verdict, record)

    @server.command("codesearch.personalEval")
    async def cmd_personal_eval(ls: CodesearchServer, *args: Any) -> dict:
        if args and not (len(args) == 1 and isinstance(args[0], dict) and not args[0]):
            raise JsonRpcInvalidParams("codesearch.personalEval takes no arguments")
        return await ls.run_personal_eval()

    @server.feature(types.EXIT)
    def exit_(ls: CodesearchServer, params: None) -> None:
        ls.searches.close()
        ls.index.close()

    return server


def _feedback_result(ls: CodesearchServer, engine: Engine, result: Any) -> dict:
    """The judged result as the feedback log stores it (path, lines, repo, name, ...)."""
    if not isinstance(result, dict):
        raise JsonRpcInvalidParams("'result' must be a result object of codesearch/search ({uri, range, ...})")
    where = result.get("uri") or result.get("path")
    if not isinstance(where, str) or not where:
        raise JsonRpcInvalidParams("'result' needs 'uri' (or 'path')")
    try:
        path = os.path.abspath(to_path(where))
    except RequestError as exc:
        raise JsonRpcInvalidParams(f"'result': {exc}") from None
    if isinstance(result.get("startLine"), int) and isinstance(result.get("endLine"), int):
        start, end = result["startLine"], result["endLine"]
    elif isinstance(result.get("start_line"), int) and isinstance(result.get("end_line"), int):
        start, end = result["start_line"], result["end_line"]
    else:
        rng = result.get("range")
        try:
            start = int(rng["start"]["line"]) + 1
            end_pos = rng["end"]
            end = int(end_pos["line"]) + (0 if end_pos.get("character", 0) == 0 and end_pos["line"] >= start else 1)
        except (TypeError, KeyError, ValueError):
            raise JsonRpcInvalidParams("'result' needs 'range' (an LSP range) or startLine/endLine") from None
    if start < 1 or end < start:
        raise JsonRpcInvalidParams(f"'result' has a bad line range {start}-{end}: lines are 1-based, start <= end")
    indexed = engine.chunks_of(path)
    if ls.folder_of(path) is None:
        if ls.folders and ls.config.scope == "workspace":
            raise JsonRpcInvalidParams(f"'result' {path} is outside the workspace folders")
        if not indexed:
            raise JsonRpcInvalidParams(f"'result' {path} is outside the workspace folders and not in the index")
    if not os.path.isfile(path):
        raise JsonRpcInvalidParams(f"'result' {path} does not exist (or is not a file)")
    lines = _count_lines(path)
    if end > lines:
        raise JsonRpcInvalidParams(
            f"'result' lines {start}-{end} are past the end of {path}, which has {lines} line{'s' * (lines != 1)}"
        )
    row = engine.chunk_at(path, start, end)
    record: dict[str, Any] = {"path": path, "start_line": start, "end_line": end}
    if row is not None:
        record.update(repo=row["repo"], rel_path=row["rel_path"], name=row["name"], kind=row["kind"], language=row["language"])
    else:
        folder = ls.folder_of(path)
        record["repo"] = str(folder) if folder else os.path.dirname(path)
        for key in ("name", "kind", "language"):
            if isinstance(result.get(key), str):
                record[key] = result[key]
    return record


def _count_lines(path: str) -> int:
    """Lines of a file as editors number them (a last line without a newline counts)."""
    n, last = 0, b"\n"
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                n += block.count(b"\n")
                last = block[-1:]
    except OSError as exc:
        raise JsonRpcInvalidParams(f"'result' {path} cannot be read: {exc.strerror or exc}") from None
    return n + (last != b"\n")


def _changed(ls: CodesearchServer, uris: list[str]) -> None:
    """Files changed on disk: bring their folders up to date (coalesced, incremental)."""
    if not ls.config.reindex_on_save:
        return
    folders, paths = set(), []
    for uri in uris:
        path = to_fs_path(uri) if uri.startswith("file:") else None
        if not path or _NOISE_DIRS.intersection(Path(path).parts):
            continue
        folder = ls.folder_of(path)
        if folder is not None:
            folders.add(folder)
            paths.append(path)
    if folders:
        ls.index.changed(paths, folders)


async def _register_file_watching(ls: CodesearchServer) -> None:
    caps = ls.client_capabilities
    watched = caps and caps.workspace and caps.workspace.did_change_watched_files
    if not (watched and watched.dynamic_registration):
        return
    options = types.DidChangeWatchedFilesRegistrationOptions(
        watchers=[types.FileSystemWatcher(glob_pattern="**/*")]
    )
    try:
        await asyncio.wait_for(
            ls.client_register_capability_async(
                types.RegistrationParams(
                    registrations=[
                        types.Registration(
                            id="codesearch-watch", method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES, register_options=options
                        )
                    ]
                )
            ),
            timeout=10,
        )
    except Exception as exc:
        log.info("could not register file watching: %s", exc)


def _rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _watch_parent(pid: int) -> None:
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


# ---------------------------------------------------------------------------- entry point
class _QuietRequestErrors(logging.Filter):
    """A bad request is answered with its error; it is no server fault worth a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, JsonRpcInvalidParams)


def main(config: LspConfig | None = None, log_level: str = "WARNING", log_file: str | None = None) -> int:
    """Serve LSP on stdin/stdout until the client says exit (or closes the stream)."""
    from codesearch.heap import limit_arenas

    limit_arenas()  # (before the server's threads: about 200 MB less after searching, docs/speed.md)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("LANCE_LOG", "error")
    sys.stdout.flush()
    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # from here on, fd 1 is stderr: nothing can write into the protocol stream by accident
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers, force=True)
    logging.getLogger("pygls.protocol.json_rpc").addFilter(_QuietRequestErrors())
    server = create_server(config)
    server.start_io(sys.stdin.buffer, protocol_out)
    try:
        protocol_out.flush()
    except (OSError, ValueError):
        pass
    sys.stderr.flush()
    # Daemon threads may be mid-way through a search or an index commit; the index is safe
    # to interrupt at any point, and exiting must not wait for them.
    os._exit(server.exit_code)
