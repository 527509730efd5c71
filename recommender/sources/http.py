"""The one HTTP GET every source uses: a User-Agent, retries with backoff, one-line errors."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

USER_AGENT = "paperbot/0.1 (+https://github.com/paperbot)"
# A server asking for a longer pause than this is better retried on the next ingest run.
MAX_RETRY_AFTER = 60.0

_ERRNO = re.compile(r"^\[Errno -?\d+\]\s*")


class SourceError(Exception):
    """A source could not be fetched or its response could not be read at all.

    `str()` is one short line naming the source, fit for a CLI or an ingest summary.
    `status` and `body` keep the HTTP status and response body when there was one.
    """

    def __init__(
        self, source: str, message: str, *, status: int | None = None, body: bytes | None = None
    ) -> None:
        self.source = source
        self.message = " ".join(message.split())
        self.status = status
        self.body = body
        super().__init__(f"{source}: {self.message}")


def _where(url: str) -> str:
    """The URL without its query string: enough to say where, short enough for one line."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else url


def _connect_reason(exc: Exception) -> str:
    """`[Errno 111] Connection refused` -> `connection refused`."""
    text = str(exc) or type(exc).__name__
    text = text.splitlines()[-1] if text.strip() else text
    text = _ERRNO.sub("", text).strip()
    return text[:1].lower() + text[1:] if text else type(exc).__name__


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def fetch(
    url: str,
    *,
    params: dict[str, Any] | None = None,
    source: str,
    timeout: float = 20.0,
    attempts: int = 3,
    backoff: float = 1.0,
    client: httpx.Client | None = None,
    sleep: Callable[[float], Any] = time.sleep,
) -> bytes:
    """GET `url` and return the body; retry timeouts, connection errors, 429 and 5xx."""
    attempts = max(1, attempts)
    where = _where(url)
    own_client = client is None
    http = client or httpx.Client(timeout=timeout)
    try:
        head, detail, status, body = "", "", None, None
        for attempt in range(1, attempts + 1):
            wait = backoff * 2 ** (attempt - 1)
            try:
                response = http.get(
                    url,
                    params=params,
                    headers={"User-Agent": USER_AGENT},
                    timeout=timeout,
                    follow_redirects=True,
                )
            except httpx.TimeoutException:
                head, detail, status, body = f"timed out after {timeout:g}s", where, None, None
            except httpx.ConnectError as exc:
                netloc = urlsplit(url).netloc or url
                head, detail = f"cannot connect to {netloc}", _connect_reason(exc)
                status, body = None, None
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                raise SourceError(source, f"invalid URL {url!r} ({exc})") from exc
            except httpx.TransportError as exc:
                # Dropped connections and protocol errors are as transient as a timeout.
                head, detail, status, body = _connect_reason(exc), where, None, None
            else:
                status, body = response.status_code, response.content
                if status < 400:
                    return body
                head, detail = f"HTTP {status} from {where}", ""
                if status == 429:
                    asked = _retry_after(response.headers.get("Retry-After"))
                    wait = wait if asked is None else asked
                elif status < 500:
                    reason = f" ({response.reason_phrase})" if response.reason_phrase else ""
                    raise SourceError(source, head + reason, status=status, body=body)
            if attempt < attempts:
                sleep(wait)
        tries = f"{attempts} attempts" if attempts > 1 else ""
        if detail:
            message = f"{head} ({detail}; {tries})" if tries else f"{head} ({detail})"
        else:
            message = f"{head} after {tries}" if tries else head
        raise SourceError(source, message, status=status, body=body)
    finally:
        if own_client:
            http.close()
