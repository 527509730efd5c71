"""Redis clients from a URL: one server, or a Redis Cluster when the URL says so.

A cluster is named by the scheme (`redis+cluster://host:port`, `rediss+cluster://…`) or by
`cluster=1` in the query of a plain `redis://` URL; any one reachable node is enough, the
client discovers the others. Everything else in the URL means what redis-py says it means.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.cluster import RedisCluster

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
_YES = frozenset({"1", "yes", "true", "on"})

# Client options both kinds of client accept (a cluster has no database numbers).
CLIENT_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 5,
    "socket_timeout": 30,
    "health_check_interval": 30,
}


def cluster_url(url: str) -> str | None:
    """The plain `redis://` form of a cluster URL, or None when `url` names one server."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    query = parse_qsl(parts.query, keep_blank_values=True)
    flagged = [v for k, v in query if k.lower() == "cluster"]
    if scheme not in CLUSTER_SCHEMES and not (flagged and flagged[-1].lower() in _YES):
        return None
    rest = urlencode([(k, v) for k, v in query if k.lower() != "cluster"])
    path = parts.path
    if path.strip("/") not in ("", "0"):
        # A cluster only has database 0; a silent fallback would read and write elsewhere.
        raise ValueError("a Redis Cluster has only database 0")
    return urlunsplit((CLUSTER_SCHEMES.get(scheme, scheme), parts.netloc, "", rest, ""))


def client_from_url(url: str) -> redis.Redis | RedisCluster:
    """A client for `url`: a `RedisCluster` for a cluster URL, else a `redis.Redis`.

    Building a cluster client already talks to the cluster (it reads the slot map), so it
    raises the same connection errors a first command would.
    """
    plain = cluster_url(url)
    if plain is None:
        return redis.Redis.from_url(url, **CLIENT_OPTIONS)
    return RedisCluster.from_url(plain, **CLIENT_OPTIONS)


def is_cluster(client: Any) -> bool:
    """Whether `client` talks to a Redis Cluster."""
    return isinstance(client, RedisCluster)


def is_cluster_node(client: redis.Redis) -> bool:
    """Whether a single-server client is in fact talking to one node of a cluster."""
    try:
        return bool(client.info("cluster").get("cluster_enabled"))
    except redis.ResponseError:
        # A server that hides INFO (some managed offerings) is taken at its URL's word.
        return False
