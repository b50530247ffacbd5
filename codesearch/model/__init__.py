"""The encoder and how a model is chosen by name."""

from __future__ import annotations

import warnings
from pathlib import Path

# Deprecation notices from the libraries under the encoder (e.g. transformers' "`is_gradient_
# checkpointing` is deprecated") are not something a user of codesearch can act on: keep them
# off stderr, `search --json` included.
for _module in (r"transformers(\..*)?", r"peft(\..*)?", r"torch(\..*)?"):
    warnings.filterwarnings("ignore", category=FutureWarning, module=_module)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=_module)

from codesearch.model.encoder import EncoderConfig, MultiVectorEncoder, maxsim  # noqa: E402

DEFAULT_MODEL_DIR = Path(__file__).parent / "assets" / "default"

__all__ = ["EncoderConfig", "MultiVectorEncoder", "maxsim", "load_encoder", "DEFAULT_MODEL_DIR"]


def load_encoder(spec: str | Path | None = "default", **kwargs) -> MultiVectorEncoder:
    """``"default"``/``"shipped"``: the model shipped with codesearch; ``"base"``: the plain base model;
    anything else: a model folder on disk (codesearch or Hugging Face format)."""
    if spec in (None, "default", "shipped"):
        if (DEFAULT_MODEL_DIR / "codesearch-model.json").exists():
            return MultiVectorEncoder.load(DEFAULT_MODEL_DIR, **kwargs)
        return MultiVectorEncoder.load(None, **kwargs)
    if spec == "base":
        return MultiVectorEncoder.load(None, **kwargs)
    path = Path(spec).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"model folder {path} does not exist")
    return MultiVectorEncoder.load(path, **kwargs)
