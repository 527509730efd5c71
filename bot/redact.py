"""Secrets never reach a log line: masking for every logger, third-party ones included.

`install` replaces the process's log record factory, so every record is masked when it is
created, whatever logger made it, whatever handler writes it and at every level: URL
credentials (`https://***@host/…`), Slack and Discord tokens, `Authorization` headers,
secret query or form fields, and the exact values of the configured secrets.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

MASK = "***"
# Shorter configured values are not masked literally: they would blank common words.
MIN_SECRET = 6

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Credentials in a URL: everything between `scheme://` and the last `@` of the host part.
    (
        re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)[^\s/?#@]*(?:@[^\s/?#@]*)*@", re.I),
        r"\g<scheme>***@",
    ),
    # Slack tokens: bot, user, app-level, refresh and configuration tokens.
    (
        re.compile(r"\bxox[a-z]-[A-Za-z0-9-]+|\bxapp-[A-Za-z0-9-]+|\bxoxe\.xox[a-z]-[A-Za-z0-9-]+"),
        MASK,
    ),
    # Discord bot tokens: three base64url parts, the first an encoded user id.
    (re.compile(r"\b[A-Za-z0-9_-]{23,28}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,}"), MASK),
    # Discord interaction tokens in REST paths (they let anyone answer as the bot for 15
    # minutes), and Slack's secret webhook and response URLs.
    (re.compile(r"(?P<path>/(?:interactions|webhooks)/\d+/)[^/\s?#'\"]+"), r"\g<path>***"),
    (
        re.compile(r"(?P<path>hooks\.slack\.com/(?:commands|actions|services|triggers)/)[^\s'\"]+"),
        r"\g<path>***",
    ),
    # Authorization headers however they are printed (`Bot …`, `Bearer …`, `Basic …`).
    (
        re.compile(
            r"(?P<key>authorization['\"]?\s*[:=]\s*['\"]?)(?:(?:bot|bearer|basic)\s+)?[^\s'\",}]+",
            re.I,
        ),
        r"\g<key>***",
    ),
    (re.compile(r"\b(?P<kind>bot|bearer)\s+[A-Za-z0-9._~+/=-]{20,}", re.I), r"\g<kind> ***"),
    # Secret fields in query strings, forms, JSON and reprs.
    (
        re.compile(
            r"(?P<key>\b(?:token|access_token|refresh_token|client_secret|signing_secret|"
            r"password|passwd|secret|api_key|apikey)['\"]?\s*[:=]\s*['\"]?)[^\s&'\",}#)]+",
            re.I,
        ),
        r"\g<key>***",
    ),
)


class Redactor:
    """Masks secrets in text: the patterns above plus the exact configured values."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        """Also mask these exact values (empty and very short ones are ignored)."""
        with self._lock:
            found = set(self._secrets)
            found.update(s for s in secrets if s and len(s) >= MIN_SECRET)
            # Longest first, so a secret containing another is masked whole.
            self._secrets = tuple(sorted(found, key=len, reverse=True))

    def mask(self, text: str) -> str:
        """`text` with every secret replaced by `***`."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


_SECRET_NAME = re.compile(r"secret|token|password|api_key", re.I)
REDACTOR = Redactor()
# The factory `install` put in place, and the one it wraps (restored by `uninstall`).
_installed: Callable[..., logging.LogRecord] | None = None
_base: Callable[..., logging.LogRecord] | None = None


def _masked_record(base: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    """A record factory that builds with `base`, then masks message, traceback and stack."""

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it, we keep it masked
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = REDACTOR.mask(message), None
        if record.exc_info and record.exc_info[0] is not None:
            # Formatters reuse `exc_text` when it is set, so the masked text is what prints.
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = REDACTOR.mask(text)
        if record.stack_info:
            record.stack_info = REDACTOR.mask(record.stack_info)
        return record

    return factory


def settings_secrets(settings: Any) -> list[str]:
    """Every secret value of a settings object: its `SecretStr` fields, fields named like a
    secret, and the password inside any URL among them."""
    from pydantic import SecretStr

    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name, None)
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, str) and _SECRET_NAME.search(name):
            found.append(value)
    for value in list(found):
        try:
            password = urlsplit(value).password
        except ValueError:
            password = None
        if password:
            found.append(unquote(password))
            found.append(password)
    return [v for v in found if v]


def install(secrets: Iterable[str | None] = ()) -> Redactor:
    """Mask every log record of this process from now on; `secrets` are masked verbatim."""
    global _installed, _base
    REDACTOR.add(*(s for s in secrets if s))
    current = logging.getLogRecordFactory()
    if current is not _installed:
        _base, _installed = current, _masked_record(current)
        logging.setLogRecordFactory(_installed)
    return REDACTOR


def uninstall() -> None:
    """Undo `install` (tests), when no one replaced the factory since."""
    global _installed, _base
    if _installed is not None and logging.getLogRecordFactory() is _installed:
        logging.setLogRecordFactory(_base or logging.LogRecord)
    _installed = _base = None
