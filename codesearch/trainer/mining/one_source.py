"""Mining one source: its files (the indexer's walk, less exclusions and the config's
patterns) in a seeded order until the cap, then the test and commit pairs of the files read."""

from __future__ import annotations

import os
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codesearch.indexer.chunking import Chunk
from codesearch.indexer.chunking.spans import split_lines
from codesearch.identifiers import identifier_words
from codesearch.trainer.doc_queries import leading_doc, python_doc, python_docstrings
from codesearch.trainer.mining.commits import MAX_COMMITS, commit_query, line_commits
from codesearch.trainer.mining.decls import mining_language, positive_chunk
from codesearch.trainer.mining.exclusions import Exclusions
from codesearch.trainer.mining.one_file import mine_text
from codesearch.trainer.mining.sources import SourceSpec
from codesearch.trainer.mining.testpairs import MinedTest, TargetDecl, TargetIndex, best_target, file_stem
from codesearch.trainer.pairs import Origin, Pair, domain_for

DEFAULT_MAX_PAIRS = 20_000  # per source
MAX_DECLS_PER_COMMIT = 6  # a commit touching more declarations says little about each
MAX_PAIRS_PER_COMMIT = 3
NAME_SHARE = 0.35  # at most this share of a (non-personal) source's cap are name pairs


@dataclass
class SourceResult:
    spec: SourceSpec
    pairs: list[Pair]
    stats: dict[str, Any]


def _patterns(patterns: list[str]):
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(patterns) if patterns else None


def list_files(spec: SourceSpec, exclusions: Exclusions, stats: Counter) -> list[tuple[Any, str]]:
    """(SourceFile, language) of the files of a source that may be mined, sorted."""
    from codesearch.indexer.walk import SourceFile, walk

    include = _patterns(spec.include)
    exclude = _patterns(spec.exclude)
    out = []
    for item in walk([spec.path]):
        if not isinstance(item, SourceFile):
            stats["skipped: " + item.reason] += 1
            continue
        why = exclusions.reason(item.path)
        if why is not None:
            stats["excluded: " + why] += 1
            continue
        rel_root = os.path.relpath(item.path, spec.path).replace(os.sep, "/")
        if include is not None and not include.match_file(rel_root):
            continue
        if exclude is not None and exclude.match_file(rel_root):
            stats["excluded by config"] += 1
            continue
        lang = mining_language(item.rel_path)
        if lang is None:
            continue
        out.append((item, lang))
    out.sort(key=lambda x: (str(x[0].repo), x[0].rel_path))
    return out


def mine_source(
    spec: SourceSpec,
    *,
    exclusions: Exclusions,
    max_pairs: int | None = None,
    seed: int = 0,
    max_commits: int = MAX_COMMITS,
) -> SourceResult:
    """All pairs of one source: files in a seeded random order until ``max_pairs`` is reached
    (then test and commit pairs of the files read)."""
    from codesearch.indexer.walk import SkipFile, read_text

    stats: Counter[str] = Counter()
    cap = max_pairs or spec.max_pairs or DEFAULT_MAX_PAIRS
    files = list_files(spec, exclusions, stats)
    stats["files"] = len(files)
    random.Random(f"{seed}:{spec.name}").shuffle(files)
    pairs: list[Pair] = []
    doc_skips: Counter[str] = Counter()
    targets: list[TargetDecl] = []
    tests: list[MinedTest] = []
    commit_hits: dict[str, list[tuple[int, Pair]]] = defaultdict(list)
    n_names = 0
    for f, lang in files:
        if len(pairs) >= cap:
            break
        try:
            text = read_text(f)
        except SkipFile as e:
            stats["skipped: " + e.reason] += 1
            continue
        stats["files read"] += 1
        repo = str(f.repo)
        corpus_path = f.rel_path if repo == os.path.abspath(spec.path) else os.path.relpath(
            f.path, spec.path).replace(os.sep, "/")  # fmt: skip
        mined = mine_text(
            f.rel_path, text, corpus=spec.name, language=lang, domain=spec.domain, personal=spec.personal,
            origin_path=corpus_path,
        )  # fmt: skip
        doc_skips.update(mined.skips)
        for p in mined.pairs:
            if p.source == "name" and not spec.personal:
                if n_names >= NAME_SHARE * cap:
                    continue
                n_names += 1
            pairs.append(p)
        stem = file_stem(corpus_path)
        for d, _pos in mined.decls:
            targets.append(TargetDecl(repo, corpus_path, stem, identifier_words(re.split(r"::|\.", d.name)[-1]), d, str(f.path)))
        for d, q in mined.tests:
            tests.append(MinedTest(repo, corpus_path, stem, q, q.split(), d.language))
        # the commits that wrote this file's declarations as they are now
        if spec.commits:
            changes = line_commits(Path(repo), f.rel_path, max_commits)
            stats["commits touching current files"] += len(changes)
            for ch in changes:
                q = commit_query(ch.subject)
                if q is None:
                    continue
                for d, pos in mined.decls:
                    touched = sum(
                        max(0, min(b, d.end) - max(a, d.start) + 1) for a, b in ch.ranges if a <= d.end and b >= d.start
                    )
                    if touched:
                        origin = Origin(spec.name, corpus_path, pos.start_line, d.end, d.name, d.kind)
                        dom = domain_for(d.language, spec.personal, spec.domain)
                        commit_hits[ch.sha].append(
                            (touched, Pair(q, pos.encoder_text(), [], dom, d.language, "commit", origin))
                        )
    # test pairs
    by_repo: dict[str, list[TargetDecl]] = defaultdict(list)
    for tg in targets:
        by_repo[tg.repo].append(tg)
    indexes = {repo: TargetIndex(tgs) for repo, tgs in by_repo.items()}
    texts: dict[str, str | None] = {}  # each target file read (and scanned for secrets) once, not once per test
    for t in tests:
        index = indexes.get(t.repo)
        tg = best_target(t, index.candidates(t)) if index is not None else None
        if tg is None:
            continue
        pos = _rebuild_positive(tg, texts)
        if pos is None:
            continue
        origin = Origin(spec.name, tg.path, pos.start_line, tg.decl.end, tg.decl.name, tg.decl.kind)
        dom = domain_for(tg.decl.language, spec.personal, spec.domain)
        pairs.append(Pair(t.query, pos.encoder_text(), [], dom, tg.decl.language, "test", origin))
    # commit pairs
    for sha in sorted(commit_hits):
        hits = commit_hits[sha]
        if len(hits) > MAX_DECLS_PER_COMMIT:
            stats["commits touching too many declarations"] += 1
            continue
        hits.sort(key=lambda h: -h[0])
        for _, p in hits[:MAX_PAIRS_PER_COMMIT]:
            pairs.append(p)
    stats["pairs"] = len(pairs)
    return SourceResult(spec, pairs, {**dict(stats), "doc skips": dict(doc_skips)})


def _rebuild_positive(tg: TargetDecl, texts: dict[str, str | None]) -> Chunk | None:
    """The positive of a test's target declaration (its file is read again, once for all the
    tests that target it: ``texts`` holds what was read)."""
    from codesearch.indexer.walk import SkipFile, read_text

    if tg.abs_path not in texts:
        if len(texts) >= 4096:  # bounded: a source can hold more files than memory should
            texts.clear()
        try:
            texts[tg.abs_path] = read_text(tg.abs_path)
        except SkipFile:
            texts[tg.abs_path] = None
    text = texts[tg.abs_path]
    if text is None:
        return None
    lines = split_lines(text)
    d = tg.decl
    if d.language == "python":
        doc = python_doc(lines, d.start, d.end, d.name, python_docstrings(text))
    else:
        doc = leading_doc(d.language, lines, d.start, d.end)
    return positive_chunk(d, lines, doc)
