"""Typed settings (codesearch/settings.py): defaults in config/default.yaml only, a user's file
checked at start (one-line errors naming the key), a user's value reaching what reads it."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from codesearch.cli import main
from codesearch.config import default_settings, load_settings
from codesearch.settings import (
    SECTIONS,
    IndexSettings,
    LspSettings,
    SearchSettings,
    Settings,
    SettingsError,
    WatchSettings,
    ann_build_rows,
)


def cli(tmp_path: Path, config: str, *args: str):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(config)
    return CliRunner().invoke(main, ["--config", str(cfg), "--home", str(tmp_path / "home"), *args])


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("codesearch: error: ")
    return lines[0]


# ---------------------------------------------------------------------------- one place of defaults
def test_every_typed_key_has_its_default_in_default_yaml_and_no_more():
    shipped = default_settings()
    for section in SECTIONS:
        assert [f.name for f in fields(section)] == list(shipped[section.SECTION]), section.SECTION
    typed = Settings.from_settings(shipped)
    assert typed.search.limit == shipped["search"]["limit"]
    assert typed.index.max_file_bytes == shipped["index"]["max_file_bytes"]
    assert typed.watch.debounce_ms == shipped["watch"]["debounce_ms"]
    assert typed.lsp.model_idle_s == shipped["lsp"]["model_idle_s"]


def test_a_plain_dict_gets_the_rest_from_default_yaml():
    search = SearchSettings.from_settings({"search": {"limit": 3}})
    assert search.limit == 3 and search.method == SearchSettings.defaults().method
    assert SearchSettings.from_settings(None) == SearchSettings.defaults()
    assert SearchSettings.from_settings(search) is search
    typed = Settings.from_settings({"watch": {"debounce_ms": 5}})
    assert WatchSettings.from_settings(typed).debounce_ms == 5.0
    assert IndexSettings.from_settings({"index": {"token_merge": None}}).token_merge is None
    assert LspSettings.from_settings({"lsp": {"model_idle_s": None}}).model_idle_s is None


@pytest.mark.parametrize("settings, message", [
    ({"search": {"limt": 3}}, "search.limt: unknown setting; the search settings are: limit, method,"),
    ({"search": {"limit": "ten"}}, "search.limit: expected an integer, got 'ten'"),
    ({"search": {"limit": True}}, "search.limit: expected an integer, got True"),
    ({"search": {"method": "fuzzy"}}, "search.method: must be one of hybrid, multivector, dense, bm25"),
    ({"watch": {"debounce_ms": "soon"}}, "watch.debounce_ms: expected a number, got 'soon'"),
    ({"lsp": {"model_idle_s": "soon"}}, "lsp.model_idle_s: expected a number or null, got 'soon'"),
    ({"search": 3}, "search: expected a mapping of settings, got int"),
    # numbers out of their range: a limit of 0 gave "No results." for every search
    ({"search": {"limit": 0}}, "search.limit: must be from 1 to 1000, got 0"),
    ({"search": {"role_prior": 1.5}}, "search.role_prior: must be from 0 to 1, got 1.5"),
    ({"search": {"lexical_weight": -1}}, "search.lexical_weight: must be at least 0, got -1.0"),
    ({"index": {"batch_chunks": 0}}, "index.batch_chunks: must be at least 1, got 0"),
    ({"watch": {"retry_s": 0}}, "watch.retry_s: must be at least 0.01, got 0.0"),
    ({"serach": {}}, "serach: unknown setting; the settings are: home, model, index, search, watch, lsp"),
])
def test_bad_settings_are_one_line_errors_naming_the_key(settings, message):
    with pytest.raises(SettingsError) as err:
        Settings.from_settings(settings)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


# ---------------------------------------------------------------------------- the user's file, through the CLI
def test_unknown_key_in_the_users_file_lists_the_valid_ones(tmp_path):
    line = one_line_error(cli(tmp_path, "search:\n  limt: 3\n", "status"))
    assert line.startswith("codesearch: error: search.limt: unknown setting")
    valid = line.split("the search settings are: ", 1)[1]
    for key in ("limit", "method", "candidates_dense", "exact_below", "cache_mb"):
        assert key in valid
    assert str(tmp_path / "config.yaml") in line  # which file


def test_unknown_section_in_the_users_file(tmp_path):
    line = one_line_error(cli(tmp_path, "serach:\n  limit: 3\n", "status"))
    assert line.startswith("codesearch: error: serach: unknown setting; the settings are: home, model, index, search")


@pytest.mark.parametrize("config, message", [
    ("search:\n  limit: ten\n", "search.limit: expected an integer, got 'ten'"),
    ("watch:\n  debounce_ms: [1]\n", "watch.debounce_ms: expected a number, got [1]"),
    ("search:\n  service: maybe\n", "search.service: expected true or false, got 'maybe'"),
    ("index:\n  token_codec: 4\n", "index.token_codec: expected a string, got 4"),
    ("search:\n  limit: 0\n", "search.limit: must be from 1 to 1000, got 0"),
])
def test_wrong_type_in_the_users_file_names_the_key(tmp_path, config, message):
    line = one_line_error(cli(tmp_path, config, "status"))
    assert line.startswith(f"codesearch: error: {message}"), line


def test_the_users_value_overrides_the_default_where_it_is_read(small_repo, tmp_path):
    assert SearchSettings.defaults().limit != 2
    config = "search:\n  limit: 2\n"
    out = cli(tmp_path, config, "index", str(small_repo), "-q")
    assert out.exit_code == 0, out.output
    res = cli(tmp_path, config, "search", "check if a value is within bounds", "--json")
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.output)) == 2  # search.limit from the file
    res = cli(tmp_path, config, "search", "check if a value is within bounds", "--json", "--limit", "3")
    assert len(json.loads(res.output)) == 3  # the flag still wins


def test_readers_take_a_dict_or_the_typed_settings(tmp_path):
    from codesearch.indexer.pipeline import Indexer
    from codesearch.lsp.engine import model_idle_s
    from codesearch.search import Searcher

    cfg = tmp_path / "config.yaml"
    cfg.write_text("search:\n  exact_below: 7\nindex:\n  max_file_bytes: 1234\n")
    settings = load_settings(config_file=cfg, home=str(tmp_path / "home"))
    store = SimpleNamespace(meta=lambda: {}, home=str(tmp_path / "home"), ann_min_rows=None)
    encoder = SimpleNamespace(fingerprint="f")
    for given in (settings, Settings.from_settings(settings)):
        assert Searcher(store, encoder, given).exact_below == 7
        assert Indexer(store, encoder, given).max_file_bytes == 1234
        assert store.ann_min_rows == ann_build_rows(None) == SearchSettings.defaults().in_memory_max + 1
    assert Searcher(store, encoder, SearchSettings.from_settings(settings)).exact_below == 7
    assert Searcher(store, encoder, None).exact_below == SearchSettings.defaults().exact_below
    assert model_idle_s({"lsp": {"model_idle_s": "soon"}}) == LspSettings.defaults().model_idle_s
