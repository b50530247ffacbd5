"""Test pairs: a test ``test_parses_ranges`` -> "parses ranges", linked to the declaration it
most likely tests (name words inside the test's; same file or a file of the same stem first)."""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass

from codesearch.identifiers import identifier_words
from codesearch.trainer.mining.decls import NO_NAME_KINDS, TRIVIAL_NAMES, MinedDecl, good_name_words

_RUST_TEST_ATTR = re.compile(r"^\s*#\[\s*(?:[\w:]+::)?(?:test|quickcheck|proptest|rstest)\b")
_TEST_PREFIX = re.compile(r"^(?:tests?_?|it_|should_)", re.I)


def is_test_decl(d: MinedDecl, lines: list[str]) -> bool:
    """A test function: ``test_*`` (Python), ``#[test]`` / in ``mod tests`` (Rust),
    ``TestXxx`` in ``*_test.go`` (Go), ``@Test`` (Java)."""
    if d.kind not in ("function", "method"):
        return False
    head = lines[d.start - 1 : min(d.end, d.start + 20)]
    if d.language == "python":
        return d.name.startswith("test_") or (d.name.startswith("test") and d.name[4:5].isupper())
    if d.language == "rust":
        return any(_RUST_TEST_ATTR.match(x) for x in head) or bool(re.search(r"\bmod tests?\b", d.context))
    if d.language == "go":
        return d.name.startswith("Test") and d.path.endswith("_test.go")
    if d.language == "java":
        return any(x.strip().startswith("@Test") for x in head)
    return False


def test_query(name: str) -> str | None:
    words = identifier_words(_TEST_PREFIX.sub("", name))
    if words and words[0] in ("test", "tests"):
        words = words[1:]
    return " ".join(words) if len(words) >= 2 else None


def file_stem(path: str) -> str:
    stem = os.path.splitext(os.path.basename(path))[0].lower()
    stem = re.sub(r"^(?:test_|tests_)|(?:_test|_tests|test|tests|_spec|\.test|\.spec)$", "", stem)
    return stem or os.path.splitext(os.path.basename(path))[0].lower()


def _stem(w: str) -> str:
    for suffix in ("ing", "es", "ed", "er", "s", "e"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            return w[: -len(suffix)]
    return w


def _word_match(a: str, b: str) -> bool:
    """Same word up to an inflection: parse / parses / parsed / parsing."""
    return a == b or _stem(a) == _stem(b)


def _contains_run(hay: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return any(all(_word_match(hay[i + j], needle[j]) for j in range(n)) for i in range(len(hay) - n + 1))


@dataclass
class TargetDecl:
    repo: str
    path: str
    stem: str
    words: list[str]
    decl: MinedDecl
    abs_path: str


@dataclass
class MinedTest:
    repo: str
    path: str
    stem: str
    query: str
    words: list[str]
    language: str


class TargetIndex:
    """Non-test declarations of one repository, by the stem of their name's first word."""

    def __init__(self, targets: list[TargetDecl]):
        self.by_word: dict[str, list[TargetDecl]] = defaultdict(list)
        for tg in targets:
            if tg.words:
                self.by_word[_stem(tg.words[0])].append(tg)

    def candidates(self, t: MinedTest) -> list[TargetDecl]:
        seen: set[int] = set()
        out: list[TargetDecl] = []
        for w in {_stem(w) for w in t.words}:
            for tg in self.by_word.get(w, ()):
                if id(tg) not in seen:
                    seen.add(id(tg))
                    out.append(tg)
        return out


def best_target(t: MinedTest, targets: list[TargetDecl]) -> TargetDecl | None:
    """The declaration a test most likely tests: its name words appear (as a run, light
    stemming) in the test's; same file beats same stem beats elsewhere; ties elsewhere are
    ambiguous."""
    best: list[tuple[tuple[int, int], TargetDecl]] = []
    for tg in targets:
        if tg.decl.language != t.language or tg.decl.kind in NO_NAME_KINDS:
            continue
        if not good_name_words(tg.words and "_".join(tg.words) or "", tg.words):
            continue  # `X86_64`, `c_int`: too little to go on
        place = 2 if tg.path == t.path else 1 if tg.stem == t.stem else 0
        if len(tg.words) == 1 and (place == 0 or len(tg.words[0]) < 5 or tg.words[0] in TRIVIAL_NAMES):
            continue  # one word names a target only next to the test
        if len(tg.words) >= len(t.words) or not _contains_run(t.words, tg.words):
            continue
        best.append(((place, len(tg.words)), tg))
    if not best:
        return None
    best.sort(key=lambda x: x[0], reverse=True)
    top_score = best[0][0]
    tied = {(b.path, b.decl.start) for s, b in best if s == top_score}
    if len(tied) > 1:
        return None
    return best[0][1]

