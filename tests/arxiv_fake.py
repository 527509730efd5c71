"""A local stand-in for the arXiv API: Atom answers for `id_list` and `au:"…"` queries.

It knows a few papers (id, title, authors, abstract); ids it does not know are simply not
in the feed, as with the real API. `fail` makes every request answer HTTP 500.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape


@dataclass
class ArxivPaper:
    """One paper the fake API knows."""

    id: str
    title: str
    authors: list[str]
    abstract: str = "An abstract."
    doi: str = ""


@dataclass
class FakeArxiv:
    """The fake API's papers and the queries it was asked."""

    papers: dict[str, ArxivPaper] = field(default_factory=dict)
    queries: list[dict[str, str]] = field(default_factory=list)
    fail: bool = False
    url: str = ""

    def add(self, *papers: ArxivPaper) -> None:
        """Papers the API can return."""
        for paper in papers:
            self.papers[paper.id] = paper

    def answer(self, query: dict[str, str]) -> bytes:
        """The Atom feed for one query."""
        found: list[ArxivPaper] = []
        if query.get("id_list"):
            found = [self.papers[i] for i in query["id_list"].split(",") if i in self.papers]
        search = query.get("search_query", "")
        if search.startswith("au:"):
            name = search[3:].strip('"').casefold()
            found = [
                p for p in self.papers.values() if any(a.casefold() == name for a in p.authors)
            ]
        found = found[: int(query.get("max_results") or 100)]
        entries = "".join(_entry(p) for p in found)
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<feed xmlns="http://www.w3.org/2005/Atom" '
            'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" '
            'xmlns:arxiv="http://arxiv.org/schemas/atom">'
            "<title>arXiv Query</title>"
            f"<opensearch:totalResults>{len(found)}</opensearch:totalResults>"
            "<opensearch:startIndex>0</opensearch:startIndex>"
            f"<opensearch:itemsPerPage>{len(found)}</opensearch:itemsPerPage>"
            f"{entries}</feed>"
        ).encode()


def _entry(paper: ArxivPaper) -> str:
    """One Atom entry as the API writes it."""
    authors = "".join(f"<author><name>{escape(a)}</name></author>" for a in paper.authors)
    doi = f"<arxiv:doi>{escape(paper.doi)}</arxiv:doi>" if paper.doi else ""
    return (
        f"<entry><id>http://arxiv.org/abs/{paper.id}v1</id>"
        "<updated>2026-01-05T10:00:00Z</updated><published>2026-01-05T10:00:00Z</published>"
        f"<title>{escape(paper.title)}</title><summary>{escape(paper.abstract)}</summary>"
        f"{authors}{doi}"
        f'<link href="https://arxiv.org/abs/{paper.id}v1" rel="alternate" type="text/html"/>'
        '<arxiv:primary_category term="cs.LG" scheme="http://arxiv.org/schemas/atom"/>'
        '<category term="cs.LG" scheme="http://arxiv.org/schemas/atom"/></entry>'
    )


@contextmanager
def serve(fake: FakeArxiv | None = None) -> Iterator[FakeArxiv]:
    """Run the fake API on 127.0.0.1 and a free port; `fake.url` is its query URL."""
    api = fake or FakeArxiv()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(self.path).query))
            api.queries.append(query)
            if api.fail:
                self.send_response(500)
                self.end_headers()
                return
            body = api.answer(query)
            self.send_response(200)
            self.send_header("Content-Type", "application/atom+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            """Quiet."""

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    api.url = f"http://127.0.0.1:{httpd.server_address[1]}/api/query"
    try:
        yield api
    finally:
        httpd.shutdown()
        httpd.server_close()
