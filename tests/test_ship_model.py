"""scripts/ship_trained_model.py: a run's adapters become the shipped model, with its card."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "ship_trained_model.py"
SHIPPED = ROOT / "codesearch" / "model" / "assets" / "default"


def _weights(model: Path, name: str) -> dict[str, torch.Tensor]:
    return load_file(str(model / "adapters" / name / "adapter_model.safetensors"))


def _same_weights(got: dict[str, torch.Tensor], source: dict[str, torch.Tensor]) -> bool:
    """The shipped weights are the source's, stored in bf16."""
    return got.keys() == source.keys() and all(
        got[k].dtype == torch.bfloat16 and torch.equal(got[k], source[k].to(torch.bfloat16)) for k in got
    )


def _run_folder(tmp: Path) -> Path:
    """A run that trained only a formal adapter (its bytes: a copy of the shipped rust adapter)."""
    run = tmp / "run"
    (run / "model" / "adapters").mkdir(parents=True)
    shutil.copytree(SHIPPED / "adapters" / "rust", run / "model" / "adapters" / "formal")
    weights = run / "model" / "adapters" / "formal" / "adapter_model.safetensors"
    save_file({k: t.float() for k, t in load_file(str(weights)).items()}, str(weights))  # as a GPU run writes it
    shutil.copy2(SHIPPED / "head.safetensors", run / "model" / "head.safetensors")
    config = json.loads((SHIPPED / "codesearch-model.json").read_text())
    config["adapters"] = {"formal": "adapters/formal"}
    config["routing"] = {"formal": "formal"}
    (run / "model" / "codesearch-model.json").write_text(json.dumps(config))
    decision = {"phase": "formal", "adapter": "formal", "target": "formal", "metric": "mrr@10",
                "before": 0.6, "after": 0.8, "kept": True, "pairs_per_second": 480.0}
    (run / "report.json").write_text(json.dumps({"decisions": [decision]}))
    (run / "report.md").write_text("# Curriculum report\n\n| p@1 | base | after formal |\n|---|---|---|\n| formal | 0.5 | 0.7 |\n")
    return run


def _ship(run: Path, dest: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(run), "--dest", str(dest), "--config", "config/formal-gpu.yaml", *flags],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )


def test_keep_shipped_adapters_adds_the_run_adapter_beside_the_shipped_ones(tmp_path):
    run, dest = _run_folder(tmp_path), tmp_path / "dest"
    shutil.copytree(SHIPPED, dest)
    _ship(run, dest, "--keep-shipped-adapters")

    config = json.loads((dest / "codesearch-model.json").read_text())
    assert set(config["adapters"]) == {"formal", "general", "rust"}
    # the run's adapter replaced the shipped one of that name; the others came as they were
    assert _same_weights(_weights(dest, "formal"), _weights(run / "model", "formal"))
    for name in ("general", "rust"):
        assert _same_weights(_weights(dest, name), _weights(SHIPPED, name))
    shipped_routing = json.loads((SHIPPED / "codesearch-model.json").read_text())["routing"]
    assert config["routing"] == {**shipped_routing, "formal": "formal"}
    assert config["description"].count("from config/formal-gpu.yaml") == 1

    _ship(run, dest, "--keep-shipped-adapters")  # shipping again changes nothing
    assert json.loads((dest / "codesearch-model.json").read_text()) == config

    from codesearch.model.folder import ModelFolder

    # the kept adapters' phase configs are the shipped model's (by adapter), the formal one the run's
    kept_titles = {a: p.title for a, p in ModelFolder(SHIPPED).phases_by_adapter().items() if a in ("general", "rust")}
    assert set(kept_titles) == {"general", "rust"}
    card = (dest / "MODEL_CARD.md").read_text()
    assert "### formal-gpu" in card and all(f"### {t}\n" in card for t in kept_titles.values())
    assert "### formal\n" not in card  # the phase config that did not train the shipped formal adapter
    assert "--keep-shipped-adapters" in card
    # the phase configs are stored with the model too, as the card shows them
    stored = ModelFolder(dest).read_phases()
    assert sorted(p.title for p in stored) == sorted(["formal-gpu", *kept_titles.values()])
    assert all(f"### {p.title}\n\n```yaml\n{p.text}\n```\n" in card for p in stored)
    for name in ("formal", "general", "rust"):  # no path of the machine that trained it
        adapter_config = json.loads((dest / "adapters" / name / "adapter_config.json").read_text())
        assert adapter_config["base_model_name_or_path"] == config["base"]


def test_without_keep_the_run_model_alone_is_shipped(tmp_path):
    run, dest = _run_folder(tmp_path), tmp_path / "dest"
    shutil.copytree(SHIPPED, dest)
    _ship(run, dest)
    config = json.loads((dest / "codesearch-model.json").read_text())
    assert set(config["adapters"]) == {"formal"}
    assert sorted(p.name for p in (dest / "adapters").iterdir()) == ["formal"]


def test_a_retraining_run_ships_its_own_adapter_and_keeps_the_newer_shipped_ones(tmp_path):
    """A `keep_adapters` run holds copies of the adapters it started from; the shipped ones may
    be newer since (another run replaced them). Only the adapter the run trained replaces its
    shipped namesake, and each adapter keeps its own way of reading identifiers."""
    run, dest = tmp_path / "run", tmp_path / "dest"
    shutil.copytree(SHIPPED, dest)
    (run / "model" / "adapters").mkdir(parents=True)
    # stale copies of formal and general (other bytes than the shipped ones), and the new rust
    for name, source in (("formal", "rust"), ("general", "rust"), ("rust", "general")):
        shutil.copytree(SHIPPED / "adapters" / source, run / "model" / "adapters" / name)
    shutil.copy2(SHIPPED / "head.safetensors", run / "model" / "head.safetensors")
    config = json.loads((SHIPPED / "codesearch-model.json").read_text())
    config["split_identifiers"] = ["rust"]  # the run: rust reads words; its stale formal and general copies do not
    (run / "model" / "codesearch-model.json").write_text(json.dumps(config))
    decision = {"phase": "rust", "adapter": "rust", "target": "rust", "metric": "mrr@10",
                "before": 0.73, "after": 0.76, "kept": True, "pairs_per_second": 5.4}
    (run / "report.json").write_text(json.dumps({"decisions": [decision]}))
    (run / "report.md").write_text("# Curriculum report\n\n| p@1 | base | after rust |\n|---|---|---|\n| rust | 0.6 | 0.7 |\n")
    subprocess.run(
        [sys.executable, str(SCRIPT), str(run), "--dest", str(dest), "--config", "config/retrain-rust.yaml",
         "--keep-shipped-adapters"], cwd=ROOT, capture_output=True, text=True, check=True,
    )

    assert _same_weights(_weights(dest, "rust"), _weights(run / "model", "rust"))
    for name in ("formal", "general"):
        assert _same_weights(_weights(dest, name), _weights(SHIPPED, name))
    shipped_split = json.loads((SHIPPED / "codesearch-model.json").read_text())["split_identifiers"]
    got = json.loads((dest / "codesearch-model.json").read_text())
    assert got["split_identifiers"] == sorted({"rust"} | ({"formal", "general"} & set(shipped_split)))
    assert "Adapters rust from config/retrain-rust.yaml; formal, general as in the previous release." in got["description"]
    # the card names the phase config behind each adapter: the kept ones as the previous card did
    card = (dest / "MODEL_CARD.md").read_text()
    phases = card.split("\n## Phase configs\n", 1)[1]
    assert phases.count("adapter: formal") == phases.count("adapter: general") == phases.count("adapter: rust") == 1
    before = (SHIPPED / "MODEL_CARD.md").read_text().split("\n## Phase configs\n", 1)[1]
    formal_section = re.search(r"### (\S+)\n\n```yaml\n((?:(?!```).)*adapter: formal\n(?:(?!```).)*)```", before, re.S)
    assert formal_section and f"### {formal_section[1]}\n\n```yaml\n{formal_section[2]}```" in phases
    assert (ROOT / "config" / "phases" / "rust.yaml").read_text().strip() in phases


def test_a_run_whose_gate_refused_everything_ships_nothing(tmp_path):
    run, dest = _run_folder(tmp_path), tmp_path / "dest"
    shutil.copytree(SHIPPED, dest)
    report = json.loads((run / "report.json").read_text())
    report["decisions"][0]["kept"] = False
    (run / "report.json").write_text(json.dumps(report))
    done = subprocess.run([sys.executable, str(SCRIPT), str(run), "--dest", str(dest), "--keep-shipped-adapters"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode != 0 and "nothing to ship" in done.stderr
    assert (dest / "codesearch-model.json").read_bytes() == (SHIPPED / "codesearch-model.json").read_bytes()


def test_interpolating_a_model_folder_halves_each_adapters_change_and_says_so(tmp_path):
    """scripts/interpolate_adapters.py: every LoRA B of the named adapters is scaled (exactly, in
    bf16), A and the other adapters stay, the description says what was done, and the folder
    still loads and encodes, closer to the base model than before."""
    import numpy as np

    from codesearch.model import MultiVectorEncoder

    model = tmp_path / "model"
    shutil.copytree(SHIPPED, model)
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "interpolate_adapters.py"), str(model), "0.5", "--adapter", "rust"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    before, after = _weights(SHIPPED, "rust"), _weights(model, "rust")
    assert any(".lora_B." in k for k in after)
    for k, t in after.items():
        assert t.dtype == before[k].dtype
        assert torch.equal(t, before[k] * 0.5 if ".lora_B." in k else before[k]), k
    assert _weights(model, "formal").keys() == _weights(SHIPPED, "formal").keys()
    assert all(torch.equal(a, b) for a, b in zip(_weights(model, "formal").values(), _weights(SHIPPED, "formal").values()))
    assert "Interpolated toward the base model: rust by 0.5" in json.loads((model / "codesearch-model.json").read_text())["description"]

    text = ["fn checked_add(self, rhs: u64) -> Option<u64> { self.0.checked_add(rhs).map(Self) }"]
    vectors = {}
    for name, folder in (("shipped", SHIPPED), ("half", model)):
        encoder = MultiVectorEncoder.load(folder)
        encoder.use_adapter("rust")
        vectors[name] = encoder.encode_documents(text)[0][0]
        encoder.use_adapter(None)
        vectors["base"] = encoder.encode_documents(text)[0][0]
    gap = lambda a, b: float(np.abs(vectors[a] - vectors[b]).mean())
    assert 0 < gap("half", "base") < gap("shipped", "base")

    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "interpolate_adapters.py"), str(model), "0.5", "--adapter", "lean"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "no adapter lean" in bad.stderr


def test_the_shipped_model_stores_the_phase_configs_its_card_shows():
    """codesearch/model/assets/default/phases/: what ship_trained_model.py reads back for the
    adapters a later run keeps; the card's "Phase configs" section is made from them."""
    from codesearch.model.folder import ModelFolder

    folder = ModelFolder(SHIPPED)
    phases = folder.phases_by_adapter()
    assert set(phases) == set(folder.read_manifest()["adapters"])
    section = folder.read_card().split("\n## Phase configs\n", 1)[1]
    shown = re.findall(r"^### (\S+)\n\n```yaml\n(.*?)\n```", section, re.S | re.M)
    assert sorted(shown) == sorted((p.title, p.text) for p in folder.read_phases())


def test_a_model_folder_reads_back_what_it_wrote(tmp_path, encoder):
    """ModelFolder.save / load: manifest, head, adapters, phase configs and card round-trip, and
    the loaded model builds the same index (same fingerprints)."""
    from codesearch.model.folder import ModelFolder, PhaseSource

    shipped = encoder  # the shipped model
    phases = [PhaseSource("rust", (ROOT / "config" / "phases" / "rust.yaml").read_text().strip())]
    folder = ModelFolder(tmp_path / "m").save(shipped, phases=phases, card="# card\n")
    assert folder.read_manifest() == ModelFolder(SHIPPED).read_manifest()
    assert folder.read_phases() == phases and folder.phases_by_adapter() == {"rust": phases[0]}
    assert folder.read_card() == "# card\n"
    again = folder.load()
    assert again.space_fingerprints() == shipped.space_fingerprints() and again.fingerprint == shipped.fingerprint
    folder.write_phases([])
    assert folder.read_phases() == [] and not folder.phases_dir.exists()
