"""The wheel must ship every package and the defaults, or an installed codesearch breaks."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "codesearch").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert found - listed == set(), "add these packages to [tool.setuptools] packages in pyproject.toml"


def test_default_settings_and_model_are_shipped():
    from codesearch.config import default_settings
    from codesearch.model import DEFAULT_MODEL_DIR

    settings = default_settings()
    assert settings["model"] == "default" and settings["search"]["method"] in ("hybrid", "multivector", "dense", "bm25")
    assert (DEFAULT_MODEL_DIR / "codesearch-model.json").exists()
