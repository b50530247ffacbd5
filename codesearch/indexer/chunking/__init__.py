"""Chunking: split a source file into declaration-sized, searchable chunks.

One module per language family; this package's public entry points are
``language_for_path`` and ``chunk_text``.
"""

from codesearch.indexer.chunking.base import Chunk

__all__ = ["Chunk"]
