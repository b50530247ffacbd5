"""Settings: built-in defaults (config/default.yaml) <- user file <- environment <- flags."""

from __future__ import annotations

import copy
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml


def _deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def defaults_file(name: str = "default.yaml"):
    """A file of the top-level config/ folder: shipped in wheels as ``codesearch.defaults``,
    read straight from the checkout in editable installs (which do not map that package)."""
    checkout = Path(__file__).resolve().parent.parent / "config" / name
    if checkout.exists():
        return checkout
    return resources.files("codesearch.defaults").joinpath(name)


def default_settings() -> dict:
    """config/default.yaml: the one place of every setting's default value."""
    return copy.deepcopy(_shipped_defaults())


@lru_cache(maxsize=1)
def _shipped_defaults() -> dict:
    return yaml.safe_load(defaults_file().read_text())


def user_config_file() -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "codesearch" / "config.yaml"


def default_home() -> Path:
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "codesearch"


def load_settings(config_file: str | Path | None = None, **flags: Any) -> dict:
    """The effective settings. ``flags`` with value None are ignored."""
    settings = default_settings()
    path = Path(config_file) if config_file else user_config_file()
    source = None
    if path.exists():
        try:
            user = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(user, dict):
            raise ValueError(f"{path}: expected a mapping of settings")
        settings = _deep_merge(settings, user)
        source = path
    elif config_file:
        raise FileNotFoundError(f"config file {path} does not exist")
    if os.environ.get("CODESEARCH_HOME"):
        settings["home"] = os.environ["CODESEARCH_HOME"]
    if os.environ.get("CODESEARCH_MODEL"):
        settings["model"] = os.environ["CODESEARCH_MODEL"]
    for key, value in flags.items():
        if value is not None:
            settings[key] = value
    settings["home"] = str(Path(settings["home"]).expanduser()) if settings.get("home") else str(default_home())
    check_settings(settings, source)
    return settings


def check_settings(settings: dict, source: Path | None = None) -> None:
    """Check the merged settings through their typed form (codesearch/settings.py): a key the
    typed sections do not have, or a value of the wrong type, is a ValueError with a one-line
    message naming the key (``codesearch: error: ...``); ``source``: the user's file, named in it."""
    from codesearch.settings import Settings, SettingsError

    try:
        Settings.from_settings(settings)
    except SettingsError as exc:
        raise SettingsError(f"{exc} (in {source})" if source else str(exc)) from None


def shipped_phase_config(name: str):
    """config/phases/NAME.yaml as shipped (checkout or package)."""
    return defaults_file(f"phases/{name}.yaml")


def resolve_model(settings: dict) -> str:
    """The model spec to load. "default" means the user's personal model when
    `codesearch finetune --personal` made one in this home (HOME/personal/model), else the
    shipped model; "shipped" always means the shipped model."""
    from codesearch.home import IndexHome

    model = str(settings.get("model") or "default")
    if model == "default":
        personal = IndexHome.of(settings).personal_model
        if personal.exists():
            return str(personal.path)
    return model
