"""A pairs folder packed small enough to travel: ``codesearch data pack``.

``codesearch data build`` writes every pair with its positive and hard negatives as text, so a
declaration that is the negative of three pairs is written four times. A pack stores each text
once and the pairs as references to it, cuts every text to ``max_chars`` characters (at a line
end; the trainer never reads far past 256 tokens of a document) and keeps ``negatives`` hard
negatives a pair (the trainer uses ``hard_negatives``, one by default). It is xz-compressed
JSON Lines, one file per split:

    line 1           {"codesearch_pack": 1, "split": "train", "texts": N, "pairs": M, ...}
    next N lines     the texts, each a JSON string
    next M lines     the pairs: the fields of a pair from ``data build``, with ``positive``
                     and ``negatives`` replaced by ``p`` (a text's index) and ``n`` (indices)

:func:`read_split` reads a folder holding ``train.jsonl`` / ``heldout.jsonl`` or their packs
(``train.pack.xz`` / ``heldout.pack.xz``) into the pairs the trainer takes; texts are shared
between pairs in memory as on disk.
"""

from __future__ import annotations

import json
import lzma
from pathlib import Path
from typing import Iterable

from codesearch.trainer.train import read_pairs

PACK_VERSION = 1
SPLITS = ("train", "heldout")


def pack_file(folder: Path | str, split: str) -> Path:
    return Path(folder) / f"{split}.pack.xz"


def has_split(folder: Path | str, split: str) -> bool:
    """Whether ``folder`` holds ``split`` as JSON Lines or as a pack."""
    return (Path(folder) / f"{split}.jsonl").is_file() or pack_file(folder, split).is_file()


def require_splits(folder: Path | str) -> None:
    """Raise FileNotFoundError, naming the command that makes them, unless ``folder`` holds every split."""
    for split in SPLITS:
        if not has_split(folder, split):
            raise FileNotFoundError(f"{Path(folder) / (split + '.jsonl')} does not exist: build pairs first with "
                                    f"`codesearch data build --out {folder}`")


def read_split(folder: Path | str, split: str) -> list[dict]:
    """The pairs of ``split`` in ``folder``: ``SPLIT.jsonl`` if present, else ``SPLIT.pack.xz``."""
    folder = Path(folder)
    plain = folder / f"{split}.jsonl"
    if plain.is_file():
        return read_pairs(plain)
    packed = pack_file(folder, split)
    if not packed.is_file():
        raise FileNotFoundError(f"{plain} does not exist (nor {packed.name}): build pairs first with `codesearch data build --out {folder}`")
    return read_pack(packed)


def read_pack(path: Path | str) -> list[dict]:
    with lzma.open(path, "rt", encoding="utf-8") as handle:
        header = json.loads(handle.readline())
        if not isinstance(header, dict) or header.get("codesearch_pack") != PACK_VERSION:
            raise ValueError(f"{path}: not a codesearch pairs pack (version {PACK_VERSION})")
        texts = [json.loads(handle.readline()) for _ in range(int(header["texts"]))]
        pairs = []
        for n in range(int(header["pairs"])):
            line = handle.readline()
            if not line:
                raise ValueError(f"{path}: ends after {n} of {header['pairs']} pairs")
            item = json.loads(line)
            item["positive"] = texts[item.pop("p")]
            item["negatives"] = [texts[i] for i in item.pop("n", [])]
            pairs.append(item)
    return pairs


def cut_text(text: str, max_chars: int) -> str:
    """``text`` cut to at most ``max_chars`` characters, at the last line end before the cut
    when there is one in its second half."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    nl = head.rfind("\n")
    return head[:nl] if nl >= max_chars // 2 else head


def write_pack(path: Path | str, split: str, pairs: Iterable[dict], *, max_chars: int, negatives: int) -> dict:
    """Write ``pairs`` as a pack; returns its counts."""
    index: dict[str, int] = {}
    texts: list[str] = []
    rows: list[dict] = []

    def ref(text: str) -> int:
        text = cut_text(text, max_chars)
        i = index.get(text)
        if i is None:
            i = index[text] = len(texts)
            texts.append(text)
        return i

    for pair in pairs:
        row = {k: v for k, v in pair.items() if k not in ("positive", "negatives")}
        row["p"] = ref(pair["positive"])
        row["n"] = [ref(t) for t in (pair.get("negatives") or [])[:negatives]]
        rows.append(row)
    header = {"codesearch_pack": PACK_VERSION, "split": split, "texts": len(texts), "pairs": len(rows),
              "max_chars": max_chars, "negatives": negatives}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with lzma.open(tmp, "wt", encoding="utf-8", preset=9 | lzma.PRESET_EXTREME) as handle:
        handle.write(json.dumps(header) + "\n")
        for t in texts:
            handle.write(json.dumps(t, ensure_ascii=False) + "\n")
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return {"pairs": len(rows), "texts": len(texts), "bytes": path.stat().st_size}


def pack_folders(folders: list[Path | str], out: Path | str, *, max_chars: int = 1500, negatives: int = 1,
                 progress=None) -> dict:
    """Pack the pairs of ``folders`` (read in order, as the trainer's ``data:`` list) into
    ``out/train.pack.xz`` and ``out/heldout.pack.xz``, and copy their summaries' counts to
    ``out/summary.json``. Returns {split: counts}."""
    if max_chars < 64:
        raise ValueError(f"--max-chars {max_chars}: at least 64")
    if negatives < 0:
        raise ValueError(f"--negatives {negatives}: 0 or more")
    out = Path(out)
    for folder in folders:
        require_splits(folder)
    result: dict = {}
    for split in SPLITS:
        pairs = [p for folder in folders for p in read_split(folder, split)]
        result[split] = write_pack(pack_file(out, split), split, pairs, max_chars=max_chars, negatives=negatives)
        if progress:
            c = result[split]
            progress(f"{split}: {c['pairs']} pairs, {c['texts']} texts, {c['bytes'] / 1e6:.1f} MB")
    summaries = {}
    for folder in folders:
        s = Path(folder) / "summary.json"
        if s.is_file():
            data = json.loads(s.read_text())
            summaries[str(folder)] = {k: data.get(k) for k in ("train", "heldout", "sources_used", "sources_skipped", "exclusions")}
    (out / "summary.json").write_text(json.dumps({"packed_from": [str(f) for f in folders], "max_chars": max_chars,
                                                  "negatives": negatives, "packs": result, "sources": summaries}, indent=2) + "\n")
    return result
