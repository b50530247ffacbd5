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
import string
import threading
import unicodedata
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from codesearch.identifiers import split_identifiers_with_map

_PUNCT = set(string.punctuation)

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
        specials = ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]", "<s>", "</s>", "<pad>", "<unk>", "<mask>")
        self._special = {vocab[t] for t in specials if t in vocab}
        self._punct: set[int] = set()
        if config.skip_punctuation:
            for token, idx in vocab.items():
                core = (token[2:] if token.startswith("##") else token).lstrip("Ġ▁")
                if core and all(ch in _PUNCT for ch in core):
                    self._punct.add(idx)

    def tokens(self, text: str, *, is_query: bool, splits: bool, max_tokens: int) -> list[Token]:
        """The tokens the encoder keeps of ``text`` (as its vectors come, in order)."""
        return self.encode(text, is_query=is_query, splits=splits, max_tokens=max_tokens)[1]

    def encode(self, text: str, *, is_query: bool, splits: bool, max_tokens: int) -> tuple[list[int], list[Token]]:
        """The token ids the encoder reads of ``text``, and the tokens it keeps vectors of."""
        prefix = self.config.query_prefix if is_query else self.config.document_prefix
        body, back = split_identifiers_with_map(text) if splits else (text, None)
        with self._lock:
            self._tok.enable_truncation(max_length=max_tokens)
            enc = self._tok.encode(prefix + body, add_special_tokens=True)
        words = enc.word_ids
        out: list[Token] = []
        real: list[Token] = []
        for k, (tid, (s, e)) in enumerate(zip(enc.ids, enc.offsets)):
            special = tid in self._special
            word = -1 if words[k] is None else int(words[k])
            if special:
                token = Token(enc.tokens[k], -1, -1, -1, k)
            else:
                s, e = s - len(prefix), e - len(prefix)
                if s < 0 or e <= s:
                    token = Token(enc.tokens[k], -1, -1, word, k)  # (in the prefix)
                else:
                    if back is not None:
                        s, e = back[s], back[e - 1] + 1
                    token = Token(text[s:e], s, e, word, k)
            real.append(token)
            if special and self.config.skip_special:
                continue
            if not is_query and tid in self._punct:
                continue
            out.append(token)
        return list(enc.ids), out or real  # (a text of punctuation only keeps every token, as the encoders do)


def fold(word: str) -> str:
    """A word as the full-text index compares it: lower case, accents and the like folded."""
    return unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode().lower() or word.lower()


@dataclass
class Explained:
    matches: list[dict]  # one per query word: query_token, line, column, code_token, score, place
    multivector: float  # the multi-vector part of the score (the sum of the matches' scores)
    lexical: dict | None  # {"score": part of the score, "words": query words also matched as words}
    prior: float  # what the role prior added (0 for library code)


def explain_maxsim(
    q_vectors: np.ndarray,
    q_tokens: Sequence[Token],
    query: str,
    d_vectors: np.ndarray,
    groups: np.ndarray | None,
    d_tokens: Sequence[Token],
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
    members: dict[int, list[int]] = {}
    if groups is not None and len(groups) == len(d_tokens):
        for k, g in enumerate(groups):
            members.setdefault(int(g), []).append(k)
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    body = header_len + 1  # the code starts after the header and its newline

    def place(j: int) -> dict:
        ks = members.get(j)
        if not ks:
            return {"place": None, "line": None, "column": None, "code_token": None}
        # Tokens stored as one vector are near-copies (the same identifier repeated): the first
        # in the code, else the first at all.
        in_code = [k for k in ks if d_tokens[k].start >= body]
        k = (in_code or ks)[0]
        t = d_tokens[k]
        if t.start < 0:
            return {"place": SPECIAL, "line": None, "column": None, "code_token": t.text}
        if t.start < body:
            return {"place": HEADER, "line": None, "column": None, "code_token": t.text}
        s, e = t.start - body, t.end - body
        s, e = _widen(text, s, e)
        line = int(np.searchsorted(line_starts, s, side="right")) - 1
        return {"place": CODE, "line": start_line + line, "column": s - line_starts[line] + 1, "code_token": text[s:e]}

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


def _widen(text: str, s: int, e: int) -> tuple[int, int]:
    """A token's span grown to the whole word it is part of (``bounds`` in ``check_bounds``:
    the identifier), unless the token is punctuation."""
    if s >= e or not (text[s:e][0].isalnum() or text[s:e][0] == "_"):
        return s, e
    while s > 0 and (text[s - 1].isalnum() or text[s - 1] == "_"):
        s -= 1
    while e < len(text) and (text[e].isalnum() or text[e] == "_"):
        e += 1
    return s, e


def lexical_words(query_words: Sequence[str], chunk_words: Sequence[str]) -> list[str]:
    """The query's full-text words that the chunk's full-text column also holds."""
    have = {fold(w) for w in chunk_words}
    return [w for w in dict.fromkeys(query_words) if fold(w) in have]


def format_explained(result, *, color: bool, max_lines: int = 8, max_words: int = 8) -> list[str]:
    """A result's snippet with the code tokens the query met marked (bold yellow on a terminal,
    ``«token»`` otherwise), then one line of the query words, what each met and its share."""
    import textwrap

    import click

    marks: dict[int, list[tuple[int, int]]] = {}
    for m in result.matches or []:
        if m.get("place") == CODE and m["line"] is not None:
            row = m["line"] - result.start_line
            marks.setdefault(row, []).append((m["column"] - 1, m["column"] - 1 + len(m["code_token"])))
    lines = result.text.splitlines()
    shown = lines[:max_lines]
    # \x01 and \x02 stand for the marks while the lines are dedented, then become colour or «».
    marked = []
    for row, line in enumerate(shown):
        for s, e in sorted(set(marks.get(row, [])), reverse=True):
            if 0 <= s < e <= len(line):
                line = line[:s] + "\x01" + line[s:e] + "\x02" + line[e:]
        marked.append(line)
    out = textwrap.dedent("\n".join(marked)).splitlines()
    if len(lines) > max_lines:
        out.append("...")
    on, off = ("\x1b[1;33m", "\x1b[0m") if color else ("«", "»")
    out = [line.replace("\x01", on).replace("\x02", off) for line in out]

    parts = []
    for m in (result.matches or [])[:max_words]:
        where = {CODE: f"{m['code_token']} L{m['line']}:{m['column']}", HEADER: f"{m['code_token']} (path)",
                 SPECIAL: m["code_token"] or "?"}.get(m.get("place"), "?")
        parts.append(f"{m['query_token']}→{where} {m['score']:+.3f}")
    why = "why: " + ", ".join(parts)
    if result.lexical is not None:
        words = ", ".join(result.lexical["words"]) or "none"
        why += f"; as words: {words} {result.lexical['score']:+.3f}"
    if result.prior:
        why += f"; {result.role} prior {result.prior:+.3f}"
    out.append(click.style(why, dim=True) if color else why)
    return out
