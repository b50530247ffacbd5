"""What a new user runs into first: clear errors for filters that cannot match, a quiet stderr,
an eval run against the wrong root, an empty index's status, an unloadable model folder.
Real model, real LanceDB, real files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from codesearch.cli import main
from conftest import FIXTURES


def run_cli(*args: str, home: Path):
    return CliRunner().invoke(main, ["--home", str(home), *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """(home, repo): the small fixture repository, indexed once for the module."""
    base = tmp_path_factory.mktemp("newcomer")
    repo = base / "repos" / "small"
    shutil.copytree(FIXTURES / "repo_small", repo)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    home = base / "home"
    out = run_cli("index", str(repo), "-q", home=home)
    assert out.exit_code == 0, out.output
    return home, repo


def _one_error_line(output: str) -> str:
    lines = [l for l in output.splitlines() if l.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("codesearch: error: "), output
    assert "Traceback" not in output
    return lines[0]


def test_language_aliases_search_as_the_language(indexed):
    home, repo = indexed
    for alias in ("tla", "TLA+", "tlaplus"):
        res = run_cli("search", "increment the counter", "--lang", alias, "--json", home=home)
        assert res.exit_code == 0, res.output
        found = json.loads(res.output)
        assert found and {r["language"] for r in found} == {"tlaplus"}


def test_unknown_language_is_an_error_listing_the_valid_ones(indexed):
    home, _ = indexed
    res = run_cli("search", "x", "--lang", "nosuchlang", home=home)
    assert res.exit_code == 2
    line = _one_error_line(res.output)
    assert "nosuchlang" in line and "tlaplus" in line and "rust" in line and "text" in line
    typo = run_cli("search", "x", "--lang", "pyhton", home=home)
    assert typo.exit_code == 2 and "did you mean 'python'" in _one_error_line(typo.output)


def test_unknown_kind_is_an_error_listing_the_present_kinds(indexed):
    home, _ = indexed
    res = run_cli("search", "x", "--kind", "nosuchkind", home=home)
    assert res.exit_code == 2
    line = _one_error_line(res.output)
    assert "nosuchkind" in line and "function" in line and "theorem" in line and "operator" in line
    ok = run_cli("search", "length of appended lists", "--kind", "theorem", "--json", home=home)
    assert ok.exit_code == 0 and {r["kind"] for r in json.loads(ok.output)} == {"theorem"}


def test_a_repo_filter_matching_no_indexed_repository_is_an_error(indexed):
    home, repo = indexed
    res = run_cli("search", "x", "--repo", "nosuchrepo", home=home)
    assert res.exit_code == 2
    assert str(repo) in _one_error_line(res.output)
    for spelled in ("small", str(repo)):
        ok = run_cli("search", "value within bounds", "--repo", spelled, "--json", home=home)
        assert ok.exit_code == 0 and json.loads(ok.output), ok.output


def test_lsp_params_take_language_aliases_and_refuse_unknown_ones():
    from codesearch.lsp.search import RequestError, parse_search_params

    assert parse_search_params({"query": "x", "lang": ["rs", "rocq"]}, [], 10).lang == ("rust", "coq")
    with pytest.raises(RequestError, match="did you mean 'lean'"):
        parse_search_params({"query": "x", "lang": "leen"}, [], 10)


def test_search_json_leaves_stderr_clean(indexed):
    home, _ = indexed
    done = subprocess.run([sys.executable, "-m", "codesearch.cli", "--home", str(home), "search", "counter", "--json"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)
    assert done.stderr == "", done.stderr


def test_eval_with_a_wrong_root_fails_clearly(indexed, tmp_path):
    home, repo = indexed
    evalset = tmp_path / "set.jsonl"
    lines = [{"id": "a", "query": "check if a value is within bounds", "domain": "rust",
              "relevant": [{"path": "src/bounds.rs", "start_line": 11, "end_line": 14}]},
             {"id": "b", "query": "gone", "domain": "rust",
              "relevant": [{"path": "src/gone.rs", "start_line": 1, "end_line": 2}]}]
    evalset.write_text("\n".join(json.dumps(l) for l in lines) + "\n")
    wrong = run_cli("eval", str(evalset), "--root", str(repo.parent), home=home)
    assert wrong.exit_code == 2
    line = _one_error_line(wrong.output)
    assert "none of the 2 files" in line and f"--root {repo}" in line
    some = run_cli("eval", str(evalset), "--root", str(repo), "-q", home=home)
    assert some.exit_code == 0, some.output
    assert "warning: 1 of the 2 files" in some.output and "src/gone.rs" in some.output
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    none = run_cli("eval", str(empty), "--root", str(repo), home=home)
    assert none.exit_code == 2 and "no queries" in _one_error_line(none.output)


def test_status_of_an_empty_index_has_no_per_chunk_figure(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    subprocess.run(["git", "init", "-q", str(empty)], check=True)
    home = tmp_path / "home"
    assert run_cli("index", str(empty), "-q", home=home).exit_code == 0
    res = run_cli("status", home=home)
    assert res.exit_code == 0, res.output
    assert "per chunk" not in res.output


def test_help_names_the_shipped_model():
    res = CliRunner().invoke(main, ["--help"])
    assert '"shipped"' in res.output


def _pickled_model_folder(folder: Path) -> Path:
    """A Hugging Face model folder (the packaged base's config and tokenizer) whose weights are a pickle."""
    import torch

    from codesearch.model.encoder import packaged_base_path

    base = packaged_base_path()
    folder.mkdir(parents=True)
    for f in base.iterdir():
        if f.is_file() and not f.name.endswith(".safetensors"):
            shutil.copy(f, folder / f.name)
    torch.save({"embeddings.word_embeddings.weight": torch.zeros(2, 2)}, folder / "pytorch_model.bin")
    return folder


def test_a_model_folder_with_pickled_weights_is_refused_in_one_line(indexed, tmp_path):
    home, _ = indexed
    model = _pickled_model_folder(tmp_path / "pickled")
    res = CliRunner().invoke(main, ["--home", str(home), "--model", str(model), "search", "x"])
    assert res.exit_code == 2, res.output
    line = _one_error_line(res.output)
    assert "pytorch_model.bin" in line and "safetensors" in line


def test_an_adapter_with_pickled_weights_is_refused_in_one_line(indexed, tmp_path):
    import torch

    from codesearch.model import DEFAULT_MODEL_DIR

    home, _ = indexed
    model = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, model)
    adapter = model / "adapters" / "rust"
    for f in adapter.glob("*.safetensors"):
        f.unlink()
    torch.save({"x": torch.zeros(1)}, adapter / "adapter_model.bin")
    res = CliRunner().invoke(main, ["--home", str(home), "--model", str(model), "search", "x"])
    assert res.exit_code == 2, res.output
    line = _one_error_line(res.output)
    assert "adapter 'rust'" in line and "adapter_model.bin" in line and "safetensors" in line
