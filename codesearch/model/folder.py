"""A model folder: which files it holds, and the one way to write and read them.

    codesearch-model.json   the manifest (EncoderConfig: base by reference, head size, prefixes,
                            token limits, which spaces split identifiers, adapters -> subfolder,
                            routing, description)
    head.safetensors        the linear head (absent: no head)
    adapters/<name>/        one peft LoRA adapter per name the manifest lists
    MODEL_CARD.md           the card (the shipped model's: scripts/ship_trained_model.py)
    phases/<title>.yaml     the phase configs that trained its adapters, as written (comments
                            and all); each names its adapter (``adapter:``)

As with sentence-transformers' ``modules.json``, the manifest names the parts and ``load``
reads back what ``save`` wrote. The base transformer is referenced, never copied. Nothing here
imports torch: the encoder is imported when one is loaded or saved.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from codesearch.model.encoder import EncoderConfig, MultiVectorEncoder

CONFIG_NAME = "codesearch-model.json"
HEAD_NAME = "head.safetensors"
ADAPTERS_DIR = "adapters"
CARD_NAME = "MODEL_CARD.md"
PHASES_DIR = "phases"


@dataclass(frozen=True)
class PhaseSource:
    """One phase config behind a model's adapter: its title (the file's stem) and its YAML text."""

    title: str
    text: str

    @property
    def adapter(self) -> str | None:
        import yaml

        data = yaml.safe_load(self.text) or {}
        return data.get("adapter") if isinstance(data, dict) else None


class ModelFolder:
    """The files of one codesearch model folder at ``path`` (which need not exist yet)."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()

    def __repr__(self) -> str:
        return f"ModelFolder({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # ------------------------------------------------------------------ the files
    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_NAME

    @property
    def head_file(self) -> Path:
        return self.path / HEAD_NAME

    @property
    def adapters_dir(self) -> Path:
        return self.path / ADAPTERS_DIR

    @property
    def card_file(self) -> Path:
        return self.path / CARD_NAME

    @property
    def phases_dir(self) -> Path:
        return self.path / PHASES_DIR

    def exists(self) -> bool:
        """Whether this is a codesearch model folder (it has the manifest)."""
        return self.config_file.exists()

    @staticmethod
    def adapter_subfolder(name: str) -> str:
        """Where ``save`` puts adapter ``name``, relative to the folder (the manifest's value)."""
        return f"{ADAPTERS_DIR}/{name}"

    def adapter_dirs(self, manifest: dict | None = None) -> dict[str, Path]:
        """Adapter name -> its folder, as the manifest lists them."""
        manifest = self.read_manifest() if manifest is None else manifest
        return {name: self.path / sub for name, sub in manifest.get("adapters", {}).items()}

    # ------------------------------------------------------------------ the manifest
    def read_manifest(self) -> dict:
        """codesearch-model.json as written (every key, known to this version or not)."""
        return json.loads(self.config_file.read_text())

    def write_manifest(self, manifest: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(json.dumps(manifest, indent=2) + "\n")

    def config(self) -> "EncoderConfig":
        """The manifest as an :class:`~codesearch.model.encoder.EncoderConfig` (unknown keys dropped)."""
        from codesearch.model.encoder import EncoderConfig

        return EncoderConfig.from_dict(self.read_manifest())

    # ------------------------------------------------------------------ the card
    def read_card(self) -> str:
        """MODEL_CARD.md ("" when there is none)."""
        return self.card_file.read_text() if self.card_file.exists() else ""

    def write_card(self, text: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.card_file.write_text(text)

    # ------------------------------------------------------------------ the phase configs
    def read_phases(self) -> list[PhaseSource]:
        """The phase configs stored with the model, by title ([] when none are)."""
        if not self.phases_dir.is_dir():
            return []
        return [PhaseSource(f.stem, f.read_text().strip()) for f in sorted(self.phases_dir.glob("*.yaml"))]

    def phases_by_adapter(self) -> dict[str, PhaseSource]:
        """Adapter -> the phase config that trained it (the first by title where several do)."""
        found: dict[str, PhaseSource] = {}
        for phase in self.read_phases():
            if phase.adapter:
                found.setdefault(phase.adapter, phase)
        return found

    def write_phases(self, phases: list[PhaseSource]) -> None:
        """Replace the stored phase configs with ``phases`` (titles must differ)."""
        titles = [p.title for p in phases]
        if len(set(titles)) != len(titles):
            raise ValueError(f"phase titles repeat: {titles}")
        shutil.rmtree(self.phases_dir, ignore_errors=True)
        if not phases:
            return
        self.phases_dir.mkdir(parents=True)
        for phase in phases:
            (self.phases_dir / f"{phase.title}.yaml").write_text(phase.text.strip() + "\n")

    # ------------------------------------------------------------------ save and load
    def save(self, encoder: "MultiVectorEncoder", *, phases: list[PhaseSource] | None = None,
             card: str | None = None) -> "ModelFolder":
        """Write ``encoder`` here (manifest, head, adapters; the base by reference), and, when
        given, its phase configs and card: what :meth:`load`, :meth:`read_phases` and
        :meth:`read_card` read back."""
        from safetensors.numpy import save_file

        from codesearch.model.encoder import PACKAGED_BASE, EncoderConfig

        self.path.mkdir(parents=True, exist_ok=True)
        config = EncoderConfig.from_dict(asdict(encoder.config))
        if encoder.head_weight is not None:
            save_file({"weight": encoder.head_weight, "bias": encoder.head_bias}, str(self.head_file))
            config.dim = int(encoder.head_weight.shape[0])
        else:
            config.dim = None
        if config.base != PACKAGED_BASE:
            config.base = str(encoder.base_path())
        if encoder.config.adapters:
            # peft writes each adapter to <folder>/adapters/<name> (the first one at the root
            # of that folder): save them all, then point the config at where they landed.
            encoder.export_adapters(self.adapters_dir, list(encoder.config.adapters))
            config.adapters = {
                n: (ADAPTERS_DIR if n == "default" else self.adapter_subfolder(n)) for n in encoder.config.adapters
            }
        self.write_manifest(asdict(config))
        if phases is not None:
            self.write_phases(phases)
        if card is not None:
            self.write_card(card)
        return self

    def load(self, **kwargs) -> "MultiVectorEncoder":
        """The torch encoder of this folder (``MultiVectorEncoder.load``'s keyword arguments)."""
        from codesearch.model.encoder import MultiVectorEncoder

        return MultiVectorEncoder.load(self.path, **kwargs)
