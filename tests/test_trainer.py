"""The trainer: objectives, domain weighting, and a tiny curriculum end to end on real files."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml

from codesearch.scoring import maxsim_scores, xtr_scores
from codesearch.trainer.loss import contrastive_loss
from codesearch.trainer.train import DomainSampler

FIXTURES = Path(__file__).parent / "fixtures" / "trainer"
PHASES = Path(__file__).resolve().parent.parent / "config" / "phases"


def _unit(*shape):
    return torch.nn.functional.normalize(torch.randn(*shape), dim=-1)


def test_xtr_equals_maxsim_when_every_token_is_retrieved():
    torch.manual_seed(0)
    q, d = _unit(3, 5, 16), _unit(4, 7, 16)
    q_mask = torch.ones(3, 5, dtype=torch.bool)
    d_mask = torch.ones(4, 7, dtype=torch.bool)
    d_mask[2, 4:] = False  # padding must never be retrieved or matched
    full = xtr_scores(q, q_mask, d, d_mask, k=4 * 7)
    assert torch.allclose(full, maxsim_scores(q, q_mask, d, d_mask), atol=1e-5)
    # With k=1 each query token retrieves one token of the whole batch: a document that holds
    # none of them scores exactly 0, one that does gets the mean of its retrieved similarities.
    sparse = xtr_scores(q, q_mask, d, d_mask, k=1)
    sims = torch.einsum("bqd,ntd->bqnt", q, d).masked_fill(~d_mask[None, None], -1e4)
    owner = sims.reshape(3, 5, -1).argmax(-1) // 7  # which document each query token retrieved from
    best = sims.reshape(3, 5, -1).max(-1).values
    for b in range(3):
        for n in range(4):
            mine = owner[b] == n
            expected = best[b][mine].mean() if mine.any() else torch.tensor(0.0)
            assert sparse[b, n] == pytest.approx(float(expected), abs=1e-5)


def test_contrastive_loss_prefers_the_diagonal():
    good = torch.eye(4) * 0.9 + 0.1
    bad = 1.0 - torch.eye(4) * 0.9
    assert contrastive_loss(good) < contrastive_loss(bad)


def test_domain_weights_are_applied_by_sampling():
    pairs = [{"domain": d, "query": f"{d}{i}", "positive": f"p{d}{i}"} for d in ("formal", "general", "personal") for i in range(50)]
    sampler = DomainSampler(pairs, {"formal": 5, "personal": 3, "general": 1}, seed=1)
    counts = Counter(p["domain"] for p in sampler.sample(9000))
    assert counts["formal"] / counts["general"] == pytest.approx(5, rel=0.15)
    assert counts["personal"] / counts["general"] == pytest.approx(3, rel=0.15)


def _tiny_phases(tmp: Path, steps: int) -> list[Path]:
    paths = []
    for name in ("general", "rust", "formal"):
        cfg = yaml.safe_load((PHASES / f"{name}.yaml").read_text())
        cfg.update(steps=steps, batch_size=4, checkpoint_every=1, log_every=1, warmup_steps=1, lr=5e-3, eval_max_queries=10, eval_every=2)
        cfg["lora"]["r"] = 4
        (tmp / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
        paths.append(tmp / f"{name}.yaml")
    return paths


@pytest.mark.slow  # (over 15 s: .ci/run's slow step)
def test_tiny_curriculum_checkpoints_gates_resumes_and_reports(tmp_path):
    from codesearch.model import MultiVectorEncoder
    from codesearch.trainer.curriculum import CurriculumConfig, run_curriculum

    cfg = CurriculumConfig(phases=_tiny_phases(tmp_path, steps=3), data=FIXTURES, output=tmp_path / "run")
    # Interrupted after 2 steps of the first phase: a checkpoint is on disk, no report yet.
    partial = run_curriculum(cfg, max_steps_per_phase=2)
    ckpt = json.loads((tmp_path / "run" / "general" / "checkpoint" / "state.json").read_text())
    assert ckpt["step"] == 2 and partial.columns == ["base"]
    # Run again: resumes at step 3 (not from scratch), then runs the other phases.
    report = run_curriculum(cfg)
    steps = [json.loads(l)["step"] for l in (tmp_path / "run" / "general" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    # The eval curve: the target's held-out metrics before the first step, every 2 steps and at
    # the end, across the interruption; it starts where the gate's "before" stands.
    curve = [json.loads(l) for l in (tmp_path / "run" / "general" / "eval.jsonl").read_text().splitlines()]
    assert [r["step"] for r in curve] == [0, 2, 3]
    assert all(r["target"] == "general" and r["n"] > 0 and 0 <= r["p@1"] <= r["recall@5"] <= 1 for r in curve)
    assert (tmp_path / "run" / "general" / "curves.png").stat().st_size > 0
    assert curve[0]["mrr@10"] == report.table["base"]["general"]["mrr@10"]
    assert report.columns == ["base", "after general", "after rust", "after formal"]
    assert {"general", "rust", "formal"} <= set(report.table["base"])
    for d in report.decisions:  # every phase was gated on its own domain
        assert d["kept"] == (d["after"] > d["before"])
    table = (tmp_path / "run" / "report.md").read_text()
    assert "| general |" in table and "after formal" in table
    model = MultiVectorEncoder.load(tmp_path / "run" / "model")
    kept = {d["adapter"] for d in report.decisions if d["kept"]}
    assert set(model.adapter_names) == kept
    assert set(model.config.routing.values()) <= kept
    # Only `finetune --personal` routes the user's code to one adapter; the curriculum never does.
    assert "personal" not in model.config.routing

    # Resumed on other held-out pairs (here: the Rust ones only), the finished phases are measured
    # again on them rather than reported with the old figures; nothing is trained again.
    data = tmp_path / "rust-only"
    data.mkdir()
    shutil.copy(FIXTURES / "train.jsonl", data / "train.jsonl")
    rust = [l for l in (FIXTURES / "heldout.jsonl").read_text().splitlines() if json.loads(l)["domain"] == "rust"]
    (data / "heldout.jsonl").write_text("\n".join(rust) + "\n")
    again = run_curriculum(CurriculumConfig(phases=cfg.phases, data=data, output=cfg.output))
    assert again.columns == report.columns
    assert all(set(again.table[c]) == {"rust"} for c in again.columns)
    assert again.decisions == report.decisions
    assert [json.loads(l)["step"] for l in (tmp_path / "run" / "general" / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_curriculum_reads_several_pair_folders_in_order(tmp_path):
    """`data:` may list pair folders (say, Debian sources and fetched Lean repos): all are read."""
    from codesearch.trainer.curriculum import CurriculumConfig

    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"data": ["a", "b"], "phases": [str(PHASES / "rust.yaml")]}))
    cfg = CurriculumConfig.load(tmp_path / "c.yaml")
    assert cfg.data_folders == [Path("a"), Path("b")]
    (tmp_path / "one.yaml").write_text(yaml.safe_dump({"data": "a", "phases": [str(PHASES / "rust.yaml")]}))
    assert CurriculumConfig.load(tmp_path / "one.yaml").data_folders == [Path("a")]


@pytest.mark.parametrize("name", ["curriculum", "retrain-formal", "retrain-rust", "retrain-general", "formal-gpu",
                                  "curriculum-gpu", "curriculum-cpu"])
def test_every_shipped_training_config_loads_with_its_phases(name):
    """The documented `codesearch train --config config/NAME.yaml` commands read their phases."""
    from codesearch.trainer.curriculum import CurriculumConfig
    from codesearch.trainer.phase import PhaseConfig

    cfg = CurriculumConfig.load(PHASES.parent / f"{name}.yaml")
    phases = [PhaseConfig.load(p) for p in cfg.phases]
    assert phases and all(p.steps > 0 and p.adapter for p in phases)
    assert all(Path(f).name in ("pairs", "pairs-formal", "gpu-bundle") for f in cfg.data_folders)
    # A gate on eval sets names sets the curriculum measures.
    named = {e.key for e in cfg.eval_sets}
    assert all(set(p.gate_keys) <= named for p in phases if p.gate_on)


def test_a_phase_trains_on_its_domains_less_the_excluded_kinds_of_pairs():
    from codesearch.trainer.phase import PhaseConfig
    from codesearch.trainer.train import training_pairs

    cfg = PhaseConfig.load(PHASES / "formal.yaml")
    assert {"lean:augmented", "coq:augmented"} <= set(cfg.exclude_pairs)  # the shipped formal phase
    pairs = [
        {"domain": "formal", "language": "lean", "source": "doc"},
        {"domain": "formal", "language": "lean", "source": "augmented"},
        {"domain": "formal", "language": "coq", "source": "augmented"},
        {"domain": "formal", "language": "tlaplus", "source": "augmented"},
        {"domain": "general", "language": "python", "source": "doc"},
        {"domain": "rust", "language": "rust", "source": "doc"},
    ]
    kept = training_pairs(pairs, cfg)
    assert [(p["language"], p["source"]) for p in kept] == [("lean", "doc"), ("tlaplus", "augmented"), ("python", "doc")]


def test_retraining_a_phase_of_a_trained_model_keeps_its_adapter_when_the_gate_rejects(tmp_path):
    """keep_adapters: start from the shipped model's adapters; the formal phase continues the
    shipped formal adapter, reading camelCase as words, and a rejected phase leaves both the
    adapter's weights and its reading as they were."""
    from codesearch.model import DEFAULT_MODEL_DIR, MultiVectorEncoder
    from codesearch.trainer.curriculum import CurriculumConfig, run_curriculum

    phase = yaml.safe_load((PHASES / "formal.yaml").read_text())
    assert phase["split_identifiers"] is True  # the shipped formal phase reads camelCase as words
    phase.update(steps=2, batch_size=4, checkpoint_every=1, warmup_steps=1, lr=5e-2, eval_max_queries=10)
    (tmp_path / "formal.yaml").write_text(yaml.safe_dump(phase))
    # Held-out pairs without formal ones: the phase cannot improve its domain, so it is rejected.
    data = tmp_path / "no-formal-heldout"
    data.mkdir()
    shutil.copy(FIXTURES / "train.jsonl", data / "train.jsonl")
    rust = [l for l in (FIXTURES / "heldout.jsonl").read_text().splitlines() if json.loads(l)["domain"] == "rust"]
    (data / "heldout.jsonl").write_text("\n".join(rust) + "\n")

    cfg = CurriculumConfig(phases=[tmp_path / "formal.yaml"], data=data, output=tmp_path / "run",
                           base_model="shipped", keep_adapters=True)
    report = run_curriculum(cfg)
    assert [d["kept"] for d in report.decisions] == [False]
    trained = [json.loads(l) for l in (tmp_path / "run" / "formal" / "metrics.jsonl").read_text().splitlines()]
    assert trained[-1]["step"] == 2  # it did train (from the shipped adapter) before the gate said no

    model = MultiVectorEncoder.load(tmp_path / "run" / "model")
    shipped = MultiVectorEncoder.load(DEFAULT_MODEL_DIR)
    assert model.config.routing == shipped.config.routing
    assert model.adapter_names == shipped.adapter_names
    assert model.config.split_identifiers == shipped.config.split_identifiers
    # The rejected formal adapter and the untouched ones are written out as shipped, byte for
    # byte: not the bf16 copy they ran as in memory.
    for name in shipped.adapter_names:
        ours = tmp_path / "run" / "model" / "adapters" / name / "adapter_model.safetensors"
        assert ours.read_bytes() == (DEFAULT_MODEL_DIR / "adapters" / name / "adapter_model.safetensors").read_bytes()


def test_a_phase_sets_how_its_adapter_reads_identifiers():
    from codesearch.model import MultiVectorEncoder
    from codesearch.model.encoder import EncoderConfig
    from codesearch.trainer.phase import PhaseConfig, set_reading

    encoder = MultiVectorEncoder(EncoderConfig(split_identifiers=["rust"]))
    text = "checkNeverMatches"
    set_reading(encoder, PhaseConfig(name="formal", target_domain="formal", adapter="formal", split_identifiers=True))
    assert encoder.model_texts([text], is_query=True, space="formal") == ["check Never Matches"]
    assert encoder.model_texts([text], is_query=True, space="rust") == ["check Never Matches"]
    set_reading(encoder, PhaseConfig(name="rust", target_domain="rust", adapter="rust", split_identifiers=False))
    assert encoder.model_texts([text], is_query=False, space="rust") == [text]
    set_reading(encoder, PhaseConfig(name="formal", target_domain="formal", adapter="formal"))  # null: unchanged
    assert encoder.config.split_identifiers == ["formal"]


def test_an_adapter_started_from_another_takes_its_rank_and_weights(tmp_path):
    """The personal adapter starts from the adapter serving most of the user's code: with the
    shipped formal adapter (a larger rank than the personal phase's config) it must still start
    from those weights, not from zero."""
    from codesearch.model import load_encoder
    from codesearch.trainer.phase import LoraSettings, PhaseConfig
    from codesearch.trainer.train import read_pairs, train_phase

    encoder = load_encoder("shipped")
    source_rank = encoder.model.peft_config["formal"].r
    cfg = PhaseConfig(name="personal", target_domain="personal", adapter="personal", domains=["general"],
                      lora=LoraSettings(r=source_rank // 4, alpha=source_rank // 2))
    train_phase(encoder, read_pairs(FIXTURES / "train.jsonl"), cfg, tmp_path / "run", init_from="formal", max_steps=0)

    assert encoder.model.peft_config["personal"].r == source_rank
    params = dict(encoder.model.named_parameters())
    copied = [n for n in params if ".personal." in n and "lora_" in n]
    assert copied
    for name in copied:
        twin = params[name.replace(".personal.", ".formal.")]
        assert torch.equal(params[name].float(), twin.float()), name


def test_a_language_phase_trains_that_language_only_and_is_gated_and_routed_on_it(tmp_path):
    """A phase with `language: lean` trains the "lean" adapter on Lean pairs only (from the
    formal adapter), is gated on the Lean held-out pairs, and, when kept, routes Lean alone to
    it: the rest of formal code keeps the formal adapter."""
    from codesearch.model import MultiVectorEncoder
    from codesearch.trainer.curriculum import CurriculumConfig, run_curriculum
    from codesearch.trainer.phase import PhaseConfig
    from codesearch.trainer.train import read_pairs, training_pairs

    phase = yaml.safe_load((PHASES / "formal.yaml").read_text())
    phase.update(name="lean", adapter="lean", language="lean", steps=2, batch_size=4, checkpoint_every=1,
                 warmup_steps=1, lr=5e-2, eval_max_queries=10, exclude_pairs=[])
    (tmp_path / "lean.yaml").write_text(yaml.safe_dump(phase))
    cfg = PhaseConfig.load(tmp_path / "lean.yaml")
    assert cfg.gate_key == "lean"
    trained_on = training_pairs(read_pairs(FIXTURES / "train.jsonl"), cfg)
    assert trained_on and {p["language"] for p in trained_on} == {"lean"}

    run = CurriculumConfig(phases=[tmp_path / "lean.yaml"], data=FIXTURES, output=tmp_path / "run",
                           base_model="shipped", keep_adapters=True)
    report = run_curriculum(run)
    (decision,) = report.decisions
    assert decision["target"] == "lean" and decision["adapter"] == "lean"
    assert decision["kept"] == (decision["after"] > decision["before"])
    lean_heldout = [p for p in read_pairs(FIXTURES / "heldout.jsonl") if p["language"] == "lean"]
    assert report.table["base"]["lean"]["n"] == len(lean_heldout)
    assert "| lean |" in (tmp_path / "run" / "report.md").read_text()
    model = MultiVectorEncoder.load(tmp_path / "run" / "model")
    assert ("lean" in model.adapter_names) == decision["kept"]
    assert model.space_for("lean") == ("lean" if decision["kept"] else "formal")
    assert model.space_for("tlaplus") == model.space_for("coq") == "formal"


def test_a_language_phase_must_name_a_language_of_its_domain(tmp_path):
    from codesearch.trainer.phase import PhaseConfig

    for language, why in (("lean4", "unknown language"), ("python", "belongs to domain general"), ("rust", "is a domain")):
        (tmp_path / "p.yaml").write_text(yaml.safe_dump({"name": "x", "target_domain": "formal", "adapter": "x", "language": language}))
        with pytest.raises(ValueError, match=why):
            PhaseConfig.load(tmp_path / "p.yaml")


@pytest.mark.slow  # (13-17 s: .ci/run's slow step; the default run took 7:44 to 8:12 here)
def test_the_gate_scores_a_language_with_its_own_adapter_in_its_own_space():
    """Held-out pairs are encoded as the index encodes them: a language routed to an adapter of
    its own uses it, documents and queries; the other languages of the domain do not."""
    from codesearch.model import load_encoder
    from codesearch.trainer.gate import evaluate_domain, evaluate_routing
    from codesearch.trainer.train import read_pairs

    encoder = load_encoder("shipped")
    pairs = [p for p in read_pairs(FIXTURES / "train.jsonl") if p["domain"] == "formal"]
    lean = [p for p in pairs if p["language"] == "lean"]
    routing = {"general": "general", "rust": "rust", "formal": "formal", "lean": "rust"}
    got = evaluate_routing(encoder, {"lean": lean, "formal": pairs}, routing)
    assert got["lean"] == evaluate_domain(encoder, lean, "rust")
    assert got["lean"] != evaluate_domain(encoder, lean, "formal")
    # Mixed spaces: the formal group's Lean documents are in the rust space, the others in formal.
    assert got["formal"] == evaluate_domain(encoder, pairs, "formal", {"lean": "rust"})
    assert got["formal"] != evaluate_domain(encoder, pairs, "formal")
    # A domain missing from routing is scored with the general adapter, as the index encodes it
    # (routing.adapter_for); an explicit null keeps it on the base model.
    assert evaluate_routing(encoder, {"formal": pairs}, {"general": "rust"})["formal"] == evaluate_domain(encoder, pairs, "rust")
    assert evaluate_routing(encoder, {"formal": pairs}, {"general": "rust", "formal": None})["formal"] == evaluate_domain(encoder, pairs, None)


def test_interpolate_scales_the_trained_change_and_the_checkpoint_keeps_the_trained_weights(tmp_path):
    """`interpolate: 0.5` (WiSE-FT): once the phase ends, the adapter's change to the base model
    is halved: every LoRA B halves, A stays; the checkpoint keeps the weights as trained, so a
    resumed run interpolates once, from them."""
    from codesearch.model import MultiVectorEncoder
    from codesearch.trainer.phase import LoraSettings, PhaseConfig
    from codesearch.trainer.train import read_pairs, train_phase

    pairs = read_pairs(FIXTURES / "train.jsonl")
    cfg = PhaseConfig(name="rust", target_domain="rust", adapter="rust", domains=["rust"], steps=2, batch_size=4, warmup_steps=1,
                      lr=5e-2, checkpoint_every=1, interpolate=0.5, lora=LoraSettings(r=4, alpha=8))
    encoder = MultiVectorEncoder.load(None)
    train_phase(encoder, pairs, cfg, tmp_path / "run")
    trained = torch.load(tmp_path / "run" / "checkpoint" / "trainable.pt", weights_only=True)
    params = dict(encoder.model.named_parameters())
    lora_b = [n for n in trained if ".lora_B." in n]
    assert lora_b and any(trained[n].abs().sum() > 0 for n in lora_b)  # B starts at zero: it trained
    for name, weight in trained.items():
        factor = 0.5 if ".lora_B." in name else 1.0
        assert torch.allclose(params[name].detach().float(), weight.float() * factor), name

    again = MultiVectorEncoder.load(None)  # a second call finds the finished checkpoint
    train_phase(again, pairs, cfg, tmp_path / "run")
    resumed = dict(again.model.named_parameters())
    assert all(torch.allclose(resumed[n].detach().float(), params[n].detach().float()) for n in trained)

    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"name": "x", "target_domain": "rust", "adapter": "x", "interpolate": 0.5, "full_finetune": True}))
    with pytest.raises(ValueError, match="full_finetune"):
        PhaseConfig.load(tmp_path / "bad.yaml")


@pytest.mark.slow  # (over 15 s: .ci/run's slow step)
def test_a_curriculum_reports_eval_sets_searched_as_a_user_searches(tmp_path):
    """`eval_sets:` in a curriculum config: each set's corpus is indexed and searched with the
    base model and after each phase; the rows sit beside the held-out ones in the report, and
    the last one is what `codesearch eval` says of the run's model."""
    from click.testing import CliRunner

    from codesearch.cli import main
    from codesearch.trainer.curriculum import CurriculumConfig, run_curriculum

    repo = Path(__file__).parent / "fixtures" / "repo_small"
    evalset = tmp_path / "tiny.jsonl"
    evalset.write_text("\n".join(json.dumps(q) for q in [
        {"id": "a", "query": "check if a value is within bounds", "domain": "rust",
         "relevant": [{"path": "src/bounds.rs", "start_line": 11, "end_line": 14}]},
        {"id": "b", "query": "evict the least recently used entry when the cache is full", "domain": "python",
         "relevant": [{"path": "src/cache.py", "start_line": 20, "end_line": 25}]},
    ]) + "\n")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({
        "data": str(FIXTURES), "output": str(tmp_path / "run"), "phases": [str(_tiny_phases(tmp_path, steps=2)[1])],
        "eval_sets": [{"file": str(evalset), "root": str(repo)}],
    }))
    cfg = CurriculumConfig.load(tmp_path / "c.yaml")
    report = run_curriculum(cfg)
    assert report.columns == ["base", "after rust"]
    rows = [report.table[c]["eval:tiny"] for c in report.columns]
    assert all(r["n"] == 2 and 0 <= r["p@1"] <= r["recall@5"] <= 1 for r in rows)
    assert "| eval:tiny |" in (tmp_path / "run" / "report.md").read_text()
    assert not any((tmp_path / "run" / "eval-sets").glob("*"))  # scratch indexes are removed

    out = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), "--model", str(tmp_path / "run" / "model"), "eval",
                                    str(evalset), "--root", str(repo), "--method", "multivector", "--json", "-q"])
    assert out.exit_code == 0, out.output
    overall = json.loads(out.output)["overall"]
    assert rows[-1] == {"n": 2, **{k: round(overall[k], 4) for k in ("p@1", "mrr@10", "recall@5")}}

    # A phase may be gated on such a set instead of the held-out pairs (`gate_on`).
    phase = yaml.safe_load(_tiny_phases(tmp_path, steps=2)[1].read_text())
    (tmp_path / "gated.yaml").write_text(yaml.safe_dump({**phase, "gate_on": "eval:tiny"}))
    gated = run_curriculum(CurriculumConfig(phases=[tmp_path / "gated.yaml"], data=FIXTURES, output=tmp_path / "gated",
                                            eval_sets=cfg.eval_sets))
    (decision,) = gated.decisions
    assert decision["target"] == "eval:tiny"
    assert decision["before"] == gated.table["base"]["eval:tiny"]["mrr@10"]
    assert decision["kept"] == (decision["after"] > decision["before"])
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump({**phase, "gate_on": "eval:tinny"}))
    with pytest.raises(ValueError, match="not among the curriculum's eval_sets"):
        run_curriculum(CurriculumConfig(phases=[tmp_path / "typo.yaml"], data=FIXTURES, output=tmp_path / "typo", eval_sets=cfg.eval_sets))


def test_a_missing_eval_set_stops_the_curriculum_before_any_training(tmp_path):
    from codesearch.trainer.curriculum import CurriculumConfig, run_curriculum
    from codesearch.trainer.validation import EvalSetSpec

    cfg = CurriculumConfig(phases=_tiny_phases(tmp_path, steps=1)[:1], data=FIXTURES, output=tmp_path / "run",
                           eval_sets=[EvalSetSpec(tmp_path / "lean-validation.jsonl", tmp_path / "corpus")])
    with pytest.raises(FileNotFoundError, match="build_eval_sets.py --sets lean-validation"):
        run_curriculum(cfg)
    assert not (tmp_path / "run").exists()
