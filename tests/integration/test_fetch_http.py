"""The HTTP fetchers against a real local HTTP server: retries, backoff, errors, paging."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from recommender.pipeline import ingest_source
from recommender.sources import arxiv_api, arxiv_rss, hf_daily, jsonl
from recommender.sources.http import USER_AGENT, SourceError, fetch
from recommender.store import Store

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@dataclass
class Reply:
    """One canned response."""

    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    # Sent without a Content-Length: the body runs until the connection closes.
    no_length: bool = False


@dataclass
class Seen:
    """One request the server received."""

    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class Server:
    """A local HTTP server replying from per-path queues (the last reply repeats)."""

    def __init__(self) -> None:
        self.replies: dict[str, list[Reply]] = {}
        self.dynamic: dict[str, object] = {}
        self.requests: list[Seen] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                seen = Seen(parts.path, parse_qs(parts.query), dict(self.headers.items()))
                with server.lock:
                    server.requests.append(seen)
                    if parts.path in server.dynamic:
                        reply = server.dynamic[parts.path](seen)  # type: ignore[operator]
                    else:
                        queue = server.replies.get(parts.path) or [Reply(404, b"not found")]
                        reply = queue.pop(0) if len(queue) > 1 else queue[0]
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    if not reply.no_length:
                        self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def route(self, path: str, *replies: Reply) -> str:
        """Queue replies for `path`; returns its full URL."""
        self.replies[path] = list(replies)
        return self.base + path


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()


class Sleeps:
    """An injectable `sleep` that records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_success_sends_user_agent_and_params(server: Server) -> None:
    url = server.route("/api/x", Reply(body=b"hello"))
    sleeps = Sleeps()
    assert fetch(url, params={"a": "1 2"}, source="hf", sleep=sleeps) == b"hello"
    (request,) = server.requests
    assert request.headers["User-Agent"] == USER_AGENT
    assert request.query == {"a": ["1 2"]}
    assert sleeps.waits == []


def test_503_then_200_is_retried(server: Server) -> None:
    url = server.route("/x", Reply(503, b"busy"), Reply(body=b"fine"))
    sleeps = Sleeps()
    assert fetch(url, source="hf", sleep=sleeps) == b"fine"
    assert len(server.requests) == 2
    assert sleeps.waits == [1.0]


def test_persistent_5xx_gives_up_with_one_line(server: Server) -> None:
    url = server.route("/api/daily_papers", Reply(503, b"busy"))
    sleeps = Sleeps()
    with pytest.raises(SourceError) as info:
        fetch(url, params={"date": "2026-06-12"}, source="hf", sleep=sleeps, backoff=0.5)
    assert str(info.value) == f"hf: HTTP 503 from {url} after 3 attempts"
    assert info.value.status == 503
    assert sleeps.waits == [0.5, 1.0]
    assert len(server.requests) == 3


def test_429_honours_retry_after(server: Server) -> None:
    url = server.route("/x", Reply(429, headers={"Retry-After": "7"}), Reply(body=b"ok"))
    sleeps = Sleeps()
    assert fetch(url, source="arxiv", sleep=sleeps) == b"ok"
    assert sleeps.waits == [7.0]


def test_retry_after_is_capped(server: Server) -> None:
    url = server.route(
        "/x",
        Reply(429, headers={"Retry-After": "3600"}),
        Reply(429, headers={"Retry-After": "soon"}),
        Reply(body=b"ok"),
    )
    sleeps = Sleeps()
    assert fetch(url, source="arxiv", sleep=sleeps) == b"ok"
    # Capped at 60 s; an unreadable header falls back to the exponential backoff.
    assert sleeps.waits == [60.0, 2.0]


def test_404_is_not_retried(server: Server) -> None:
    url = server.route("/missing", Reply(404, b"nope"))
    sleeps = Sleeps()
    with pytest.raises(SourceError) as info:
        fetch(url, source="rss", sleep=sleeps)
    assert str(info.value) == f"rss: HTTP 404 from {url} (Not Found)"
    assert len(server.requests) == 1
    assert sleeps.waits == []


def test_timeout_is_retried_then_reported(server: Server) -> None:
    url = server.route("/slow", Reply(body=b"late", delay=1.0))
    sleeps = Sleeps()
    started = time.monotonic()
    with pytest.raises(SourceError) as info:
        fetch(url, source="arxiv", timeout=0.2, attempts=2, sleep=sleeps)
    assert time.monotonic() - started < 0.9 * 2
    assert str(info.value) == f"arxiv: timed out after 0.2s ({url}; 2 attempts)"
    assert sleeps.waits == [1.0]
    assert len(server.requests) == 2


def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps = Sleeps()
    with pytest.raises(SourceError) as info:
        fetch(f"http://127.0.0.1:{port}/rss/cs.LG", source="rss", sleep=sleeps)
    assert (
        str(info.value)
        == f"rss: cannot connect to 127.0.0.1:{port} (connection refused; 3 attempts)"
    )
    assert sleeps.waits == [1.0, 2.0]


def test_single_attempt_has_no_attempt_count(server: Server) -> None:
    url = server.route("/x", Reply(500))
    with pytest.raises(SourceError) as info:
        fetch(url, source="hf", attempts=1, sleep=Sleeps())
    assert str(info.value) == f"hf: HTTP 500 from {url}"


@pytest.mark.parametrize("url", ["ftp://example.org/feed", "not a url", ""])
def test_bad_urls_fail_at_once(url: str) -> None:
    sleeps = Sleeps()
    with pytest.raises(SourceError) as info:
        fetch(url, source="rss", sleep=sleeps)
    assert str(info.value).startswith("rss: invalid URL")
    assert "\n" not in str(info.value)
    assert sleeps.waits == []


def test_caller_client_is_used_and_left_open(server: Server) -> None:
    url = server.route("/x", Reply(body=b"ok"))
    with httpx.Client() as client:
        assert fetch(url, source="hf", client=client) == b"ok"
        assert not client.is_closed


def test_redirects_on_the_same_host_are_followed(server: Server) -> None:
    target = server.route("/new", Reply(body=b"moved here"))
    url = server.route("/old", Reply(301, headers={"Location": target}))
    assert fetch(url, source="rss") == b"moved here"
    relative = server.route("/rel", Reply(302, headers={"Location": "/new"}))
    assert fetch(relative, source="rss") == b"moved here"


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://localhost:{port}/new", "redirect to another host (localhost) refused"),
        ("ftp://127.0.0.1:{port}/new", "redirect to ftp scheme refused (https only)"),
        ("file:///etc/passwd", "redirect without a host"),
    ],
)
def test_redirects_elsewhere_are_refused(server: Server, location: str, reason: str) -> None:
    port = server.httpd.server_address[1]
    server.route("/new", Reply(body=b"secret"))
    url = server.route("/old", Reply(302, headers={"Location": location.format(port=port)}))
    sleeps = Sleeps()
    with pytest.raises(SourceError) as info:
        fetch(url, source="rss", sleep=sleeps)
    assert str(info.value).startswith(f"rss: {reason}")
    assert [r.path for r in server.requests] == ["/old"]
    assert sleeps.waits == []


def test_redirect_to_an_allowed_host_is_followed(server: Server) -> None:
    port = server.httpd.server_address[1]
    server.route("/new", Reply(body=b"mirror"))
    url = server.route("/old", Reply(302, headers={"Location": f"http://localhost:{port}/new"}))
    with pytest.raises(SourceError, match="https only"):
        # An allow-listed host still needs https when the move is to another host.
        fetch(url, source="rss", allow_hosts={"localhost"})


def test_redirect_policy() -> None:
    from recommender.sources.http import redirect_allowed

    assert redirect_allowed("https://a.org/x", "https://a.org/y") is None
    assert redirect_allowed("https://a.org/x", "https://b.org/y", {"b.org"}) is None
    assert "another host" in str(redirect_allowed("https://a.org/x", "https://b.org/y"))
    assert "https only" in str(redirect_allowed("https://a.org/x", "http://a.org/y"))
    assert redirect_allowed("http://a.org/x", "http://a.org/y") is None
    assert redirect_allowed("http://a.org/x", "https://a.org/y") is None


def test_redirect_loops_stop(server: Server) -> None:
    url = server.route("/loop", Reply(302, headers={"Location": "/loop"}))
    with pytest.raises(SourceError, match="more than 5 redirects"):
        fetch(url, source="rss")
    assert len(server.requests) == 6


def test_announced_body_over_the_cap_is_refused_unread(server: Server) -> None:
    url = server.route("/big", Reply(body=b"x" * 300_000))
    sleeps = Sleeps()
    with pytest.raises(SourceError) as info:
        fetch(url, source="hf", max_bytes=100_000, sleep=sleeps)
    assert str(info.value) == (
        f"hf: response from {url} refused: larger than the 97.66 kB cap (announced 293 kB)"
    )
    assert info.value.body is None
    assert sleeps.waits == []


def test_streamed_body_over_the_cap_is_cut_off(server: Server) -> None:
    url = server.route("/stream", Reply(body=b"<" * 3_000_000, no_length=True))
    with pytest.raises(SourceError) as info:
        fetch(url, source="rss", max_bytes=1024 * 1024)
    message = str(info.value)
    assert message.startswith(f"rss: response from {url} refused: larger than the 1 MB cap (over")
    assert "<<<" not in message
    assert len(server.requests) == 1


def test_body_at_the_cap_is_accepted(server: Server) -> None:
    url = server.route("/exact", Reply(body=b"y" * 4096, no_length=True))
    assert fetch(url, source="rss", max_bytes=4096) == b"y" * 4096


def test_default_cap_is_50_mb() -> None:
    import inspect

    from recommender.sources import http

    assert http.DEFAULT_MAX_BYTES == 50 * 1024 * 1024
    assert inspect.signature(fetch).parameters["max_bytes"].default == http.DEFAULT_MAX_BYTES


def test_rate_exceeded_200_is_retried_with_backoff(server: Server) -> None:
    feed = (FIXTURES / "arxiv_rss2_cs.LG_trimmed.xml").read_bytes()
    server.route("/rss/cs.LG", Reply(body=b"Rate exceeded."), Reply(body=feed))
    sleeps = Sleeps()
    body = arxiv_rss.fetch(server.base, "cs.LG", sleep=sleeps, backoff=3.0)
    assert body == feed
    assert sleeps.waits == [3.0]


def test_rate_exceeded_every_time_is_an_error_not_zero_papers(server: Server) -> None:
    url = server.route("/api/query", Reply(body=b"Rate exceeded.\n"))
    sleeps = Sleeps()
    with pytest.raises(SourceError) as info:
        arxiv_api.fetch(url, search_query="cat:cs.LG", sleep=sleeps, backoff=3.0)
    assert str(info.value) == (
        f"arxiv: rate limited by {url} (HTTP 200, Rate exceeded.) after 3 attempts"
    )
    assert sleeps.waits == [3.0, 6.0]


@pytest.mark.parametrize(
    ("kind", "body", "problem"),
    [
        ("hf", b"<!DOCTYPE html><html>maintenance page</html>", "not JSON, 44 bytes"),
        ("rss", b'{"error": "moved"}', "not an XML feed, 18 bytes"),
        ("rss", b"<html><body>login</body></html>", "not an XML feed, 31 bytes"),
    ],
)
def test_wrong_format_200_is_retried_then_reported(
    server: Server, kind: str, body: bytes, problem: str
) -> None:
    path = "/api/daily_papers" if kind == "hf" else "/rss/cs.LG"
    url = server.route(path, Reply(body=body))
    sleeps = Sleeps()
    with pytest.raises(SourceError) as info:
        if kind == "hf":
            hf_daily.fetch(server.base, sleep=sleeps)
        else:
            arxiv_rss.fetch(server.base, "cs.LG", sleep=sleeps)
    assert str(info.value) == (
        f"{kind}: unexpected response from {url} (HTTP 200, {problem}) after 3 attempts"
    )
    assert sleeps.waits == [1.0, 2.0]
    assert "maintenance" not in str(info.value) and "login" not in str(info.value)


def test_credentials_in_a_url_never_reach_an_error(server: Server) -> None:
    port = server.httpd.server_address[1]
    server.route("/x", Reply(503))
    url = f"http://reader:hunter2secret@127.0.0.1:{port}/x?token=abc123"
    with pytest.raises(SourceError) as info:
        fetch(url, source="hf", sleep=Sleeps())
    assert str(info.value) == f"hf: HTTP 503 from http://***@127.0.0.1:{port}/x after 3 attempts"
    with pytest.raises(SourceError) as refused:
        fetch("ftp://reader:hunter2secret@example.org/feed", source="hf", sleep=Sleeps())
    assert "hunter2secret" not in str(refused.value)
    assert "***@example.org" in str(refused.value)


def test_hf_fetch_and_parse(server: Server) -> None:
    body = (FIXTURES / "hf_daily_papers_2026-08-03.json").read_bytes()
    server.route(
        "/api/daily_papers", Reply(body=body, headers={"Content-Type": "application/json"})
    )
    raw = hf_daily.fetch(server.base, date(2026, 8, 3))
    assert server.requests[0].query == {"date": ["2026-08-03"]}
    assert [p.id for p in hf_daily.parse(raw).papers] == ["2607.26654", "2607.28229", "2607.27851"]


def test_rss_fetch_both_flavours(server: Server) -> None:
    server.route("/rss/cs.LG", Reply(body=(FIXTURES / "arxiv_rss2_cs.LG_trimmed.xml").read_bytes()))
    server.route("/atom/cs.AI", Reply(body=(FIXTURES / "arxiv_rss_atom_cs.AI.xml").read_bytes()))
    assert len(arxiv_rss.parse(arxiv_rss.fetch(server.base, "cs.LG")).papers) == 3
    assert len(arxiv_rss.parse(arxiv_rss.fetch(server.base, "cs.AI", flavour="atom")).papers) == 7


def test_arxiv_http_400_reports_the_api_error(server: Server) -> None:
    recording = json.loads(
        (FIXTURES / "arxivpy_recorded_id_abc_s0_m100_b79c8dcf6bc3.json").read_text("utf-8")
    )
    url = server.route(
        "/api/query", Reply(recording["status_code"], recording["body"].encode("utf-8"))
    )
    sleeps = Sleeps()
    with pytest.raises(SourceError) as info:
        arxiv_api.fetch(url, id_list=["abc"], sleep=sleeps)
    assert (
        str(info.value) == f"arxiv: HTTP 400 from {url} (Bad Request): incorrect id format for abc"
    )
    assert sleeps.waits == []


def _entries() -> tuple[str, list[str]]:
    """The real transformer page split into its feed head and its five entries."""
    text = (FIXTURES / "arxiv_api_query_transformer_cs.LG.atom.xml").read_text("utf-8")
    entries = re.findall(r"<entry>.*?</entry>", text, flags=re.DOTALL)
    head = text[: text.index("<entry>")]
    return head, entries


def _page(head: str, entries: list[str], total: int) -> bytes:
    head = re.sub(r"<opensearch:totalResults>\d+", f"<opensearch:totalResults>{total}", head)
    return (head + "".join(entries) + "</feed>").encode()


class FakeClock:
    """A monotonic clock that only moves when the fake sleep is called."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def _serve_pages(server: Server, total: int | None = None) -> str:
    head, entries = _entries()

    def reply(seen: Seen) -> Reply:
        start = int(seen.query["start"][0])
        size = int(seen.query["max_results"][0])
        return Reply(body=_page(head, entries[start : start + size], total or len(entries)))

    server.dynamic["/api/query"] = reply
    return server.base + "/api/query"


def test_arxiv_paging_until_total(server: Server) -> None:
    url = _serve_pages(server)
    fake = FakeClock()
    pages = list(
        arxiv_api.fetch_pages(
            url,
            query="transformer",
            category="cs.LG",
            page_size=2,
            sleep=fake.sleep,
            clock=fake.clock,
        )
    )
    assert len(pages) == 3
    assert [int(r.query["start"][0]) for r in server.requests] == [0, 2, 4]
    assert [int(r.query["max_results"][0]) for r in server.requests] == [2, 2, 2]
    first = server.requests[0].query
    assert first["search_query"] == ['all:"transformer" AND cat:cs.LG']
    assert first["sortBy"] == ["submittedDate"]
    assert first["sortOrder"] == ["descending"]
    # One request every 3 s: the fake clock does not move during a request.
    assert fake.waits == [3.0, 3.0]
    ids = [p.id for page in pages for p in arxiv_api.parse(page).papers]
    assert ids == ["2606.13677", "2606.13591", "2606.13568", "2606.13515", "2606.13501"]


def test_arxiv_paging_stops_at_max_results(server: Server) -> None:
    url = _serve_pages(server, total=28946)
    fake = FakeClock()
    pages = list(
        arxiv_api.fetch_pages(url, max_results=3, page_size=2, sleep=fake.sleep, clock=fake.clock)
    )
    assert len(pages) == 2
    assert [r.query["max_results"][0] for r in server.requests] == ["2", "1"]
    assert server.requests[0].query["search_query"] == ["cat:cs.LG"]


def test_arxiv_paging_stops_on_an_empty_page(server: Server) -> None:
    url = _serve_pages(server, total=28946)
    fake = FakeClock()
    pages = list(
        arxiv_api.fetch_pages(url, max_results=50, page_size=4, sleep=fake.sleep, clock=fake.clock)
    )
    # Pages of 4, 1, then an empty one although totalResults promises more.
    assert len(pages) == 3
    assert [int(r.query["start"][0]) for r in server.requests] == [0, 4, 5]


def test_arxiv_paging_waits_only_the_rest_of_the_interval(server: Server) -> None:
    url = _serve_pages(server)
    fake = FakeClock()
    pages = arxiv_api.fetch_pages(url, page_size=2, sleep=fake.sleep, clock=fake.clock)
    next(pages)
    fake.now += 2.5  # the consumer spent 2.5 s on the first page
    next(pages)
    fake.now += 10.0
    next(pages)
    assert fake.waits == [pytest.approx(0.5)]


def test_arxiv_page_size_is_capped(server: Server) -> None:
    url = _serve_pages(server)
    fake = FakeClock()
    list(
        arxiv_api.fetch_pages(
            url, max_results=5000, page_size=9999, sleep=fake.sleep, clock=fake.clock
        )
    )
    assert server.requests[0].query["max_results"] == ["2000"]


def test_arxiv_retries_back_off_at_least_the_interval(server: Server) -> None:
    head, entries = _entries()
    server.route("/api/query", Reply(503), Reply(body=_page(head, entries, 5)))
    fake = FakeClock()
    pages = list(
        arxiv_api.fetch_pages(
            server.base + "/api/query", page_size=10, sleep=fake.sleep, clock=fake.clock
        )
    )
    assert len(pages) == 1
    assert fake.waits == [3.0]


def test_jsonl_read_real_file() -> None:
    assert len(jsonl.parse(jsonl.read(FIXTURES / "seed_papers.jsonl")).papers) == 95


# -- whole ingest runs against hostile or quiet feeds ---------------------------------------

WEEKEND_RSS = (
    b'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
    b"<title>cs.LG updates on arXiv.org</title><link>http://rss.arxiv.org/rss/cs.LG</link>"
    b"<skipDays><day>Saturday</day><day>Sunday</day></skipDays></channel></rss>"
)


@pytest.mark.parametrize(
    ("kind", "path", "body"),
    [("rss", "/rss/cs.LG", WEEKEND_RSS), ("hf", "/api/daily_papers", b"[]")],
)
def test_a_day_without_announcement_is_not_an_error(
    server: Server, store: Store, kind: str, path: str, body: bytes
) -> None:
    server.route(path, Reply(body=body))
    report = ingest_source(store, kind, base_url=server.base, categories=["cs.LG"])
    assert report.error is None
    assert report.note == "no announcement today"
    assert report.summary() == (
        f"{kind}: 0 new, 0 updated, 0 unchanged, 0 skipped — no announcement today"
    )
    (logged,) = store.ingest_log()
    assert logged.error is None and logged.note == "no announcement today"


def test_rate_exceeded_ingest_is_an_error_in_the_log(server: Server, store: Store) -> None:
    server.route("/api/query", Reply(body=b"Rate exceeded."))
    report = ingest_source(
        store, "arxiv", base_url=server.base + "/api/query", attempts=2, min_interval=0.01
    )
    assert report.note is None
    assert report.error == (
        f"rate limited by {server.base}/api/query (HTTP 200, Rate exceeded.) after 2 attempts"
    )
    assert store.ingest_log()[0].error == report.error


def test_bodies_never_reach_the_ingest_log(server: Server, store: Store) -> None:
    marker = "SECRET-BODY-BYTES"
    bad = {
        "hf": ("/api/daily_papers", f'[{{"paper": {{"id": "{marker}"'.encode()),
        "rss": ("/rss/cs.LG", f"<rss><channel><item>{marker}</chan".encode()),
    }
    for kind, (path, body) in bad.items():
        server.route(path, Reply(body=body))
        report = ingest_source(store, kind, base_url=server.base, categories=["cs.LG"])
        assert report.error and marker not in report.error
        assert f"{len(body)}" in report.error or "truncated" in report.error
    stored = [v for _, f in store.r.xrange("pb:ingest:log") for v in f.values()]
    assert stored and not any(marker.encode() in v for v in stored)


def test_download_cap_is_set_per_source(server: Server, store: Store) -> None:
    server.route("/api/daily_papers", Reply(body=b"[" + b" " * 5000 + b"]"))
    report = ingest_source(store, "hf", base_url=server.base, max_bytes=1000)
    assert report.error == (
        f"response from {server.base}/api/daily_papers refused: larger than the "
        "1000 bytes cap (announced 4.885 kB)"
    )
