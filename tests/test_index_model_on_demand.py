"""`codesearch index` loads a document encoder only once there is something to embed: a run over
a home with nothing new answers in about 2 s instead of 7, without torch (codesearch/model/ondemand.py);
on a CPU, where documents run in 8 bits, it never imports torch (codesearch/model/docint8.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from codesearch.cli import main
from codesearch.model import DEFAULT_MODEL_DIR

# The command line in a fresh interpreter, saying at exit whether torch was imported.
PROBE = (
    "import sys\nfrom codesearch.cli import main\ntry:\n    main(sys.argv[1:])\n"
    "finally:\n    print('torch imported:', 'torch' in sys.modules, file=sys.stderr)\n"
)


def _index(home: Path, repo: Path, *model: str, documents: str = "auto") -> subprocess.CompletedProcess:
    env = dict(os.environ, CODESEARCH_DOCUMENT_RUNTIME=documents)
    return subprocess.run([sys.executable, "-c", PROBE, "--home", str(home), *model, "index", str(repo), "--json"],
                          capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow  # (13-17 s: .ci/run's slow step; the default run took 7:44 to 8:12 here)
def test_an_index_run_loads_the_model_only_when_something_is_to_be_embedded(small_repo, tmp_path, encoder):
    from codesearch.config import load_settings
    from codesearch.indexer.pipeline import Indexer
    from codesearch.indexer.store import Store

    home = tmp_path / "home"
    Indexer(Store(home), encoder, load_settings(config_file=None, home=str(home))).run([small_repo])

    same = _index(home, small_repo)
    assert same.returncode == 0, same.stderr
    summary = json.loads(same.stdout)
    assert (summary["files_unchanged"], summary["embedded"], summary["model_load_seconds"]) == (5, 0, 0)
    assert "torch imported: False" in same.stderr

    (small_repo / "src" / "clamp.rs").write_text(
        "/// Limit a temperature reading to the range the sensor can report.\n"
        "pub fn clamp_reading(t: f64) -> f64 {\n    t.max(-40.0).min(125.0)\n}\n"
    )
    # By default on any CPU (with native bfloat16 or without), documents run in 8 bits without
    # torch (codesearch/model/docint8.py); in torch, with it.
    for documents, name, torch_imported in (("auto", "clamp_reading", False), ("torch", "wrap_angle", True)):
        (small_repo / "src" / f"{name}.rs").write_text(
            "/// Limit a temperature reading to the range the sensor can report.\n"
            "pub fn clamp_reading(t: f64) -> f64 {\n    t.max(-40.0).min(125.0)\n}\n" if name == "clamp_reading" else
            "/// Bring an angle in degrees back into the range from 0 to 360.\n"
            "pub fn wrap_angle(a: f64) -> f64 {\n    a.rem_euclid(360.0)\n}\n"
        )
        changed = _index(home, small_repo, documents=documents)
        assert changed.returncode == 0, changed.stderr
        summary = json.loads(changed.stdout)
        assert summary["embedded"] >= 1 and summary["model_load_seconds"] > 0
        assert f"torch imported: {torch_imported}" in changed.stderr, documents
    for query, name in (("limit a sensor reading to a range", "clamp_reading"), ("normalise an angle in degrees", "wrap_angle")):
        found = CliRunner().invoke(main, ["--home", str(home), "search", query, "--json"])
        assert json.loads(found.output)[0]["name"] == name


@pytest.mark.slow  # (18 s: .ci/run's second step, with the other faults)
def test_a_model_that_cannot_load_to_embed_ends_the_run_in_one_line_and_loses_nothing(small_repo, tmp_path):
    # A model whose files the query side reads, but torch cannot build (an adapter names modules
    # the base model does not have).
    bad = tmp_path / "bad-model"
    shutil.copytree(DEFAULT_MODEL_DIR, bad)
    config = bad / "adapters" / "rust" / "adapter_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "target_modules": ["no_such_module"]}))
    home = tmp_path / "home"

    failed = _index(home, small_repo, "--model", str(bad), documents="torch")  # (the 8-bit path reads only the factors)
    assert failed.returncode == 2, failed.stderr
    errors = [line for line in failed.stderr.splitlines() if line.startswith("codesearch: error:")]
    assert len(errors) == 1 and errors[0].startswith("codesearch: error: cannot load the model to embed documents: ")
    assert "no_such_module" in errors[0]
    assert "Traceback" not in failed.stderr

    again = _index(home, small_repo)  # the shipped model: every file is indexed, none was recorded as done
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["files_indexed"], summary["total_chunks"]) == (5, summary["chunks"]) and summary["chunks"] > 0
