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

from recommender.sources import arxiv_api, arxiv_rss, hf_daily, jsonl
from recommender.sources.http import USER_AGENT, SourceError, fetch

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@dataclass
class Reply:
    """One canned response."""

    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


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


def test_redirects_are_followed(server: Server) -> None:
    target = server.route("/new", Reply(body=b"moved here"))
    url = server.route("/old", Reply(301, headers={"Location": target}))
    assert fetch(url, source="rss") == b"moved here"


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
