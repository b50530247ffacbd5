"""An index home (``--home``, ``CODESEARCH_HOME``): the one place its layout is spelled.

    index.json              the index's metadata (model fingerprint, format, roots)
    lance/                  the LanceDB tables
    write.lock              held by an index run
    fts.json, token_codec.npz   the full-text index's state, the token codec
    search.sock, search.lock, search-service.log   the search service (codesearch/service.py)
    personal/
      model/                the personal model (`finetune --personal`): a model folder
      runs/<time>/          each fine-tuning run (report.json, the candidate adapter)
      feedback.jsonl        the editor's judgements (the log), eval.jsonl (the eval set made
      eval.jsonl            from it), last-eval.json (the last run of that set)
      last-eval.json

Only the standard library is imported here (the service's client reads the socket's path).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from codesearch.model.folder import ModelFolder

INDEX_META = "index.json"
LANCE_DIR = "lance"
WRITE_LOCK = "write.lock"
FTS_STATE = "fts.json"
TOKEN_CODEC = "token_codec.npz"
SERVICE_SOCKET = "search.sock"
SERVICE_LOCK = "search.lock"
SERVICE_LOG = "search-service.log"
PERSONAL_DIR = "personal"
PERSONAL_MODEL_DIR = "model"  # under personal/
PERSONAL_RUNS_DIR = "runs"  # under personal/
FEEDBACK_LOG = "feedback.jsonl"  # under personal/
PERSONAL_EVAL = "eval.jsonl"  # under personal/
LAST_EVAL = "last-eval.json"  # under personal/


class IndexHome:
    """The paths of one index home (which need not exist yet); creates nothing."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def of(cls, settings: dict) -> "IndexHome":
        """The home the (loaded) settings name."""
        return cls(settings["home"])

    def __repr__(self) -> str:
        return f"IndexHome({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # ------------------------------------------------------------------ the index
    @property
    def index_meta(self) -> Path:
        return self.path / INDEX_META

    def has_index(self) -> bool:
        return self.index_meta.exists()

    @property
    def lance_dir(self) -> Path:
        return self.path / LANCE_DIR

    @property
    def write_lock(self) -> Path:
        return self.path / WRITE_LOCK

    @property
    def fts_state(self) -> Path:
        return self.path / FTS_STATE

    @property
    def token_codec(self) -> Path:
        return self.path / TOKEN_CODEC

    # ------------------------------------------------------------------ the search service
    @property
    def service_socket(self) -> Path:
        return self.path / SERVICE_SOCKET

    @property
    def service_lock(self) -> Path:
        return self.path / SERVICE_LOCK

    @property
    def service_log(self) -> Path:
        return self.path / SERVICE_LOG

    # ------------------------------------------------------------------ personal/
    @property
    def personal_dir(self) -> Path:
        return self.path / PERSONAL_DIR

    @property
    def personal_model(self) -> "ModelFolder":
        """The personal model folder (``ModelFolder.exists()``: whether one was installed)."""
        from codesearch.model.folder import ModelFolder

        return ModelFolder(self.personal_dir / PERSONAL_MODEL_DIR)

    @property
    def personal_runs(self) -> Path:
        return self.personal_dir / PERSONAL_RUNS_DIR

    @property
    def feedback_log(self) -> Path:
        return self.personal_dir / FEEDBACK_LOG

    @property
    def personal_eval(self) -> Path:
        return self.personal_dir / PERSONAL_EVAL

    @property
    def last_eval(self) -> Path:
        return self.personal_dir / LAST_EVAL
