"""Which chunker handles a file: a language name from the file's extension or name."""

from __future__ import annotations

import posixpath

# Languages with a structural chunker (tree-sitter grammar or hand-written scanner).
STRUCTURED_LANGUAGES = frozenset(
    {"rust", "python", "tlaplus", "c", "go", "javascript", "typescript", "tsx", "java", "lean", "smtlib", "coq"}
    | {"why3", "agda", "dafny", "isabelle"}
)

EXTENSIONS: dict[str, str] = {
    ".rs": "rust",
    ".py": "python",
    ".pyi": "python",
    ".tla": "tlaplus",
    ".c": "c",
    ".h": "c",
    ".go": "go",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".java": "java",
    ".lean": "lean",
    ".smt2": "smtlib",
    ".smt": "smtlib",
    ".v": "coq",
    ".mlw": "why3",
    ".why": "why3",
    ".agda": "agda",
    ".dfy": "dafny",
    ".thy": "isabelle",
}

MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown", ".mdx"})


def language_for_path(path: str) -> str | None:
    """The language name for ``path``: one of STRUCTURED_LANGUAGES, or "text".

    Every non-empty path gets a language (the walker has already dropped binary files);
    unknown extensions are chunked as plain text. ``None`` only for an empty path.
    """
    if not path:
        return None
    base = posixpath.basename(path.replace("\\", "/"))
    if not base:
        return None
    _, ext = posixpath.splitext(base)
    return EXTENSIONS.get(ext.lower(), "text")


def is_markdown(path: str) -> bool:
    """Text files chunked by headings rather than fixed windows."""
    return posixpath.splitext(path.lower())[1] in MARKDOWN_EXTENSIONS
