"""Tests of redact: headers, bearer tokens, query parameters, JSON members, secrets."""

from __future__ import annotations

import pytest

from canarykit.redact import REDACTED, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-123", "Authorization: Bearer [REDACTED]"),
        ("authorization=Basic dXNlcjpwYXNz", "authorization=Basic [REDACTED]"),
        ('{"Authorization": "Bearer abc"}', '{"Authorization": "Bearer [REDACTED]"}'),
        ("X-Api-Key: k-123", "X-Api-Key: [REDACTED]"),
        ("request failed: bearer abc123==", "request failed: bearer [REDACTED]"),
        ("GET /x?token=abc&page=2", "GET /x?token=[REDACTED]&page=2"),
        (
            "/cb?access_token=a1&api_key=b2",
            "/cb?access_token=[REDACTED]&api_key=[REDACTED]",
        ),
        (
            "/f?X-Amz-Signature=ff00&X-Amz-Date=1",
            "/f?X-Amz-Signature=[REDACTED]&X-Amz-Date=1",
        ),
        (
            "/f?apikey=1&sig=2&auth=3",
            "/f?apikey=[REDACTED]&sig=[REDACTED]&auth=[REDACTED]",
        ),
        (
            "level=info password=hunter2 user=bob",
            "level=info password=[REDACTED] user=bob",
        ),
        (
            '{"client_secret": "s\\"x", "user": "u"}',
            '{"client_secret": "[REDACTED]", "user": "u"}',
        ),
    ],
)
def test_redact_credential_forms(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Basic plan selected",
        "monkey=banana keyboard=1",
        "0 Error(s), 3 tokens parsed",
        "GET /api/v1/events?page=2&limit=10",
    ],
)
def test_redact_keeps_ordinary_text(text: str) -> None:
    assert redact(text) == text


def test_redact_given_secrets_and_encoded_form() -> None:
    text = "token s3cr/t+1 in /x?next=s3cr%2Ft%2B1 and s3cr/t+1"

    redacted = redact(text, ["s3cr/t+1"])

    assert "s3cr" not in redacted
    assert redacted.count(REDACTED) == 3


def test_redact_longest_secret_first() -> None:
    assert redact("abc abcdef", ["abc", "abcdef"]) == f"{REDACTED} {REDACTED}"


def test_redact_ignores_empty_secret() -> None:
    assert redact("plain text", [""]) == "plain text"


def test_redact_is_idempotent() -> None:
    once = redact("Authorization: Bearer abc /x?token=1 bearer zz", ["zz"])

    assert redact(once, ["zz"]) == once
