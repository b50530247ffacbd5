"""Secrets found by content (codesearch/indexer/secrets.py, detect-secrets' plugins): files
holding them are skipped as "secret (content)"; index homes are private (0700 / 0600)."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
from pathlib import Path

import pytest

from codesearch.indexer import secrets
from codesearch.indexer.walk import SkipFile, read_text

_B64 = base64.b64encode(bytes(range(256)) * 2).decode()


def _pem(kind: str) -> str:
    body = "\n".join(_B64[i:i + 64] for i in range(0, 640, 64))
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n"


# Fake but well-formed secrets, one per kind (none of them is a live credential).
_AKIA = "AKIAQW7RTY2UIO4PASDF"
_GHP = "ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5"
PLANTED = {
    "rsa key": _pem("RSA PRIVATE KEY"),
    "ec key": _pem("EC PRIVATE KEY"),
    "openssh key": _pem("OPENSSH PRIVATE KEY"),
    "gcp service account": '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\n'
                           + _B64[:64] + '\\n-----END PRIVATE KEY-----\\n"}',
    "aws key id": f'AWS_ACCESS_KEY_ID = "{_AKIA}"',
    "github ghp": f"export GITHUB_TOKEN={_GHP}",
    "github pat": "TOKEN=github_pat_11ABCDEFG0123456789XYZ_" + "Zq8" * 19 + "xw",
    "gitlab": 'token = "glpat-Xq3Rt7Yu1Io5Pa9Sd2Fg"',
    "slack": 'SLACK = "xoxb-123456789012-1234567890123-aq3rt7yu1io5pa9sd2fgh4jk"',
    "stripe": 'Stripe.api_key = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"',
    "sendgrid": 'KEY = "SG.' + "aQ3rT7yU1iO5pA9sD2fG4h" + "." + "kL6zX8cV0bN2mQ4wE6rT8yU0iO2pA4sD6fG8hJ0kL2z" + '"',
    "npm": "//registry.npmjs.org/:_authToken=npm_aQ3rT7yU1iO5pA9sD2fG4hJ6kL8zX0cV2bN4",
    "pypi": "password = pypi-AgEIcHlwaS5vcmc" + "aQ3rT7yU1iO5pA9sD2fG4hJ6kL8zX0cV2bN4" * 3,
    "jwt": "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "basic auth url": "DATABASE_URL = postgres://admin:s3cr3tPassw0rd@db.example.com:5432/prod",
    "telegram": 'BOT = "1234567890:AAaQ3rT7yU1iO5pA9sD2fG4hJ6kL8zX0cV2"',
}

# Lines that look like secrets to a careless rule and must not count.
NOT_SECRETS = {
    "cargo lock checksum": 'checksum = "a9d3a6f2b7a6e6f8c0d2b4a6e8f0a2c4e6a8b0d2f4a6c8e0b2d4f6a8c0e2a4b6"',
    "sha256 test vector": 'assert_eq!(sha256(b"abc"), hex!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));',
    "pem parser constant": 'const RSA_HEADER: &str = "-----BEGIN RSA PRIVATE KEY-----";',
    "aws prefix check": 'if key.startswith("AKIA") and len(key) == 20:',
    "git commit hash": "Fixed in commit 3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39 (see #123)",
    "templated": 'url = "https://${USER}:${PASSWORD}@example.com/"',
    "base64 blob": 'DATA = "' + _B64[:120] + '"',
    "uuid": 'id = "123e4567-e89b-12d3-a456-426614174000"',
    "plain code": "def connect(host, port):\n    return socket.create_connection((host, port))",
}


@pytest.mark.parametrize("kind", sorted(PLANTED))
def test_planted_secret_found(kind):
    assert secrets.has_secret("# config\n" + PLANTED[kind] + "\n", "notes.txt"), kind


@pytest.mark.parametrize("kind", sorted(NOT_SECRETS))
def test_lookalike_not_a_secret(kind):
    assert not secrets.has_secret(NOT_SECRETS[kind] + "\n", "src/lib.rs"), kind


def test_allowlist_pragma():
    line = f'AWS_ACCESS_KEY_ID = "{_AKIA}"'
    assert secrets.has_secret(line, "settings.py")
    assert not secrets.has_secret(line + "  # pragma: allowlist secret", "settings.py")
    assert not secrets.has_secret("// pragma: allowlist nextline secret\n" + line, "main.go")
    assert secrets.has_secret(line + "  # pragma: allowlist secret\n" + line, "settings.py")


def test_read_text_skips(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("my key\n" + PLANTED["rsa key"])
    with pytest.raises(SkipFile) as err:
        read_text(f)
    assert err.value.reason == secrets.SKIP_REASON == "secret (content)"
    g = tmp_path / "ok.py"
    g.write_text("x = 1\n")
    assert read_text(g) == "x = 1\n"


def test_index_skips_secrets_and_home_is_private(tmp_path, index_env):
    store, indexer, searcher = index_env
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "notes.txt").write_text("server key, RSA PRIVATE KEY below\n" + PLANTED["rsa key"])
    (repo / "settings.py").write_text(f'DEBUG = False\nAWS_ACCESS_KEY_ID = "{_AKIA}"\n')
    (repo / "deploy.sh").write_text(f"#!/bin/sh\nexport GITHUB_TOKEN={_GHP}\ngit push origin main\n")
    (repo / "allowed.py").write_text(
        f'EXAMPLE_KEY = "{_AKIA}"  # pragma: allowlist secret\n\ndef parse_key(text):\n    return text.strip()\n')
    (repo / "lib.py").write_text(
        "def load_private_key(path):\n    \"\"\"Read an RSA private key from a PEM file.\"\"\"\n"
        "    with open(path) as fh:\n        return fh.read()\n")

    summary = indexer.run([repo])
    assert summary.skipped["secret (content)"] == 3
    hits = searcher().search("RSA PRIVATE KEY", limit=20)
    paths = {Path(r.path).name for r in hits}
    assert {"notes.txt", "settings.py", "deploy.sh"}.isdisjoint(paths)
    assert "lib.py" in paths and "allowed.py" in paths | {
        Path(r.path).name for r in searcher().search("parse key text", limit=20)}
    for r in hits:
        assert "PRIVATE KEY-----" not in r.snippet and _GHP not in r.snippet and _AKIA not in r.snippet or \
            Path(r.path).name == "allowed.py"

    home = store.home
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    files = [p for p in home.rglob("*") if p.is_file()]
    dirs = [p for p in home.rglob("*") if p.is_dir()]
    assert files
    for p in files:
        assert stat.S_IMODE(os.stat(p).st_mode) & 0o077 == 0, p
    for p in dirs:
        assert stat.S_IMODE(os.stat(p).st_mode) & 0o077 == 0, p


# ---------------------------------------------------------------------------- index.secrets_allow
def _fixture_repo(tmp_path: Path) -> Path:
    """A repository whose test fixtures hold a fake AWS key (and a .pem, secret by name)."""
    repo = tmp_path / "repo"
    (repo / "tests" / "fixtures").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "tests" / "fixtures" / "aws_config.py").write_text(
        f'FAKE_KEY_ID = "{_AKIA}"\n\ndef fake_credentials():\n    return {{"key_id": FAKE_KEY_ID}}\n')
    (repo / "tests" / "fixtures" / "server.pem").write_text(PLANTED["rsa key"])
    (repo / "settings.py").write_text(f'DEBUG = False\nAWS_ACCESS_KEY_ID = "{_AKIA}"\n')
    (repo / "lib.py").write_text("def load_credentials(path):\n    return open(path).read()\n")
    return repo


def _index_with(tmp_path: Path, encoder, repo: Path, name: str, config: str):
    from codesearch.config import load_settings
    from codesearch.indexer.pipeline import Indexer
    from codesearch.indexer.store import Store

    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(config)
    settings = load_settings(config_file=cfg, home=str(tmp_path / name))
    store = Store(Path(settings["home"]))
    summary = Indexer(store, encoder, settings).run([repo])
    rows = store.table("chunks").search().select(["path"]).limit(None).to_arrow()
    return summary, {os.path.relpath(p, repo) for p in rows.column("path").to_pylist()}


def test_secrets_allow_lets_fixtures_with_fake_keys_be_indexed(tmp_path, encoder):
    repo = _fixture_repo(tmp_path)
    before, paths = _index_with(tmp_path, encoder, repo, "plain", "{}\n")
    assert before.skipped["secret (content)"] == 2 and before.skipped["secret"] == 1
    assert paths == {"lib.py"}
    after, paths = _index_with(tmp_path, encoder, repo, "allow", "index:\n  secrets_allow: [tests/fixtures/]\n")
    assert after.skipped["secret (content)"] == 1  # settings.py: not under the pattern
    assert after.skipped["secret"] == 1  # server.pem: the rules by name still apply
    assert paths == {"lib.py", "tests/fixtures/aws_config.py"}
    # The watcher's path-by-path walk applies it too.
    from codesearch.indexer.scope import walk_paths

    scope = walk_paths([repo], [repo / "tests" / "fixtures" / "aws_config.py", repo / "settings.py"],
                       secrets_allow=["tests/fixtures/"])
    assert {s.rel_path: s.scan_secrets for s in scope.sources} == {"tests/fixtures/aws_config.py": False, "settings.py": True}
    by_name = {s.rel_path: s for s in scope.sources}
    assert _AKIA in read_text(by_name["tests/fixtures/aws_config.py"])
    with pytest.raises(SkipFile, match="secret"):
        read_text(by_name["settings.py"])


@pytest.mark.parametrize("value, message", [
    ('"tests/fixtures/"', "index.secrets_allow: expected a list of gitignore-style patterns"),
    ("[tests/, 3]", "index.secrets_allow: 3 is not a pattern"),
    ('["!"]', "index.secrets_allow: invalid pattern"),
    ("{a: 1}", "index.secrets_allow: expected a list of gitignore-style patterns"),
])
def test_bad_secrets_allow_is_a_one_line_error(tmp_path, value, message):
    from click.testing import CliRunner

    from codesearch.cli import main

    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"index:\n  secrets_allow: {value}\n")
    out = CliRunner().invoke(main, ["--config", str(cfg), "--home", str(tmp_path / "home"), "status"])
    assert out.exit_code == 2
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"codesearch: error: {message}"), out.output
