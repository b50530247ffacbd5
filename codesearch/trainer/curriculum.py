"""The curriculum: phases run in order, each gated on held-out data, into one model folder.

For every phase (:func:`codesearch.trainer.phase.run_phase`): train its domain's adapter
(starting from the adapter that served that domain so far: "the previous best"), evaluate every
domain with the routing the phase would produce, keep the adapter only if the phase's target
domain improves (MRR@10 on held-out pairs), and record a table row. The result is a codesearch
model folder (base by reference, head, the kept adapters and a routing table domain -> adapter)
plus a report.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from codesearch.model.folder import ModelFolder
from codesearch.model.routing import DOMAINS
from codesearch.settings import reject_unknown
from codesearch.trainer.gate import curve_point, evaluate_routing, heldout_by_domain, heldout_by_language
from codesearch.trainer.phase import PhaseConfig, PhaseFiles, PhaseGate, restore_kept_phase, run_phase
from codesearch.trainer.pack import read_split
from codesearch.trainer.validation import EvalSetSpec, measure_eval_sets

log = logging.getLogger(__name__)


@dataclass
class CurriculumConfig:
    phases: list[Path]
    data: Path | list[Path]  # folder(s) with train.jsonl and heldout.jsonl (`codesearch data build`), read in order
    output: Path
    base_model: str = "default"
    gate_metric: str = "mrr@10"
    # false: train every phase's adapter afresh on the base model's head (its adapters are
    # left out). true: start from base_model's adapters and routing, to re-train some phases of
    # a trained model; a phase whose adapter exists continues from it, and a rejected phase
    # leaves it as it was.
    keep_adapters: bool = False
    # Eval-format sets (file + corpus root) measured after the base model and after each phase,
    # reported beside the held-out pairs (see trainer/validation.py); a phase's `gate_on` may
    # name one as what its gate reads.
    eval_sets: list[EvalSetSpec] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path) -> "CurriculumConfig":
        path = Path(path)
        data = yaml.safe_load(path.read_text()) or {}
        if "phases" not in data:  # a single phase file: a curriculum of one
            return cls(phases=[path], data=_folders(data.get("data", "data/pairs")), output=Path(data.get("output", "runs/" + path.stem)))
        here = path.parent
        # (a typo such as `keep_adapter:` silently trained every adapter afresh)
        reject_unknown(str(path), data, [f.name for f in fields(cls)])
        from codesearch.eval.metrics import METRICS

        if data.get("gate_metric", "mrr@10") not in METRICS:
            raise ValueError(f"{path}: gate_metric must be one of {', '.join(METRICS)}, got {data['gate_metric']!r}")

        def rel(p: str) -> Path:
            q = Path(p)
            q = q if q.is_absolute() or q.exists() else here / q
            if not q.is_file():
                raise ValueError(f"{path}: phase config {p} does not exist")
            return q

        return cls(
            phases=[rel(p) for p in data["phases"]],
            data=_folders(data.get("data", "data/pairs")),
            output=Path(data.get("output", "runs/curriculum")),
            base_model=data.get("base_model", "default"),
            gate_metric=data.get("gate_metric", "mrr@10"),
            keep_adapters=bool(data.get("keep_adapters", False)),
            eval_sets=[EvalSetSpec.from_dict(e) for e in data.get("eval_sets") or []],
        )


    @property
    def data_folders(self) -> list[Path]:
        return list(self.data) if isinstance(self.data, (list, tuple)) else [Path(self.data)]


def _folders(value) -> Path | list[Path]:
    return [Path(v) for v in value] if isinstance(value, (list, tuple)) else Path(value)


@dataclass
class CurriculumReport:
    columns: list[str] = field(default_factory=list)  # "base", then each phase
    table: dict[str, dict[str, dict]] = field(default_factory=dict)  # column -> domain -> metrics
    decisions: list[dict] = field(default_factory=list)

    def markdown(self, metric: str = "p@1") -> str:
        present = {k for c in self.columns for k in self.table[c]}
        domains = [d for d in DOMAINS if d in present] + sorted(present - set(DOMAINS))  # then languages with their own adapter
        lines = [f"| {metric} | " + " | ".join(self.columns) + " |", "|---" * (len(self.columns) + 1) + "|"]
        for d in domains:
            cells = []
            for c in self.columns:
                m = self.table[c].get(d)
                cells.append(f"{m[metric]:.3f}" if m else "-")
            lines.append(f"| {d} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def run_curriculum(cfg: CurriculumConfig, *, max_steps_per_phase: int | None = None, data_limit: int | None = None) -> CurriculumReport:
    from codesearch.model import load_encoder

    phases = [PhaseConfig.load(p) for p in cfg.phases]
    named = {e.key for e in cfg.eval_sets}
    for phase in phases:
        for key in phase.gate_keys if phase.gate_on else []:
            if key not in named:
                raise ValueError(f"phase {phase.name}: gate_on {key} is not among the curriculum's eval_sets ({', '.join(sorted(named)) or 'none'})")
    for e in cfg.eval_sets:  # before any training: a typo should not cost a phase
        e.check()
    out = cfg.output
    out.mkdir(parents=True, exist_ok=True)
    # A folder holds train.jsonl / heldout.jsonl (`codesearch data build`) or their packs (`data pack`).
    train_pairs = [p for folder in cfg.data_folders for p in read_split(folder, "train")]
    heldout_pairs = [p for folder in cfg.data_folders for p in read_split(folder, "heldout")]
    if data_limit:
        train_pairs = train_pairs[:data_limit]
    max_q = min(p.eval_max_queries for p in phases)
    heldout = heldout_by_domain(heldout_pairs, max_queries=max_q)

    # The frozen base runs in bf16 on CUDA and on CPUs with native bf16 (AVX512-BF16/AMX:
    # 4x faster per step here), else float32; the LoRA weights always train in float32.
    # Unless keep_adapters, the curriculum trains its adapters afresh on the base model's head:
    # adapters that model already has (the shipped default has some) are left out.
    encoder = load_encoder(cfg.base_model, dtype="train", adapters=cfg.keep_adapters)
    routing: dict[str, str] = dict(encoder.config.routing)
    # Languages with an adapter of their own (phases that train one, or the base model's
    # routing) are gated and reported on their own held-out pairs too.
    languages = sorted({p.language for p in phases if p.language} | {k for k in routing if k not in DOMAINS})
    heldout.update(heldout_by_language(heldout_pairs, languages, max_queries=max_q))
    # The base model's adapter folders, and the adapters this run replaces (kept phases): the
    # others are written out as they came, see _keep_original_adapters.
    original_adapters = {n: encoder.folder / sub for n, sub in encoder.config.adapters.items()} if encoder.folder else {}
    retrained: set[str] = set()
    report = CurriculumReport()
    state_file = out / "curriculum.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}

    # Metrics stored by an earlier run count only on the same held-out pairs: when those changed
    # (new sources, a rebuilt split), finished phases are measured again, not trusted.
    heldout_id = _heldout_fingerprint(heldout) + "".join(f"|{e.key}" for e in cfg.eval_sets)
    remeasure = bool(state) and state.get("heldout") != heldout_id
    if remeasure:
        log.info("the held-out pairs changed since the last run: measuring finished phases again")
        state.pop("base", None)
    state["heldout"] = heldout_id

    set_languages = {e.key: e.languages() for e in cfg.eval_sets}  # known for prepared sets only

    def measure(routes: dict, *, trained: str | None = None, before_routes: dict | None = None, before: dict | None = None) -> dict[str, dict]:
        """Every row of the report's table for one column: held-out groups, then eval sets.

        With ``trained`` (the adapter a phase trained) and the column it is compared with, a
        prepared eval set whose chunks neither meet that adapter nor change space keeps its
        figure from ``before``: the phase cannot have changed it, and indexing a set costs a
        GPU run more than its training steps."""
        sets, reused = cfg.eval_sets, {}
        if trained is not None and before is not None and before_routes is not None:
            sets = []
            for e in cfg.eval_sets:
                langs = set_languages[e.key]
                if langs is not None and e.key in before:
                    now, then = _spaces(routes, langs), _spaces(before_routes, langs)
                    if trained not in now and now == then:
                        reused[e.key] = before[e.key]
                        continue
                sets.append(e)
        measured = measure_eval_sets(encoder, routes, sets, out / "eval-sets")
        rows = {**evaluate_routing(encoder, heldout, routes)}
        for e in cfg.eval_sets:  # the config's order
            rows[e.key] = reused[e.key] if e.key in reused else measured[e.key]
        return rows

    report.columns.append("base")
    report.table["base"] = state.get("base") or measure(routing)
    state["base"] = report.table["base"]
    current = report.table["base"]
    for phase in phases:
        column = f"after {phase.name}"
        phase_dir = out / phase.name
        done = state.get("phases", {}).get(phase.name)
        if done and done.get("complete"):
            log.info("phase %s already done: %s", phase.name, "kept" if done["kept"] else "rejected")
            if done["kept"]:
                retrained.add(phase.adapter)
                restore_kept_phase(encoder, phase, phase_dir / "adapter")
                routing = done["routing"]
            if remeasure:
                done["metrics"] = measure(routing) if done["kept"] else current
                state_file.write_text(json.dumps(state, indent=2))
            report.columns.append(column)
            report.table[column] = done["metrics"]
            report.decisions.append(done["decision"])
            current = done["metrics"]
            continue
        previous = (phase.language and routing.get(phase.language)) or routing.get(phase.target_domain) or routing.get("general")
        t0 = time.monotonic()
        candidate = _candidate_routing(routing, phase)
        curve = _eval_curve(encoder, heldout.get(phase.routing_key, [])[: phase.eval_curve_queries], phase.routing_key, candidate)
        gate = _phase_gate(phase, cfg.gate_metric, current,
                           functools.partial(measure, candidate, trained=phase.adapter, before_routes=routing, before=current), curve)
        outcome = run_phase(encoder, train_pairs, phase, PhaseFiles(train=phase_dir, adapter=phase_dir / "adapter"), gate,
                            init_from=previous, max_steps=max_steps_per_phase)
        result = outcome.result
        if not outcome.finished:
            log.warning("phase %s stopped at step %d of %d: run again to resume", phase.name, result.steps, phase.steps)
            state_file.write_text(json.dumps(state, indent=2))
            return report
        metrics, kept = outcome.after, outcome.kept
        before, after = _gate_value(phase, cfg.gate_metric, current), _gate_value(phase, cfg.gate_metric, metrics)
        decision = {
            "phase": phase.name, "adapter": phase.adapter, "target": phase.gate_key, "metric": cfg.gate_metric,
            "before": before, "after": after, "kept": kept, "train_seconds": round(result.seconds, 1),
            "pairs_per_second": round(result.pairs_per_second, 2), "final_loss": round(result.final_loss, 4),
            "forgetting_general": round(metrics.get("general", {}).get("p@1", 0) - report.table["base"].get("general", {}).get("p@1", 0), 4),
            # each row the gate read, before and after (a rejected phase's figures are not in the table)
            "gate_rows": {k: [current.get(k, {}).get(cfg.gate_metric), metrics.get(k, {}).get(cfg.gate_metric)] for k in phase.gate_keys},
        }
        if kept:
            retrained.add(phase.adapter)
            routing = candidate
            current = metrics
        else:
            metrics = current
        report.columns.append(column)
        report.table[column] = metrics
        report.decisions.append(decision)
        state.setdefault("phases", {})[phase.name] = {"complete": True, "kept": kept, "routing": routing, "metrics": metrics, "decision": decision}
        state_file.write_text(json.dumps(state, indent=2))
        log.info("phase %s: %s %.4f -> %.4f: %s (%.0fs)", phase.name, cfg.gate_metric, before, after, "kept" if kept else "rejected", time.monotonic() - t0)

    encoder.config.routing = routing
    # A run that kept its base model's adapters adds its note to that model's own.
    label = "Re-trained phases" if cfg.keep_adapters else "Curriculum"
    encoder.config.add_note(
        f"{label} {', '.join(p.name for p in phases)}; adapters kept: {sorted(set(routing.values()) - {None}) or 'none'}.",
        replacing=f"{label} ",
    )
    model = ModelFolder(out / "model")
    if model.path.exists():
        shutil.rmtree(model.path)
    model.save(encoder)
    _keep_original_adapters(model, original_adapters, retrained)
    (out / "report.md").write_text(
        "# Curriculum report\n\nHeld-out pairs, exact MaxSim, routed adapters.\n\n"
        + report.markdown("p@1") + "\n\n" + report.markdown("mrr@10") + "\n\n"
        + "| phase | target | metric before | after | kept | pairs/s |\n|---|---|---|---|---|---|\n"
        + "\n".join(f"| {d['phase']} | {d['target']} | {d['before']:.3f} | {d['after']:.3f} | {'yes' if d['kept'] else 'no'} | {d['pairs_per_second']} |" for d in report.decisions)
        + "\n"
    )
    (out / "report.json").write_text(json.dumps({"columns": report.columns, "table": report.table, "decisions": report.decisions}, indent=2))
    return report


def _spaces(routing: dict, languages: set[str]) -> set:
    """The spaces (adapters; None = base) that ``routing`` gives chunks of ``languages``."""
    from codesearch.model.routing import adapter_for

    return {adapter_for(routing, lang, personal=bool(routing.get("personal"))) for lang in languages}


def _candidate_routing(routing: dict, phase: PhaseConfig) -> dict:
    """The routing the phase would ship: its adapter takes its routing key."""
    candidate = dict(routing)
    candidate[phase.routing_key] = phase.adapter
    if phase.target_domain == "general":  # the general adapter also serves domains with none of their own
        for d in DOMAINS:
            if d != "personal":  # routing "personal" sends all of a user's code to one adapter: finetune only
                candidate.setdefault(d, phase.adapter)
    return candidate


def _eval_curve(encoder, pairs: list[dict], key: str, routing: dict):
    """The phase's eval curve: its target's held-out metrics with the adapter being trained."""
    if not pairs:
        return None
    return lambda: curve_point(key, evaluate_routing(encoder, {key: pairs}, routing)[key])


def _phase_gate(phase: PhaseConfig, metric: str, current: dict, measure, curve) -> PhaseGate:
    """A curriculum phase's gate: its row (``gate_key``) must improve on the current column."""

    def decide(before: dict, after: dict) -> tuple[bool, str]:
        b, a = _gate_value(phase, metric, before), _gate_value(phase, metric, after)
        # Several sets: the mean must rise and no set may fall. A mean alone let one language's
        # gain pay for another's loss (TLA+ up, Lean and Coq down: docs/experiments.md).
        fell = [k for k in dict.fromkeys(phase.gate_keys)
                if after.get(k, {}).get(metric, 0.0) < before.get(k, {}).get(metric, 0.0)]
        reason = f"{phase.gate_key} {metric} {b:.4f} -> {a:.4f}" + (f"; fell: {', '.join(fell)}" if fell else "")
        return a > b and not fell, reason

    def title(before: dict, after: dict, kept: bool) -> str:
        gated_on = phase.gate_on or f"held-out {phase.gate_key}"  # the row the decision read
        return (f"{phase.name}: {gated_on} {metric} {_gate_value(phase, metric, before):.3f} -> "
                f"{_gate_value(phase, metric, after):.3f} ({'kept' if kept else 'rejected'})")

    return PhaseGate(before=current, measure=measure, decide=decide, title=title, curve=curve)


def _gate_value(phase: PhaseConfig, metric: str, metrics: dict) -> float:
    """The figure a phase's gate reads in a column of the report (0 where the row is missing)."""
    keys = phase.gate_keys
    return sum(metrics.get(k, {}).get(metric, 0.0) for k in keys) / len(keys)


def _keep_original_adapters(model: ModelFolder, originals: dict[str, Path], retrained: set[str]) -> None:
    """Adapters of the base model that this run did not replace (untouched, or restored after a
    rejected phase) keep their original files. In memory they ran in the base model's dtype
    (bf16 on CPUs with native bf16); saving that copy would round float32 weights."""
    for name, src in originals.items():
        dest = model.path / ModelFolder.adapter_subfolder(name)
        if name in retrained or not dest.is_dir() or not src.is_dir():
            continue
        shutil.rmtree(dest)
        shutil.copytree(src, dest)


def _heldout_fingerprint(heldout: dict) -> str:
    import hashlib

    text = json.dumps({d: [(p.get("query"), p.get("positive")) for p in pairs] for d, pairs in sorted(heldout.items())})
    return hashlib.sha256(text.encode()).hexdigest()[:16]
