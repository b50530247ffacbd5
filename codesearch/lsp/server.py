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

This module holds the protocol (``CodesearchProtocol``), the server's state and the operations
its handlers share (``CodesearchServer``), and ``create_server``, which registers the handlers
of ``codesearch.lsp.features``; index runs are ``codesearch.lsp.scheduler``'s.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
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
from pygls.uris import to_fs_path

from codesearch import __version__
from codesearch.lsp.config import LspConfig
from codesearch.lsp.engine import Engine, containing_folder
from codesearch.lsp.features import feedback, lifecycle, workspace
from codesearch.lsp.features import search as searching
from codesearch.lsp.scheduler import IndexService, SchedulerHooks
from codesearch.lsp.search import RequestError, SearchRunner, parse_search_params, result_json, single_thread_torch
from codesearch.settings import SearchSettings

log = logging.getLogger("codesearch.lsp")

SEARCH = "codesearch/search"
STATUS = "codesearch/status"
COMMANDS = ("codesearch.search", "codesearch.reindex", "codesearch.feedback", "codesearch.personalEval")


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
        self.index = IndexService(
            SchedulerHooks(
                loop=lambda: self.loop,
                engine_ready=self.engine_ready,
                current_engine=lambda: self._engine,
                watch_enabled=lambda: self.config.watch,
                send_status=self.send_status,
                notify=lambda method, params: self.protocol.notify(method, params),
                show=self.show,
                supports_progress=self.client_supports_progress,
                progress=lambda: self.work_done_progress,
            )
        )
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
    @property
    def engine(self) -> Engine | None:
        """The loaded engine; None before it is loaded (or while a new one loads)."""
        return self._engine

    @property
    def engine_error(self) -> str | None:
        """Why the engine could not be loaded (the last attempt), or None."""
        return self._engine_error

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
            engine = await asyncio.wrap_future(self.index.submit(lambda: Engine(config, fresh_model=fresh_model)))
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
                self.index.schedule(self.folders, delay=0)
        elif self._engine is not None:
            self._engine.config = config  # limits, ignore patterns, scope: read at each search
            if (config.watch, config.reindex_on_save) != (old.watch, old.reindex_on_save):
                if config.watch and config.reindex_on_save and self.folders:
                    asyncio.ensure_future(asyncio.to_thread(self.index.watch, self._engine, list(self.folders)))
                else:
                    self.index.unwatch()
            if config.ignore != old.ignore and self.folders and config.reindex_on_save:
                # Newly ignored files leave the index, files no longer ignored come back.
                self.index.schedule(self.folders, delay=0)

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
        asyncio.ensure_future(feedback.summarise_personal_eval(self, fresh))
        return fresh

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


# ---------------------------------------------------------------------------- handlers
def create_server(config: LspConfig | None = None) -> CodesearchServer:
    """The server; ``config``: defaults that the client's settings override (command-line flags)."""
    server = CodesearchServer(config)
    feature, command = server.feature, server.command
    feature(types.INITIALIZE)(lifecycle.initialize)
    feature(types.INITIALIZED)(lifecycle.initialized)
    feature(types.SHUTDOWN)(lifecycle.shutdown)
    feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)(workspace.did_change_configuration)
    feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)(workspace.did_change_folders)
    feature(types.TEXT_DOCUMENT_DID_SAVE, types.SaveOptions(include_text=False))(workspace.did_save)
    feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)(workspace.did_change_watched)
    feature(SEARCH)(searching.search)
    feature(types.WORKSPACE_SYMBOL)(searching.workspace_symbol)
    feature(STATUS)(lifecycle.status)
    # (in the order of COMMANDS: the initialize reply lists them so)
    command("codesearch.search")(searching.cmd_search)
    command("codesearch.reindex")(workspace.cmd_reindex)
    command("codesearch.feedback")(feedback.cmd_feedback)
    command("codesearch.personalEval")(feedback.cmd_personal_eval)
    feature(types.EXIT)(lifecycle.exit_)
    return server


# ---------------------------------------------------------------------------- entry point
class _QuietRequestErrors(logging.Filter):
    """A bad request is answered with its error; it is no server fault worth a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, JsonRpcInvalidParams)


def main(config: LspConfig | None = None, log_level: str = "WARNING", log_file: str | None = None) -> int:
    """Serve LSP on stdin/stdout until the client says exit (or closes the stream)."""
    from codesearch.heap import arrow_on_system_allocator, limit_arenas

    limit_arenas()  # (before the server's threads: about 200 MB less after searching, docs/speed.md)
    arrow_on_system_allocator()  # (the same for Arrow's buffers: docs/speed.md)
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
