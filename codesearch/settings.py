"""Typed settings: one frozen dataclass per section of config/default.yaml that codesearch's
readers use (``index``, ``search``, ``watch``, ``lsp``), and :class:`Settings` holding them.

The settings themselves are still the dict :func:`codesearch.config.load_settings` merges
(config/default.yaml <- the user's file <- environment <- flags); these classes are how code
reads it. Each declares its keys' names and types and nothing else: the default *values* live in
config/default.yaml only (each key commented there), and ``from_settings`` takes from that file
what the given dict leaves out, so a plain dict such as ``{"search": {"limit": 5}}`` works too.

``from_settings`` rejects a key a typed section does not have, a value of the wrong type and a
number outside its section's ``RANGES``, each with a one-line ``SettingsError`` (a ValueError)
naming the key (``search.limit: expected an integer, got 'ten'``, ``search.limit: must be from 1
to 1000, got 0``; an unknown key lists the valid ones). ``load_settings`` runs it once on
the merged settings, so a bad user file fails at start with that line.

The model: ColBERT's ``infra/config/settings.py`` (dataclasses per concern) and
jedi-language-server's ``initialization_options.py`` (strict parsing with one message a key).
The trainer's settings are not here (codesearch/trainer reads its own phase files).
"""

from __future__ import annotations

import functools
import typing
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Iterable, Mapping, Sequence

# search.method: how results are scored (see codesearch/search.py).
METHODS = ("hybrid", "multivector", "dense", "bm25")


class SettingsError(ValueError):
    """A bad setting: a one-line message naming the key."""


def reject_unknown(where: str, given: Iterable[Any], valid: Sequence[str], noun: str = "setting") -> None:
    """ValueError (one line) naming the first of ``given`` that is not in ``valid``, and listing
    the valid ones: for the trainer's YAML files (curricula, data configs and their sources)."""
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise ValueError(f"{where}: unknown {noun} {unknown[0]!r}; the {noun}s are: {', '.join(valid)}")


def _shipped() -> dict:
    """config/default.yaml as parsed once (only read here, never changed)."""
    from codesearch.config import _shipped_defaults

    return _shipped_defaults()


def _what(hint: Any) -> str:
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    if hint is bool:
        return "true or false"
    if hint is str:
        return "a string"
    if typing.get_origin(hint) is tuple:
        return "a list of strings"
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if len(args) == 1:
        return f"{_what(args[0])} or null"
    return str(hint)  # pragma: no cover - no such field


def _check(key: str, value: Any, hint: Any) -> Any:
    """``value`` as the type ``hint`` says, or a SettingsError naming ``key``."""
    said, args = hint, typing.get_args(hint)
    if type(None) in args:  # X | None
        if value is None:
            return None
        (hint,) = [a for a in args if a is not type(None)]
    ok = False
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    elif typing.get_origin(hint) is tuple:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    if not ok:
        raise SettingsError(f"{key}: expected {_what(said)}, got {_short(value)}")
    return value


def _in_range(key: str, value: float, lo: float | None, hi: float | None) -> None:
    """SettingsError naming ``key`` unless lo <= value <= hi (either bound None: none)."""
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        want = (f"from {lo:g} to {hi:g}" if lo is not None and hi is not None
                else f"at least {lo:g}" if lo is not None else f"at most {hi:g}")
        raise SettingsError(f"{key}: must be {want}, got {_short(value)}")


def _short(value: Any) -> str:
    text = repr(value).replace("\n", " ")
    return text if len(text) <= 80 else text[:77] + "..."


class _Section:
    """A section of the settings: ``from_settings`` builds it from a settings dict."""

    SECTION: ClassVar[str]
    CHOICES: ClassVar[dict[str, tuple]] = {}
    # (lowest, highest) a number may take, inclusive (None: unbounded); null stays allowed where
    # the type allows it
    RANGES: ClassVar[dict[str, tuple]] = {}

    @classmethod
    @functools.lru_cache(maxsize=None)
    def _hints(cls) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in fields(cls)}

    @classmethod
    def from_settings(cls, settings: Any = None):
        """This section of ``settings``: a settings dict (missing keys from config/default.yaml),
        a :class:`Settings`, an instance of this class (returned as is) or None (the defaults)."""
        if isinstance(settings, cls):
            return settings
        if isinstance(settings, Settings):
            return getattr(settings, cls.SECTION)
        if isinstance(settings, _Section):
            raise TypeError(f"{cls.__name__} from {type(settings).__name__}: give the settings dict or Settings")
        raw = (settings or {}).get(cls.SECTION)
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise SettingsError(f"{cls.SECTION}: expected a mapping of settings, got {type(raw).__name__}")
        hints = cls._hints()
        for key in raw:
            if key not in hints:
                raise SettingsError(
                    f"{cls.SECTION}.{key}: unknown setting; the {cls.SECTION} settings are: {', '.join(hints)}")
        shipped = _shipped().get(cls.SECTION) or {}
        values: dict[str, Any] = {}
        for name, hint in hints.items():
            key = f"{cls.SECTION}.{name}"
            value = _check(key, raw[name] if name in raw else shipped[name], hint)
            choices = cls.CHOICES.get(name)
            if choices and value not in choices:
                raise SettingsError(f"{key}: must be one of {', '.join(choices)}, got {_short(value)}")
            if name in cls.RANGES and value is not None:
                _in_range(key, value, *cls.RANGES[name])
            values[name] = value
        return cls(**values)

    @classmethod
    def defaults(cls):
        """The section as config/default.yaml sets it."""
        return _defaults_of(cls)


@functools.lru_cache(maxsize=None)
def _defaults_of(cls):
    return cls.from_settings(None)


# Each field's meaning, unit and default value: config/default.yaml (same key).
@dataclass(frozen=True)
class IndexSettings(_Section):
    SECTION: ClassVar[str] = "index"
    RANGES: ClassVar[dict[str, tuple]] = {
        "max_file_bytes": (1, None), "batch_chunks": (1, None), "encode_batch_size": (1, None),
        "compact_every": (1, None), "token_merge": (0, 1), "ann_min_rows": (1, None)}

    max_file_bytes: int
    batch_chunks: int
    encode_batch_size: int
    compact_every: int
    token_codec: str
    token_merge: float | None  # null or 0: keep every token vector
    ann_min_rows: int
    # Gitignore-style patterns, relative to each repository's root, of files not scanned for
    # secrets by content (the walker still skips files whose *name* says they hold credentials,
    # and the per-line ``pragma: allowlist secret`` still works everywhere). For test fixtures
    # holding fake keys, e.g. ``secrets_allow: [tests/fixtures/, "*.sample"]``.
    secrets_allow: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: Any = None) -> "IndexSettings":
        raw = None if isinstance(settings, (_Section, Settings)) or settings is None else settings.get("index")
        allow = raw.get("secrets_allow") if isinstance(raw, Mapping) else None
        if allow is not None and allow != []:  # its own messages (the walker's check, and pathspec, only then: a search starts faster without them)
            from codesearch.indexer.walk import compile_secrets_allow

            compile_secrets_allow(allow)
        return super().from_settings(settings)

    def walk_options(self) -> dict:
        """Keyword arguments of :func:`codesearch.indexer.walk.walk`."""
        return {"max_file_bytes": self.max_file_bytes, "secrets_allow": self.secrets_allow}


@dataclass(frozen=True)
class SearchSettings(_Section):
    SECTION: ClassVar[str] = "search"
    CHOICES: ClassVar[dict[str, tuple]] = {"method": METHODS}
    RANGES: ClassVar[dict[str, tuple]] = {
        "limit": (1, 1000), "candidates_dense": (1, None), "candidates_lexical": (0, None), "exact_below": (0, None),
        "lexical_weight": (0, None), "overlap_tie": (0, None), "role_prior": (0, 1), "in_memory_max": (0, None),
        "ann_nprobes": (1, None), "ann_nprobes_share": (0, 1), "ann_refine": (1, None), "query_threads": (0, None),
        "service_idle_s": (0, None), "cache_mb": (0, None)}

    limit: int
    method: str
    candidates_dense: int
    candidates_lexical: int
    exact_below: int
    lexical_weight: float
    overlap_tie: float
    role_prior: float
    in_memory_max: int
    ann_nprobes: int
    ann_nprobes_share: float
    ann_refine: int
    query_threads: int
    service: bool
    service_idle_s: float
    cache_mb: float


def ann_build_rows(settings: Any = None) -> int:
    """From how many chunks an index run builds the IVF index on the pooled vectors.

    Only searches over tables bigger than ``search.in_memory_max`` use that index (smaller ones
    score every pooled vector in memory), so it waits for the first of those sizes, or for
    ``index.ann_min_rows`` if that is more. Building and rebuilding it held about 200 MB more
    during an index run of 50k-117k chunks (docs/speed.md) for an index no search read."""
    index, search = IndexSettings.from_settings(settings), SearchSettings.from_settings(settings)
    return index.ann_min_rows if search.in_memory_max <= 0 else max(index.ann_min_rows, search.in_memory_max + 1)


@dataclass(frozen=True)
class WatchSettings(_Section):
    SECTION: ClassVar[str] = "watch"
    RANGES: ClassVar[dict[str, tuple]] = {
        "debounce_ms": (0, None), "max_delay_ms": (0, None), "mass_change_files": (1, None),
        "optimize_idle_s": (0, None), "retry_s": (0.01, None)}

    debounce_ms: float
    max_delay_ms: float
    mass_change_files: int
    optimize_idle_s: float
    retry_s: float


@dataclass(frozen=True)
class LspSettings(_Section):
    SECTION: ClassVar[str] = "lsp"

    model_idle_s: float | None  # null: keep torch loaded; negative: as null


SECTIONS: tuple[type[_Section], ...] = (IndexSettings, SearchSettings, WatchSettings, LspSettings)


@dataclass(frozen=True)
class Settings:
    """Every typed section, and the two top-level keys. Top-level keys of config/default.yaml
    without a typed section here pass through unchecked (they are not read through this)."""

    home: str | None
    model: str | None
    index: IndexSettings
    search: SearchSettings
    watch: WatchSettings
    lsp: LspSettings

    @classmethod
    def from_settings(cls, settings: Any = None) -> "Settings":
        if isinstance(settings, cls):
            return settings
        settings = settings or {}
        valid = list(_shipped())
        for key in settings:
            if key not in valid:
                raise SettingsError(f"{key}: unknown setting; the settings are: {', '.join(valid)}")
        top = {}
        for key in ("home", "model"):
            value = settings.get(key)
            if value is not None and not isinstance(value, str):
                raise SettingsError(f"{key}: expected a string, got {_short(value)}")
            top[key] = value
        return cls(**top, **{s.SECTION: s.from_settings(settings) for s in SECTIONS})
