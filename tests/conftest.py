"""Fixtures shared by the whole suite: a real Redis server and the captured fixtures folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from recommender.store import Store, StoreUnavailable

DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/9"


def redis_test_url(db: int | None = None) -> str:
    """The test Redis URL (`PAPERBOT_TEST_REDIS_URL`), optionally on another database number.

    Every test database lives on the one server that variable names, so several checkouts
    can run the suite at once, each against its own server.
    """
    url = os.environ.get("PAPERBOT_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)
    if db is None:
        return url
    return url.rsplit("/", 1)[0] + f"/{db}" if url.count("/") >= 3 else f"{url}/{db}"


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the Redis server the tests may flush (`PAPERBOT_TEST_REDIS_URL`)."""
    url = redis_test_url()
    try:
        probe = Store.connect(url)
    except StoreUnavailable as exc:
        # Integration tests never fall back to a fake: without a server they cannot run.
        pytest.exit(
            f"integration tests need a real Redis server ({exc}); start redis-server or "
            "set PAPERBOT_TEST_REDIS_URL to one whose paperbot keys may be deleted",
            returncode=pytest.ExitCode.TESTS_FAILED,
        )
    probe.close()
    return url


def _clean_store(url: str) -> Iterator[Store]:
    """A Store on `url` with every `pb:` key deleted before and after the test."""
    connected = Store.connect(url)
    connected.flush_prefix()
    try:
        yield connected
    finally:
        connected.flush_prefix()
        connected.close()


@pytest.fixture
def store(redis_url: str) -> Iterator[Store]:
    """A Store on the test Redis with every `pb:` key deleted before and after the test."""
    yield from _clean_store(redis_url)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The folder of real captured API responses (see its README)."""
    return Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="module")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real three-node Redis Cluster for one test module: its `redis+cluster://` URL."""
    from tests.support.redis_cluster import MISSING, running_cluster

    if MISSING:
        pytest.skip(f"a Redis Cluster test needs {' and '.join(MISSING)} on PATH")
    with running_cluster(tmp_path_factory.mktemp("redis-cluster")) as ports:
        yield f"redis+cluster://127.0.0.1:{ports[0]}"


@pytest.fixture
def cluster_store(redis_cluster_url: str) -> Iterator[Store]:
    """A Store on the test cluster with every `pb:` key deleted before and after the test."""
    yield from _clean_store(redis_cluster_url)
