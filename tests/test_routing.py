"""Adapters per domain with routing: documents and queries meet in the same adapter's space."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from codesearch.model import MultiVectorEncoder, load_encoder
from codesearch.model.routing import adapter_for, domain_of_language, spaces_for_query


def test_router_picks_the_adapter_of_the_language_domain():
    routing = {"general": "general", "rust": "rust", "formal": "formal"}
    assert adapter_for(routing, "rust") == "rust"
    assert adapter_for(routing, "lean") == "formal" and adapter_for(routing, "tlaplus") == "formal"
    assert adapter_for(routing, "smtlib") == "formal" and adapter_for(routing, "coq") == "formal"
    assert adapter_for(routing, "python") == "general"
    # A domain with no adapter of its own falls back to general, then to the base model.
    assert adapter_for({"general": "general"}, "rust") == "general"
    assert adapter_for({}, "rust") is None
    assert adapter_for({"general": "general", "formal": None}, "coq") is None  # explicitly the base model
    # A language can leave its domain's adapter: Coq on the base model, Lean on the formal adapter.
    assert adapter_for({**routing, "coq": None}, "coq") is None and adapter_for({**routing, "coq": None}, "lean") == "formal"
    # Personal code goes to the personal adapter once there is one.
    assert adapter_for({**routing, "personal": "personal"}, "rust", personal=True) == "personal"
    assert domain_of_language("go") == "general"
    assert spaces_for_query(routing, ["rust", "lean"]) == {"rust", "formal"}
    assert spaces_for_query(routing) is None


def _perturbed(model: MultiVectorEncoder, name: str, seed: int) -> None:
    """Attach adapter ``name`` with random (non-zero) LoRA weights: a space unlike the base."""
    import torch
    from peft import LoraConfig

    model.add_adapter(name, LoraConfig(r=4, target_modules=["query", "value"], init_lora_weights=False))
    gen = torch.Generator().manual_seed(seed)
    for pname, p in model.model.named_parameters():
        if f".{name}." in pname and "lora_" in pname:
            p.data = torch.randn(p.shape, generator=gen) * 0.2
    model.use_adapter(None)


@pytest.fixture(scope="module")
def routed_model(tmp_path_factory) -> Path:
    """A model folder: base + a random 'rust' adapter, routing Rust code to it."""
    model = load_encoder("default", adapters=False)
    _perturbed(model, "rust", seed=1)
    model.config.routing = {"rust": "rust"}
    return model.save(tmp_path_factory.mktemp("routed") / "model")


def _env(home: Path, model: MultiVectorEncoder):
    from codesearch.config import load_settings
    from codesearch.indexer.pipeline import Indexer
    from codesearch.indexer.store import Store
    from codesearch.search import Searcher

    settings = load_settings(config_file=None, home=str(home))
    settings["index"]["token_codec"] = "float16"  # scores comparable to direct encoding
    settings["index"]["token_merge"] = None
    store = Store(Path(settings["home"]))
    return store, Indexer(store, model, settings), Searcher, settings


def test_rust_chunks_live_in_the_rust_space_and_queries_meet_them_there(routed_model, small_repo, tmp_path):
    model = MultiVectorEncoder.load(routed_model)
    assert model.space_for("rust") == "rust" and model.space_for("python") is None
    assert model.spaces == [None, "rust"]
    store, indexer, Searcher, settings = _env(tmp_path / "home", model)
    indexer.run([small_repo])
    rows = store.table("chunks").search().select(["language", "space", "text"]).limit(None).to_arrow().to_pylist()
    assert {r["space"] for r in rows if r["language"] == "rust"} == {"rust"}
    assert {r["space"] for r in rows if r["language"] != "rust"} == {""}

    searcher = Searcher(store, model, settings)
    query = "check if a value is within bounds"
    results = searcher.search(query, limit=50, method="multivector")
    assert {r.language for r in results} >= {"rust", "python"}
    # Each result's score is MaxSim of the query and the chunk, both encoded in the chunk's space.
    for r in results[:8]:
        space = "rust" if r.language == "rust" else None
        doc = model.encode_documents([_encoder_text(store, r)], space=space)[0][0]
        q = model.encode_queries([query], space=space)[0]
        expected = float((q @ doc.T).max(axis=1).mean())
        assert r.score == pytest.approx(expected, abs=2e-2), (r.name, r.language)
    # The Rust results would score differently in the base space: the spaces really differ.
    rust = next(r for r in results if r.language == "rust")
    doc_base = model.encode_documents([_encoder_text(store, rust)], space=None)[0][0]
    q_base = model.encode_queries([query], space=None)[0]
    assert abs(float((q_base @ doc_base.T).max(axis=1).mean()) - rust.score) > 0.02
    # A language filter searches that language's space only.
    only_rust = searcher.search(query, filters=_filters(lang=["rust"]), method="multivector")
    assert only_rust and all(r.language == "rust" for r in only_rust)


def _filters(**kw):
    from codesearch.search import Filters

    return Filters(**kw)


def _encoder_text(store, result) -> str:
    from codesearch.indexer.chunking import chunk_text

    chunks = chunk_text(result.rel_path, Path(result.path).read_text())
    return next(c.encoder_text() for c in chunks if c.start_line == result.start_line and c.end_line == result.end_line)


def test_a_new_adapter_re_embeds_only_the_chunks_routed_to_it(routed_model, small_repo, tmp_path):
    model = MultiVectorEncoder.load(routed_model)
    store, indexer, Searcher, settings = _env(tmp_path / "home", model)
    first = indexer.run([small_repo])
    n_rust = store.count_chunks("language = 'rust'")
    assert 0 < n_rust < first.total_chunks

    # A second adapter for formal code: Rust and general chunks keep their vectors.
    _perturbed(model, "formal", seed=2)
    model.config.routing = {"rust": "rust", "formal": "formal"}
    n_formal = store.count_chunks("language IN ('lean', 'tlaplus', 'smtlib')")
    assert n_formal > 0
    with pytest.raises(RuntimeError, match="another model"):
        Searcher(store, model, settings)  # says so until the index is brought up to date
    _, indexer2, _, _ = _env(tmp_path / "home", model)
    second = indexer2.run([small_repo])
    assert second.embedded == n_formal
    assert second.total_chunks == first.total_chunks
    spaces = store.table("chunks").search().select(["language", "space"]).limit(None).to_arrow().to_pylist()
    assert {r["space"] for r in spaces if r["language"] in ("lean", "tlaplus", "smtlib")} == {"formal"}
    Searcher(store, model, settings).search("counter invariant")  # the index matches the model again
    # Vectors of the replaced space were collected.
    assert store.table("vectors").count_rows() == len({r["key"] for r in store.table("chunks").search().select(["key"]).limit(None).to_arrow().to_pylist()})
    # And an unchanged model re-embeds nothing.
    assert indexer2.run([small_repo]).embedded == 0
