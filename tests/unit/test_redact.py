"""The log masking: what it hides, what it keeps, and that it covers every logger."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from bot import redact
from bot.config import load_settings
from bot.redact import Redactor


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET https://user:pw@host.example/feed", "GET https://***@host.example/feed"),
        ("redis://:p@ss:w@127.0.0.1:6379/0", "redis://***@127.0.0.1:6379/0"),
        ("rediss://default:x@h:1 and http://a.org/b", "rediss://***@h:1 and http://a.org/b"),
        ("token xoxb-1-2-abc end", "token *** end"),
        ("app xapp-1-A02-1234-abcdef", "app ***"),
        ("refresh xoxe.xoxp-1-abc", "refresh ***"),
        (
            "t=MTMwMDAwMDAwMDAwMDAwMDAyMQ.GhJkLm.abcdefghijklmnopqrstuvwxyz0123456789AB x",
            "t=*** x",
        ),
        ("{'Authorization': 'Bot abc.def.ghi'}", "{'Authorization': '***'}"),
        ("Authorization: Bearer abcdef", "Authorization: ***"),
        ("client_secret=s3cr3t&code=1", "client_secret=***&code=1"),
        ('{"client_secret": "s3cr3t", "n": 1}', '{"client_secret": "***", "n": 1}'),
        ("{'token': 'aW50ZXJhY3Rpb24'}", "{'token': '***'}"),
        (
            "POST /api/v10/interactions/12/aW50ZXJh/callback",
            "POST /api/v10/interactions/12/***/callback",
        ),
        (
            "PATCH /webhooks/11/aW50ZXJh/messages/@original",
            "PATCH /webhooks/11/***/messages/@original",
        ),
        ("https://hooks.slack.com/commands/T1/2/abc", "https://hooks.slack.com/commands/***"),
    ],
)
def test_patterns(text: str, expected: str) -> None:
    assert Redactor().mask(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "ingest hf: 3 new, 0 updated",
        "mail ann@example.org about https://example.org/a@b",
        "search tokens: transformer attention",
        "https://arxiv.org/abs/2401.12345v2",
    ],
)
def test_ordinary_text_is_kept(text: str) -> None:
    assert Redactor(["supersecret"]).mask(text) == text


def test_configured_values_are_masked_verbatim_longest_first() -> None:
    redactor = Redactor(["abcdef123", "abcdef123456", "", "short"])
    assert redactor.mask("x abcdef123456 y abcdef123 z short") == "x *** y *** z short"


def test_settings_secrets_are_found() -> None:
    settings = load_settings(
        SLACK_BOT_TOKEN="plain-looking-bot-secret",
        SLACK_SIGNING_SECRET="signing-secret-value",
        REDIS_URL="redis://app:pa%40ss-word@127.0.0.1:1/0",
    )
    found = set(redact.settings_secrets(settings))
    assert {"plain-looking-bot-secret", "signing-secret-value", "pa@ss-word"} <= found


@pytest.fixture
def installed() -> Iterator[Redactor]:
    redactor = redact.install(["known-secret-value"])
    try:
        yield redactor
    finally:
        redact.uninstall()


def test_every_logger_and_level_is_masked(
    installed: Redactor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    names = ("httpx", "slack_sdk.web", "discord.http", "paperbot.anything")
    for name in names:
        # Other tests' logging set-ups may have quietened these; here they log at DEBUG.
        caplog.set_level(logging.DEBUG, logger=name)
    for name in names:
        logging.getLogger(name).debug("sent known-secret-value to %s", "https://u:p@h/x")
    try:
        raise RuntimeError("connect redis://:known-secret-value@h:1 failed")
    except RuntimeError:
        logging.getLogger("redis").exception("lost %s", "xoxb-9-9-secret")
    text = caplog.text
    assert "known-secret-value" not in text and "u:p@" not in text and "xoxb-9" not in text
    assert text.count("sent *** to https://***@h/x") == 4
    assert "RuntimeError: connect redis://***@h:1 failed" in text


def test_install_twice_wraps_once(installed: Redactor) -> None:
    factory = logging.getLogRecordFactory()
    redact.install(["another-secret"])
    assert logging.getLogRecordFactory() is factory
    redact.uninstall()
    assert logging.getLogRecordFactory() is logging.LogRecord


def test_a_bad_format_string_still_logs_masked(
    installed: Redactor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    logging.getLogger("x").info("value %d known-secret-value", "not a number")
    assert "known-secret-value" not in caplog.text and "not a number" in caplog.text
