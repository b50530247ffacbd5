"""Which adapter (vector space) serves which code, and which spaces a query should search.

Documents are encoded with the adapter of their language's domain; a query is encoded with
the adapter of every space it searches, so a query always meets documents in their own space.
"""

from __future__ import annotations

from codesearch import languages as _languages

FORMAL_LANGUAGES = _languages.in_domain("formal")  # as registered at import (codesearch.languages)
DOMAINS = ("general", "rust", "formal", "personal")


def known_languages() -> frozenset[str]:
    """Every language name a chunk can carry, as the registry stands now."""
    return _languages.names() | _languages.PLAIN_TEXT


KNOWN_LANGUAGES = known_languages()  # (as registered at import; known_languages() sees later ones)


def domain_of_language(language: str) -> str:
    """The registry's domain of ``language`` ("general" for text and unknown names)."""
    return _languages.domain_of(language)


def adapter_for(routing: dict[str, str | None], language: str, personal: bool = False) -> str | None:
    """The adapter that encodes documents of ``language`` (None: the base model).

    A language named in ``routing`` overrides its domain (``"coq": null`` keeps Coq on the
    base model while the rest of formal code uses the formal adapter). A domain missing from
    ``routing`` falls back to the general adapter; a domain routed to null stays with the base
    model.
    """
    if personal and routing.get("personal"):
        return routing["personal"]
    if language in routing and language not in DOMAINS:
        return routing[language] or None
    return domain_adapter(routing, domain_of_language(language))


def domain_adapter(routing: dict[str, str | None], domain: str) -> str | None:
    """The adapter of ``domain``'s code that no language entry overrides: the domain's own, the
    base model (None) for an explicit null, else the general adapter."""
    if domain in routing:  # an explicit null: this domain stays with the base model
        return routing[domain] or None
    return routing.get("general") or None


def spaces_for_query(routing: dict[str, str], languages: tuple[str, ...] | list[str] = ()) -> set[str | None] | None:
    """The adapters (spaces) a query must be encoded with; None: every space in the index.

    The router is the language filter (on the command line) or the language of the file open
    in the editor: documents of those languages live in exactly these spaces. Without one,
    the query is encoded once per space (a short query costs ~10 ms per space on CPU) and
    every document is scored against the query in its own space.
    """
    if not languages:
        return None
    return {adapter_for(routing, lang) for lang in languages}
