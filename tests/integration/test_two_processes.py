"""Two paperbot processes on one Redis serve the same, fresh rankings.

A reaction handled by process A changes process B's next digest for that person with no
restart; a model A trains is served by B within 10 s; a paper A ingests is found by B's
`/papers search` within 10 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from recommender.store import Store

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "tests" / "fixtures" / "seed_papers.jsonl"
T0 = datetime(2026, 1, 14, 6, 0, tzinfo=UTC)
PERSON = "slack:T1:U1"


class Host:
    """A `tests.support.service_host` process."""

    def __init__(self, url: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.service_host", url, *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._read() == "ready"

    def _read(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the process died"
        answer = json.loads(line)
        assert answer["ok"], answer.get("error")
        return answer["result"]

    def __call__(self, op: str, **args: Any) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=20)


@pytest.fixture
def hosts(store: Store, redis_url: str) -> Iterator[tuple[Host, Host]]:
    """Process A (trains, ingests, takes clicks) and process B (watches every second)."""
    a = Host(redis_url)
    b = Host(redis_url, "--watch", "1")
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def within(seconds: float, check) -> float:
    """Seconds until `check()` holds (fails the test past `seconds`)."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, f"not within {seconds} s"
        time.sleep(0.1)
    return time.monotonic() - start


def test_two_processes_serve_the_same_fresh_rankings(hosts: tuple[Host, Host]) -> None:
    a, b = hosts
    assert a("pid") != b("pid")
    a("ingest", body=SEED.read_text(), at=T0.timestamp())
    version = a("train")
    # B notices the new model by itself.
    within(10, lambda: b("version") == version)
    before = b("peek", uid=PERSON)
    assert before == a("peek", uid=PERSON)

    # A 👍 handled by A changes B's next digest for that person, with no restart.
    diffusion = [pid for pid in a("search", uid="slack:T1:U9", query="diffusion guidance")]
    for pid in diffusion[:3]:
        assert a("click", uid=PERSON, kind="like", paper=pid).startswith("👍")
    after = b("peek", uid=PERSON)
    assert after != before
    assert not set(diffusion[:3]) & set(after)
    assert after == a("peek", uid=PERSON)

    # A retrain by A is served by B within 10 s, and the person's likes carry over.
    newer = a("train")
    assert newer != version
    within(10, lambda: b("version") == newer)
    assert b("peek", uid=PERSON) == a("peek", uid=PERSON)

    # A paper ingested by A is found by B's /papers search within 10 s.
    body = json.dumps(
        {
            "arxiv_id": "2612.00042",
            "title": "Axolotl Regeneration Transformers",
            "abstract": "Transformers predict axolotl limb regeneration from single cells.",
        }
    )
    assert a("ingest", body=body) == ["2612.00042"]
    within(10, lambda: b("search", uid=PERSON, query="axolotl regeneration")[:1] == ["2612.00042"])
