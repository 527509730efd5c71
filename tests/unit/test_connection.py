"""Which URLs name a Redis Cluster (no server needed)."""

from __future__ import annotations

import pytest

from recommender.connection import cluster_url


def test_a_cluster_url_is_recognised_by_scheme_or_query() -> None:
    """`redis+cluster://`, `rediss+cluster://` and `?cluster=1` name a cluster."""
    assert cluster_url("redis+cluster://h:7000") == "redis://h:7000"
    assert cluster_url("rediss+cluster://:pw@h:7000/0") == "rediss://:pw@h:7000"
    assert cluster_url("redis://h:7000?cluster=yes&ssl_cert_reqs=none") == (
        "redis://h:7000?ssl_cert_reqs=none"
    )
    assert cluster_url("redis://h:6379/2") is None
    assert cluster_url("redis://h:6379?cluster=0") is None
    with pytest.raises(ValueError, match="only database 0"):
        cluster_url("redis+cluster://h:7000/3")
