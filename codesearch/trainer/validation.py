"""Eval-format sets measured during a curriculum: search as a user runs it, on code no pair came from.

The gate's held-out pairs come from the training repositories, so they reward an adapter for
specialising to those repositories. A curriculum config can also name eval sets
(`eval_sets:`, docs/eval-format.md, e.g. the validation sets of scripts/build_eval_sets.py):
after the base model and after each phase, each set's corpus is indexed in a scratch home with
the routing the phase would ship and searched as `codesearch eval --method multivector` does.
Their rows ("eval:<set>") sit in the report's table beside the held-out ones; a phase with
`gate_on: eval:<set>` is gated on its row instead of its held-out pairs.

A set may also come with its corpus cut into chunks beforehand (`chunks:`, written by
:func:`prepare_chunks`, as scripts/gpu_bundle.py does): then the set is measured without an
index, by exact MaxSim over those chunks, each encoded in the space routing gives its
language (what a GPU machine without LanceDB or the tree-sitter grammars can run). The two ways
rank the same chunks by the same score, apart from the index's token-vector compression and
its candidate search, so their figures are close but not identical: compare a set's rows only
within one way.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EvalSetSpec:
    file: Path  # queries, docs/eval-format.md
    root: Path | None = None  # the corpus their paths are relative to
    chunks: Path | None = None  # the corpus cut beforehand (prepare_chunks): exact MaxSim, no index

    @property
    def key(self) -> str:
        return f"eval:{self.file.stem}"

    @classmethod
    def from_dict(cls, data: dict) -> "EvalSetSpec":
        if not isinstance(data, dict) or "file" not in data or ("root" not in data and "chunks" not in data):
            raise ValueError(f"an eval set needs `file` and `root` (or `chunks`): {data!r}")
        return cls(Path(data["file"]), Path(data["root"]) if data.get("root") else None,
                   Path(data["chunks"]) if data.get("chunks") else None)

    def check(self) -> None:
        """Raise FileNotFoundError unless the set's files are there."""
        there = self.file.is_file() and (self.chunks.is_file() if self.chunks else bool(self.root and self.root.is_dir()))
        if not there:
            where = f"chunks {self.chunks}" if self.chunks else f"corpus {self.root}"
            raise FileNotFoundError(f"eval set {self.file} ({where}) is not there; the validation sets are built by "
                                    "`python scripts/build_eval_sets.py --sets lean-validation,coq-validation,...`")

    def languages(self) -> set[str] | None:
        """The languages of a prepared set's chunks (None: not prepared, not known without a walk)."""
        if self.chunks is None:
            return None
        return {c["language"] for c in read_chunks(self.chunks)}


def prepare_chunks(root: Path | str, out: Path | str) -> int:
    """Cut the corpus under ``root`` into chunks as the index would (walk rules, chunker) and
    write them, with the text the encoder reads, to ``out`` (xz-compressed JSON Lines: path
    relative to ``root``, start_line, end_line, language, text). Returns the chunk count."""
    import json
    import lzma

    from codesearch.indexer import walk as walker
    from codesearch.indexer.chunking import chunk_text

    root = Path(root).expanduser().absolute()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with lzma.open(out, "wt", encoding="utf-8") as handle:
        for item in walker.walk([root]):
            if isinstance(item, walker.Skipped):
                continue
            rel = Path(item.path).relative_to(root).as_posix()
            for chunk in chunk_text(walker.stored_path(item.rel_path), walker.read_text(item)):
                handle.write(json.dumps({"path": rel, "start_line": chunk.start_line, "end_line": chunk.end_line,
                                         "language": chunk.language, "text": chunk.encoder_text()}, ensure_ascii=False) + "\n")
                n += 1
    return n


def read_chunks(path: Path | str) -> list[dict]:
    import json
    import lzma

    with lzma.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def measure_prepared(encoder, spec: EvalSetSpec) -> dict:
    """P@1, MRR@10 and Recall@5 of a prepared set, by exact MaxSim over its chunks: each chunk
    encoded in the space of its language (the encoder's routing), each query in every space
    the corpus uses, and the scores of all spaces ranked together, as search does."""
    import numpy as np

    from codesearch.eval import METRICS, evaluate, load_eval_set
    from codesearch.eval.evalset import LineRange
    from codesearch.scoring import PackedDocs, maxsim_many

    chunks = read_chunks(spec.chunks)
    queries = load_eval_set(spec.file)
    by_space: dict = {}
    for i, c in enumerate(chunks):
        by_space.setdefault(encoder.space_for(c["language"]), []).append(i)
    texts = [q.query for q in queries]
    batch = 256 if str(getattr(encoder, "device", "cpu")).startswith("cuda") else 64
    scores = np.full((len(queries), len(chunks)), -np.inf, dtype=np.float32)
    for space, rows in by_space.items():
        docs, _ = encoder.encode_documents([chunks[i]["text"] for i in rows], batch_size=batch, space=space)
        qvecs = encoder.encode_queries(texts, batch_size=batch, space=space)
        cols = np.asarray(rows)
        if batch > 64:  # on the GPU: all queries against all chunks there, a few queries at a time
            scores[:, cols] = _maxsim_on_device(qvecs, docs, encoder.device)
            continue
        packed = PackedDocs(docs)
        for n, q in enumerate(qvecs):
            scores[n, cols] = maxsim_many(q, packed)
    spans = [LineRange(c["path"], c["start_line"], c["end_line"]) for c in chunks]
    top = {q.query: [spans[i] for i in np.argsort(-scores[n], kind="stable")[:10]] for n, q in enumerate(queries)}
    overall = evaluate(queries, lambda text: top[text], "/eval-set")["overall"]
    return {"n": overall["n"], **{k: round(overall[k], 4) for k in METRICS}}


def _as_a_user_loads(encoder, folder: Path) -> tuple:
    """(what indexes, what searches) for ``encoder``'s weights as `codesearch index` and `eval`
    load them. On a CPU: ``encoder`` saved to ``folder`` and loaded back, documents in 8 bits
    from float32 weights (codesearch/model/docint8.py), queries by the numpy query encoder.
    Training's model there is in bfloat16 where the CPU has it, whose documents in torch give
    other vectors. On a GPU: ``encoder`` itself, as a user's index run there uses torch."""
    if str(getattr(encoder, "device", "cpu")) != "cpu" or not hasattr(encoder, "save"):
        return encoder, encoder
    from codesearch.model import load_index_encoder

    shutil.rmtree(folder, ignore_errors=True)
    encoder.save(folder)
    indexing = load_index_encoder(folder)
    return indexing, getattr(indexing, "queries", indexing)  # (its numpy query encoder, as `eval` shares it)


def measure_eval_sets(encoder, routing: dict, sets: list[EvalSetSpec], work_dir: Path, method: str = "multivector") -> dict[str, dict]:
    """P@1, MRR@10 and Recall@5 of each set, the encoder routed by ``routing``, indexed and
    searched as a user's `codesearch eval` would (:func:`_as_a_user_loads`)."""
    from codesearch.config import load_settings
    from codesearch.eval import METRICS, evaluate_search, load_eval_set
    from codesearch.indexer.pipeline import Indexer
    from codesearch.indexer.store import Store
    from codesearch.search import Searcher

    saved_routing, saved_adapter = encoder.config.routing, encoder.active_adapter
    encoder.config.routing = dict(routing)
    out: dict[str, dict] = {}
    user = None  # (what indexes, what searches), loaded once, at the first set to be indexed
    try:
        for spec in sets:
            if spec.chunks is not None:
                out[spec.key] = measure_prepared(encoder, spec)
                continue
            if user is None:
                user = _as_a_user_loads(encoder, work_dir / "model")
            indexing, searching = user
            home = work_dir / spec.file.stem
            shutil.rmtree(home, ignore_errors=True)  # a scratch index per measurement: the weights changed
            settings = load_settings(config_file=None, home=str(home))
            store = Store(home)
            root = spec.root.expanduser().absolute()
            Indexer(store, indexing, settings).run([root])
            searcher = Searcher(store, searching, settings)
            overall = evaluate_search(load_eval_set(spec.file), searcher, root, method)["overall"]
            out[spec.key] = {"n": overall["n"], **{k: round(overall[k], 4) for k in METRICS}}
            del searcher, store
            shutil.rmtree(home, ignore_errors=True)
    finally:
        del user
        shutil.rmtree(work_dir / "model", ignore_errors=True)
        encoder.config.routing = saved_routing
        encoder.use_adapter(saved_adapter)
    return out


def _maxsim_on_device(queries: list, docs: list, device):
    """MaxSim of every query against every document, (queries, documents), computed on ``device``
    in bfloat16 (ranks as :func:`codesearch.scoring.maxsim_many` does, up to rounding)."""
    import numpy as np
    import torch

    from codesearch.scoring import maxsim_scores

    def padded(mats):
        width = max(len(m) for m in mats)
        out = np.zeros((len(mats), width, mats[0].shape[1]), dtype=np.float32)
        mask = np.zeros((len(mats), width), dtype=bool)
        for i, m in enumerate(mats):
            out[i, : len(m)], mask[i, : len(m)] = m, True
        return torch.from_numpy(out).to(device, torch.bfloat16), torch.from_numpy(mask).to(device)

    d, d_mask = padded(docs)
    q, q_mask = padded(queries)
    rows = []
    with torch.no_grad():
        for i in range(0, len(queries), 8):
            rows.append(maxsim_scores(q[i : i + 8], q_mask[i : i + 8], d, d_mask).float().cpu())
    return torch.cat(rows).numpy()
