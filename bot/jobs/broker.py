"""The Dramatiq broker built from the configuration: Redis (default) or RabbitMQ."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from bot.config import ConfigError, Settings
from bot.jobs.payloads import DropMalformed
from recommender.connection import cluster_url, is_cluster

log = logging.getLogger(__name__)

# Dramatiq's keys live under paperbot's prefix, so `paperbot reset` and tests clear them too.
NAMESPACE = "pb:jobs"
# A worker silent this long is dead: its unacknowledged jobs go back to the queue. Short, so
# the rest of a digest a killed worker was sending goes out well within a minute.
HEARTBEAT_MS = 15_000
# Share of broker commands that also run queue maintenance (requeueing a dead worker's jobs),
# out of a million: high enough that a requeue follows a death within seconds.
MAINTENANCE_CHANCE = 100_000
MIN_BACKOFF_MS = 1_000
# Dramatiq's Redis broker and limiter run scripts and transactions over many keys of one
# namespace: they need one Redis server, never a cluster.
ON_CLUSTER = (
    "the task queues and the shared rate limits need a single Redis (redis://…), "
    "or RabbitMQ (amqp://…) with paperbot's Redis not a cluster"
)
MAX_BACKOFF_MS = 5 * 60_000


def middleware(settings: Settings) -> list[Any]:
    """Dramatiq's standard middleware with paperbot's retry policy, plus payload checks."""
    return [
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(
            max_retries=settings.job_retries,
            min_backoff=MIN_BACKOFF_MS,
            max_backoff=MAX_BACKOFF_MS,
        ),
        DropMalformed(),
    ]


def build_broker(settings: Settings, redis_client: Any) -> dramatiq.Broker:
    """RabbitMQ when PAPERBOT_BROKER_URL is an amqp URL, else Redis on `redis_client`."""
    url = settings.broker_url.get_secret_value() if settings.broker_url else ""
    if url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=url, middleware=middleware(settings))
    if url:
        import redis

        if cluster_url(url) is not None:
            raise ConfigError(f"PAPERBOT_BROKER_URL: {ON_CLUSTER}")
        redis_client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)
    elif is_cluster(redis_client):
        raise ConfigError(f"REDIS_URL names a Redis Cluster: set PAPERBOT_BROKER_URL; {ON_CLUSTER}")
    from dramatiq.brokers.redis import RedisBroker

    return RedisBroker(
        client=redis_client,
        namespace=NAMESPACE,
        heartbeat_timeout=HEARTBEAT_MS,
        maintenance_chance=MAINTENANCE_CHANCE,
        middleware=middleware(settings),
    )


def limits_client(broker: dramatiq.Broker, redis_client: Any) -> Any:
    """Where the shared rate limits count: the Redis broker's server, else paperbot's Redis.

    Dramatiq's limiter WATCHes and MGETs in one pipeline, which a Redis Cluster client
    cannot do; with RabbitMQ and a cluster there is no single Redis to count on.
    """
    client = getattr(broker, "client", None)
    if client is not None:
        return client
    if is_cluster(redis_client):
        raise ConfigError(f"REDIS_URL names a Redis Cluster with a RabbitMQ broker: {ON_CLUSTER}")
    return redis_client


def broker_kind(broker: dramatiq.Broker) -> str:
    """`redis` or `rabbitmq` (for status lines)."""
    return "rabbitmq" if type(broker).__name__ == "RabbitmqBroker" else "redis"


def dead_letters(broker: dramatiq.Broker) -> dict[str, int]:
    """Jobs parked in each queue's dead-letter queue (failed every retry)."""
    out: dict[str, int] = {}
    for queue in sorted(broker.get_declared_queues()):
        if broker_kind(broker) == "rabbitmq":
            counts = broker.get_queue_message_counts(queue)  # (ready, delayed, dead)
            out[queue] = int(counts[2])
        else:
            out[queue] = int(broker.client.zcard(f"{broker.namespace}:{queue}.XQ"))
    return out


def queued(broker: dramatiq.Broker) -> dict[str, int]:
    """Jobs waiting in each queue (ready ones; Redis only counts what it can see at once)."""
    out: dict[str, int] = {}
    for queue in sorted(broker.get_declared_queues()):
        if broker_kind(broker) == "rabbitmq":
            ready, delayed, _ = broker.get_queue_message_counts(queue)
            out[queue] = int(ready) + int(delayed)
        else:
            ns = broker.namespace
            out[queue] = int(broker.client.llen(f"{ns}:{queue}")) + int(
                broker.client.llen(f"{ns}:{queue}.DQ")
            )
    return out
