"""A training phase: its settings (config/phases/*.yaml) and its run, one sequence.

:func:`run_phase` is the whole of a phase, as the curriculum (``codesearch train``) and
``codesearch finetune --personal`` both run it: prepare -> train -> gate -> export -> keep or
discard. What differs between them comes in as a :class:`PhaseGate` (what the phase must beat,
how it is measured, the rule) and :class:`PhaseFiles` (where it writes).
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import yaml

if TYPE_CHECKING:
    from codesearch.trainer.train import PhaseResult

DEFAULT_DOMAIN_WEIGHTS = {"formal": 5.0, "personal": 3.0, "rust": 1.0, "general": 1.0}


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["query", "key", "value", "dense"])


@dataclass
class PhaseConfig:
    name: str  # e.g. "general", "rust", "formal", "personal"
    target_domain: str  # the domain whose held-out score decides whether the phase is kept
    adapter: str  # the LoRA adapter this phase trains (one per domain)
    # A language's own adapter (say "lean"): the phase trains on that language's pairs only,
    # is gated on that language's held-out pairs, and routing sends that language (documents
    # and queries) to the adapter; the rest of its domain keeps the domain's adapter.
    language: str | None = None
    # What the gate reads, when not the held-out pairs of the phase's language or domain: an
    # eval set of the curriculum's `eval_sets` ("eval:lean-validation"), code no pair came from,
    # or a list of them (kept only if their mean rises and none of them falls).
    gate_on: str | list[str] | None = None
    domains: list[str] = field(default_factory=list)  # pair domains to train on (default: the target)
    domain_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_DOMAIN_WEIGHTS))
    # kinds of pairs left out of training, as "language:source" (e.g. "lean:augmented": the
    # templated Lean phrasings lowered the Lean eval set; the held-out gate keeps them)
    exclude_pairs: list[str] = field(default_factory=list)
    steps: int = 300
    batch_size: int = 32
    hard_negatives: int = 1  # per pair, appended to the in-batch documents
    # Hard negatives mined by the model itself before the phase trains (the adapter it starts
    # from, pooled vectors, same language; likely false negatives dropped: candidates scoring at
    # least `model_negatives_threshold` times the positive): this many per pair, placed before
    # the data's BM25 ones. 0: the data's negatives only. Encodes every training positive once:
    # minutes on a GPU, hours on a 2-core CPU.
    model_negatives: int = 0
    model_negatives_threshold: float = 0.95
    lr: float = 2e-4  # LoRA needs larger rates than full fine-tuning (5e-6 in the original plan)
    warmup_steps: int = 20
    weight_decay: float = 0.01
    objective: str = "xtr"  # "xtr" or "maxsim"
    xtr_k: int = 256  # document tokens retrieved per query token, over the whole batch
    temperature: float = 0.05
    # Document tokens seen in training. 128 covers the signature and first lines of nearly
    # every declaration and makes a CPU step ~2x cheaper than the index's 256.
    document_max_tokens: int = 128
    full_finetune: bool = False  # train every weight instead of a LoRA adapter
    # Weight-space interpolation toward the base model once training ends (WiSE-FT, Wortsman et
    # al. 2022): the adapter's change to the base model is scaled by this factor (1: as trained,
    # 0.5: halfway back). Held-out pairs come from the training repositories and favour 1; code
    # of other repositories (the eval sets) favoured 0.5 for the formal adapter: see docs/training.md.
    interpolate: float = 1.0
    # How this phase's adapter reads code: true = camelCase identifiers as words
    # ("checkNeverMatches" -> "check Never Matches"), queries and documents alike; false = as
    # the base model was pre-trained; null = as the model's `split_identifiers` says already.
    # The adapter is used at index and query time the way it was trained.
    split_identifiers: bool | None = None
    lora: LoraSettings = field(default_factory=LoraSettings)
    checkpoint_every: int = 50
    log_every: int = 10
    eval_max_queries: int = 300  # per domain, for the gate
    # The eval curve: every `eval_every` steps (and before the first), the phase's target is
    # measured on `eval_curve_queries` of its held-out pairs (0: no curve, the gate only).
    eval_every: int = 50
    eval_curve_queries: int = 100
    seed: int = 0
    # A wall-clock budget for the training steps (a GPU machine lent for minutes): after
    # `warmup_steps` steps (at least 10) the phase measures its pace and, if `steps` would
    # overrun the budget, ends after as many steps as fit; the learning-rate schedule is
    # stretched to the new end, so the phase finishes its decay. None: no budget.
    max_train_seconds: float | None = None

    @classmethod
    def load(cls, path: str | Path) -> "PhaseConfig":
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict) or "name" not in data:
            raise ValueError(f"{path}: a phase config needs at least `name`, `target_domain` and `adapter`")
        lora = LoraSettings(**(data.pop("lora", None) or {}))
        weights = dict(DEFAULT_DOMAIN_WEIGHTS)
        weights.update(data.pop("domain_weights", None) or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{path}: unknown settings {sorted(unknown)}")
        cfg = cls(**data, lora=lora, domain_weights=weights)
        for name in ("steps", "batch_size"):
            value = getattr(cfg, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{path}: {name} must be a whole number of at least 1, got {value!r}")
        if not cfg.domains:
            cfg.domains = [cfg.target_domain]
        if cfg.language:
            from codesearch.model.routing import DOMAINS, domain_of_language, known_languages

            if cfg.language in DOMAINS:  # routing's key for rust is the domain's
                raise ValueError(f"{path}: {cfg.language} is a domain: train its adapter with target_domain, not language")
            if cfg.language not in known_languages():
                raise ValueError(f"{path}: unknown language {cfg.language!r}: one of {', '.join(sorted(known_languages()))}")
            if domain_of_language(cfg.language) != cfg.target_domain:
                raise ValueError(f"{path}: language {cfg.language} belongs to domain {domain_of_language(cfg.language)}, not {cfg.target_domain}")
        if cfg.objective not in ("xtr", "maxsim"):
            raise ValueError(f"{path}: objective must be xtr or maxsim")
        if cfg.gate_on is not None:
            names = [cfg.gate_on] if isinstance(cfg.gate_on, str) else cfg.gate_on
            if not names or not all(isinstance(n, str) and n.startswith("eval:") for n in names):
                raise ValueError(f"{path}: gate_on names eval sets of the curriculum, as eval:<set> or a list of them")
        if cfg.model_negatives < 0 or not 0.0 < cfg.model_negatives_threshold <= 1.0:
            raise ValueError(f"{path}: model_negatives must be 0 or more, model_negatives_threshold in (0, 1]")
        if cfg.max_train_seconds is not None and cfg.max_train_seconds <= 0:
            raise ValueError(f"{path}: max_train_seconds must be positive")
        if not 0.0 < cfg.interpolate <= 1.0:
            raise ValueError(f"{path}: interpolate must be in (0, 1]")
        if cfg.interpolate != 1.0 and cfg.full_finetune:
            raise ValueError(f"{path}: interpolate scales a LoRA adapter's change; it does not apply to full_finetune")
        return cfg

    @property
    def gate_keys(self) -> list[str]:
        """The rows whose mean score decides the phase: `gate_on`, else its language, else its domain."""
        if self.gate_on:
            return [self.gate_on] if isinstance(self.gate_on, str) else list(self.gate_on)
        return [self.language or self.target_domain]

    @property
    def gate_key(self) -> str:
        """The gate's rows as one label ("eval:a+eval:b" for the mean of two)."""
        return "+".join(self.gate_keys)

    @property
    def routing_key(self) -> str:
        """The routing entry the phase's adapter takes: its language, else its domain."""
        return self.language or self.target_domain

    def as_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------- a phase's run


@dataclass
class PhaseGate:
    """How a trained phase is judged (the caller's rules; :func:`run_phase` applies them)."""

    before: dict  # the metrics to beat: the model as it stands (domain or eval set -> metrics)
    measure: Callable[[], dict]  # the candidate's metrics, the encoder holding the trained adapter
    decide: Callable[[dict, dict], tuple[bool, str]]  # (before, after) -> (kept, reason)
    title: Callable[[dict, dict, bool], str]  # (before, after, kept) -> the title of curves.png
    curve: Callable[[], dict] | None = None  # a point of the eval curve during training (None: no curve)


@dataclass
class PhaseFiles:
    """Where a phase writes."""

    train: Path  # checkpoints, metrics.jsonl, eval.jsonl and curves.png (train_phase, plot_phase)
    adapter: Path | None = None  # the adapter's folder when kept (exported beside it, then moved in)
    candidate: Path | None = None  # peft's export of the trained adapter, kept or not


@dataclass
class PhaseOutcome:
    result: "PhaseResult"
    finished: bool  # False: stopped before its last step (max_steps); run it again to resume
    after: dict = field(default_factory=dict)  # the candidate's metrics (PhaseGate.measure)
    kept: bool = False
    reason: str = ""


def run_phase(
    encoder,
    pairs,
    cfg: PhaseConfig,
    files: PhaseFiles,
    gate: PhaseGate,
    *,
    init_from: str | None = None,
    max_steps: int | None = None,
    stages: dict | None = None,
) -> PhaseOutcome:
    """One phase, start to finish, on the encoder's public API:

    1. prepare: note what a rejected phase goes back to (the adapter's weights, if the encoder
       has it already, and how each space reads code), then set how this adapter reads code;
    2. train adapter ``cfg.adapter`` on ``pairs``, starting from ``init_from`` (train_phase;
       resumes from its checkpoint); a phase stopped by ``max_steps`` ends here, unfinished;
    3. gate: measure the candidate and decide (``gate``);
    4. export: the curves (``files.train/curves.png``), the candidate adapter (``files.candidate``,
       kept or not) and a kept adapter's folder (``files.adapter``);
    5. keep or discard: a kept adapter stays in the encoder; a rejected one is put back as it
       was (its weights, or no such adapter) and so is how it read code. The base model is
       active afterwards.

    ``stages`` (stage -> seconds) gets the seconds of "train", "gate" and "export". Routing, the
    model folder and reports are the caller's: it knows what a kept adapter serves.
    """
    from codesearch.timing import timed
    from codesearch.trainer.plot import plot_phase
    from codesearch.trainer.train import train_phase

    stages = {} if stages is None else stages
    # 1. Prepare.
    prior = _adapter_weights(encoder, cfg.adapter)  # None unless the encoder has it already (keep_adapters)
    reading_before = list(encoder.config.split_identifiers)
    set_reading(encoder, cfg)
    # 2. Train.
    with timed(stages, "train"):
        result = train_phase(encoder, pairs, cfg, files.train, init_from=init_from, max_steps=max_steps, evaluate=gate.curve)
    if result.steps < (result.planned or cfg.steps):
        return PhaseOutcome(result, finished=False)
    # 3. Gate.
    with timed(stages, "gate"):
        after = gate.measure()
    kept, reason = gate.decide(gate.before, after)
    # 4. Export.
    with timed(stages, "export"):
        plot_phase(files.train, gate.title(gate.before, after, kept))
        if files.candidate is not None:
            encoder.use_adapter(None)
            encoder.export_adapters(files.candidate, [cfg.adapter])
        if kept and files.adapter is not None:
            encoder.use_adapter(cfg.adapter)
            files.adapter.mkdir(parents=True, exist_ok=True)
            export = files.adapter.parent / "adapter_export"
            encoder.export_adapters(export, [cfg.adapter])
            _move_adapter(export, cfg.adapter, files.adapter)
    # 5. Keep or discard.
    if not kept:
        encoder.config.split_identifiers = reading_before
        if prior is None:
            encoder.model.delete_adapter(cfg.adapter)
            encoder.config.adapters.pop(cfg.adapter, None)
        else:
            _restore_weights(encoder, prior)
    encoder.use_adapter(None)
    return PhaseOutcome(result, finished=True, after=after, kept=kept, reason=reason)


def restore_kept_phase(encoder, cfg: PhaseConfig, adapter: Path) -> None:
    """Put a phase kept by an earlier run back into the encoder: how its adapter reads code, and
    the adapter from its folder (``files.adapter`` of that run)."""
    set_reading(encoder, cfg)
    encoder.attach_adapter(cfg.adapter, adapter)


def set_reading(encoder, cfg: PhaseConfig) -> None:
    """Apply the phase's ``split_identifiers`` setting to its adapter's space."""
    if cfg.split_identifiers is not None:
        encoder.config.set_split_identifiers(cfg.adapter, cfg.split_identifiers)


def _adapter_weights(encoder, name: str) -> dict | None:
    """A copy of adapter ``name``'s LoRA weights, or None when the encoder has no such adapter."""
    from codesearch.model.encoder import is_lora_param

    if name not in encoder.adapter_names:
        return None
    return {n: p.detach().clone() for n, p in encoder.model.named_parameters() if is_lora_param(n, name)}


def _restore_weights(encoder, saved: dict) -> None:
    params = dict(encoder.model.named_parameters())
    for n, tensor in saved.items():
        params[n].data = tensor  # dtype included: training casts the weights it trains to float32


def _move_adapter(export: Path, name: str, dest: Path) -> None:
    src = export / name if (export / name).exists() else export
    if dest.exists():
        shutil.rmtree(dest)
    shutil.move(str(src), str(dest))
    shutil.rmtree(export, ignore_errors=True)
