"""Pair mining: (query, code) training pairs from source trees (``codesearch data build``).

For each source (a folder: a set of repositories, a library, the user's own code;
:mod:`~codesearch.trainer.mining.sources`) the miner walks the files with the indexer's rules
(:mod:`codesearch.indexer.walk`), chunks each with :func:`codesearch.indexer.chunking.chunk_text`
(the chunks the index holds), groups the chunks into declarations
(:mod:`~codesearch.trainer.mining.decls`) and mines (:mod:`~codesearch.trainer.mining.one_file`,
:mod:`~codesearch.trainer.mining.one_source`):

* **doc** pairs: the first sentence of a declaration's doc comment (see
  :mod:`codesearch.trainer.doc_queries`) -> the declaration without its doc;
* **name** pairs, for declarations without a usable doc: ``parse_interval`` ->
  "parse interval" (with the owner for members: "ring buffer push");
* **test** pairs: a test ``test_parses_ranges`` -> "parses ranges", paired with the
  declaration it most likely tests (name words inside the test's, same file or a file of
  the same stem first; :mod:`~codesearch.trainer.mining.testpairs`);
* **commit** pairs (git repositories): a commit's subject -> the declarations it changed,
  when the file is unchanged since that commit (same blob at HEAD, clean work tree;
  :mod:`~codesearch.trainer.mining.commits`);
* **augmented** pairs: formal-methods phrasings (:mod:`codesearch.trainer.augment`).

Then (here) near-duplicates are removed, a held-out split is taken per domain by file, BM25 hard
negatives are mined within each split, and ``train.jsonl``, ``heldout.jsonl`` and
``summary.json`` are written. Sources of the eval sets (``evals/heldout_sources.txt``, any
version of those crates, CPython's copies of those modules, those Coq theories, checkouts of
those repositories) and the repositories reserved for an independent benchmark are never read
(:mod:`~codesearch.trainer.mining.exclusions`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

from codesearch.trainer.mining.commits import MAX_COMMITS
from codesearch.trainer.mining.exclusions import RESERVED_REPOS, Exclusions
from codesearch.trainer.mining.one_source import DEFAULT_MAX_PAIRS, mine_source
from codesearch.trainer.mining.sources import SourceSpec, load_data_config
from codesearch.trainer.pairs import Pair, count_pairs, dedup_pairs, split_pairs, write_jsonl


def build_dataset(
    sources: list[SourceSpec | dict],
    out_dir: Path | str | None,
    *,
    max_per_source: int | None = None,
    seed: int = 0,
    negatives: int = 3,
    heldout_fraction: float = 0.05,
    min_heldout: int = 50,
    max_commits: int = MAX_COMMITS,
    heldout_file: Path | str | None = None,
    exclusions: Exclusions | None = None,
    progress: Callable[[str], None] | None = None,
    split_group: Callable[[Pair], str] | None = None,
    min_group_pairs: int = 500,
) -> dict[str, Any]:
    """Mine, deduplicate, split, add hard negatives; write ``train.jsonl``, ``heldout.jsonl``
    and ``summary.json`` under ``out_dir`` (nothing is written when it is None). Returns the
    summary; with ``out_dir`` None the summary also carries the pairs (``"train"``,
    ``"heldout"`` as lists of :class:`Pair`). ``split_group`` and ``min_group_pairs`` are
    :func:`split_pairs`'s ``group`` and ``min_domain_pairs``."""
    from codesearch.trainer.negatives import mine_bm25_negatives

    t0 = time.monotonic()
    say = progress or (lambda _msg: None)
    specs = [s if isinstance(s, SourceSpec) else SourceSpec.from_dict(s) for s in sources]
    excl = exclusions or Exclusions.from_heldout_file(heldout_file)
    all_pairs: list[Pair] = []
    used: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for spec in specs:
        if not os.path.exists(spec.path):
            skipped.append({"name": spec.name, "path": spec.path, "reason": "missing"})
            say(f"[{spec.name}] skipped: {spec.path} does not exist")
            continue
        why = excl.reason(spec.path)
        if why is not None:
            skipped.append({"name": spec.name, "path": spec.path, "reason": why})
            say(f"[{spec.name}] skipped: {why}")
            continue
        t = time.monotonic()
        cap = max_per_source if max_per_source is not None else spec.max_pairs
        if max_per_source is not None and spec.max_pairs is not None:
            cap = min(max_per_source, spec.max_pairs)
        res = mine_source(spec, exclusions=excl, max_pairs=cap, seed=seed, max_commits=max_commits)
        all_pairs.extend(res.pairs)
        entry = {
            "name": spec.name, "path": spec.path, "personal": spec.personal, "domain": spec.domain,
            "max_pairs": cap or DEFAULT_MAX_PAIRS, "seconds": round(time.monotonic() - t, 2),
            "mined": count_pairs(res.pairs), "stats": res.stats,
        }  # fmt: skip
        used.append(entry)
        say(f"[{spec.name}] {len(res.pairs)} pairs from {res.stats.get('files read', 0)} files in {entry['seconds']}s")
    mined_counts = count_pairs(all_pairs)
    t = time.monotonic()
    kept, dedup_stats = dedup_pairs(all_pairs, seed=seed)
    say(f"dedup: {len(all_pairs)} -> {len(kept)} pairs ({time.monotonic() - t:.1f}s)")
    train, heldout = split_pairs(kept, heldout_fraction, min_heldout, min_group_pairs, split_group)
    t = time.monotonic()
    neg_stats = {}
    if negatives > 0:
        neg_stats["train"] = mine_bm25_negatives(train, k=negatives, seed=seed)
        neg_stats["heldout"] = mine_bm25_negatives(heldout, k=negatives, seed=seed)
        say(f"negatives: {time.monotonic() - t:.1f}s")
    summary: dict[str, Any] = {
        "seed": seed,
        "heldout_fraction": heldout_fraction,
        "min_heldout": min_heldout,
        "negatives_per_pair": negatives,
        "sources_used": used,
        "sources_skipped": skipped,
        "exclusions": {"crates": excl.crates, "python_modules": len(excl.python_modules), "coq_folders": excl.coq_folders,
                       "repos": excl.repos, "reserved_repos": [f"{o}/{n}" for o, n in RESERVED_REPOS]},  # fmt: skip
        "mined": mined_counts,
        "dedup": dedup_stats,
        "train": count_pairs(train),
        "heldout": count_pairs(heldout),
        "negatives": neg_stats,
    }
    summary["wall_s"] = round(time.monotonic() - t0, 2)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_jsonl(out / "train.jsonl", train)
        write_jsonl(out / "heldout.jsonl", heldout)
        summary["wall_s"] = round(time.monotonic() - t0, 2)
        import json

        (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    else:
        summary["train_pairs"] = train
        summary["heldout_pairs"] = heldout
    return summary


def build_from_config(
    config: Path | str | None,
    out_dir: Path | str | None,
    *,
    max_per_source: int | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """:func:`build_dataset` with the sources and options of a data config file."""
    sources, opts = load_data_config(config)
    default_cap = opts.get("max_pairs_per_source")
    for s in sources:
        if s.max_pairs is None and default_cap is not None:
            s.max_pairs = int(default_cap)
    return build_dataset(
        sources,
        out_dir,
        max_per_source=max_per_source,
        seed=seed,
        negatives=int(opts.get("negatives", 3)),
        heldout_fraction=float(opts.get("heldout_fraction", 0.05)),
        min_heldout=int(opts.get("min_heldout", 50)),
        max_commits=int(opts.get("max_commits", MAX_COMMITS)),
        progress=progress,
    )
