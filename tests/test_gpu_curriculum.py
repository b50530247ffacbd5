"""The GPU curriculum (config/curriculum-gpu.yaml) rehearsed on CPU: a packed data folder,
validation sets cut into chunks beforehand, gates on several sets, a time budget per phase, and
a run that needs neither LanceDB nor the tree-sitter grammars (a GPU machine without them)."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from codesearch.trainer.pack import pack_folders, read_pack, read_split
from codesearch.trainer.train import read_pairs

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "trainer"
REPO = Path(__file__).parent / "fixtures" / "repo_small"
CONFIG = ROOT / "config"

QUERIES = [
    {"id": "a", "query": "check if a value is within bounds", "domain": "rust",
     "relevant": [{"path": "src/bounds.rs", "start_line": 11, "end_line": 14}]},
    {"id": "b", "query": "evict the least recently used entry when the cache is full", "domain": "python",
     "relevant": [{"path": "src/cache.py", "start_line": 20, "end_line": 25}]},
]


def test_a_pack_holds_the_same_pairs_with_each_text_once(tmp_path):
    counts = pack_folders([FIXTURES], tmp_path / "pack", max_chars=400, negatives=1)
    for split in ("train", "heldout"):
        original = read_pairs(FIXTURES / f"{split}.jsonl")
        packed = read_split(tmp_path / "pack", split)
        assert len(packed) == len(original) == counts[split]["pairs"]
        for a, b in zip(original, packed):
            assert b["query"] == a["query"] and b["domain"] == a["domain"] and b.get("language") == a.get("language")
            assert a["positive"].startswith(b["positive"]) and len(b["positive"]) <= 400
            assert len(b["negatives"]) == min(1, len(a.get("negatives") or []))
        texts = {p["positive"] for p in packed} | {n for p in packed for n in p["negatives"]}
        assert counts[split]["texts"] == len(texts)  # each text stored once
    # Cut at a line end when one falls in the second half of the limit.
    long = next(p for p in read_pairs(FIXTURES / "train.jsonl") if len(p["positive"]) > 400 and "\n" in p["positive"][200:400])
    cut = next(p for p in read_split(tmp_path / "pack", "train") if p["query"] == long["query"])["positive"]
    assert long["positive"][len(cut)] == "\n"
    summary = json.loads((tmp_path / "pack" / "summary.json").read_text())
    assert summary["packs"]["train"]["pairs"] == counts["train"]["pairs"]
    # A plain folder wins over a pack in the same folder; a folder with neither is one clear error.
    with pytest.raises(FileNotFoundError, match="codesearch data build"):
        read_split(tmp_path, "train")
    (tmp_path / "bad.pack.xz").write_bytes(b"")
    import lzma

    with lzma.open(tmp_path / "bad.pack.xz", "wt") as f:
        f.write(json.dumps({"something": "else"}) + "\n")
    with pytest.raises(ValueError, match="not a codesearch pairs pack"):
        read_pack(tmp_path / "bad.pack.xz")


def test_data_pack_command_and_its_errors(tmp_path):
    from click.testing import CliRunner

    from codesearch.cli import main

    out = CliRunner().invoke(main, ["data", "pack", str(FIXTURES), "--out", str(tmp_path / "p"), "--max-chars", "800"])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "p" / "train.pack.xz").is_file() and (tmp_path / "p" / "heldout.pack.xz").is_file()
    (tmp_path / "empty").mkdir()
    bad = CliRunner().invoke(main, ["data", "pack", str(tmp_path / "empty"), "--out", str(tmp_path / "q")])
    assert bad.exit_code != 0 and "codesearch data build" in bad.output
    tiny = CliRunner().invoke(main, ["data", "pack", str(FIXTURES), "--out", str(tmp_path / "q"), "--max-chars", "10"])
    assert tiny.exit_code != 0 and "10" in tiny.output


def _prepared_set(tmp_path: Path):
    from codesearch.trainer.validation import EvalSetSpec, prepare_chunks

    (tmp_path / "tiny.jsonl").write_text("\n".join(json.dumps(q) for q in QUERIES) + "\n")
    n = prepare_chunks(REPO, tmp_path / "tiny.chunks.xz")
    assert n > 5
    return EvalSetSpec(tmp_path / "tiny.jsonl", chunks=tmp_path / "tiny.chunks.xz")


@pytest.mark.slow  # about a minute: a second index or curriculum run
def test_a_prepared_set_ranks_as_search_does(tmp_path):
    """Exact MaxSim over chunks cut beforehand finds what `codesearch eval --method multivector`
    finds on the same corpus (the index's compression may move scores, not these ranks)."""
    from click.testing import CliRunner

    from codesearch.cli import main
    from codesearch.model import load_encoder
    from codesearch.trainer.validation import measure_eval_sets, read_chunks

    spec = _prepared_set(tmp_path)
    chunks = read_chunks(spec.chunks)
    assert {c["path"] for c in chunks} >= {"src/bounds.rs", "src/cache.py"}
    assert all(c["text"].startswith(c["path"]) for c in chunks)  # the encoder's text: header, then code
    encoder = load_encoder("default")
    exact = measure_eval_sets(encoder, dict(encoder.config.routing), [spec], tmp_path / "scratch")["eval:tiny"]
    out = CliRunner().invoke(main, ["--home", str(tmp_path / "home"), "eval", str(spec.file), "--root", str(REPO),
                                    "--method", "multivector", "--json", "-q"])
    assert out.exit_code == 0, out.output
    indexed = json.loads(out.output)["overall"]
    assert exact["n"] == 2 and exact["p@1"] == indexed["p@1"] and exact["recall@5"] == indexed["recall@5"]


def _gpu_config(tmp_path: Path, data: Path, spec, budget: float | None = None, steps: int = 3) -> Path:
    """config/curriculum-gpu.yaml and its phases, as shipped, made tiny: the rehearsal."""
    cur = yaml.safe_load((CONFIG / "curriculum-gpu.yaml").read_text())
    phases = []
    for rel in cur["phases"]:
        cfg = yaml.safe_load((CONFIG / rel).read_text())
        cfg.update(steps=steps, batch_size=4, warmup_steps=1, lr=5e-3, eval_max_queries=10, document_max_tokens=64,
                   checkpoint_every=1, log_every=1)
        cfg["lora"]["r"] = 4
        cfg["lora"]["alpha"] = 8
        if isinstance(cfg.get("gate_on"), list):  # every gate reads the one tiny set (repeated: the mean)
            cfg["gate_on"] = ["eval:tiny"] * len(cfg["gate_on"])
        elif cfg.get("gate_on"):
            cfg["gate_on"] = "eval:tiny"
        cfg["max_train_seconds"] = budget
        (tmp_path / Path(rel).name).write_text(yaml.safe_dump(cfg))
        phases.append(str(tmp_path / Path(rel).name))
    cur.update(data=[str(data)], output=str(tmp_path / "run"), phases=phases,
               eval_sets=[{"file": str(spec.file), "chunks": str(spec.chunks)}])
    (tmp_path / "curriculum-gpu.yaml").write_text(yaml.safe_dump(cur))
    return tmp_path / "curriculum-gpu.yaml"


BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("lancedb", "lance", "tree_sitter", "tree_sitter_rust", "tree_sitter_python",
                                  "bm25s", "detect_secrets", "watchdog", "pygls"):
            raise ImportError("not on this machine: " + name)
sys.meta_path.insert(0, Block())
from codesearch.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow  # (18 s: .ci/run's second step)
def test_the_gpu_curriculum_rehearses_on_cpu_without_lancedb_or_grammars(tmp_path):
    """The shipped GPU curriculum, tiny: three phases from a pack, each gated on validation
    sets (the rust and formal phases on the mean of several), run in a process that cannot import LanceDB, the
    grammars or the miner's BM25 (as on a GPU machine that has only what travels)."""
    spec = _prepared_set(tmp_path)
    pack_folders([FIXTURES], tmp_path / "bundle")
    config = _gpu_config(tmp_path, tmp_path / "bundle", spec)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", BLOCK, "train", "--config", str(config)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["columns"] == ["base", "after general", "after rust", "after formal"]
    decisions = {d["phase"]: d for d in report["decisions"]}
    assert decisions["general"]["target"] == "eval:tiny"
    assert decisions["rust"]["target"] == "eval:tiny+eval:tiny"
    assert decisions["formal"]["target"] == "eval:tiny+eval:tiny+eval:tiny"
    for name in ("general", "rust", "formal"):
        d = decisions[name]
        column = report["columns"][report["columns"].index(f"after {name}") - 1]
        assert d["before"] == pytest.approx(report["table"][column]["eval:tiny"]["mrr@10"])  # the mean of one set, repeated
        assert d["kept"] == (d["after"] > d["before"])
        assert d["gate_rows"]["eval:tiny"][1] == pytest.approx(d["after"])  # each row the gate read, also when rejected
    for column in report["columns"]:
        row = report["table"][column]["eval:tiny"]
        assert row["n"] == 2 and 0 <= row["p@1"] <= row["recall@5"] <= 1
    assert (tmp_path / "run" / "model" / "codesearch-model.json").is_file()


@pytest.mark.slow  # about a minute: a second index or curriculum run
def test_a_set_the_phase_cannot_change_keeps_its_figure(tmp_path):
    """The rust phase trains the rust adapter: a Python-only set, encoded by the general adapter
    before and after, is not measured again (on a GPU machine each measurement costs seconds)."""
    from codesearch.trainer.curriculum import CurriculumConfig, run_curriculum
    from codesearch.trainer.validation import EvalSetSpec, prepare_chunks

    spec = _prepared_set(tmp_path)
    py = tmp_path / "py"
    (py / "src").mkdir(parents=True)
    (py / "src" / "cache.py").write_text((REPO / "src" / "cache.py").read_text())
    (tmp_path / "pyset.jsonl").write_text(json.dumps(QUERIES[1]) + "\n")
    prepare_chunks(py, tmp_path / "pyset.chunks.xz")
    pyset = EvalSetSpec(tmp_path / "pyset.jsonl", chunks=tmp_path / "pyset.chunks.xz")
    pack_folders([FIXTURES], tmp_path / "bundle")
    cfg = CurriculumConfig.load(_gpu_config(tmp_path, tmp_path / "bundle", spec, steps=2))
    cfg.eval_sets.append(pyset)
    cfg.phases = cfg.phases[:2]  # general, rust
    import codesearch.trainer.validation as validation

    measured = []
    real = validation.measure_prepared
    validation.measure_prepared = lambda encoder, s: measured.append(s.key) or real(encoder, s)
    try:
        report = run_curriculum(cfg)
    finally:
        validation.measure_prepared = real
    # base: both; after general: both (every language meets the general adapter); after rust:
    # the Rust-and-Python set only (its Rust chunks meet the rust adapter).
    assert measured == ["eval:tiny", "eval:pyset"] * 2 + ["eval:tiny"]
    rust = report.table["after rust"] if report.decisions[1]["kept"] else None
    if rust is not None:
        assert rust["eval:pyset"] == report.table["after general"]["eval:pyset"]


def test_a_slow_first_step_does_not_shrink_the_time_budgets_plan(tmp_path, monkeypatch):
    # A fake clock: the first step takes 30 s (one-off set-up), every other step 1 s. Of a 50 s
    # budget, 40 s are spent when the pace is measured at step 11, so 10 more steps fit: 21 in
    # all (counting the first step in the pace planned 12).
    import time as real_time

    from codesearch.model import load_encoder
    from codesearch.trainer import train as train_module
    from codesearch.trainer.phase import PhaseConfig

    class Clock:
        now, steps = 1000.0, 0

        def monotonic(self):
            return self.now

        def __getattr__(self, name):
            return getattr(real_time, name)

    clock = Clock()
    unique_batch = train_module._unique_batch

    def step_batch(batch):
        clock.now += 30.0 if clock.steps == 0 else 1.0
        clock.steps += 1
        return unique_batch(batch)

    monkeypatch.setattr(train_module, "time", clock)
    monkeypatch.setattr(train_module, "_unique_batch", step_batch)
    cfg = yaml.safe_load((CONFIG / "phases" / "gpu-rust.yaml").read_text())
    cfg.update(steps=1000, batch_size=2, warmup_steps=2, document_max_tokens=16, checkpoint_every=1000, log_every=50,
               max_train_seconds=50.0, gate_on=None, model_negatives=0)
    cfg["lora"]["r"] = 2
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(cfg))
    result = train_module.train_phase(load_encoder("default", adapters=False), read_pairs(FIXTURES / "train.jsonl"),
                                      PhaseConfig.load(tmp_path / "p.yaml"), tmp_path / "out")
    assert result.planned == 21 and result.steps == 21 and clock.steps == 21


def test_a_time_budget_ends_a_phase_early_with_its_schedule_finished(tmp_path):
    from codesearch.model import load_encoder
    from codesearch.trainer.phase import PhaseConfig
    from codesearch.trainer.train import train_phase

    cfg = yaml.safe_load((CONFIG / "phases" / "gpu-rust.yaml").read_text())
    cfg.update(steps=1000, batch_size=2, warmup_steps=2, document_max_tokens=32, checkpoint_every=5, log_every=1,
               max_train_seconds=4.0, gate_on=None)
    cfg["lora"]["r"] = 2
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(cfg))
    phase = PhaseConfig.load(tmp_path / "p.yaml")
    encoder = load_encoder("default", adapters=False)
    result = train_phase(encoder, read_pairs(FIXTURES / "train.jsonl"), phase, tmp_path / "out")
    assert 10 <= result.planned < 1000 and result.steps == result.planned
    log = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == result.planned
    assert log[-1]["lr"] == pytest.approx(0.0, abs=1e-9)  # the cosine decay reached its end
    assert math.isclose(max(r["lr"] for r in log), phase.lr, rel_tol=1e-6)
    state = json.loads((tmp_path / "out" / "checkpoint" / "state.json").read_text())
    assert state == {**state, "step": result.planned, "total": result.planned}
    bad = {**cfg, "max_train_seconds": 0}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match="max_train_seconds"):
        PhaseConfig.load(tmp_path / "bad.yaml")
    for key, value in (("steps", 0), ("batch_size", -2), ("steps", 2.5)):
        (tmp_path / "bad3.yaml").write_text(yaml.safe_dump({**cfg, key: value}))
        with pytest.raises(ValueError, match=f"{key} must be a whole number of at least 1"):
            PhaseConfig.load(tmp_path / "bad3.yaml")
    (tmp_path / "bad2.yaml").write_text(yaml.safe_dump({**cfg, "gate_on": ["eval:a", "lean"]}))
    with pytest.raises(ValueError, match="gate_on"):
        PhaseConfig.load(tmp_path / "bad2.yaml")


def test_a_curriculum_config_with_a_typo_is_refused(tmp_path):
    """A misspelt curriculum setting was ignored: `keep_adapter: true` trained every adapter afresh
    instead of re-training on the shipped ones; a missing phase file was a raw OSError."""
    from click.testing import CliRunner

    from codesearch.cli import main
    from codesearch.trainer.curriculum import CurriculumConfig

    phase = CONFIG / "phases" / "cpu-formal.yaml"
    cases = [
        (f"keep_adapter: true\nphases: [{phase}]\n", "unknown setting 'keep_adapter'; the settings are: phases, data"),
        (f"gate_metric: ndcg\nphases: [{phase}]\n", "gate_metric must be one of p@1, mrr@10, recall@5"),
        ("phases: [phases/nowhere.yaml]\n", "phase config phases/nowhere.yaml does not exist"),
    ]
    for text, message in cases:
        (tmp_path / "c.yaml").write_text(text)
        with pytest.raises(ValueError, match=re.escape(message)):
            CurriculumConfig.load(tmp_path / "c.yaml")
        out = CliRunner().invoke(main, ["train", "--config", str(tmp_path / "c.yaml")])
        assert out.exit_code == 2 and message in out.output, out.output
    for shipped in sorted(CONFIG.glob("*.yaml")):  # every shipped curriculum still loads
        if shipped.name.startswith(("curriculum", "retrain-", "formal-gpu")):
            assert CurriculumConfig.load(shipped).phases


def test_the_gpu_scoring_of_a_prepared_set_ranks_as_the_numpy_scoring():
    """On a GPU the prepared sets are scored in one batched bfloat16 MaxSim (run here on CPU):
    the same best document for every query as the numpy scoring search uses."""
    import numpy as np

    from codesearch.scoring import PackedDocs, maxsim_many
    from codesearch.trainer.validation import _maxsim_on_device

    rng = np.random.default_rng(0)

    def unit(n):
        x = rng.standard_normal((n, 16)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    docs = [unit(int(rng.integers(3, 20))) for _ in range(50)]
    queries = [unit(int(rng.integers(2, 8))) for _ in range(20)]
    on_device = _maxsim_on_device(queries, docs, "cpu")
    packed = PackedDocs(docs)
    exact = np.stack([maxsim_many(q, packed) / len(q) for q in queries])  # the device form is per query token
    assert on_device.shape == (20, 50)
    assert np.abs(on_device - exact).max() < 0.02
    assert (on_device.argmax(1) == exact.argmax(1)).all()


@pytest.mark.slow  # about a minute: a second index or curriculum run
def test_a_phase_can_mine_its_hard_negatives_with_the_model_it_starts_from(tmp_path):
    """`model_negatives: 1`: before training, each pair's first negative is the same-language
    positive the starting model ranks highest below the false-negative threshold; the data's
    BM25 negative follows; the counts are written beside the metrics."""
    from codesearch.model import load_encoder
    from codesearch.trainer.phase import PhaseConfig
    from codesearch.trainer.train import refresh_negatives, train_phase, training_pairs

    cfg = yaml.safe_load((CONFIG / "phases" / "gpu-rust.yaml").read_text())
    cfg.update(steps=2, batch_size=4, warmup_steps=1, document_max_tokens=32, checkpoint_every=1, log_every=1,
               gate_on=None, model_negatives=1, max_train_seconds=None)
    cfg["lora"]["r"] = 2
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(cfg))
    phase = PhaseConfig.load(tmp_path / "p.yaml")
    encoder = load_encoder("default", adapters=False)
    pairs = training_pairs(read_pairs(FIXTURES / "train.jsonl"), phase)
    before = [list(p.get("negatives") or []) for p in pairs]
    mined = refresh_negatives(encoder, pairs, phase, None, tmp_path)
    assert [p.get("negatives") or [] for p in pairs] == before  # the caller's pairs untouched
    positives = {p["positive"]: p["language"] for p in pairs}
    changed = 0
    for p, old, new in zip(pairs, before, mined):
        assert new["query"] == p["query"] and len(new["negatives"]) <= 2
        assert p["positive"] not in new["negatives"]
        if new["negatives"] and new["negatives"][0] in positives:  # the model's: a same-language positive
            assert positives[new["negatives"][0]] == p["language"]
        changed += new["negatives"][:1] != old[:1]
    assert changed > 0
    record = json.loads((tmp_path / "negatives.json").read_text())
    assert record["pairs"] == len(pairs) and record["model"] > 0
    result = train_phase(encoder, read_pairs(FIXTURES / "train.jsonl"), phase, tmp_path / "out")
    assert result.steps == 2 and (tmp_path / "out" / "negatives.json").is_file()


def test_a_gate_on_several_sets_keeps_a_phase_only_if_their_mean_rises_and_none_falls():
    """The CPU curriculum's formal phase raised the mean of lean-, coq- and tlaplus-validation
    through TLA+ alone while Lean and Coq fell; a gate on several sets refuses that."""
    from codesearch.trainer.curriculum import _phase_gate
    from codesearch.trainer.phase import PhaseConfig

    phase = PhaseConfig(name="formal", target_domain="formal", adapter="formal", gate_on=["eval:lean", "eval:tla"])
    gate = _phase_gate(phase, "mrr@10", {}, lambda: {}, None)
    before = {"eval:lean": {"mrr@10": 0.52}, "eval:tla": {"mrr@10": 0.55}}
    kept, _ = gate.decide(before, {"eval:lean": {"mrr@10": 0.53}, "eval:tla": {"mrr@10": 0.55}})
    assert kept
    kept, reason = gate.decide(before, {"eval:lean": {"mrr@10": 0.516}, "eval:tla": {"mrr@10": 0.614}})
    assert not kept and "fell: eval:lean" in reason
    kept, _ = gate.decide(before, before)
    assert not kept  # no gain, no keep
