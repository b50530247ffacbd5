"""Why a result matched (``search --explain``): the query words, the code token each met, and
each word's share of the score.

Late interaction makes this exact rather than a guess. A result's multi-vector score is
``sum_i max_j q_i . d_j / n_q``: each query token ``i`` meets one stored document vector ``j``.
The index records which of the encoder's document tokens each stored vector stands for (the
``groups`` column: tokens whose vectors were nearly equal are stored as one,
:func:`codesearch.indexer.quant.merge_token_groups`), and the tokenizer gives every token's
characters, so the vector a query token met is a token at a line and column of the file. A
query word made of several word pieces gets their summed share and the place of its strongest
piece. In hybrid mode the full-text part of the score is reported beside it, with the query
words the declaration also contains as words, so a name match can be told from a meaning
match. The shares, the full-text part and the role prior's adjustment sum to the score.

What it costs: the stored vectors and the query's are already in memory; explaining reads each
result's group labels (one small read for all results) and tokenises each result's text.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from codesearch.identifiers import split_identifiers_with_map
from codesearch.model.encoder import punctuation_token_ids
from codesearch.model.query import SPECIAL_TOKENS


# Where a token the query met lies: in the code (a line and column of the file), in the header
# the encoder reads before the code (the file's path and the enclosing scope), or nowhere (the
# tokenizer's [CLS] / [SEP], which the shipped model keeps as vectors).
CODE, HEADER, SPECIAL = "code", "header", "special"


@dataclass(frozen=True)
class Token:
    text: str  # the token's characters in the original text ("[CLS]" for a special token)
    start: int  # character offsets in the original text; -1 for a special or prefix token
    end: int
    word: int  # index of the word this token is part of (word pieces of one word share it)
    index: int = -1  # position in the encoder's input (the token ids)


class TokenLayout:
    """The tokens an encoder keeps of a text, with their characters in the original text.

    Mirrors what :class:`codesearch.model.encoder.MultiVectorEncoder` and
    :class:`codesearch.model.query.QueryEncoder` feed the model: the prefix, identifiers split
    where the space is configured to, truncation, and the special and punctuation tokens they
    leave out.
    """

    def __init__(self, tokenizer, config):
        from tokenizers import Tokenizer

        backend = getattr(tokenizer, "backend_tokenizer", tokenizer)  # transformers' fast tokenizer, or tokenizers'
        self._tok = Tokenizer.from_str(backend.to_str())  # a copy: truncation is per-tokenizer state
        self._tok.no_padding()
        self._lock = threading.Lock()
        self.config = config
        vocab = self._tok.get_vocab(with_added_tokens=True)
        self._special = {vocab[t] for t in SPECIAL_TOKENS if t in vocab}
        self._punct = set(punctuation_token_ids(vocab).tolist()) if config.skip_punctuation else set()

    def tokens(self, text: str, *, is_query: bool, splits: bool, max_tokens: int) -> "Tokens":
        """The tokens the encoder keeps of ``text`` (as its vectors come, in order)."""
        return self.encode_many([text], is_query=is_query, splits=splits, max_tokens=max_tokens)[0]

    def encode_many(self, texts: Sequence[str], *, is_query: bool, splits: bool, max_tokens: int) -> list["Tokens"]:
        """The tokens the encoder keeps of each text, with the ids it reads (``Tokens.ids``)."""
        prefix = self.config.query_prefix if is_query else self.config.document_prefix
        bodies, inserted = [], []
        for text in texts:
            body, spaces = split_identifiers_with_map(text) if splits else (text, [])
            bodies.append(prefix + body)
            inserted.append(np.asarray(spaces, np.int64))
        with self._lock:
            self._tok.enable_truncation(max_length=max_tokens)
            encs = self._tok.encode_batch(bodies, add_special_tokens=True)
        out = []
        for text, enc, ins in zip(texts, encs, inserted):
            ids = np.asarray(enc.ids, np.int64)
            special = np.isin(ids, list(self._special)) if self._special else np.zeros(len(ids), bool)
            keep = ~special if self.config.skip_special else np.ones(len(ids), bool)
            if not is_query and self._punct:
                keep &= ~np.isin(ids, list(self._punct))
            kept = np.flatnonzero(keep) if keep.any() else np.arange(len(ids))  # (punctuation only: every token, as the encoders)
            off = np.asarray(enc.offsets, np.int64).reshape(-1, 2) - len(prefix)
            starts, ends = off[:, 0], off[:, 1]
            inside = ~special & (starts >= 0) & (ends > starts)
            if len(ins):  # back to the original text: less the inserted spaces before each offset
                starts = starts - np.searchsorted(ins, starts, side="left")
                ends = ends - np.searchsorted(ins, ends, side="left")
            starts = np.where(inside, starts, -1)
            ends = np.where(inside, ends, -1)
            words = np.array([-1 if w is None else w for w in enc.word_ids], np.int64)
            words[special] = -1
            out.append(Tokens(text, list(enc.ids), enc.tokens, kept, starts, ends, words))
        return out


class Tokens:
    """The kept tokens of one text (``tokens[i]`` is the token of the ``i``-th vector), built on
    demand from the tokenizer's arrays: a result has a few hundred, explaining reads a few."""

    def __init__(self, text, ids, pieces, kept, starts, ends, words):
        self.text, self.ids, self._pieces = text, ids, pieces
        self.kept = kept  # positions in ids of the kept tokens
        self.starts, self.ends, self.words = starts[kept], ends[kept], words[kept]
        self._all = (starts, ends, words)

    def word_span(self, i: int) -> tuple[int, int]:
        """The characters of the whole word token ``i`` is a piece of (as the tokenizer cuts
        words: ``bounds`` of ``check_bounds``, ``Suffixes`` of ``StrictSuffixes`` where the
        model splits camelCase)."""
        starts, ends, words = self._all
        w = int(self.words[i])
        if w < 0:
            return int(self.starts[i]), int(self.ends[i])
        same = (words == w) & (starts >= 0)
        return int(starts[same].min()), int(ends[same].max())

    def __len__(self) -> int:
        return len(self.kept)

    def __getitem__(self, i: int) -> Token:
        s, e = int(self.starts[i]), int(self.ends[i])
        piece = self.text[s:e] if s >= 0 else self._pieces[int(self.kept[i])]
        return Token(piece, s, e, int(self.words[i]), int(self.kept[i]))

    def __iter__(self):
        return (self[i] for i in range(len(self)))


_SPECIAL_TOKENS = ("[CLS]", "[SEP]", "<s>", "</s>")


def fold(word: str) -> str:
    """A word as the full-text index compares it: lower case, accents and the like folded."""
    return unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode().lower() or word.lower()


def explain_maxsim(
    q_vectors: np.ndarray,
    q_tokens: "Tokens | list[Token]",
    query: str,
    d_vectors: np.ndarray,
    groups: np.ndarray | None,
    d_tokens: "Tokens",
    header_len: int,
    text: str,
    start_line: int,
) -> tuple[list[dict], float]:
    """Each query word's share of the multi-vector score and the code token it met.

    ``q_vectors`` (n_q, d) and ``d_vectors`` (m, d) are what the search scored (query in the
    stored vectors' space). ``groups[k]``: the stored vector of the document's ``k``-th kept
    token (None: unknown, then no places are given). ``d_tokens`` index the encoder text
    ``header + "\\n" + text`` whose header is ``header_len`` characters long.
    """
    sims = q_vectors.astype(np.float32) @ d_vectors.astype(np.float32).T  # (n_q, m)
    best = sims.argmax(axis=1)
    shares = sims[np.arange(len(best)), best] / max(len(q_vectors), 1)
    known = groups is not None and len(groups) == len(d_tokens)
    line_starts = np.array([0] + [m.end() for m in re.finditer("\n", text)], np.int64)
    body = header_len + 1  # the code starts after the header and its newline
    # The token each stored vector is shown as: tokens stored as one vector are near-copies (the
    # same identifier repeated), so the first of them in the code, else the first at all.
    n = len(d_tokens)
    shown = np.full(len(d_vectors), n, np.int64)
    if known:
        order = np.arange(n)
        np.minimum.at(shown, groups, order)
        in_code = d_tokens.starts >= body
        first_in_code = np.full(len(d_vectors), n, np.int64)
        np.minimum.at(first_in_code, groups[in_code], order[in_code])
        shown = np.where(first_in_code < n, first_in_code, shown)

    placed: dict[int, dict] = {}  # (several query words often meet one stored vector)

    def place(j: int) -> dict:
        if j not in placed:
            placed[j] = _place(j)
        return placed[j]

    def _place(j: int) -> dict:
        if shown[j] >= n:
            return {"place": None, "line": None, "column": None, "code_token": None}
        t = d_tokens[int(shown[j])]
        if t.start < 0:
            return {"place": SPECIAL, "line": None, "column": None, "code_token": t.text}
        s, e = d_tokens.word_span(int(shown[j]))
        if t.start < body:
            return {"place": HEADER, "line": None, "column": None, "code_token": d_tokens.text[s:e]}
        s, e = s - body, e - body
        line = int(np.searchsorted(line_starts, s, side="right")) - 1
        return {"place": CODE, "line": start_line + line, "column": s - int(line_starts[line]) + 1, "code_token": text[s:e]}

    # Word pieces -> words: shares summed, the place of the strongest piece.
    words: dict[int, dict] = {}
    order: list[int] = []
    for i, t in enumerate(q_tokens):
        key = t.word if t.word >= 0 else -(i + 1)  # a special token is a "word" of its own
        w = words.get(key)
        if w is None:
            w = words[key] = {"start": t.start, "end": t.end, "text": t.text, "score": 0.0, "best": -1.0, "j": 0}
            order.append(key)
        w["score"] += float(shares[i])
        if t.start >= 0:
            w["start"] = t.start if w["start"] < 0 else min(w["start"], t.start)
            w["end"] = max(w["end"], t.end)
        if shares[i] > w["best"]:
            w["best"], w["j"] = float(shares[i]), int(best[i])
    matches = []
    for key in order:
        w = words[key]
        token = query[w["start"]:w["end"]] if w["start"] >= 0 else w["text"]
        matches.append({"query_token": token, **place(w["j"]), "score": w["score"]})
    matches.sort(key=lambda m: -m["score"])
    return matches, float(shares.sum())


def lexical_words(query_words: Sequence[str], chunk_words: Sequence[str]) -> list[str]:
    """The query's full-text words that the chunk's full-text column also holds."""
    have = {fold(w) for w in chunk_words}
    return [w for w in dict.fromkeys(query_words) if fold(w) in have]


def format_explained(result, *, color: bool, max_lines: int = 8, max_words: int = 8) -> list[str]:
    """A result's snippet with the code tokens the query met marked (bold yellow on a terminal,
    ``«token»`` otherwise), then one line of the query words, what each met and its share."""
    import textwrap

    import click

    marks: dict[int, list[tuple[int, int]]] = {}  # row -> the spans to mark
    weight: dict[int, float] = {}  # row -> the score met there
    for m in result.matches or []:
        if m.get("place") == CODE and m["line"] is not None:
            row = m["line"] - result.start_line
            marks.setdefault(row, []).append((m["column"] - 1, m["column"] - 1 + len(m["code_token"])))
            weight[row] = weight.get(row, 0.0) + m["score"]
    lines = result.text.splitlines()
    # A long declaration shows the lines where the query met most of it.
    first = 0
    if len(lines) > max_lines and weight:
        first = max(range(len(lines) - max_lines + 1),
                    key=lambda a: (sum(w for r, w in weight.items() if a <= r < a + max_lines), -a))
    # \x01 and \x02 stand for the marks while the lines are dedented, then become colour or «».
    marked = []
    for row in range(first, min(len(lines), first + max_lines)):
        line = lines[row]
        for s, e in sorted(set(marks.get(row, [])), reverse=True):
            if 0 <= s < e <= len(line):
                line = line[:s] + "\x01" + line[s:e] + "\x02" + line[e:]
        marked.append(line)
    out = textwrap.dedent("\n".join(marked)).splitlines()
    if first > 0:
        out.insert(0, f"... (from line {result.start_line + first})")
    if first + max_lines < len(lines):
        out.append("...")
    on, off = ("\x1b[1;33m", "\x1b[0m") if color else ("«", "»")
    out = [line.replace("\x01", on).replace("\x02", off) for line in out]

    parts = []
    words = [m for m in result.matches or [] if m["query_token"] not in _SPECIAL_TOKENS]
    for m in words[:max_words]:
        where = {CODE: f"{m['code_token']} L{m['line']}:{m['column']}", HEADER: f"{m['code_token']} (path)",
                 SPECIAL: m["code_token"] or "?"}.get(m.get("place"), "?")
        parts.append(f"{m['query_token']}→{where} {m['score']:+.3f}")
    if len(words) > max_words:
        parts.append(f"{len(words) - max_words} more {sum(m['score'] for m in words[max_words:]):+.3f}")
    special = [m for m in result.matches or [] if m["query_token"] in _SPECIAL_TOKENS]
    if special:  # the query's [CLS] and [SEP]: part of every score, about the same for every result
        parts.append(f"{'/'.join(m['query_token'] for m in special)} {sum(m['score'] for m in special):+.3f}")
    sections = [", ".join(parts)] if parts else []
    if result.lexical is not None:
        sections.append(f"as words: {', '.join(result.lexical['words']) or 'none'} {result.lexical['score']:+.3f}")
    if result.prior:
        sections.append(f"{result.role} prior {result.prior:+.3f}")
    why = "why: " + ("; ".join(sections) or "one vector for the query, one for the code (--method dense): no word meets a token")
    out.append(click.style(why, dim=True) if color else why)
    return out
