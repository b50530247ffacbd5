"""Workspace sync: settings, workspace folders, saved and watched files, ``codesearch.reindex``.

Files are kept current on ``textDocument/didSave`` and ``workspace/didChangeWatchedFiles``
(each brings the folder up to date: only changed files are re-read and only changed chunks
embedded; with the watcher running, the changed files are handed to it)."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInternalError, JsonRpcInvalidParams
from pygls.uris import to_fs_path

from codesearch.indexer.walk import EXCLUDED_DIRS
from codesearch.lsp.features import object_argument
from codesearch.lsp.search import RequestError, to_path

if TYPE_CHECKING:  # pragma: no cover
    from codesearch.lsp.server import CodesearchServer

log = logging.getLogger("codesearch.lsp")

# Folders whose changes never concern the index: those the walker never descends into.
NOISE_DIRS = EXCLUDED_DIRS


async def did_change_configuration(ls: CodesearchServer, params: types.DidChangeConfigurationParams) -> None:
    if ls.client_supports_configuration():
        await ls.pull_config()
    else:
        ls.apply_config(params.settings, layer="workspace")


def did_change_folders(ls: CodesearchServer, params: types.DidChangeWorkspaceFoldersParams) -> None:
    before = set(ls.folders)
    ls.set_folders([f.uri for f in ls.workspace.folders.values()])
    added = [f for f in ls.folders if f not in before]
    engine = ls.engine
    if engine is not None and set(ls.folders) != before and ls.config.reindex_on_save:
        asyncio.ensure_future(asyncio.to_thread(ls.index.watch, engine, list(ls.folders)))
    if added and ls.config.index_on_startup:
        ls.index.schedule(added)


def did_save(ls: CodesearchServer, params: types.DidSaveTextDocumentParams) -> None:
    changed(ls, [params.text_document.uri])


def did_change_watched(ls: CodesearchServer, params: types.DidChangeWatchedFilesParams) -> None:
    changed(ls, [c.uri for c in params.changes])


async def cmd_reindex(ls: CodesearchServer, *args: Any) -> dict:
    if len(args) > 1:
        raise JsonRpcInvalidParams("codesearch.reindex takes at most one argument: {paths?: [folder URI or path]}")
    opts = object_argument(args[0], "codesearch.reindex") if args else {}
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


def changed(ls: CodesearchServer, uris: list[str]) -> None:
    """Files changed on disk: bring their folders up to date (coalesced, incremental)."""
    if not ls.config.reindex_on_save:
        return
    folders, paths = set(), []
    for uri in uris:
        path = to_fs_path(uri) if uri.startswith("file:") else None
        if not path or NOISE_DIRS.intersection(Path(path).parts):
            continue
        folder = ls.folder_of(path)
        if folder is not None:
            folders.add(folder)
            paths.append(path)
    if folders:
        ls.index.changed(paths, folders)


async def register_file_watching(ls: CodesearchServer) -> None:
    """Ask the client to send ``workspace/didChangeWatchedFiles`` for every file (when it can)."""
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
