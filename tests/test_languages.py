"""The language registry (codesearch.languages): one object per language that chunking,
routing, mining, doc reading and augmentation all read."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from codesearch import languages
from codesearch.indexer.chunking import chunk_text, language_for_path
from codesearch.indexer.chunking.spans import Span
from codesearch.languages import Language, scanner

# ---------------------------------------------------------------------------------------
# The registered languages


def test_every_extension_maps_back_to_its_language():
    seen = set()
    for lang in languages.all_languages():
        assert lang.extensions, lang.name
        for ext in lang.extensions:
            assert ext not in seen, f"{ext} claimed twice"
            seen.add(ext)
            assert language_for_path(f"src/deep/file{ext}") == lang.name
            assert language_for_path(f"FILE{ext.upper()}") == lang.name  # extensions ignore case
    assert language_for_path("notes.unknownext") == "text"
    assert language_for_path("") is None


def test_routing_and_mining_domains_come_from_the_registry():
    from codesearch.model.routing import FORMAL_LANGUAGES, KNOWN_LANGUAGES, domain_of_language
    from codesearch.trainer.pairs import domain_for

    for lang in languages.all_languages():
        assert domain_of_language(lang.name) == lang.domain
        assert domain_for(lang.name) == lang.domain
        assert lang.name in KNOWN_LANGUAGES
    assert FORMAL_LANGUAGES == languages.in_domain("formal")
    assert {"lean", "coq", "tlaplus", "smtlib", "why3", "dafny", "agda", "isabelle"} <= FORMAL_LANGUAGES
    assert languages.in_domain("rust") == {"rust"}
    assert domain_of_language("text") == domain_for("text") == "general"


def test_every_chunker_and_doc_style_resolves():
    from codesearch.trainer.doc_queries import STYLE_DEFS, style_for

    for lang in languages.all_languages():
        assert lang.chunker is not None, lang.name  # every registered language is cut at declarations
        target = lang.chunker.resolve()
        assert isinstance(target, type) if lang.chunker.takes == "grammar" else callable(target)
        if lang.doc_style is not None:
            assert style_for(lang.name) is STYLE_DEFS[lang.doc_style]
        assert lang.doc_format in ("markdown", "coqdoc", "javadoc", "rest", "isabelle", "plain")
        assert lang.display


def test_the_filter_aliases_are_the_registry_s():
    from codesearch.filters_check import LANGUAGE_ALIASES

    assert languages.aliases() == LANGUAGE_ALIASES


def test_an_extension_belongs_to_one_language():
    with pytest.raises(ValueError, match="already belongs to rust"):
        languages.register(Language("rust2", "Rust 2", (".rs",)))
    assert languages.get("rust2") is None
    assert language_for_path("a.rs") == "rust"


def test_the_registry_imports_no_chunker():
    code = (
        "import sys, codesearch.languages, codesearch.model.routing; "
        "print(sorted(m for m in sys.modules if m.startswith(('tree_sitter', 'torch', 'codesearch.indexer'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------------------------------
# A language added in one place


def toy_spans(lines: list[str]) -> list[Span]:
    """A scanner for the throw-away language: every `lemma NAME` line starts a lemma."""
    starts = [(i + 1, m.group(1)) for i, x in enumerate(lines) if (m := re.match(r"lemma (\w+)", x))]
    ends = [s for s, _ in starts[1:]] + [len(lines) + 1]
    return [Span(s, e - 1, "lemma", name) for (s, name), e in zip(starts, ends)]


@pytest.fixture
def toy():
    lang = languages.register(
        Language("toy", "ToyProver", (".toy",), filenames=("Toyfile",), chunker=scanner(__name__, "toy_spans"),
                 domain="formal", doc_style="lean", doc_format="markdown")
    )  # fmt: skip
    try:
        yield lang
    finally:
        languages.unregister("toy")


def test_one_registration_is_enough_for_a_new_language(toy):
    from codesearch.model.routing import adapter_for
    from codesearch.trainer.augment import augment_queries
    from codesearch.trainer.doc_queries import doc_query, leading_doc
    from codesearch.trainer.mining import mine_text, mining_language

    src = (
        "/-- The sum of two natural numbers is commutative in every case. -/\n"
        "lemma add_comm : a + b = b + a\n"
        "  by simp\n"
        "\n"
        "lemma mul_comm : a * b = b * a\n"
        "  by ring\n"
    )
    # chunking: detected by its extension, cut by its scanner
    assert language_for_path("proofs/Arith.TOY") == language_for_path("proofs/Toyfile") == "toy"
    chunks = chunk_text("proofs/Arith.toy", src)
    assert [(c.language, c.kind, c.name) for c in chunks] == [
        ("toy", "lemma", "add_comm"),
        ("toy", "lemma", "mul_comm"),
    ]
    # routing: its domain's adapter; a language phase and `codesearch chunks --lang` accept it
    assert adapter_for({"general": "g", "rust": "r", "formal": "f"}, "toy") == "f"
    from codesearch.model.routing import known_languages

    assert "toy" in known_languages() and "toy" in languages.structured_names()
    # doc comments: its doc style and markup
    lines = src.splitlines()
    doc = leading_doc("toy", lines, 1, 3)
    assert doc is not None and doc.marked and "commutative" in doc.text
    assert doc_query("toy", doc, "add_comm")[0] == "The sum of two natural numbers is commutative in every case."
    # augmentation: its display name, as a formal language
    queries = {q for k in "abcdefgh" for _, q in augment_queries("toy", "lemma", "add_comm", "lemma add_comm", None, k)}
    assert "the ToyProver lemma stating addition commutative" in queries
    # mining: mined, with its domain
    assert mining_language("proofs/Arith.toy") == "toy"
    pairs = mine_text("proofs/Arith.toy", src, corpus="c").pairs
    assert pairs and {p.domain for p in pairs} == {"formal"} and {p.language for p in pairs} == {"toy"}


def test_an_unregistered_language_is_text_again(toy):
    languages.unregister("toy")
    assert language_for_path("a.toy") == language_for_path("Toyfile") == "text"
    assert [c.kind for c in chunk_text("a.toy", "lemma x\n")] == ["window"]
