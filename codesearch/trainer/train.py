"""A phase's training step: contrastive multi-vector training of a LoRA adapter (or the full model).
The whole phase (prepare, train, gate, export, keep or discard) is
:func:`codesearch.trainer.phase.run_phase`.

Runs on CPU (small configs), on CUDA with bf16 autocast when available, and on several GPUs or
machines through accelerate (`accelerate launch -m codesearch.cli train ...` or torchrun):
the loop is written against `accelerate.Accelerator`, so no code changes are needed.
Resumable: a checkpoint (adapter weights, optimizer, scheduler, step, RNG state) is written
every `checkpoint_every` steps and picked up again by the next run of the same phase.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from codesearch.model.encoder import is_lora_param
from codesearch.scoring import maxsim_scores, xtr_scores
from codesearch.trainer.loss import contrastive_loss
from codesearch.trainer.phase import PhaseConfig

log = logging.getLogger(__name__)


def read_pairs(path: str | Path) -> list[dict]:
    """Pairs written by `codesearch data build` (JSON Lines: query, positive, negatives, domain, ...)."""
    pairs = []
    with open(path, encoding="utf-8") as handle:
        for n, line in enumerate(handle, 1):
            if not line.strip():
                continue
            item = json.loads(line)
            if not item.get("query") or not item.get("positive") or not item.get("domain"):
                raise ValueError(f"{path}:{n}: a pair needs query, positive and domain")
            pairs.append(item)
    return pairs


class DomainSampler:
    """Draws pairs so that a pair of domain d is `weight[d]` times as likely as a weight-1 pair.

    The weighting is applied by sampling (with replacement across epochs), not by copying
    data: a small formal corpus is seen 5x as often as the same number of general pairs.
    """

    def __init__(self, pairs: Sequence[dict], weights: dict[str, float], seed: int = 0):
        self.by_domain: dict[str, list[dict]] = {}
        for p in pairs:
            self.by_domain.setdefault(p["domain"], []).append(p)
        domains = sorted(self.by_domain)
        mass = np.array([weights.get(d, 1.0) * len(self.by_domain[d]) for d in domains], dtype=np.float64)
        if mass.sum() <= 0:
            raise ValueError("no training pairs with a positive weight")
        self.domains = domains
        self.probabilities = mass / mass.sum()
        self.rng = np.random.default_rng(seed)
        self._orders = {d: [] for d in domains}

    def sample(self, n: int) -> list[dict]:
        picks = self.rng.choice(len(self.domains), size=n, p=self.probabilities)
        batch = []
        for i in picks:
            d = self.domains[i]
            if not self._orders[d]:
                self._orders[d] = list(self.rng.permutation(len(self.by_domain[d])))
            batch.append(self.by_domain[d][self._orders[d].pop()])
        return batch

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "orders": {d: [int(i) for i in o] for d, o in self._orders.items()}}

    def restore(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self._orders = {d: list(o) for d, o in state["orders"].items()}


@dataclass
class PhaseResult:
    steps: int
    seconds: float
    pairs_per_second: float
    final_loss: float
    planned: int = 0  # the phase's last step: its `steps`, or fewer to fit `max_train_seconds`


def _unique_batch(batch: list[dict]) -> list[dict]:
    """In-batch negatives must not contain a second copy of a query's positive."""
    seen, out = set(), []
    for p in batch:
        if p["positive"] not in seen:
            seen.add(p["positive"])
            out.append(p)
    return out


def training_pairs(pairs: Sequence[dict], cfg: PhaseConfig) -> list[dict]:
    """The pairs a phase trains on: its domains (its language only, for a language's adapter),
    less the kinds its config excludes."""
    excluded = set(cfg.exclude_pairs)
    return [
        p for p in pairs
        if p["domain"] in cfg.domains and f"{p.get('language')}:{p.get('source')}" not in excluded
        and (cfg.language is None or p.get("language") == cfg.language)
    ]


def train_phase(
    encoder,
    pairs: Sequence[dict],
    cfg: PhaseConfig,
    out_dir: str | Path,
    *,
    init_from: str | None = None,
    on_log: Callable[[dict], None] | None = None,
    max_steps: int | None = None,
    evaluate: Callable[[], dict] | None = None,
) -> PhaseResult:
    """Train adapter `cfg.adapter` on `pairs`; resumes from `out_dir/checkpoint` when present.

    ``init_from``: an adapter of the encoder whose weights start this one ("the previous best").
    ``max_steps``: stop early after this many steps in this call (the run can be resumed).
    ``evaluate``: measures the adapter being trained (held-out metrics); called before the first
    step, every ``cfg.eval_every`` steps and after the last, into ``out_dir/eval.jsonl`` (never
    when ``cfg.eval_every`` is 0).
    """
    import torch
    from accelerate import Accelerator
    from peft import LoraConfig

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    accelerator = Accelerator(mixed_precision="bf16" if torch.cuda.is_available() else "no", cpu=not torch.cuda.is_available())
    pairs = training_pairs(pairs, cfg)
    if not pairs:
        what = f"language {cfg.language}" if cfg.language else f"domains {cfg.domains}"
        raise ValueError(f"phase {cfg.name}: no training pairs for {what}")
    if cfg.model_negatives:
        start_space = init_from if init_from else (cfg.adapter if cfg.adapter in encoder.adapter_names else None)
        pairs = refresh_negatives(encoder, pairs, cfg, start_space, out_dir)
    sampler = DomainSampler(pairs, cfg.domain_weights, seed=cfg.seed)

    if cfg.full_finetune:
        for p in encoder.model.parameters():
            p.requires_grad_(True)
    else:
        if cfg.adapter not in encoder.adapter_names:
            r, alpha, targets = cfg.lora.r, cfg.lora.alpha, list(cfg.lora.target_modules)
            source = encoder.model.peft_config.get(init_from) if init_from and hasattr(encoder.model, "peft_config") else None
            if source is not None and (source.r, source.lora_alpha) != (r, alpha):
                # Starting from another adapter's weights needs its shape (the shipped formal
                # adapter is rank 64, the personal phase's config says 16): take its rank.
                log.info("phase %s: adapter %s takes %s's LoRA rank %d (config: %d)", cfg.name, cfg.adapter, init_from, source.r, r)
                r, alpha = source.r, source.lora_alpha
                targets = source.target_modules if isinstance(source.target_modules, str) else sorted(source.target_modules)
            encoder.add_adapter(
                cfg.adapter,
                LoraConfig(r=r, lora_alpha=alpha, lora_dropout=cfg.lora.dropout, target_modules=targets),
            )
            if init_from:
                copy_adapter_weights(encoder.model, init_from, cfg.adapter)
        encoder.use_adapter(cfg.adapter)
        # peft: only the active adapter's LoRA weights train.
        for name, p in encoder.model.named_parameters():
            p.requires_grad_(is_lora_param(name, cfg.adapter))
    params = [p for p in encoder.model.parameters() if p.requires_grad]
    for p in params:  # train in fp32 even when the frozen base runs in bf16
        p.data = p.data.float()
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    plan = {"total": cfg.steps}  # the last step; a time budget may bring it forward (below)

    def lr_lambda(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / max(1, cfg.warmup_steps)
        progress = (step - cfg.warmup_steps) / max(1, plan["total"] - cfg.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    model, optimizer, scheduler = accelerator.prepare(encoder.model, optimizer, scheduler)
    encoder.model = model

    ckpt = out_dir / "checkpoint"
    start = 0
    if (ckpt / "state.json").exists():
        state = json.loads((ckpt / "state.json").read_text())
        start = int(state["step"])
        _load_trainable(accelerator.unwrap_model(model), ckpt / "trainable.pt")
        # Tensors and plain Python values only (see _plain): nothing in a checkpoint is unpickled as code.
        optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=True))
        scheduler.load_state_dict(torch.load(ckpt / "scheduler.pt", weights_only=True))
        sampler.restore(state["sampler"])
        plan["total"] = int(state.get("total", cfg.steps))
        log.info("phase %s: resuming at step %d", cfg.name, start)

    metrics_file = out_dir / "metrics.jsonl"
    index_doc_tokens = encoder.config.document_max_tokens

    def eval_point(step: int) -> None:
        """A point of the eval curve, measured as the gate measures (index settings, no dropout)."""
        if evaluate is None or not cfg.eval_every or not accelerator.is_main_process:
            return
        train_tokens, active = encoder.config.document_max_tokens, encoder.active_adapter
        encoder.config.document_max_tokens = index_doc_tokens
        model.eval()
        try:
            record = {"phase": cfg.name, "step": step, **evaluate()}
        finally:
            model.train()
            encoder.use_adapter(active)
            encoder.config.document_max_tokens = train_tokens
        with open(out_dir / "eval.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    encoder.config.document_max_tokens = cfg.document_max_tokens
    model.train()
    t0 = time.monotonic()
    seen = 0
    loss_value = float("nan")
    end = plan["total"] if max_steps is None else min(plan["total"], start + max_steps)
    from tqdm import tqdm

    bar = tqdm(range(start, end), desc=f"train {cfg.name}", initial=start, total=plan["total"], leave=False)
    if start == 0 and end > 0:
        eval_point(0)
    # The time budget: the pace is measured over the first steps of this call after its first
    # one, whose one-off costs (lazy set-up, a GPU's kernels and allocator warming) took 2x the
    # pace on a CPU and may take seconds of a GPU's 80-second budget: counted in, they made
    # the plan fit too few steps. Time already spent counts against the budget either way.
    budget_check = start + 1 + max(cfg.warmup_steps, 10) if cfg.max_train_seconds and start < plan["total"] else None
    steps_t0 = time.monotonic()
    pace_t0 = steps_t0
    for step in bar:
        if step >= end:
            break
        if step == start + 1:
            pace_t0 = time.monotonic()
        if step == budget_check:
            now = time.monotonic()
            pace = (now - pace_t0) / (step - start - 1)
            fits = step + int((cfg.max_train_seconds - (now - steps_t0)) / pace)
            if fits < plan["total"]:
                plan["total"] = max(step + 1, fits)
                end = min(end, plan["total"])
                bar.total = plan["total"]
                log.info("phase %s: %.3f s a step; %d steps fit max_train_seconds %.0f (config: %d)",
                         cfg.name, pace, plan["total"], cfg.max_train_seconds, cfg.steps)
        batch = _unique_batch(sampler.sample(cfg.batch_size))
        queries = [p["query"] for p in batch]
        docs = [p["positive"] for p in batch]
        positives = set(docs)
        for p in batch:
            negs = [n for n in (p.get("negatives") or []) if n not in positives][: cfg.hard_negatives]
            docs.extend(negs)
        with accelerator.autocast():
            q, q_mask = encoder.token_tensors(queries, is_query=True)
            d, d_mask = encoder.token_tensors(docs, is_query=False)
            if cfg.objective == "xtr":
                scores = xtr_scores(q, q_mask, d, d_mask, k=cfg.xtr_k)
            else:
                scores = maxsim_scores(q, q_mask, d, d_mask)
            loss = contrastive_loss(scores, cfg.temperature)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        seen += len(batch)
        loss_value = float(loss.detach())
        bar.set_postfix(loss=f"{loss_value:.3f}")
        if (step + 1) % cfg.log_every == 0 or step + 1 == end:
            record = {"phase": cfg.name, "step": step + 1, "loss": round(loss_value, 4), "lr": scheduler.get_last_lr()[0],
                      "pairs_per_second": round(seen / max(time.monotonic() - t0, 1e-9), 2)}
            with open(metrics_file, "a") as f:
                f.write(json.dumps(record) + "\n")
            if on_log:
                on_log(record)
        if cfg.eval_every and ((step + 1) % cfg.eval_every == 0 or step + 1 == plan["total"]):
            eval_point(step + 1)
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == end:
            _save_checkpoint(accelerator, model, optimizer, scheduler, sampler, step + 1, ckpt, plan["total"])
    bar.close()
    encoder.config.document_max_tokens = index_doc_tokens
    model.eval()
    encoder.model = accelerator.unwrap_model(model)
    if end == plan["total"] and cfg.interpolate != 1.0:  # once per finished phase: checkpoints hold the trained weights
        interpolate_adapter(encoder.model, cfg.adapter, cfg.interpolate)
    seconds = time.monotonic() - t0
    rate = seen / max(seconds, 1e-9)
    if seen == 0 and metrics_file.exists():  # resumed after the last step: the logged figures
        last = json.loads(metrics_file.read_text().splitlines()[-1])
        rate, loss_value = float(last["pairs_per_second"]), float(last["loss"])
    return PhaseResult(steps=end, seconds=seconds, pairs_per_second=rate, final_loss=loss_value, planned=plan["total"])


def refresh_negatives(encoder, pairs: Sequence[dict], cfg: PhaseConfig, space: str | None, out_dir: Path) -> list[dict]:
    """``pairs`` with ``cfg.model_negatives`` hard negatives mined by the encoder in ``space``
    (the adapter the phase starts from) placed first (:func:`codesearch.trainer.negatives.mine_model_negatives`:
    same language, exclusions, false-negative threshold); their counts and seconds go to
    ``out_dir/negatives.json``. The caller's pairs are left as they were."""
    import torch

    from codesearch.trainer.negatives import mine_model_negatives
    from codesearch.trainer.pairs import Pair

    t0 = time.monotonic()
    objs = [Pair.from_dict(p) for p in pairs]
    keep = cfg.model_negatives + cfg.hard_negatives  # the model's first, then the data's
    batch = 256 if torch.cuda.is_available() else 32

    # Each call names the space: a named space encodes with a merged copy of the model. Holding
    # in_space() and encoding the ACTIVE space instead runs peft's forward, which fails when the
    # phase before was discarded (peft still names its deleted adapter): CI caught that.
    class InSpace:  # the encoder's pooled API, in the phase's starting space
        def encode_documents(self, texts, batch_size):
            return encoder.encode_documents(texts, batch_size=batch_size, space=space)

        def encode_queries_pooled(self, queries, batch_size):
            return encoder.encode_queries_pooled(queries, batch_size=batch_size, space=space)

    with torch.no_grad():
        stats = mine_model_negatives(objs, InSpace(), k=cfg.model_negatives, threshold=cfg.model_negatives_threshold,
                                     batch_size=batch)
    out = []
    for p, o in zip(pairs, objs):
        mined = o.negatives
        out.append({**p, "negatives": (mined + [n for n in (p.get("negatives") or []) if n not in mined])[:keep]})
    record = {"space": space, "pairs": len(out), **stats, "seconds": round(time.monotonic() - t0, 1)}
    (Path(out_dir) / "negatives.json").write_text(json.dumps(record, indent=2) + "\n")
    log.info("phase %s: %s model negatives in %.0fs (space %s)", cfg.name, stats.get("model", 0), record["seconds"], space)
    return out


def interpolate_adapter(model, name: str, factor: float) -> None:
    """Scale adapter ``name``'s change to the base model by ``factor`` (WiSE-FT): a LoRA adapter
    adds B·A·scaling to a weight, so scaling every B scales that change and nothing else."""
    import torch

    with torch.no_grad():
        for n, p in model.named_parameters():
            if is_lora_param(n, name) and ".lora_B." in n:
                p.mul_(factor)


def copy_adapter_weights(model, source: str, target: str) -> None:
    """Start adapter `target` from the weights of adapter `source` (same LoRA shapes)."""
    params = dict(model.named_parameters())
    for name, p in params.items():
        if is_lora_param(name, target):
            twin = name.replace(f".{target}.", f".{source}.")
            if twin in params and params[twin].shape == p.shape:
                p.data.copy_(params[twin].data)


def _save_checkpoint(accelerator, model, optimizer, scheduler, sampler, step: int, ckpt: Path, total: int) -> None:
    import torch

    if not accelerator.is_main_process:
        return
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    unwrapped = accelerator.unwrap_model(model)
    torch.save({n: p.detach().cpu() for n, p in unwrapped.named_parameters() if p.requires_grad}, tmp / "trainable.pt")
    torch.save(_plain(optimizer.state_dict()), tmp / "optimizer.pt")
    torch.save(_plain(scheduler.state_dict()), tmp / "scheduler.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, "total": total, "sampler": sampler.state()}))
    # Swap in atomically: an interrupted save leaves the previous checkpoint intact.
    old = ckpt.with_name(ckpt.name + ".old")
    if ckpt.exists():
        ckpt.rename(old)
    tmp.rename(ckpt)
    if old.exists():
        import shutil

        shutil.rmtree(old)


def _plain(obj, where: str = "state"):
    """``obj`` as tensors and plain Python values (what ``torch.load(weights_only=True)`` reads
    back): numpy scalars become numbers; anything else that is not plain data is an error at
    save time rather than an unloadable checkpoint at resume time."""
    import numbers

    import torch

    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor, torch.dtype, torch.device)):
        return obj
    if isinstance(obj, dict):
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    raise TypeError(f"checkpoint {where} holds a {type(obj).__name__}, which weights_only loading cannot read")


def _load_trainable(model, path: Path) -> None:
    import torch

    saved = torch.load(path, weights_only=True)
    params = dict(model.named_parameters())
    for name, tensor in saved.items():
        if name in params:
            params[name].data.copy_(tensor)
