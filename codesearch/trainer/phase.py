"""A training phase's settings, read from config/phases/*.yaml."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

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
    # eval set of the curriculum's `eval_sets` ("eval:lean-validation"), code no pair came from.
    gate_on: str | None = None
    domains: list[str] = field(default_factory=list)  # pair domains to train on (default: the target)
    domain_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_DOMAIN_WEIGHTS))
    # kinds of pairs left out of training, as "language:source" (e.g. "lean:augmented": the
    # templated Lean phrasings lowered the Lean eval set; the held-out gate keeps them)
    exclude_pairs: list[str] = field(default_factory=list)
    steps: int = 300
    batch_size: int = 32
    hard_negatives: int = 1  # per pair, appended to the in-batch documents
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
        if cfg.gate_on is not None and not cfg.gate_on.startswith("eval:"):
            raise ValueError(f"{path}: gate_on names an eval set of the curriculum, as eval:<set>")
        if not 0.0 < cfg.interpolate <= 1.0:
            raise ValueError(f"{path}: interpolate must be in (0, 1]")
        if cfg.interpolate != 1.0 and cfg.full_finetune:
            raise ValueError(f"{path}: interpolate scales a LoRA adapter's change; it does not apply to full_finetune")
        return cfg

    @property
    def gate_key(self) -> str:
        """The row whose score decides the phase: `gate_on`, else its language, else its domain."""
        return self.gate_on or self.language or self.target_domain

    @property
    def routing_key(self) -> str:
        """The routing entry the phase's adapter takes: its language, else its domain."""
        return self.language or self.target_domain

    def as_dict(self) -> dict:
        return asdict(self)
