"""Formal-methods query augmentation: phrasing templates attached to the declarations they
describe, never to random ones.

Each rule looks at a declaration's language, kind, name and code (without its doc):

* **theorem**: a Lean / Coq / Why3 / TLA+ theorem-like declaration (theorem, lemma,
  corollary, ..., an Agda proof of an equation) -> "the Lean theorem stating <name words>",
  "prove that <name words>";
* **action**: a TLA+ operator whose definition primes a variable (``x' = ...``,
  ``UNCHANGED``) -> "the TLA+ action that <name words>";
* **invariant**: a TLA+ operator named like an invariant (``TypeOK``, ``Inv*``,
  ``*Inv``, ``*Invariant``) that primes nothing -> "verify the invariant <name> holds";
* **termination**: a recursive definition (Coq ``Fixpoint`` / ``Function ... {measure}``,
  Lean ``def`` with ``termination_by`` / ``decreasing_by`` or calling itself, Why3
  ``let rec``) -> "prove that this function terminates: <name>";
* **smt-assert**: an SMT-LIB ``assert`` -> "the SMT assertion that <its comment>" (or
  "... about <its symbols>"); **smt-define**: ``define-fun`` -> "SMT function defining <name>";
* **inductive**: an inductive type (Coq ``Inductive``, Lean ``inductive`` / ``structure``)
  -> "the Coq inductive type <name words>".

One query per matching rule, the template picked by a hash of the declaration (stable
across runs).
"""

from __future__ import annotations

import hashlib
import re

from codesearch import languages as _languages
from codesearch.identifiers import identifier_words


def formal_display_name(language: str) -> str | None:
    """The display name ("TLA+") of a formal language in the registry; None for the others
    (only formal code is augmented)."""
    lang = _languages.get(language)
    return lang.display if lang is not None and lang.domain == "formal" else None


# Formal language -> display name, as the registry stands at import (kept for callers).
LANG_NAMES = {name: formal_display_name(name) for name in sorted(_languages.in_domain("formal"))}

THEOREM_KINDS = frozenset(
    {"theorem", "lemma", "corollary", "proposition", "fact", "remark", "property", "goal", "conjecture"}
)
INDUCTIVE_KINDS = {"coq": {"inductive", "coinductive", "variant"}, "lean": {"inductive", "structure"}}

# Abbreviations common in formal libraries' lemma names (only used for formal languages).
_EXPAND = {
    "app": "append", "rev": "reverse", "len": "length", "succ": "successor", "pred": "predecessor",
    "le": "less or equal", "lt": "less than", "ge": "greater or equal", "gt": "greater than",
    "eq": "equal", "neq": "not equal", "ne": "not equal", "comm": "commutative", "assoc": "associative",
    "distr": "distributive", "inj": "injective", "surj": "surjective", "refl": "reflexive",
    "sym": "symmetric", "trans": "transitive", "irrefl": "irreflexive", "antisym": "antisymmetric",
    "mul": "multiplication", "add": "addition", "sub": "subtraction", "div": "division",
    "mod": "modulo", "pos": "positive", "neg": "negative", "nil": "nil", "abs": "absolute value",
    "inv": "inverse", "sqrt": "square root", "opp": "opposite", "dec": "decidable", "iff": "iff",
    "nat": "natural number", "wf": "well founded", "cons": "cons", "nth": "nth element",
    "compat": "compatible", "mono": "monotone", "incr": "increasing", "decr": "decreasing",
}  # fmt: skip
_SIDE = {"l": "left", "r": "right"}


def humanise(name: str, formal: bool = True) -> str:
    """Name words, with formal-library abbreviations spelled out: ``app_nil_r`` ->
    "append nil right"; ``TMCommit`` -> "tm commit"."""
    short = re.split(r"::|\.", name.strip("|"))[-1] or name
    words = identifier_words(short)
    if not formal:
        return " ".join(words)
    out = []
    for i, w in enumerate(words):
        if i == len(words) - 1 and i > 0 and w in _SIDE:
            out.append(_SIDE[w])
        else:
            out.append(_EXPAND.get(w, w))
    return " ".join(out)


def _pick(options: list[str], key: str) -> str:
    h = int(hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:8], 16)
    return options[h % len(options)]


# ---------------------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------------------

_TLA_STRING = re.compile(r'"(?:\\.|[^"\\])*"')
_TLA_LINE_COMMENT = re.compile(r"\\\*.*")
_TLA_BLOCK_COMMENT = re.compile(r"\(\*.*?\*\)", re.S)
_PRIMED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*'|\)'|\]'|\bUNCHANGED\b")


def _tla_code(text: str) -> str:
    text = _TLA_BLOCK_COMMENT.sub(" ", text)
    text = _TLA_LINE_COMMENT.sub(" ", text)
    return _TLA_STRING.sub('""', text)


def _tla_definition(text: str) -> str:
    """The right-hand side of an operator definition (after ``==``)."""
    code = _tla_code(text)
    k = code.find("==")
    return code[k + 2 :] if k >= 0 else code


def is_tla_action(kind: str, text: str) -> bool:
    """A TLA+ operator whose definition primes a variable (or says UNCHANGED)."""
    return kind == "operator" and bool(_PRIMED.search(_tla_definition(text)))


_INVARIANT_NAME = re.compile(r"^(?:TypeOK|TypeOk|TypeInvariant|Inv(?:[A-Z0-9_].*)?|.*(?:Inv|Invariant|_inv|_invariant))$")


def is_tla_invariant(kind: str, name: str, text: str) -> bool:
    """A TLA+ operator named like an invariant whose definition primes nothing."""
    return kind == "operator" and bool(_INVARIANT_NAME.match(name)) and not is_tla_action(kind, text)


def _self_call(name: str, text: str) -> bool:
    short = re.split(r"::|\.", name)[-1]
    if not short or not re.fullmatch(r"[\w']+", short):
        return False
    # the body: after the first ":=" or the first pattern-matching line
    cut = [k for k in (text.find(":="), text.find("\n  |"), text.find("\n|")) if k >= 0]
    body = text[min(cut) + 1 :] if cut else ""
    # `size l`, `l.size` (dot notation on a variable) call it; `Classical.choice` does not
    for m in re.finditer(r"(?<![\w'])" + re.escape(short) + r"(?![\w'])", body):
        before = body[: m.start()]
        if before.endswith("."):
            qualifier = re.search(r"([\w']+)\.$", before)
            if qualifier is None or not qualifier.group(1)[:1].islower():
                continue
        return True
    return False


def is_recursive(language: str, kind: str, name: str, text: str) -> bool:
    """A recursive function definition whose termination is a proof obligation."""
    if language == "coq":
        return kind in ("fixpoint", "cofixpoint") or (
            kind in ("function", "definition", "equations") and bool(re.search(r"\{\s*(?:measure|wf|struct)\b", text))
        )
    if language == "lean":
        if kind not in ("def", "abbrev", "instance"):
            return False
        if re.search(r"\b(?:termination_by|decreasing_by)\b", text):
            return True
        return kind == "def" and _self_call(name, text)
    if language == "why3":
        return bool(re.search(r"\blet\s+rec\b", text)) and kind in ("function", "predicate", "let", "lemma")
    return False


_SMT_RESERVED = frozenset(
    """assert forall exists and or not ite let match true false distinct select store par as
    Int Real Bool String Array BitVec""".split()
)


def _smt_symbols(text: str) -> list[str]:
    body = re.sub(r";.*", " ", text)
    body = re.sub(r'"(?:[^"]|"")*"', " ", body)
    out: list[str] = []
    for tok in re.findall(r"\|[^|]+\||[A-Za-z_~!@$%^&*+=<>.?/-][A-Za-z0-9_~!@$%^&*+=<>.?/-]*", body):
        if tok in _SMT_RESERVED or not re.search(r"[A-Za-z]", tok) or len(tok) == 1:
            continue
        if tok.startswith((":", "bv", "#")):
            continue
        if tok not in out:
            out.append(tok)
    return out


def augment_queries(
    language: str, kind: str, name: str, code: str, doc_sentence: str | None = None, key: str = ""
) -> list[tuple[str, str]]:
    """(rule, query) for every augmentation rule that matches this declaration.

    ``code`` is the declaration's text without its doc; ``doc_sentence`` the first sentence
    of its doc, when it has one (used by the SMT assertion rule); ``key`` makes the choice
    of template stable (e.g. the path and line)."""
    lang = formal_display_name(language)
    if lang is None or not kind:
        return []
    key = f"{key}\0{language}\0{kind}\0{name}"
    out: list[tuple[str, str]] = []
    h = humanise(name) if name else ""
    plain_name = name.strip("|")
    if kind in THEOREM_KINDS and h and language != "smtlib":  # SMT-LIB commands get the smt-* rules
        word = "theorem" if kind in ("theorem", "goal") else kind
        out.append(("theorem", _pick([f"the {lang} {word} stating {h}", f"prove that {h}"], key + "t")))
    if language == "tlaplus" and h:
        if is_tla_action(kind, code):
            if plain_name == "Next":
                out.append(("action", "the TLA+ next-state action of the specification"))
            else:
                out.append(("action", _pick([f"the TLA+ action that {h}", f"the TLA+ action {h}"], key + "a")))
        elif is_tla_invariant(kind, name, code):
            out.append(("invariant", _pick([f"verify the invariant {plain_name} holds", f"the TLA+ invariant {h}"], key + "i")))
    if h and is_recursive(language, kind, name, code):
        out.append(("termination", _pick(
            [f"prove that this function terminates: {plain_name}", f"termination of the recursive function {h}"], key + "r"
        )))  # fmt: skip
    if language == "smtlib":
        if kind == "assert" and len(re.findall(r"\(\s*assert\b", code)) == 1:  # not a merged run
            if doc_sentence:
                s = doc_sentence.rstrip(".")
                out.append(("smt-assert", f"the SMT assertion that {s[:1].lower() + s[1:]}"))
            else:
                syms = _smt_symbols(code)
                if syms:
                    out.append(("smt-assert", f"the SMT assertion about {', '.join(syms[:4])}"))
        elif kind in ("define-fun", "define-fun-rec", "define-const") and h and "," not in name:
            out.append(("smt-define", _pick([f"SMT function defining {h}", f"the SMT-LIB definition of {h}"], key + "d")))
    if kind in INDUCTIVE_KINDS.get(language, ()) and h and "," not in name:
        out.append(("inductive", _pick([f"the {lang} inductive type {h}", f"{lang} inductive definition of {h}"], key + "n")))
    return out
