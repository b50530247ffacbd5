"""Secrets found by content: files holding credentials are not indexed.

:mod:`codesearch.indexer.walk` already skips files whose *name* says they hold
credentials (``*.pem``, ``.env``, ``.aws/credentials``, ...). This module catches the
rest: a private-key block pasted into ``notes.txt``, a GCP service-account JSON, an AWS
key id in ``settings.py``, a GitHub token in ``deploy.sh``.

The rules are those of Yelp's maintained detector `detect-secrets
<https://github.com/Yelp/detect-secrets>`_ (its regex plugins, see :data:`PLUGINS`),
with its high-entropy-string and keyword plugins left off: on real code they flag
hashes, test vectors and every ``password = ...`` line. Its false-positive filters that
apply to token-shaped secrets are kept (sequential strings such as ``AKIAABCDEFGH...``,
UUIDs, templates such as ``${TOKEN}``, strings without a letter), and so is its inline
allow-list pragma: a line carrying ``pragma: allowlist secret`` in a comment (``#``,
``//``, ``/* */``, ``--``, ``<!-- -->``), or following a line with ``pragma: allowlist
nextline secret``, is not reported. That pragma is how a false positive is let through.

A private-key header counts only when key material follows it (a base64 line after it, or
the rest of a one-line JSON string): code that merely names ``"-----BEGIN PRIVATE
KEY-----"`` (PEM parsers, docs) is not a secret.

Speed: each plugin's regexes first search the whole text (compiled C regexes, most with
a literal prefix); only the lines around a match are then analysed the way detect-secrets
does it (``plugin.analyze_string`` on the line, then its filters). Files without any match,
nearly all of them, cost one pass per regex and no line splitting.
"""

from __future__ import annotations

import re
from typing import Iterator, NamedTuple

from detect_secrets.filters.allowlist import is_line_allowlisted
from detect_secrets.filters.heuristic import (
    is_not_alphanumeric_string,
    is_potential_uuid,
    is_sequential_string,
    is_templated_secret,
)
from detect_secrets.plugins.artifactory import ArtifactoryDetector
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.cloudant import CloudantDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.ibm_cloud_iam import IbmCloudIamDetector
from detect_secrets.plugins.ibm_cos_hmac import IbmCosHmacDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.private_key import PrivateKeyDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.softlayer import SoftlayerDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector
from detect_secrets.util.code_snippet import CodeSnippet

__all__ = ["PLUGINS", "SKIP_REASON", "Finding", "find_secrets", "has_secret"]

#: The reason a file with a secret is skipped and counted under.
SKIP_REASON = "secret (content)"



class GitHubFineGrainedTokenDetector(RegexBasedDetector):
    """GitHub fine-grained personal access tokens (``github_pat_``), which detect-secrets
    1.5 does not know; the pattern is gitleaks' ``github-fine-grained-pat`` rule."""

    secret_type = "GitHub Fine-grained Token"
    denylist = (re.compile(r"github_pat_\w{82}"),)


#: detect-secrets plugins in use: every regex plugin of detect-secrets 1.5 except
#: IPPublicDetector (an address is not a credential), plus the one above. HighEntropyString
#: and Keyword plugins are off on purpose (false positives on real code).
PLUGINS = tuple(cls() for cls in (
    GitHubFineGrainedTokenDetector,
    ArtifactoryDetector, AWSKeyDetector, AzureStorageKeyDetector, BasicAuthDetector,
    CloudantDetector, DiscordBotTokenDetector, GitHubTokenDetector, GitLabTokenDetector,
    IbmCloudIamDetector, IbmCosHmacDetector, JwtTokenDetector, MailchimpDetector,
    NpmDetector, OpenAIDetector, PrivateKeyDetector, PypiTokenDetector, SendGridDetector,
    SlackDetector, SoftlayerDetector, SquareOAuthDetector, StripeDetector,
    TelegramBotTokenDetector, TwilioKeyDetector,
))

#: Cheap necessary conditions for the plugins whose own regexes are slow on whole texts
#: (no literal prefix): a text that does not match the gate cannot match the plugin.
_PLUGIN_GATES = {
    # the assignment-style plugins: a key of 24+ word characters (one shared search)
    IbmCloudIamDetector: r"[a-zA-Z0-9_\-]{24}",
    IbmCosHmacDetector: r"[a-zA-Z0-9_\-]{24}",
    SoftlayerDetector: r"[a-zA-Z0-9_\-]{24}",
    CloudantDetector: r"[a-zA-Z0-9_\-]{24}",
    ArtifactoryDetector: r"AKC[a-zA-Z0-9]{10}|AP[\dABCDEF][a-zA-Z0-9]{8}",
    TelegramBotTokenDetector: r":[0-9A-Za-z_-]{35}",
    MailchimpDetector: r"-us[0-9]",
    DiscordBotTokenDetector: r"\.[a-zA-Z\d_-]{6}\.",
}
_PLUGIN_GATES = {cls: re.compile(rx) for cls, rx in _PLUGIN_GATES.items()}  # re caches: equal patterns, one object

#: Whole-text searches, one per plugin regex: (gate or None, regex, plugin).
_GATES = tuple(
    (_PLUGIN_GATES.get(type(plugin)), regex, plugin)
    for plugin in PLUGINS for regex in plugin.denylist
)

#: Key material after a private-key header: base64 of some length, on the header's own
#: line (one-line JSON / escaped strings) or on one of the next lines.
_KEY_MATERIAL = re.compile(r"[A-Za-z0-9+/=]{40,}")
_HEADER_TAIL = re.compile(r"PRIVATE KEY[-A-Z ]*(?:\\n|\n)+\s*[\"']?[A-Za-z0-9+/=]{40,}")


class Finding(NamedTuple):
    line_number: int    # 1-based
    type: str           # the detect-secrets plugin's secret_type, e.g. "AWS Access Key"


def find_secrets(text: str, filename: str = "") -> Iterator[Finding]:
    """Each (line, plugin) pair with a secret in ``text``, in no particular order beyond
    the plugins'. ``filename`` decides which comment styles the allow-list pragma may use
    (as in detect-secrets)."""
    seen: set[tuple[int, str]] = set()
    lines: list[str] | None = None
    gate_results: dict[re.Pattern, bool] = {}
    for gate, regex, plugin in _GATES:
        if gate is not None:
            if gate not in gate_results:
                gate_results[gate] = gate.search(text) is not None
            if not gate_results[gate]:
                continue
        for match in regex.finditer(text):
            if lines is None:
                lines = text.split("\n")
            line_number = text.count("\n", 0, match.start()) + 1
            key = (line_number, plugin.secret_type)
            if key in seen:
                continue
            seen.add(key)
            if _confirmed(plugin, lines, line_number, filename):
                yield Finding(line_number, plugin.secret_type)


def has_secret(text: str, filename: str = "") -> bool:
    """Whether ``text`` holds at least one secret (see :func:`find_secrets`)."""
    return next(find_secrets(text, filename), None) is not None


def _confirmed(plugin, lines: list[str], line_number: int, filename: str) -> bool:
    """detect-secrets' per-line analysis: the plugin on the line, then its filters."""
    line = lines[line_number - 1].rstrip()
    secrets = [s for s in plugin.analyze_string(line) if not _filtered(s)]
    if not secrets:
        return False
    previous = lines[line_number - 2] if line_number >= 2 else ""
    context = CodeSnippet(snippet=[previous, line], start_line=line_number - 1, target_index=1)
    if is_line_allowlisted(filename, line, context):
        return False
    if isinstance(plugin, PrivateKeyDetector):
        return _has_key_material(lines, line_number)
    return True


def _filtered(secret: str) -> bool:
    return (
        is_sequential_string(secret)
        or is_potential_uuid(secret)
        or is_templated_secret(secret)
        or is_not_alphanumeric_string(secret)
    )


def _has_key_material(lines: list[str], line_number: int) -> bool:
    line = lines[line_number - 1]
    if _HEADER_TAIL.search(line):
        return True
    for following in lines[line_number:line_number + 3]:
        stripped = following.strip()
        if not stripped or ":" in stripped and not _KEY_MATERIAL.search(stripped):
            continue  # blank line, or a PEM header such as "Proc-Type: 4,ENCRYPTED"
        return bool(_KEY_MATERIAL.search(stripped))
    return False
