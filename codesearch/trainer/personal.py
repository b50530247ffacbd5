"""`codesearch finetune --personal`: a personal adapter trained on the user's indexed code.

1. Mine (query, code) pairs from the repositories this home indexes (docs, names, tests, git
   history) plus the editor's feedback, and a little general code (Python's stdlib) against
   forgetting; hold out whole files of each for the gate.
2. Train the "personal" LoRA adapter (config/phases/personal.yaml: small learning rate,
   personal pairs weighted 3x), starting from the adapter that serves most of the user's code.
3. Gate: keep it only if held-out MRR@10 on the user's own code improves, its held-out queries
   in plain words (doc comments, commit messages, the editor's queries) lose at most
   ``max_words_drop`` MRR@10, and general code loses at most ``max_general_drop`` P@1, all
   measured the way the index would use it. With too few queries in plain words to judge on,
   nothing is trained (see WORDS_SOURCES).
4. When kept: write the model (shipped model + personal adapter, routing all indexed code to
   it) to ``HOME/personal/model``, which "default" then resolves to, and bring the index up to
   date: only chunks whose vector space changed are embedded again.

Every run writes ``HOME/personal/runs/<time>/report.json`` (and the candidate adapter), kept or
not. ``remove_personal_model`` undoes it.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from codesearch.home import IndexHome
from codesearch.model.routing import domain_of_language
from codesearch.timing import device_kind, rate_for, time_left, time_line, timed

log = logging.getLogger(__name__)

PERSONAL_ADAPTER = "personal"

# Where a run's time goes (PersonalReport.stage_seconds): mine = pairs from the indexed code and
# the stdlib, train = the training steps (with the eval curve's two points), gate = the held-out
# evaluations before and after, export = the curves, the candidate adapter and the installed
# model, index = bringing the index up to date with a kept adapter. The rest is loading models.
STAGES = ("mine", "train", "gate", "export", "index")
# Training pairs per second when this home has not measured its own yet: on CPU, the 5.0 and 4.7
# pairs/s of the two runs in docs/experiments.md on this project's 2-core machine. No
# default for a GPU: its estimate names no time until a run there has measured one.
DEFAULT_TRAIN_RATE = {"cpu": 4.8}
# A run of fewer steps is mostly fixed costs (the eval curve's points): its rate is not reused.
MIN_STEPS_FOR_RATE = 20
# Held-out pairs whose query a person wrote in plain words: doc comments' first sentences, commit
# messages, and what was typed into the editor (feedback). Name and test pairs are made of the
# code's own identifiers. On Rust with its doc comments removed, an adapter trained on those alone
# raised held-out MRR@10 0.816 -> 0.892 and lowered P@1 on plain-words queries about that code
# 0.263 -> 0.197 (docs/experiments.md): the gate judges the plain-words queries on their own, and
# with fewer than MIN_WORDS of them held out nothing is trained.
WORDS_SOURCES = frozenset({"doc", "commit", "feedback"})
WORDS = "personal, plain words"  # their row in the report
MIN_WORDS = 30
HELDOUT_QUERIES = 300  # personal held-out queries the gate ranks, at most half of them plain words


def in_words(pair) -> bool:
    """Whether a pair (a dict or a :class:`codesearch.trainer.pairs.Pair`) asks in plain words."""
    return (pair.get("source") if isinstance(pair, dict) else pair.source) in WORDS_SOURCES


def personal_heldout(pairs: list[dict], max_queries: int = HELDOUT_QUERIES, seed: int = 0) -> list[dict]:
    """The personal held-out pairs the gate ranks: up to half of ``max_queries`` in plain words
    (so that they can be judged on their own), the rest a sample of all the others."""
    import random

    rng = random.Random(seed)
    words = [p for p in pairs if in_words(p)]
    others = [p for p in pairs if not in_words(p)]
    words = rng.sample(words, min(len(words), max(max_queries // 2, max_queries - len(others))))
    chosen = words + rng.sample(others, min(len(others), max_queries - len(words)))
    rng.shuffle(chosen)  # the eval curve takes the first ones
    return chosen


def personal_model_dir(home: Path) -> Path:
    """HOME/personal/model (see :class:`codesearch.home.IndexHome`)."""
    return IndexHome(home).personal_model.path


@dataclass
class TrainEstimate:
    """What training is about to do, known once the pairs are mined."""

    steps: int
    batch_size: int
    mined: int  # training pairs mined (each step samples batch_size of them)
    heldout: int
    rate: float | None  # pairs/s: this home's last run on this kind of device, else DEFAULT_TRAIN_RATE
    measured: bool

    def line(self) -> str:
        """``To train: 120 steps of 32 pairs (3,840 pairs from 5,100 mined, 300 held out for the gate),
        about 13 min at ~4.8 pairs/s (default for this machine).``"""
        pairs = self.steps * self.batch_size
        return (f"To train: {self.steps:,} steps of {self.batch_size} pairs ({pairs:,} pairs from {self.mined:,} mined, "
                f"{self.heldout:,} held out for the gate)") + time_left(pairs, self.rate, "pairs", self.measured)


@dataclass
class PersonalReport:
    kept: bool
    reason: str
    pairs: dict = field(default_factory=dict)  # train/heldout counts per domain
    before: dict = field(default_factory=dict)  # domain -> metrics
    after: dict = field(default_factory=dict)
    train_seconds: float = 0.0
    pairs_per_second: float = 0.0
    steps: int = 0
    init_from: str | None = None
    reindex: dict = field(default_factory=dict)  # chunks embedded again, seconds
    seconds: float = 0.0
    run_dir: str = ""
    device: str = "cpu"  # what trained: the rate is for this kind of device
    stage_seconds: dict = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))  # see STAGES

    def as_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "stage_seconds"}
        out["seconds_by_stage"] = {k: round(v, 2) for k, v in self.stage_seconds.items()}
        return out

    def time_line(self) -> str:
        """``Time: mine 20.1s, train 760.2s, gate 31.0s, export 1.2s, index 70.4s, other 9.0s.``"""
        return time_line(self.stage_seconds, self.seconds)

    def table(self) -> str:
        lines = ["| held-out | n | P@1 before | P@1 after | MRR@10 before | MRR@10 after |", "|---|---|---|---|---|---|"]
        for d in sorted(self.before):
            b, a = self.before[d], self.after.get(d, {})
            lines.append(f"| {d} | {b.get('n', 0)} | {b['p@1']:.3f} | {a.get('p@1', float('nan')):.3f} | "
                         f"{b['mrr@10']:.3f} | {a.get('mrr@10', float('nan')):.3f} |")
        return "\n".join(lines)


def gate_decision(before: dict, after: dict, max_general_drop: float = 0.03, max_words_drop: float = 0.02) -> tuple[bool, str]:
    """Keep the personal adapter only if it helps on the user's code, not at the cost of queries in
    plain words about it, and costs little elsewhere."""
    b, a = before.get("personal", {}).get("mrr@10", 0.0), after.get("personal", {}).get("mrr@10", 0.0)
    if a <= b:
        return False, f"personal MRR@10 did not improve ({b:.3f} -> {a:.3f})"
    words = before.get(WORDS, {}).get("n", 0)
    if words < MIN_WORDS:
        return False, _too_few_words(words)
    wb, wa = before[WORDS]["mrr@10"], after.get(WORDS, {}).get("mrr@10", 0.0)
    if wb - wa > max_words_drop:
        return False, f"MRR@10 of queries in plain words dropped {wb - wa:.3f} ({wb:.3f} -> {wa:.3f}, > {max_words_drop})"
    if "general" in before and "general" in after:
        drop = before["general"]["p@1"] - after["general"]["p@1"]
        if drop > max_general_drop:
            return False, f"general P@1 dropped {drop:.3f} (> {max_general_drop})"
    return True, f"personal MRR@10 {b:.3f} -> {a:.3f}"


def _too_few_words(n: int) -> str:
    return (f"only {n} held-out queries in plain words (doc comments, commit messages, results marked in the editor), "
            f"fewer than the {MIN_WORDS} needed to check that it does not make them worse")


WORDS_SUBSET = {WORDS: in_words}


def _personal_metrics(metrics: dict) -> dict:
    """{"personal": all the held-out pairs, WORDS: those in plain words} from evaluate_domain's result."""
    words = metrics.pop("subsets")[WORDS]
    return {"personal": metrics, WORDS: {**words, "corpus": metrics["corpus"]}}


def _feedback_pairs(home: Path) -> tuple[list[dict], list[dict]]:
    """(train, heldout) pairs from the editor's judgements: every other query is held out."""
    from codesearch.eval.feedback import FeedbackStore

    train, held = [], []
    queries, extra = FeedbackStore(home).load()
    for i, q in enumerate(queries):
        root = Path(extra.get(q.id, {}).get("root") or "/")
        for span in q.relevant:
            path = root / span.path
            try:
                lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                continue
            text = "\n".join(lines[span.start_line - 1 : span.end_line])
            if text.strip():
                pair = {"query": q.query, "positive": text, "negatives": [], "domain": "personal",
                        "language": "", "source": "feedback"}
                (held if i % 2 else train).append(pair)
    return train, held


def _dominant_domain(store) -> str:
    langs = store.values("chunks", "language")
    counts = Counter(domain_of_language(l) for l in langs)
    return counts.most_common(1)[0][0] if counts else "general"


def general_source(max_pairs: int):
    """The general code mined against forgetting: Python's standard library as the shipped data
    config lists it (its own modules only: without site-packages, whose files change with
    whatever is installed, and so would the seeded sample of files and the pairs held out)."""
    from codesearch.trainer.mining.sources import load_data_config

    spec = next(s for s in load_data_config()[0] if s.name == "python-stdlib")
    return replace(spec, name="general:python-stdlib", max_pairs=max_pairs, commits=False)


def finetune_personal(
    settings: dict,
    *,
    steps: int | None = None,
    batch_size: int | None = None,
    max_pairs: int = 20_000,
    general_pairs: int = 2_000,
    max_general_drop: float = 0.03,
    phase_config: str | Path | None = None,
    reindex: bool = True,
    say: Callable[[str], None] = lambda msg: None,
) -> PersonalReport:
    from codesearch.config import shipped_phase_config
    from codesearch.indexer.store import Store
    from codesearch.model import load_encoder
    from codesearch.model.routing import adapter_for
    from codesearch.trainer.gate import curve_point, evaluate_domain, heldout_by_domain
    from codesearch.trainer.mining.dataset import build_dataset
    from codesearch.trainer.mining.sources import personal_sources
    from codesearch.trainer.phase import PhaseConfig, PhaseFiles, PhaseGate, run_phase

    t0 = time.monotonic()
    stages = dict.fromkeys(STAGES, 0.0)
    home = Path(settings["home"])
    store = Store(home)
    roots = [r for r in store.meta().get("roots", []) if Path(r).exists()] if store.has_index() else []
    if not roots:
        raise RuntimeError(f"nothing is indexed in {home}: run `codesearch index PATH` first")
    run_dir = IndexHome(home).personal_runs / time.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)

    # 1. Pairs.
    say(f"mining pairs from {len(roots)} indexed folder(s)")
    with timed(stages, "mine"):
        sources = personal_sources(roots, max_pairs=max_pairs) + [general_source(general_pairs)]
        # Plain-words pairs are held out on their own (by file, like the others), so that a
        # repository with few doc comments still holds some out for the gate to judge on.
        data = build_dataset(sources, None, heldout_fraction=0.15, min_heldout=40, negatives=3,
                             split_group=lambda p: f"{p.domain} {in_words(p)}", min_group_pairs=2 * MIN_WORDS)
        train = [p.to_dict() for p in data["train_pairs"]]
        heldout = [p.to_dict() for p in data["heldout_pairs"]]
        fb_train, fb_held = _feedback_pairs(home)
    train += fb_train
    heldout += fb_held
    counts = {"train": dict(Counter(p["domain"] for p in train)), "heldout": dict(Counter(p["domain"] for p in heldout))}
    say(f"pairs: train {counts['train']}, held out {counts['heldout']} (feedback: {len(fb_train)} + {len(fb_held)})")
    if not any(p["domain"] == "personal" for p in train) or not any(p["domain"] == "personal" for p in heldout):
        report = PersonalReport(False, "too little of your own code to learn from (no personal pairs to train or hold out)",
                                pairs=counts, run_dir=str(run_dir), stage_seconds=stages,
                                seconds=round(time.monotonic() - t0, 1))
        _write(run_dir, report)
        return report
    held = heldout_by_domain([p for p in heldout if p["domain"] != "personal"], max_queries=HELDOUT_QUERIES)
    held["personal"] = personal_heldout([p for p in heldout if p["domain"] == "personal"])
    words = sum(in_words(p) for p in held["personal"])
    if words < MIN_WORDS:  # the gate could not keep it: say so before training, not after
        report = PersonalReport(False, _too_few_words(words) + "; nothing was trained. Mark results good or bad in your "
                                "editor (each marked query counts) or document your code, then run again",
                                pairs=counts, run_dir=str(run_dir), stage_seconds=stages, seconds=round(time.monotonic() - t0, 1))
        _write(run_dir, report)
        return report

    # 2. Train, starting from the shipped model's adapter for most of the user's code.
    encoder = load_encoder(_shipped_spec(settings), dtype="train")
    routing = dict(encoder.config.routing)
    routing.pop("personal", None)
    dominant = _dominant_domain(store)
    init_from = routing.get(dominant) or routing.get("general")
    dominant_lang = {"rust": "rust", "formal": "lean"}.get(dominant, "python")
    before_space = adapter_for(routing, dominant_lang)
    general_space = adapter_for(routing, "python")
    cfg = PhaseConfig.load(phase_config or shipped_phase_config("personal"))
    if steps is not None:
        cfg.steps = steps
        cfg.warmup_steps = min(cfg.warmup_steps, max(1, steps // 10))
    if batch_size is not None:
        cfg.batch_size = batch_size
    device = device_kind(encoder)  # (train_phase trains where the encoder runs)
    rate, measured = rate_for(_last_rate(home, device, run_dir), device, DEFAULT_TRAIN_RATE)
    say(TrainEstimate(cfg.steps, cfg.batch_size, len(train), len(heldout), rate, measured).line())
    say("measuring the current model on held-out pairs")
    with timed(stages, "gate"):
        before = _personal_metrics(evaluate_domain(encoder, held["personal"], before_space, subsets=WORDS_SUBSET))
        if held.get("general"):
            before["general"] = evaluate_domain(encoder, held["general"], general_space)

    say(f"training the personal adapter: {cfg.steps} steps of {cfg.batch_size} pairs, lr {cfg.lr}")
    # The personal adapter starts from init_from's weights, so it reads code the way that one does.
    cfg.split_identifiers = encoder.config.splits_identifiers(init_from)
    curve_pairs = held["personal"][: cfg.eval_curve_queries]

    def curve() -> dict:  # the eval curve: the user's held-out pairs with the adapter being trained
        return curve_point("personal", evaluate_domain(encoder, curve_pairs, PERSONAL_ADAPTER))

    def measure() -> dict:
        after = _personal_metrics(evaluate_domain(encoder, held["personal"], PERSONAL_ADAPTER, subsets=WORDS_SUBSET))
        if held.get("general"):
            # Once kept, every indexed chunk is encoded with the personal adapter: general code too.
            after["general"] = evaluate_domain(encoder, held["general"], PERSONAL_ADAPTER)
        return after

    gate = PhaseGate(
        before=before, measure=measure, decide=lambda b, a: gate_decision(b, a, max_general_drop), curve=curve,
        title=lambda b, a, kept: f"personal: held-out P@1 {b['personal']['p@1']:.3f} -> {a['personal']['p@1']:.3f} ({'kept' if kept else 'not kept'})",
    )
    # Kept or not, the candidate adapter is written to the run's folder.
    phase = run_phase(encoder, train, cfg, PhaseFiles(train=run_dir / "train", candidate=run_dir / "adapter_export"), gate,
                      init_from=init_from, stages=stages)
    result, after, kept, reason = phase.result, phase.after, phase.kept, phase.reason
    report = PersonalReport(
        kept, reason, pairs=counts, before=before, after=after, train_seconds=round(result.seconds, 1),
        pairs_per_second=round(result.pairs_per_second, 2), steps=result.steps, init_from=init_from, run_dir=str(run_dir),
        device=device, stage_seconds=stages,
    )
    say(("kept: " if kept else "not kept: ") + reason)

    # 3. Install and bring the index up to date.
    if kept:
        encoder.config.routing = {**routing, "personal": PERSONAL_ADAPTER}
        encoder.config.add_note(
            f"Personal adapter trained on {counts['train'].get('personal', 0)} pairs from {len(roots)} folder(s).",
            replacing="Personal adapter trained on ",
        )
        with timed(stages, "export"):
            install_model(encoder, home)
        if reindex:
            with timed(stages, "index"):
                report.reindex = reindex_home(settings, say)
    report.seconds = round(time.monotonic() - t0, 1)
    _write(run_dir, report)
    return report


def _last_rate(home: Path, device: str, current: Path) -> float | None:
    """Training pairs/s of this home's last finished run on this kind of device (its report.json),
    from runs of at least MIN_STEPS_FOR_RATE steps; None when there is none."""
    runs = IndexHome(home).personal_runs
    for run in sorted(runs.iterdir(), reverse=True) if runs.is_dir() else ():
        try:
            report = json.loads((run / "report.json").read_text())
        except (OSError, ValueError):
            continue  # this run (not finished) or one that was interrupted
        if run != current and report.get("device") == device and report.get("steps", 0) >= MIN_STEPS_FOR_RATE \
                and report.get("pairs_per_second"):
            return float(report["pairs_per_second"])
    return None


def _shipped_spec(settings: dict) -> str:
    """The model the personal adapter builds on: the configured one, or the shipped default."""
    model = str(settings.get("model") or "default")
    home_model = IndexHome.of(settings).personal_model.path
    if model in ("default", "shipped") or Path(model).expanduser().resolve() == home_model.resolve():
        return "shipped"
    return model


def install_model(encoder, home: Path) -> Path:
    """Write the personal model folder atomically (a reader sees the old one or the new one)."""
    from codesearch.model.folder import ModelFolder

    dest = IndexHome(home).personal_model.path
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    ModelFolder(tmp).save(encoder)
    old = dest.with_name(dest.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    return dest


def remove_personal_model(settings: dict, *, reindex: bool = True, say: Callable[[str], None] = lambda m: None) -> dict:
    """Go back to the shipped model: delete the personal model and re-key the index."""
    dest = IndexHome.of(settings).personal_model.path
    if not dest.exists():
        return {"removed": False}
    shutil.rmtree(dest)
    out: dict = {"removed": True}
    if reindex:
        out["reindex"] = reindex_home(settings, say)
    return out


def reindex_home(settings: dict, say: Callable[[str], None] = lambda m: None) -> dict:
    """Re-key every indexed root with the model "default" now resolves to (embeds what changed)."""
    from codesearch.config import resolve_model
    from codesearch.indexer.pipeline import Indexer
    from codesearch.indexer.store import Store
    from codesearch.model import load_index_encoder

    store = Store(Path(settings["home"]))
    roots = [r for r in store.meta().get("roots", []) if Path(r).exists()]
    # (as `codesearch index` embeds: on a CPU the torch-free 8-bit encoder, not the trainer's torch)
    encoder = load_index_encoder(resolve_model({**settings, "model": "default"}))
    say(f"updating the index of {len(roots)} folder(s) with the new model")
    summary = Indexer(store, encoder, settings).run(roots, on_estimate=lambda e: say(e.line()))
    return {"embedded": summary.embedded, "reused": summary.reused, "seconds": round(summary.seconds, 1)}


def _write(run_dir: Path, report: PersonalReport) -> None:
    (run_dir / "report.json").write_text(json.dumps(report.as_dict(), indent=2) + "\n")
