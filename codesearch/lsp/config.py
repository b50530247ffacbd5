"""Language-server settings: ``initializationOptions`` and ``workspace/configuration``.

Both carry the same object, section ``codesearch`` (keys in camelCase as editors write them;
snake_case is accepted too)::

    {"home": "~/.local/share/codesearch",   # index folder (default: as the CLI)
     "model": "default",                     # encoder: default | base | a model folder
     "configFile": null,                     # a codesearch YAML settings file
     "limit": null,                          # results of codesearch/search when no limit is given (null: search.limit)
     "symbolLimit": 30,                      # results of workspace/symbol
     "ignore": ["tests/fixtures/", "*.min.js"],   # gitignore-style patterns, see below
     "method": null,                         # hybrid | multivector | dense | bm25 (null: search.method)
     "scope": "workspace",                   # workspace: only the workspace folders; index: the whole index
     "indexOnStartup": true,                 # index the workspace folders after initialize
     "reindexOnSave": true,                  # update the index when files are saved or change on disk
     "watch": true,                          # watch the folders for changes (when the watcher is available)
     "maxFileBytes": null}                   # larger files are not indexed (null: index.max_file_bytes)

``ignore`` patterns use .gitignore syntax and are matched against paths relative to the
workspace folder (and to the repository). Files they match are kept out of the index by the
server's indexer and watcher (already indexed ones are removed at the next index run) and
hidden from results (which also covers chunks indexed by the command line, which does not
know the editor's settings: for those, a ``.codesearchignore`` file works everywhere).

Bad values never stop the server: each is reported (see ``LspConfig.parse``) and its default
kept.

A layer over the codesearch settings (codesearch/settings.py, defaults in config/default.yaml):
``settings()`` is those settings with the editor's ``limit``, ``method`` and ``maxFileBytes``
in place of ``search.limit``, ``search.method`` and ``index.max_file_bytes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import pathspec

from codesearch.identifiers import camel_case, snake_case
from codesearch.settings import METHODS  # (also imported from here)

SCOPES = ("workspace", "index")
MAX_LIMIT = 200




@dataclass(frozen=True)
class LspConfig:
    home: str | None = None
    model: str | None = None
    config_file: str | None = None
    limit: int | None = None  # None: the settings' search.limit
    symbol_limit: int = 30
    ignore: tuple[str, ...] = ()
    method: str | None = None
    scope: str = "workspace"
    index_on_startup: bool = True
    reindex_on_save: bool = True
    watch: bool = True
    max_file_bytes: int | None = None
    _ignore_spec: Any = field(default=None, compare=False, repr=False)

    # ------------------------------------------------------------------ parsing
    @classmethod
    def parse(cls, raw: Any, base: "LspConfig | None" = None) -> tuple["LspConfig", list[str]]:
        """``base`` updated with the keys of ``raw``; returns (config, problems).

        ``raw`` may be the section itself or an object holding it under ``codesearch``.
        ``null`` values reset a key to its default.
        """
        base = base or cls()
        problems: list[str] = []
        if raw is None:
            return base, problems
        if not isinstance(raw, dict):
            return base, [f"codesearch settings must be an object, got {type(raw).__name__}"]
        if isinstance(raw.get("codesearch"), dict):
            raw = raw["codesearch"]
        known = {f.name for f in fields(cls) if not f.name.startswith("_")}
        defaults = cls()
        changes: dict[str, Any] = {}
        for key, value in raw.items():
            name = snake_case(key)
            if name not in known:
                problems.append(f"unknown codesearch setting {key!r} (ignored)")
                continue
            if value is None:
                changes[name] = getattr(defaults, name)
                continue
            try:
                changes[name] = _check(name, value)
            except ValueError as exc:
                problems.append(f"codesearch setting {camel_case(name)!r}: {exc} (keeping {getattr(base, name)!r})")
        config = replace(base, **changes)
        return replace(config, _ignore_spec=None), problems

    # ------------------------------------------------------------------ use
    def engine_key(self) -> tuple:
        """Settings that need a new model or index when they change."""
        return (self.home, self.model, self.config_file, self.max_file_bytes)

    def settings(self) -> dict:
        """The codesearch settings dict (defaults <- user file <- environment <- these)."""
        from codesearch.config import load_settings

        settings = load_settings(self.config_file, home=self.home, model=self.model)
        if self.method:
            settings.setdefault("search", {})["method"] = self.method
        if self.limit:
            settings.setdefault("search", {})["limit"] = self.limit
        if self.max_file_bytes:
            settings.setdefault("index", {})["max_file_bytes"] = self.max_file_bytes
        return settings

    def is_ignored(self, *rel_paths: str) -> bool:
        """Does any ignore pattern match one of these relative paths?"""
        if not self.ignore:
            return False
        spec = self._ignore_spec
        if spec is None:
            spec = pathspec.GitIgnoreSpec.from_lines(self.ignore)
            object.__setattr__(self, "_ignore_spec", spec)
        return any(p and spec.match_file(p) for p in rel_paths)

    def as_json(self) -> dict:
        return {camel_case(f.name): (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in fields(self) if not f.name.startswith("_")}


def _check(name: str, value: Any) -> Any:
    if name in ("home", "model", "config_file"):
        if not isinstance(value, str) or not value.strip():
            raise ValueError("must be a non-empty string")
        return value.strip()
    if name in ("limit", "symbol_limit"):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
            raise ValueError(f"must be an integer from 1 to {MAX_LIMIT}, got {value!r}")
        return value
    if name == "max_file_bytes":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"must be a positive integer, got {value!r}")
        return value
    if name in ("index_on_startup", "reindex_on_save", "watch"):
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {value!r}")
        return value
    if name == "method":
        if value not in METHODS:
            raise ValueError(f"must be one of {', '.join(METHODS)}, got {value!r}")
        return value
    if name == "scope":
        if value not in SCOPES:
            raise ValueError(f"must be one of {', '.join(SCOPES)}, got {value!r}")
        return value
    if name == "ignore":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("must be a list of gitignore-style patterns")
        patterns = tuple(v.strip() for v in value if v.strip())
        try:
            pathspec.GitIgnoreSpec.from_lines(patterns)
        except Exception as exc:  # pathspec raises assorted errors for bad patterns
            raise ValueError(f"bad pattern: {exc}") from None
        return patterns
    raise ValueError("unknown setting")  # pragma: no cover - guarded by parse()
