"""Pair mining's sources: the folders to mine (:class:`SourceSpec`), read from a data config
file (``config/data.yaml``) or made for the user's own repositories (``finetune --personal``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from codesearch.settings import reject_unknown

REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass
class SourceSpec:
    """One folder to mine."""

    name: str
    path: str
    domain: str | None = None  # override the per-language domain
    personal: bool = False  # the user's own code: every pair's domain is "personal"
    max_pairs: int | None = None
    include: list[str] = field(default_factory=list)  # gitignore-style patterns of files to keep
    exclude: list[str] = field(default_factory=list)  # gitignore-style patterns of files to drop
    commits: bool = True  # mine git history where the source holds repositories

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SourceSpec":
        """A source from its config entry; ValueError (one line) for an entry that is not one."""
        if not isinstance(d, dict) or not d.get("path"):
            raise ValueError(f"a source needs at least `path`: {d!r}")
        label = d.get("name") or d["path"]
        reject_unknown(f"source {label}", d, list(cls.__dataclass_fields__), noun="key")
        if d.get("domain"):
            from codesearch.model.routing import DOMAINS

            if d["domain"] not in DOMAINS:
                raise ValueError(f"source {label}: unknown domain {d['domain']!r}; one of {', '.join(DOMAINS)}")
        path = expand_path(str(d["path"]))
        name = str(d.get("name") or Path(path).name)
        return cls(
            name=name,
            path=path,
            domain=d.get("domain") or None,
            personal=bool(d.get("personal", False)),
            max_pairs=int(d["max_pairs"]) if d.get("max_pairs") is not None else None,
            include=[str(x) for x in d.get("include") or []],
            exclude=[str(x) for x in d.get("exclude") or []],
            commits=bool(d.get("commits", True)),
        )


def expand_path(path: str) -> str:
    """``~`` and ``{python_stdlib}`` (this interpreter's standard library) expanded."""
    if "{python_stdlib}" in path:
        import sysconfig

        path = path.replace("{python_stdlib}", sysconfig.get_paths()["stdlib"])
    return os.path.expanduser(path)


def default_config_path() -> Path:
    """The shipped ``config/data.yaml`` (packaged as ``codesearch.defaults``)."""
    try:
        from importlib.resources import files

        p = Path(str(files("codesearch.defaults") / "data.yaml"))
        if p.exists():
            return p
    except (ModuleNotFoundError, FileNotFoundError):
        pass
    return REPO_ROOT / "config" / "data.yaml"


def load_data_config(path: Path | str | None = None) -> tuple[list[SourceSpec], dict[str, Any]]:
    """(sources, options) from a data config file (default: the shipped one)."""
    import yaml

    p = Path(path) if path else default_config_path()
    with p.open(encoding="utf-8") as fh:
        try:
            cfg = yaml.safe_load(fh) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{p}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{p}: expected a mapping with `sources`, got {type(cfg).__name__}")
    # (keys starting with "_" are YAML anchors only: config/data-formal.yaml's file patterns)
    reject_unknown(str(p), [k for k in cfg if not str(k).startswith("_")], DATA_OPTIONS)
    try:
        sources = [SourceSpec.from_dict(s) for s in cfg.get("sources") or []]
    except ValueError as exc:
        raise ValueError(f"{p}: {exc}") from None
    options = {k: v for k, v in cfg.items() if k != "sources" and not str(k).startswith("_")}
    return sources, options


# A data config's top-level settings (config/data.yaml explains each).
DATA_OPTIONS = ("sources", "max_pairs_per_source", "heldout_fraction", "min_heldout", "negatives", "max_commits")


def personal_sources(roots: Iterable[Path | str], max_pairs: int | None = None) -> list[SourceSpec]:
    """Sources for the user's own repositories (domain "personal"), for ``finetune --personal``."""
    out = []
    for r in roots:
        p = os.path.abspath(os.fspath(r))
        out.append(SourceSpec(name=f"personal:{Path(p).name}", path=p, personal=True, max_pairs=max_pairs))
    return out
