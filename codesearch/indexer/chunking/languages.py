"""Which chunker handles a file: a language name from the file's extension or name.

The languages themselves live in the registry, :mod:`codesearch.languages`; this module
keeps the names the indexer has always imported from here.
"""

from __future__ import annotations

from codesearch import languages as _registry
from codesearch.languages import is_markdown  # noqa: F401  (re-exported)


def language_for_path(path: str) -> str | None:
    """The language name for ``path``: a registered language, or "text".

    Every non-empty path gets a language (the walker has already dropped binary files);
    unknown extensions are chunked as plain text. ``None`` only for an empty path.
    """
    return _registry.name_for_path(path)
