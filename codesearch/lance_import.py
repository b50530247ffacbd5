"""LanceDB, imported without the namespace REST client's API modules until something uses them.

``import lancedb`` (0.40) took 2.4 s on this project's 2-core machine, and 1.0 s without the
package ``__init__`` of ``lance_namespace_urllib3_client``: it imports nine generated REST API
modules whose ``validate_call`` decorators build pydantic schemas for every method. LanceDB
imports ``lance_namespace`` at the top of ``lancedb.db``, which needs only the client's
``models`` subpackage; codesearch never opens a REST namespace. Every process that opens an
index paid it: a terminal search without the service, the service's start, ``index``,
``status``, the language server.

So the client's package is put in ``sys.modules`` without running its ``__init__``: its
subpackages (``models``) import as usual, and the first attribute read on the package itself
(``lance_namespace_urllib3_client.TableApi``, what a REST namespace would use) runs the real
``__init__`` then. Lance's own Python package made the same import lazy upstream
(lance-format/lance#9273); LanceDB's has not. Where the package is missing, or already imported,
nothing is changed. Measured: docs/speed.md, "LanceDB imported without the REST client".
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from types import ModuleType

_CLIENT = "lance_namespace_urllib3_client"
_LOCK = threading.RLock()


def lancedb() -> ModuleType:
    """The ``lancedb`` module, imported (once) with the REST client's API modules deferred."""
    defer_rest_client()
    import lancedb as module

    return module


def defer_rest_client() -> bool:
    """Put the REST client's package in ``sys.modules`` with its ``__init__`` not yet run (True),
    unless it is imported already or not installed (False)."""
    with _LOCK:
        if _CLIENT in sys.modules:
            return False
        try:
            spec = importlib.util.find_spec(_CLIENT)
        except (ImportError, ValueError):
            return False
        if spec is None or spec.loader is None or spec.submodule_search_locations is None:
            return False
        package = importlib.util.module_from_spec(spec)  # (__path__ set: its submodules import as usual)
        state = {"ran": False}

        def __getattr__(name: str):
            # The first name read that is not set yet (its API classes, ApiClient, __version__):
            # the __init__ runs now, once; a name it does not define is an AttributeError as before.
            with _LOCK:
                if state["ran"]:
                    raise AttributeError(f"module {_CLIENT!r} has no attribute {name!r}")
                state["ran"] = True
                spec.loader.exec_module(package)
            try:
                return package.__dict__[name]
            except KeyError:
                raise AttributeError(f"module {_CLIENT!r} has no attribute {name!r}") from None

        package.__getattr__ = __getattr__
        sys.modules[_CLIENT] = package
        return True
