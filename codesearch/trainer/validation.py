"""Eval-format sets measured during a curriculum: search as a user runs it, on code no pair came from.

The gate's held-out pairs come from the training repositories, so they reward an adapter for
specialising to those repositories. A curriculum config can also name eval sets
(`eval_sets:`, docs/eval-format.md, e.g. the validation sets of scripts/build_eval_sets.py):
after the base model and after each phase, each set's corpus is indexed in a scratch home with
the routing the phase would ship and searched as `codesearch eval --method multivector` does.
Their rows ("eval:<set>") sit in the report's table beside the held-out ones; a phase with
`gate_on: eval:<set>` is gated on its row instead of its held-out pairs.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EvalSetSpec:
    file: Path  # queries, docs/eval-format.md
    root: Path  # the corpus their paths are relative to

    @property
    def key(self) -> str:
        return f"eval:{self.file.stem}"

    @classmethod
    def from_dict(cls, data: dict) -> "EvalSetSpec":
        if not isinstance(data, dict) or "file" not in data or "root" not in data:
            raise ValueError(f"an eval set needs `file` and `root`: {data!r}")
        return cls(Path(data["file"]), Path(data["root"]))


def measure_eval_sets(encoder, routing: dict, sets: list[EvalSetSpec], work_dir: Path, method: str = "multivector") -> dict[str, dict]:
    """P@1, MRR@10 and Recall@5 of each set, the encoder routed by ``routing``."""
    from codesearch.config import load_settings
    from codesearch.eval import METRICS, evaluate_search, load_eval_set
    from codesearch.indexer.pipeline import Indexer
    from codesearch.indexer.store import Store
    from codesearch.search import Searcher

    saved_routing, saved_adapter = encoder.config.routing, encoder.active_adapter
    encoder.config.routing = dict(routing)
    out: dict[str, dict] = {}
    try:
        for spec in sets:
            home = work_dir / spec.file.stem
            shutil.rmtree(home, ignore_errors=True)  # a scratch index per measurement: the weights changed
            settings = load_settings(config_file=None, home=str(home))
            store = Store(home)
            root = spec.root.expanduser().absolute()
            Indexer(store, encoder, settings).run([root])
            searcher = Searcher(store, encoder, settings)
            overall = evaluate_search(load_eval_set(spec.file), searcher, root, method)["overall"]
            out[spec.key] = {"n": overall["n"], **{k: round(overall[k], 4) for k in METRICS}}
            del searcher, store
            shutil.rmtree(home, ignore_errors=True)
    finally:
        encoder.config.routing = saved_routing
        encoder.use_adapter(saved_adapter)
    return out
