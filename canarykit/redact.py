"""Remove bearer tokens, credentials in URLs and given secrets from text."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

REDACTED = "[REDACTED]"

# Header fields whose whole value is a credential, as header lines or JSON keys.
_CREDENTIAL_HEADER = re.compile(
    r"""(?ix)
    (?P<name>\b(?:proxy-)?authorization|\bx-api-key|\bx-auth-token)
    (?P<separator>["']?\s*[:=]\s*["']?)
    (?:(?P<scheme>bearer|basic|digest|token)\s+)?
    (?P<value>[^\s"',;]+)
    """
)
# "Bearer <token>" outside a header line, e.g. in an error message or a k6 log.
_BEARER_TOKEN = re.compile(r"(?i)\b(bearer\s+)(?!\[REDACTED\])[A-Za-z0-9\-._~+/]+=*")
_SECRET_NAMES = (
    r"token|secret|password|passwd|pwd|auth|api_?key|apikey|key|sig|signature"
    r"|credentials?|jwt|session"
)
# A query parameter or key=value field whose name is, or ends in, a secret name:
# token, access_token, api_key, client_secret, X-Amz-Signature, ...
_SECRET_PARAMETER = re.compile(
    rf"(?i)(?P<prefix>(?:^|[?&;\s,{{(])(?:[\w.\-]*[_.\-])?(?:{_SECRET_NAMES})=)"
    r"(?P<value>[^&\s#\"',;)}]+)"
)
# A JSON member with a secret name: "password": "value".
_SECRET_JSON_MEMBER = re.compile(
    rf'(?i)(?P<prefix>"(?:[\w.\-]*[_.\-])?(?:{_SECRET_NAMES})"\s*:\s*")'
    r'(?P<value>(?:[^"\\]|\\.)+)'
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace credentials in ``text`` with ``[REDACTED]``.

    Replaced are: each string in ``secrets`` (also in its percent-encoded form),
    Authorization and API-key header values, bearer tokens, query parameters and
    ``key=value`` fields named like a secret (``token``, ``access_token``,
    ``api_key``, ``password``, ``sig``, ...) and JSON members with such names.
    Header names, parameter names and the auth scheme are kept, so the redacted
    text still shows which credential was there.
    """
    text = _replace_secrets(text, secrets)
    text = _CREDENTIAL_HEADER.sub(_redact_header, text)
    text = _BEARER_TOKEN.sub(rf"\1{REDACTED}", text)
    text = _SECRET_PARAMETER.sub(rf"\g<prefix>{REDACTED}", text)
    return _SECRET_JSON_MEMBER.sub(rf"\g<prefix>{REDACTED}", text)


def _replace_secrets(text: str, secrets: Iterable[str]) -> str:
    variants = {variant for secret in secrets if secret for variant in _forms(secret)}
    # Longest first, so a secret that contains another is replaced whole.
    for variant in sorted(variants, key=len, reverse=True):
        text = text.replace(variant, REDACTED)
    return text


def _forms(secret: str) -> tuple[str, str]:
    return secret, quote(secret, safe="")


def _redact_header(match: re.Match[str]) -> str:
    if match["value"] == REDACTED or match["value"].startswith("["):
        return match[0]
    scheme = f"{match['scheme']} " if match["scheme"] else ""
    return f"{match['name']}{match['separator']}{scheme}{REDACTED}"
