"""The unit of indexing: one declaration (or one window of a large one) with its location."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Chunk:
    """One searchable span of a file.

    Lines are 1-based and inclusive, as in the eval format (docs/eval-format.md).
    ``text`` is exactly the source lines start_line..end_line (doc comment and leading
    attributes included). ``context`` is a short human-readable description of where the
    declaration sits (enclosing ``impl``/``mod``/``namespace``/``MODULE``/class names),
    given to the encoder together with the text; it is not part of the file span.
    """

    path: str  # path of the file relative to its repository root, with '/' separators
    start_line: int
    end_line: int
    language: str  # e.g. "rust", "python", "tlaplus", "lean", "smtlib", "coq", "text"
    kind: str  # e.g. "function", "impl", "trait", "theorem", "operator", "define-fun", "window"
    name: str  # declared name, "" when there is none
    text: str
    context: str = ""

    @property
    def content_hash(self) -> str:
        """Hash of everything the encoder sees; equal hashes never need embedding twice."""
        h = hashlib.sha256()
        for part in (self.path, self.language, self.kind, self.name, self.context, self.text):
            h.update(part.encode("utf-8", "surrogatepass"))
            h.update(b"\0")
        return h.hexdigest()[:32]

    @property
    def n_lines(self) -> int:
        return self.end_line - self.start_line + 1

    def encoder_text(self) -> str:
        """What the encoder reads: a short header (file, enclosing scope) and the code."""
        header = self.path if not self.context else f"{self.path} {self.context}"
        return f"{header}\n{self.text}"
