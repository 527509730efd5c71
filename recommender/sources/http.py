"""The one HTTP GET every source uses: streamed under a size cap, careful redirects, retries.

Nothing here ever writes a response body to an error or a log: only its size and why it
was refused. URLs in messages are shown without credentials or query strings.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

USER_AGENT = "paperbot/0.1 (+https://github.com/paperbot)"
# A server asking for a longer pause than this is better retried on the next ingest run.
MAX_RETRY_AFTER = 60.0
# Real feeds are a few MB at most; anything far larger is a mistake or an attack.
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
MAX_REDIRECTS = 5
# arXiv answers an over-eager client with HTTP 200 and this text instead of a feed.
RATE_EXCEEDED = b"rate exceeded"

_ERRNO = re.compile(r"^\[Errno -?\d+\]\s*")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

# `check(body)` -> None when the body looks like the expected format, else a short reason.
Check = Callable[[bytes], str | None]


class SourceError(Exception):
    """A source could not be fetched or its response could not be read at all.

    `str()` is one short line naming the source, fit for a CLI or an ingest summary.
    `status` keeps the HTTP status; `body` keeps a refused response's body for the caller to
    interpret (an API's error feed), and is never part of the message.
    """

    def __init__(
        self, source: str, message: str, *, status: int | None = None, body: bytes | None = None
    ) -> None:
        self.source = source
        self.message = " ".join(message.split())
        self.status = status
        self.body = body
        super().__init__(f"{source}: {self.message}")


def safe_url(url: str) -> str:
    """The URL without credentials or query string: `https://***@host/path`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if not parts.netloc:
        # Not a URL we could parse into parts: show only a short, credential-free stub.
        return url.split("?", 1)[0].rsplit("@", 1)[-1][:100]
    host = parts.netloc.rsplit("@", 1)[-1]
    user = "***@" if "@" in parts.netloc else ""
    return f"{parts.scheme}://{user}{host}{parts.path}"


def format_size(size: int) -> str:
    """`52428800` -> `50 MB` (binary megabytes, as the cap is given)."""
    if size >= 1024**3:
        return f"{size / 1024**3:.4g} GB"
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.4g} MB"
    if size >= 1024:
        return f"{size / 1024:.4g} kB"
    return f"{size} bytes"


def rate_exceeded(body: bytes) -> bool:
    """Whether a body is arXiv's plain-text `Rate exceeded.` answer."""
    return body[:64].strip().lower().startswith(RATE_EXCEEDED)


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


def redirect_allowed(origin: str, target: str, allow_hosts: Collection[str] = ()) -> str | None:
    """None when a redirect from `origin` to `target` may be followed, else why not.

    Allowed: https on the same host (or an allow-listed one); plain http only where the
    configured URL itself was plain http to that same host (a local mirror), never a
    downgrade from https.
    """
    src, dst = urlsplit(origin), urlsplit(target)
    host = (dst.hostname or "").lower()
    if not host:
        return "redirect without a host"
    same = host == (src.hostname or "").lower()
    if not same and host not in {h.lower() for h in allow_hosts}:
        return f"redirect to another host ({host}) refused"
    if dst.scheme == "https":
        return None
    if dst.scheme == "http" and src.scheme == "http" and same:
        return None
    return f"redirect to {dst.scheme or 'no'} scheme refused (https only)"


class _TooLarge(Exception):
    """The body went past the cap (carries how much was read or announced)."""

    def __init__(self, size: int, announced: bool) -> None:
        super().__init__(size)
        self.size = size
        self.announced = announced


def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    """The body of a streamed response, refusing it as soon as it passes `max_bytes`."""
    declared = response.headers.get("Content-Length", "")
    if declared.strip().isdigit() and int(declared) > max_bytes:
        raise _TooLarge(int(declared), True)
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise _TooLarge(size, False)
        chunks.append(chunk)
    return b"".join(chunks)


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
    max_bytes: int = DEFAULT_MAX_BYTES,
    allow_hosts: Collection[str] = (),
    check: Check | None = None,
) -> bytes:
    """GET `url` and return the body; retry timeouts, connection errors, 429, 5xx and 200s
    that are `Rate exceeded.` or fail `check`, with exponential backoff.

    The body is streamed and refused past `max_bytes`; redirects are followed only as
    `redirect_allowed` says.
    """
    attempts = max(1, attempts)
    where = safe_url(url)
    own_client = client is None
    http = client or httpx.Client(timeout=timeout)
    try:
        head, detail, status, body = "", "", None, None
        for attempt in range(1, attempts + 1):
            wait = backoff * 2 ** (attempt - 1)
            try:
                answer = _get(http, url, params, timeout, max_bytes, allow_hosts)
                status, body = answer.status, answer.body
            except httpx.TimeoutException:
                head, detail, status, body = f"timed out after {timeout:g}s", where, None, None
            except httpx.ConnectError as exc:
                netloc = urlsplit(url).netloc.rsplit("@", 1)[-1] or where
                head, detail = f"cannot connect to {netloc}", _connect_reason(exc)
                status, body = None, None
            except (httpx.UnsupportedProtocol, httpx.InvalidURL, ValueError) as exc:
                raise SourceError(
                    source, f"invalid URL {where!r} ({_connect_reason(exc)})"
                ) from exc
            except httpx.TransportError as exc:
                # Dropped connections and protocol errors are as transient as a timeout.
                head, detail, status, body = _connect_reason(exc), where, None, None
            except _TooLarge as exc:
                size = format_size(exc.size)
                said = f"announced {size}" if exc.announced else f"over {size} read"
                raise SourceError(
                    source,
                    f"response from {where} refused: larger than the "
                    f"{format_size(max_bytes)} cap ({said})",
                ) from None
            else:
                if answer.refused is not None or body is None:
                    raise SourceError(source, f"{answer.refused} (from {where})", status=status)
                if status < 400:
                    if rate_exceeded(body):
                        head, detail = (
                            f"rate limited by {where} (HTTP {status}, Rate exceeded.)",
                            "",
                        )
                    elif check is not None and (problem := check(body)) is not None:
                        head = f"unexpected response from {where} (HTTP {status}, {problem})"
                        detail = ""
                    else:
                        return body
                else:
                    head, detail = f"HTTP {status} from {where}", ""
                    if status == 429:
                        asked = _retry_after(answer.retry_after)
                        wait = wait if asked is None else asked
                    elif status < 500:
                        phrase = answer.phrase
                        raise SourceError(
                            source,
                            head + (f" ({phrase})" if phrase else ""),
                            status=status,
                            body=body,
                        )
            if attempt < attempts:
                sleep(wait)
        tries = f"{attempts} attempts" if attempts > 1 else ""
        if detail:
            message = f"{head} ({detail}; {tries})" if tries else f"{head} ({detail})"
        else:
            message = f"{head} after {tries}" if tries else head
        raise SourceError(source, message, status=status)
    finally:
        if own_client:
            http.close()


@dataclass(slots=True)
class _Answer:
    """One GET's outcome: status, body (None when refused) and the headers that matter."""

    status: int
    body: bytes | None = None
    refused: str | None = None
    retry_after: str | None = None
    phrase: str = ""


def _get(
    http: httpx.Client,
    url: str,
    params: dict[str, Any] | None,
    timeout: float,
    max_bytes: int,
    allow_hosts: Collection[str],
) -> _Answer:
    """One GET, following allowed redirects by hand and reading the body under the cap."""
    current, query = url, params
    status = 0
    for _hop in range(MAX_REDIRECTS + 1):
        with http.stream(
            "GET",
            current,
            params=query,
            headers={"User-Agent": USER_AGENT},
            timeout=timeout,
            follow_redirects=False,
        ) as response:
            status = response.status_code
            if status in _REDIRECTS:
                location = response.headers.get("Location", "")
                if not location:
                    return _Answer(status, refused=f"HTTP {status} without a Location")
                target = urljoin(str(response.url), location)
                refused = redirect_allowed(url, target, allow_hosts)
                if refused:
                    return _Answer(status, refused=f"{refused}: {safe_url(target)}")
                current, query = target, None
                continue
            return _Answer(
                status,
                _read_capped(response, max_bytes),
                retry_after=response.headers.get("Retry-After"),
                phrase=response.reason_phrase,
            )
    return _Answer(status, refused=f"more than {MAX_REDIRECTS} redirects")
