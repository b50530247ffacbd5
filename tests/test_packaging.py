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


def test_the_wheel_carries_the_default_model_and_phase_configs(tmp_path):
    """An installed (non-editable) codesearch needs the model folder with its adapters and the
    phase configs `finetune --personal` trains with."""
    import subprocess
    import sys
    import zipfile

    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = tmp_path.glob("codesearch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    model = ROOT / "codesearch" / "model" / "assets" / "default"
    for f in model.rglob("*"):
        if f.is_file():
            assert f"codesearch/model/assets/default/{f.relative_to(model).as_posix()}" in names
    for phase in ("general", "rust", "formal", "personal"):
        assert f"codesearch/defaults/phases/{phase}.yaml" in names
