"""The numpy query encoder every search uses: the same model as the torch encoder, without torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from codesearch.model import DEFAULT_MODEL_DIR, load_encoder, load_query_encoder
from codesearch.model.query import QueryEncoder, Unsupported

QUERIES = [
    "check if a value is within bounds",
    "checkNeverMatches in the regex builder",
    "∀ n : ℕ, n + 0 = n",
    "fn main() { println!(\"{}\", x.len()); }",
    "é à ü ß 日本語",
    "x" * 300,  # one over-long word: [UNK]
    " ".join(["word"] * 200),  # past query_max_tokens: truncated alike
]


@pytest.fixture(scope="module")
def lean():
    return QueryEncoder.load(DEFAULT_MODEL_DIR)


def test_the_shipped_model_loads_without_torch_and_has_the_index_fingerprint(encoder, lean):
    # The fingerprint is what a search checks against the index: computed from the files, it must
    # equal the torch encoder's, or every search would say "built with another model".
    assert lean.fingerprint == encoder.fingerprint
    assert lean.space_fingerprints() == encoder.space_fingerprints()
    assert lean.spaces == encoder.spaces and lean.routes() == encoder.routes() and lean.dim == encoder.dim
    code = ("import sys\nfrom codesearch.model import load_query_encoder\n"
            "q = load_query_encoder('default')\nq.encode_queries(['parse a date'], space='rust')\n"
            "print(type(q).__name__, sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["QueryEncoder", "[]"]


def test_query_vectors_match_the_torch_encoder_in_every_space(encoder, lean):
    for space in (None, "rust", "formal", "general"):
        for text in QUERIES if space is None else QUERIES[:4]:
            (a,), pa = lean.encode_queries_pooled([text], space=space)
            (b,), pb = encoder.encode_queries_pooled([text], space=space)
            assert a.shape == b.shape, text  # the same tokens (tokenizer, identifier splitting, truncation)
            assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
            # float32 arithmetic on the same bfloat16 weights, against bfloat16 arithmetic in torch
            assert (a * b).sum(axis=1).min() > 0.999, (space, text)
            assert float(pa[0] @ pb[0]) > 0.999, (space, text)


def test_a_loaded_torch_encoder_searches_with_the_same_query_vectors(encoder, lean):
    # The language server, eval and the trainer hold a torch encoder; the terminal loads the numpy
    # one from the files: both paths must give one query the very same vectors.
    twin = encoder.query_encoder()
    assert twin is encoder.query_encoder()  # built once while the weights stay the same
    for space in (None, "rust", "formal"):
        (a,), pa = twin.encode_queries_pooled([QUERIES[1]], space=space)
        (b,), pb = lean.encode_queries_pooled([QUERIES[1]], space=space)
        assert np.array_equal(a, b) and np.array_equal(pa, pb)


def test_a_saved_model_with_another_adapter_loads_the_same_both_ways(tmp_path):
    from peft import LoraConfig

    model = load_encoder("default")
    model.add_adapter("extra", LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], init_lora_weights=False))
    model.config.routing["python"] = "extra"
    folder = model.save(tmp_path / "m")
    lean = load_query_encoder(folder)
    assert isinstance(lean, QueryEncoder) and lean.fingerprint == model.fingerprint
    (a,), _ = lean.encode_queries_pooled(["parse an interval"], space="extra")
    (b,), _ = model.encode_queries_pooled(["parse an interval"], space="extra")
    (base,), _ = lean.encode_queries_pooled(["parse an interval"], space=None)
    assert (a * b).sum(axis=1).min() > 0.999
    assert (a * base).sum(axis=1).min() < 0.99  # the adapter is really applied
    # from the files and from the weights in memory: the very same vectors
    assert np.array_equal(model.query_encoder().encode_queries(["parse an interval"], space="extra")[0], a)


def test_an_adapter_it_cannot_run_falls_back_to_the_torch_encoder(tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(DEFAULT_MODEL_DIR, folder)
    cfg_file = folder / "adapters" / "rust" / "adapter_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["rank_pattern"] = {"query": cfg["r"]}  # (a peft feature the numpy merge does not implement)
    cfg_file.write_text(json.dumps(cfg))
    with pytest.raises(Unsupported, match="rank_pattern"):
        QueryEncoder.load(folder)
    assert not isinstance(load_query_encoder(folder), QueryEncoder)


def test_pickled_weights_are_refused_by_the_query_encoder_too(tmp_path):
    from codesearch.model.encoder import UnsafeWeightsError

    folder = tmp_path / "m"
    shutil.copytree(DEFAULT_MODEL_DIR, folder)
    adapter = folder / "adapters" / "rust"
    (adapter / "adapter_model.safetensors").rename(adapter / "adapter_model.bin")
    with pytest.raises(UnsafeWeightsError):
        QueryEncoder.load(folder)


def test_a_model_in_training_without_routing_searches_in_its_active_adapter(tmp_path):
    # The trainer's validation searches with the torch model it trains: no routing, one active
    # adapter. Its numpy twin must search that space and carry the same index fingerprint.
    from peft import LoraConfig

    model = load_encoder("base")
    model.add_adapter("phase", LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], init_lora_weights=False))
    twin = model.query_encoder()
    assert twin.spaces == model.spaces == ["phase"] and twin.fingerprint == model.fingerprint
    (a,), _ = twin.encode_queries_pooled(["parse an interval"])
    (b,), _ = model.encode_queries_pooled(["parse an interval"])
    assert (a * b).sum(axis=1).min() > 0.999


def test_onnx_runtime_and_numpy_give_the_same_query_vectors(lean, monkeypatch):
    # Every search encodes its query in ONNX Runtime (twice numpy's speed on a query's skinny
    # products); numpy stays the fallback. Both run the same float32 arithmetic on the same weights.
    monkeypatch.setenv("CODESEARCH_QUERY_RUNTIME", "numpy")
    plain = QueryEncoder.load(DEFAULT_MODEL_DIR)
    for spaces in (["rust", "general"], ["formal"], [None], ["rust", None, "formal"], ["general", "rust"]):
        for text in QUERIES:
            fast, slow = lean.encode_query_spaces(text, spaces), plain.encode_query_spaces(text, spaces)
            for space in spaces:
                assert fast[space][0].shape == slow[space][0].shape
                assert np.abs(fast[space][0] - slow[space][0]).max() < 1e-5, (spaces, text)
                assert np.abs(fast[space][1] - slow[space][1]).max() < 1e-5, (spaces, text)
            # one space at a time or several in one pass: the very same vectors
            for space in spaces:
                (alone,), pooled = lean.encode_queries_pooled([text], space=space)
                assert np.abs(alone - fast[space][0]).max() < 1e-6 and np.abs(pooled[0] - fast[space][1]).max() < 1e-6
    assert lean._bert.runtime.name == "onnxruntime" and plain._bert.runtime.name == "numpy"


def test_a_searcher_makes_the_query_session_when_prepared(tmp_path):
    # A language server prepares its searcher after each index update: its first search must not
    # also wait for ONNX Runtime's session (about 0.1 s).
    from codesearch.indexer.store import Store
    from codesearch.search import Searcher

    fresh = QueryEncoder.load(DEFAULT_MODEL_DIR)
    searcher = Searcher(Store(tmp_path / "home"), fresh, {})
    assert not fresh._bert.runtime._layers
    searcher.prepare()
    from codesearch.model.ortgraph import OrtLayers

    assert isinstance(fresh._bert.runtime._layers[True], OrtLayers)


def test_an_unknown_query_runtime_is_refused_with_the_valid_ones(monkeypatch):
    monkeypatch.setenv("CODESEARCH_QUERY_RUNTIME", "tensorflow")
    with pytest.raises(ValueError, match="onnxruntime, numpy"):
        QueryEncoder.load(DEFAULT_MODEL_DIR)
