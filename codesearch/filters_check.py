"""Check search filters before searching: an unknown language, kind or repository is a usage
error that names the valid values (and the closest one), not a silent "No results."

Languages are checked against the chunkers' languages (plus common aliases: ``tla`` -> tlaplus,
``rs`` -> rust, ...); kinds and repositories against what the index holds, read only when the
filter alone matches no chunk.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Iterable, Sequence

from codesearch import languages as _registry

# Alias -> language name (``tla+`` -> ``tlaplus``): the registry's, as it stands at import.
LANGUAGE_ALIASES: dict[str, str] = _registry.aliases()


class FilterError(ValueError):
    """An unknown filter value; the message names the valid ones."""


def languages() -> list[str]:
    """Every language a chunk can have."""
    return sorted(_registry.names() | {_registry.TEXT})


def check_languages(values: Iterable[str]) -> tuple[str, ...]:
    """Lower-cased language names with aliases resolved, or FilterError on an unknown one."""
    valid = languages()
    aliases = _registry.aliases()
    out: list[str] = []
    for raw in values:
        v = raw.strip().lower()
        v = aliases.get(v, v)
        if v not in valid:
            close = difflib.get_close_matches(v, [*valid, *aliases], n=1, cutoff=0.5)
            hint = f" (did you mean {aliases.get(close[0], close[0])!r}?)" if close else ""
            raise FilterError(f"unknown language {raw!r}{hint}; valid: {', '.join(valid)}")
        if v not in out:
            out.append(v)
    return tuple(out)


def present_kinds(store) -> list[str]:
    """The distinct chunk kinds in the index."""
    return sorted({k for k in store.values("chunks", "kind") if k})


def present_repos(store) -> list[str]:
    """The distinct repositories of the indexed files."""
    return sorted({r for r in store.values("files", "repo") if r})


def check_filters(filters, store) -> None:
    """Resolve language aliases in ``filters`` (in place) and check lang, kind and repo.

    Kinds and the repository are checked against the index: a kind no chunk has, or a repository
    that matches no indexed one, raises FilterError listing those that exist. The distinct values
    are read only when the filter alone matches nothing (a count with a filter otherwise).
    """
    from codesearch.search import Filters
    from codesearch.indexer.store import sql_str

    if filters.lang:
        filters.lang = check_languages(filters.lang)
    if filters.kind:
        kinds = tuple(dict.fromkeys(k.strip().lower() for k in filters.kind))
        filters.kind = kinds
        missing = [k for k in kinds if not store.has_index() or store.count_chunks(f"kind = {sql_str(k)}") == 0]
        if missing:
            present = present_kinds(store) if store.has_index() else []
            for k in missing:
                if k not in present:
                    close = difflib.get_close_matches(k, present, n=1, cutoff=0.5)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise FilterError(f"no chunk in this index has kind {k!r}{hint}; kinds present: "
                                      f"{', '.join(present) or 'none'}")
    if filters.repo:
        where = Filters(repo=filters.repo).sql()
        if not store.has_index() or store.count_chunks(where) == 0:
            repos = present_repos(store) if store.has_index() else []
            if _repo_matches(filters.repo, repos):
                return  # indexed, but no chunks (e.g. only empty files)
            names = [Path(r).name for r in repos]
            close = difflib.get_close_matches(Path(filters.repo.rstrip("/")).name, names, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise FilterError(f"no indexed repository matches {filters.repo!r}{hint}; indexed: "
                              f"{', '.join(repos) or 'none'}")


def _repo_matches(value: str, repos: Sequence[str]) -> bool:
    v = value.rstrip("/")
    if "/" in v:
        return str(Path(v).expanduser().absolute()) in repos
    return any(r == v or r.endswith("/" + v) for r in repos)
