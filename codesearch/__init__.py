"""codesearch: local semantic code search with a multi-vector (late-interaction) encoder."""

__version__ = "0.1.0"
