"""The encoder: unit token vectors, model folders that load back the same, LoRA adapters."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from codesearch.model import DEFAULT_MODEL_DIR, MultiVectorEncoder, load_encoder
from codesearch.model.encoder import packaged_base_path

CODE = "pub fn contains(&self, value: i64) -> bool {\n    self.lo <= value && value <= self.hi\n}"


def test_token_vectors_are_unit_length_and_one_per_token(encoder):
    (q,), q_pooled = encoder.encode_queries_pooled(["check if a value is within bounds"])
    (d,), d_pooled = encoder.encode_documents([CODE])
    assert q.shape[1] == d.shape[1] == encoder.dim
    n_tokens = len(encoder.tokenizer(CODE)["input_ids"])
    assert d.shape[0] == n_tokens  # nothing dropped by default (measured best, see EncoderConfig)
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-3)
    assert np.allclose(np.linalg.norm(q_pooled, axis=1), 1.0, atol=1e-3)


def test_relevant_code_scores_higher(encoder):
    from codesearch.model import maxsim

    (q,) = encoder.encode_queries(["check if a value is within bounds"])
    docs, _ = encoder.encode_documents([CODE, "def read_lines(path):\n    return open(path).read().splitlines()"])
    assert maxsim(q, docs[0]) > maxsim(q, docs[1])


def test_model_folder_round_trip_with_head_and_adapter(encoder, tmp_path):
    from peft import LoraConfig

    model = load_encoder("default")
    before = model.encode_queries(["parse an interval"])[0]
    model.add_adapter("extra", LoraConfig(r=4, target_modules=["query", "value"], init_lora_weights=False))
    with_adapter = model.encode_queries(["parse an interval"])[0]
    assert not np.allclose(before, with_adapter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.save(tmp_path / "m")
    # Saving never looks the base model up (peft would ask the Hugging Face hub: offline, a warning
    # at best, a network timeout at worst).
    assert not [w for w in caught if "config file" in str(w.message)]
    loaded = MultiVectorEncoder.load(tmp_path / "m")
    assert loaded.adapter_names == model.adapter_names and "extra" in loaded.adapter_names and loaded.dim == model.dim
    assert np.allclose(loaded.encode_queries(["parse an interval"])[0], before, atol=1e-4)
    loaded.use_adapter("extra")
    # Loaded adapters run in the base's dtype (bf16 on this CPU): equal to bf16 precision.
    assert np.allclose(loaded.encode_queries(["parse an interval"])[0], with_adapter, atol=1e-2)
    assert not np.allclose(before, with_adapter, atol=1e-2)
    assert loaded.space_fingerprint("extra") != loaded.space_fingerprint(None)  # adapter = another space
    with pytest.raises(KeyError):
        loaded.use_adapter("lean")


def test_any_local_hugging_face_folder_loads(tmp_path):
    model = load_encoder(str(packaged_base_path()))
    assert model.dim == model.hidden_size == 384 and model.head_weight is None
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_encoder(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a model folder"):
        load_encoder(str(tmp_path / "empty"))


def test_an_adapter_attached_from_a_folder_can_be_used(tmp_path):
    """A resumed curriculum re-attaches the adapters of phases it already kept."""
    from peft import LoraConfig

    model = load_encoder("default")
    model.add_adapter("extra", LoraConfig(r=4, target_modules=["query", "value"], init_lora_weights=False))
    expected = model.encode_queries(["parse an interval"])[0]
    model.model.save_pretrained(str(tmp_path / "export"), selected_adapters=["extra"])
    fresh = load_encoder("default")
    fresh.attach_adapter("extra", tmp_path / "export" / "extra")
    fresh.use_adapter("extra")
    assert np.allclose(fresh.encode_queries(["parse an interval"])[0], expected, atol=1e-2)


def test_the_base_space_of_a_model_with_adapters_is_the_plain_base(encoder):
    """Encoding with no adapter really switches every LoRA layer off, even right after an
    adapter was used."""
    plain = load_encoder("default", adapters=False)
    assert encoder.adapter_names  # the shipped model has adapters
    text = ["fn clamp(x: i32, lo: i32, hi: i32) -> i32 { x.max(lo).min(hi) }"]
    with_adapter = encoder.encode_documents(text, space=encoder.adapter_names[0])[0][0]
    base = encoder.encode_documents(text, space=None)[0][0]
    assert np.allclose(base, plain.encode_documents(text, space=None)[0][0], atol=1e-3)
    assert not np.allclose(base, with_adapter, atol=1e-2)


def test_queries_and_documents_in_a_space_match_the_adapter_and_follow_weight_changes(tmp_path, monkeypatch):
    """Queries and documents of a named space are encoded with a merged copy of its adapter
    (fast whatever the LoRA rank, no lock): it must give the vectors the adapter itself gives,
    in every space, and follow the adapter when training changes its weights in place. (In
    torch: the int8 document layers are compared with it in the test below.)"""
    import torch

    monkeypatch.setenv("CODESEARCH_DOCUMENT_RUNTIME", "torch")
    model = load_encoder("default")
    query = ["check if a value is within bounds"]
    document = ["theorem clamp_le (x lo hi : Nat) (h : lo <= hi) : clamp x lo hi <= hi := by omega"]

    def agree(space) -> float:
        merged_q = model.encode_queries_pooled(query, space=space)[0][0]
        merged_d = model.encode_documents(document, space=space)[0][0]
        with model.in_space(space):
            direct_q = model.encode_queries_pooled(query)[0][0]
            direct_d = model.encode_documents(document)[0][0]
        assert merged_d.shape == direct_d.shape
        return min(float((merged_q * direct_q).sum(axis=1).min()), float((merged_d * direct_d).sum(axis=1).min()))

    for space in [None, *model.adapter_names]:
        assert agree(space) > 0.999, space
    space = model.adapter_names[0]
    before = model.encode_queries_pooled(query, space=space)[0][0]
    before_doc = model.encode_documents(document, space=space)[0][0]
    lora_b = next(p for n, p in model.model.named_parameters() if f".{space}." in n and "lora_B" in n)
    with torch.no_grad():
        lora_b.add_(0.05)
    after = model.encode_queries_pooled(query, space=space)[0][0]
    assert not np.allclose(before, after, atol=1e-3)
    assert not np.allclose(before_doc, model.encode_documents(document, space=space)[0][0], atol=1e-3)
    assert agree(space) > 0.999


def test_split_identifiers_reads_camel_case_as_words():
    from codesearch.identifiers import split_identifiers

    assert split_identifiers("def checkNeverMatches (p : Policy)") == "def check Never Matches (p : Policy)"
    assert split_identifiers("HTTPServer::new") == "HTTP Server::new"
    assert split_identifiers("TypeOK == x \\in 1..N") == "Type OK == x \\in 1..N"
    unchanged = "theorem is_sound_of_wf : ∀ x ∈ s, x ≤ y := __init__"
    assert split_identifiers(unchanged) == unchanged


def test_a_space_that_splits_identifiers_reads_camel_case_as_words(tmp_path):
    """Splitting is per space: that space's vectors (and fingerprint, so its index is rebuilt)
    change; the base space of the same model reads text as before."""
    from peft import LoraConfig

    from codesearch.model.encoder import EncoderConfig

    plain = MultiVectorEncoder(EncoderConfig())
    split = MultiVectorEncoder(EncoderConfig(split_identifiers=["base", "tla"]))
    assert plain.space_fingerprint(None) != split.space_fingerprint(None)
    (a,) = plain.encode_documents(["Next == checkNeverMatches"])[0]
    (b,) = split.encode_documents(["Next == checkNeverMatches"])[0]
    (c,) = split.encode_documents(["Next == check never matches"])[0]
    assert a.shape[0] != b.shape[0] and np.allclose(b, c, atol=1e-3)  # read as three words

    split.config.split_identifiers = ["tla"]
    split.add_adapter("tla", LoraConfig(r=4, target_modules=["query", "value"]))  # zero update: base weights
    (base,) = split.encode_documents(["Next == checkNeverMatches"], space=None)[0]
    (tla,) = split.encode_documents(["Next == checkNeverMatches"], space="tla")[0]
    assert np.allclose(base, a, atol=1e-3) and np.allclose(tla, c, atol=1e-3)
    split.save(tmp_path / "m")
    assert MultiVectorEncoder.load(tmp_path / "m").config.split_identifiers == ["tla"]


def test_description_notes_replace_their_earlier_versions():
    from codesearch.model.encoder import EncoderConfig

    c = EncoderConfig(description="Base model (seed 0). Curriculum general; adapters kept: ['general'].")
    c.add_note("Curriculum general, rust; adapters kept: ['general', 'rust'].", replacing="Curriculum ")
    c.add_note("Curriculum general, rust; adapters kept: ['general', 'rust'].", replacing="Curriculum ")
    assert c.description == "Base model (seed 0). Curriculum general, rust; adapters kept: ['general', 'rust']."


def test_a_documents_vectors_do_not_depend_on_how_many_share_its_batch(encoder):
    """Batches are padded to a few row counts (1, 2, 4, 8, 16, 24, 32): a document encoded alone
    and among 2 to 24 others of its width gets the same vectors, bit for bit."""
    import numpy as np

    doc = "fn clamp(value: i32, low: i32, high: i32) -> i32 { value.max(low).min(high) }"
    alone_tokens, alone_pooled = encoder.encode_documents([doc], space="rust")
    for n in (3, 9, 17, 25):
        tokens, pooled = encoder.encode_documents([doc] * n, space="rust")
        assert all(np.array_equal(t, alone_tokens[0]) for t in tokens), n
        assert np.array_equal(pooled, np.repeat(alone_pooled, n, axis=0)), n


def test_long_documents_get_the_same_vectors_in_the_smaller_batches_of_the_token_limit(encoder, monkeypatch):
    """Batches of long documents are cut to DOCUMENT_BATCH_TOKENS padded tokens (fewer rows,
    less memory): 40 documents of 256 tokens get the same vectors, bit for bit, as in batches
    of 32 rows with no token limit. (The shipped model reads 128 tokens of a document, where the
    limit cuts nothing; a model that reads 256, as `model: base` and other model folders do by
    default, gets the limit.)"""
    assert MultiVectorEncoder.DOCUMENT_BATCH_TOKENS // 256 < 32  # so the limit does cut them
    monkeypatch.setattr(encoder.config, "document_max_tokens", 256)
    docs = [f"fn step_{i}(state: &mut State) -> u32 {{ " + " ".join(f"state.x{j} += {i * j};" for j in range(60)) + " }"
            for i in range(40)]
    ids = encoder.tokenizer(encoder.model_texts(docs, is_query=False), truncation=True, max_length=256)["input_ids"]
    assert min(len(x) for x in ids) == 256
    limited, limited_pooled = encoder.encode_documents(docs, space="rust")
    rows_only, rows_only_pooled = encoder.encode_documents(docs, space="rust", batch_tokens=0)
    assert all(np.array_equal(a, b) for a, b in zip(limited, rows_only))
    assert np.array_equal(limited_pooled, rows_only_pooled)


def test_the_shipped_model_reads_the_first_128_tokens_of_a_document(encoder):
    """What the adapters were trained on (docs/experiments.md, "Documents read up to 128
    tokens"): two long documents that differ only past their 128th token get the same vectors,
    and one that differs before it does not."""
    assert encoder.config.document_max_tokens == 128
    body = " ".join(f"total += weights[{i}] * values[{i}];" for i in range(12))
    head = "fn weighted_sum(weights: &[f64], values: &[f64]) -> f64 { let mut total = 0.0; "
    long_a, long_b = head + body + " audit_log(total); total }", head + body + " send_metrics(total); total }"
    assert 160 < len(encoder.tokenizer(encoder.model_texts([long_a], is_query=False))["input_ids"][0]) < 250
    early = head.replace("weighted_sum", "dot_product") + body + " audit_log(total); total }"
    (a, b, c), pooled = encoder.encode_documents([long_a, long_b, early], space="rust")
    assert a.shape[0] <= 128
    assert np.array_equal(a, b) and np.array_equal(pooled[0], pooled[1])
    assert not np.array_equal(a, c)


def _real_documents() -> list[str]:
    """Declarations-sized pieces of real Rust and Python files (the fixtures and the stdlib)."""
    import sysconfig
    from pathlib import Path

    files = sorted(Path(__file__).parent.joinpath("fixtures").rglob("*.rs"))[:6]
    files += [Path(sysconfig.get_paths()["stdlib"]) / n for n in ("bisect.py", "heapq.py", "textwrap.py")]
    docs = []
    for f in files:
        text = f.read_text(errors="replace")
        docs += [text[i : i + 700] for i in range(0, min(len(text), 4200), 700) if text[i : i + 700].strip()]
    return docs


def test_documents_in_int8_keep_the_models_vectors_and_ignore_their_batch_mates(monkeypatch):
    """On a CPU without native bfloat16, documents' weight products run in 8 bits
    (CODESEARCH_DOCUMENT_RUNTIME=int8, the default there): each token's vector stays within
    8-bit rounding of the float32 model's, and a text's vectors still do not depend on what
    else shares its batch (a resumed index equals a clean one). The torch-free encoder an index
    run uses there gives the very same vectors."""
    docs = _real_documents()
    assert len(docs) >= 30
    monkeypatch.setenv("CODESEARCH_DOCUMENT_RUNTIME", "torch")
    exact = load_encoder("default", dtype="float32")
    monkeypatch.setenv("CODESEARCH_DOCUMENT_RUNTIME", "int8")
    fast = load_encoder("default", dtype="float32")
    assert exact.document_runtime == "torch" and fast.document_runtime == "int8"
    for space in ("rust", None):
        want, want_pooled = exact.encode_documents(docs, space=space)
        got, got_pooled = fast.encode_documents(docs, space=space)
        ranked = {"exact": want, "int8": got}
        assert fast.document_runtime == "int8"  # (it did not fall back to torch)
        assert [len(t) for t in got] == [len(t) for t in want]
        cosines = np.concatenate([(a * b).sum(axis=1) for a, b in zip(got, want)])
        assert cosines.mean() > 0.995 and cosines.min() > 0.97, (space, cosines.mean(), cosines.min())
        assert (got_pooled * want_pooled).sum(axis=1).min() > 0.98
        assert not np.array_equal(got[0], want[0])  # (the 8-bit layers did run)
        alone, alone_pooled = fast.encode_documents(docs[5:6], space=space)
        assert np.array_equal(alone[0], got[5]) and np.array_equal(alone_pooled[0], got_pooled[5])
    # An index run there embeds without torch (codesearch/model/docint8.py): the same vectors bit
    # for bit, in each space.
    from codesearch.model.docint8 import Int8DocumentEncoder
    from codesearch.model.query import QueryEncoder

    light = Int8DocumentEncoder(QueryEncoder.load(DEFAULT_MODEL_DIR), workers=2, threads=1)
    for space in ("rust", "formal", "general", None):
        want, want_pooled = fast.encode_documents(docs, space=space)
        seen: list[int] = []
        got, got_pooled = light.encode_documents(docs, space=space, batch_tokens=512, progress=seen.append)
        assert all(np.array_equal(a, b) for a, b in zip(got, want)) and np.array_equal(got_pooled, want_pooled), space
        assert sum(seen) == len(docs) and len(seen) > 2  # (several batches, two at a time, each counted once)
    # The same one batch at a time, with ONNX Runtime's own threads.
    single = Int8DocumentEncoder(QueryEncoder.load(DEFAULT_MODEL_DIR), workers=1)
    got, got_pooled = single.encode_documents(docs, space="rust")
    want, want_pooled = fast.encode_documents(docs, space="rust")
    assert all(np.array_equal(a, b) for a, b in zip(got, want)) and np.array_equal(got_pooled, want_pooled)
    # Training changes an adapter's weights in place: the int8 layers follow.
    import torch

    before = fast.encode_documents(docs[5:6], space="rust")[0][0]
    lora_b = next(p for n, p in fast.model.named_parameters() if ".rust." in n and "lora_B" in n)
    with torch.no_grad():
        lora_b.add_(0.05)
    assert not np.allclose(fast.encode_documents(docs[5:6], space="rust")[0][0], before, atol=1e-2)
    # A query's best document is the same either way, on these documents.
    from codesearch.model import maxsim

    for query in ("insert an item into a sorted list", "wrap text to a given width", "pop the smallest item from a heap"):
        (q,) = exact.encode_queries([query], space=None)
        best = {k: int(np.argmax([maxsim(q, d) for d in vectors])) for k, vectors in ranked.items()}
        assert best["exact"] == best["int8"], query


def test_int8_weight_codes_keep_each_neighbouring_pair_within_a_16_bit_lane():
    """AVX2 adds two neighbouring u8 x s8 products in a saturating 16-bit lane: with activation
    codes up to 255, each pair of weight codes (rows 2k, 2k+1) must add up to at most 128 in
    magnitude for the products to be exact. Within that, the codes use nearly 8 bits."""
    from codesearch.model.ortgraph import pair_bounded_codes

    rng = np.random.default_rng(7)
    w = rng.standard_normal((385, 96)).astype(np.float32)  # (an odd count of rows: the last stands alone)
    w[10, :] = 6.0  # an outlier row
    q, scale = pair_bounded_codes(w)
    assert q.dtype == np.int8 and scale.shape == (96,)
    padded = np.abs(np.concatenate([q, np.zeros((1, 96), np.int8)]).astype(np.int64))
    assert padded.reshape(-1, 2, 96).sum(axis=1).max() <= 128
    assert np.all(np.abs(q * scale - w) <= scale / 2 + 1e-6)  # each weight within half a step
    assert np.abs(q).max(axis=0).min() > 63  # more than 7 bits' worth in every column

