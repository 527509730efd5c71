"""The install flow's small parts: log redaction, error pages, the not-installed message."""

from __future__ import annotations

import logging

import pytest

from bot.slack_oauth import INSTALL_PATH, RedactSecrets, failure_page, not_installed_message, redact


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("Failed to fetch oauth.v2.access result with code: 123.456.abcdef - error: x", "123.456"),
        ("Handling an OAuth callback (request: {'code': ['c0de-1'], 'state': ['st8']})", "c0de-1"),
        ("Handling an OAuth callback (request: {'code': ['c0de-1'], 'state': ['st8']})", "st8"),
        ("token xoxb-1234-5678-abcdef rotated", "xoxb-1234"),
        ("rotated to xoxe.xoxb-1-abc with xoxe-1-refresh-zz", "xoxe-1-refresh"),
        ("rotated to xoxe.xoxb-1-abc with xoxe-1-refresh-zz", "xoxb-1-abc"),
        ("posted client_secret=s3cr3t&code=zz", "s3cr3t"),
    ],
)
def test_redact_hides_codes_tokens_and_secrets(text: str, hidden: str) -> None:
    """What Bolt's messages quote never survives redaction."""
    assert hidden not in redact(text)


def test_redact_keeps_one_line_and_slacks_error_code() -> None:
    """A SlackApiError's text is two lines; the error code moves up into the first."""
    text = (
        "Failed to fetch oauth.v2.access result with code: abc - error: The request to the "
        "Slack API failed. (url: https://slack.com/api/oauth.v2.access)\n"
        "The server responded with: {'ok': False, 'error': 'invalid_code'}"
    )
    out = redact(text)
    assert "\n" not in out and out.endswith("(invalid_code)") and "abc" not in out


def test_the_filter_rewrites_records() -> None:
    """A record's message and arguments are replaced by the redacted line."""
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "code: %s\nmore", ("123",), None)
    assert RedactSecrets().filter(record)
    assert record.getMessage() == "code: ***"


def test_failure_pages_explain_and_escape() -> None:
    """Known reasons read plainly; anything else Slack sent is shown escaped."""
    assert "cancelled" in failure_page("access_denied")
    assert "expired or was already used" in failure_page("invalid_state")
    page = failure_page("<script>alert(1)</script>")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert f"href='{INSTALL_PATH}'" in page


def test_not_installed_message_points_at_the_install_page() -> None:
    """With the public redirect URL known, the install page's URL is given."""
    message = not_installed_message("https://bot.example.org/slack/oauth_redirect")
    assert "add it again: https://bot.example.org/slack/install;" in message
    assert "install page" in not_installed_message(None)
