#!/usr/bin/env python
"""Scale the LoRA adapters of a model folder toward the base model (WiSE-FT), in place.

    python scripts/interpolate_adapters.py codesearch/model/assets/default 0.5 [--adapter formal ...]

An adapter adds B·A·scaling to a weight of the base model; multiplying every B by FACTOR scales
that change by FACTOR (1: as trained, 0.5: halfway back to the base model) and nothing else.
This is what a phase config's `interpolate:` does once training ends (trainer/train.py,
interpolate_adapter), applied to adapters that were trained already: the shipped adapters got
FACTOR 0.5 this way (see docs/training.md and the model card). Multiplying by 0.5 is exact in bf16.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codesearch.model.folder import CONFIG_NAME, ModelFolder


def interpolate_folder(model_dir: Path, factor: float, adapters: list[str] | None = None) -> list[str]:
    """Scale the named adapters (default: all) of the model folder; returns their names."""
    from safetensors.torch import load_file, save_file

    folder = ModelFolder(model_dir)
    meta = folder.read_manifest()
    known = folder.adapter_dirs(meta)
    names = adapters or sorted(known)
    missing = [n for n in names if n not in known]
    if missing:
        raise SystemExit(f"{model_dir}: no adapter {', '.join(missing)}; it has {', '.join(sorted(known)) or 'none'}")
    paths = {name: known[name] / "adapter_model.safetensors" for name in names}
    loaded = {name: load_file(str(path)) for name, path in paths.items()}
    for name, weights in loaded.items():  # every check before the first write: all or nothing
        if not any(".lora_B." in k for k in weights):
            raise SystemExit(f"{paths[name]}: no LoRA B weights to scale")
    for name, weights in loaded.items():
        scaled = {k: (v * factor).to(v.dtype) if ".lora_B." in k else v for k, v in weights.items()}
        save_file(scaled, str(paths[name]), metadata={"format": "pt"})
    # Each application is noted: two of 0.5 leave a quarter of the change, and the description says both.
    note = f"Interpolated toward the base model: {', '.join(names)} by {factor:g} (scripts/interpolate_adapters.py)."
    meta["description"] = f"{meta.get('description', '').rstrip()} {note}".strip()
    folder.write_manifest(meta)
    return names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path, help=f"a codesearch model folder (holds {CONFIG_NAME})")
    ap.add_argument("factor", type=float, help="the share of each adapter's change to keep, in (0, 1]")
    ap.add_argument("--adapter", action="append", default=None, help="an adapter to scale (repeatable; default: every adapter)")
    args = ap.parse_args()
    if not 0.0 < args.factor <= 1.0:
        sys.exit("factor must be in (0, 1]")
    if not ModelFolder(args.model).exists():
        sys.exit(f"{args.model}: not a codesearch model folder (no {CONFIG_NAME})")
    names = interpolate_folder(args.model, args.factor, args.adapter)
    print(f"scaled {', '.join(names)} by {args.factor:g} in {args.model}")


if __name__ == "__main__":
    main()
