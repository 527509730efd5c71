"""Starting the task engine in a process: broker, actors, rate gate and a Dramatiq worker."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import dramatiq

from bot.config import Settings
from bot.delivery import Delivery
from bot.jobs.actors import QUEUE, Jobs, deliver_queue
from bot.jobs.broker import broker_kind, build_broker, limits_client
from bot.jobs.context import JobContext, install
from bot.jobs.limits import RateGate
from bot.ports import ChatPort
from recommender.store import Store

log = logging.getLogger(__name__)

# How long an idle worker waits between polls (ms): low, so a delayed job (the next message
# of a digest) starts close to when it is due.
POLL_MS = 100
STOP_MS = 10_000
CONSUMER_RESTART = 1.0  # seconds Dramatiq waits before reconnecting a consumer


@dataclass
class Engine:
    """The broker, the job senders and (when this process consumes) its worker."""

    broker: dramatiq.Broker
    jobs: Jobs
    context: JobContext
    worker: dramatiq.Worker | None = None
    queues: tuple[str, ...] = ()
    _stopping: threading.Event = field(default_factory=threading.Event)

    def watch_redis(self, every: float = 1.0) -> None:
        """Requeue this worker's orphaned jobs whenever Redis comes back after an outage.

        A Redis broker consumer that loses its connection forgets the jobs it held (delayed
        ones included) while Redis still lists them as this worker's; they would wait until
        the worker died. Handing them back at once lets the rest of a digest go out within
        seconds; a job that was in fact still running may run twice, which jobs allow.
        """
        if broker_kind(self.broker) != "redis" or self.worker is None:
            return
        thread = threading.Thread(target=self._watch, args=(every,), daemon=True)
        thread.name = "paperbot-redis-watch"
        thread.start()

    def _watch(self, every: float) -> None:
        """The loop of `watch_redis`."""
        down = False
        while not self._stopping.wait(every):
            try:
                self.broker.client.ping()
            except Exception:
                down = True
                continue
            if down:
                down = False
                # Consumers reconnect about a second after Redis is back.
                self._stopping.wait(CONSUMER_RESTART + 0.5)
                try:
                    moved = requeue_orphans(self.broker, self.queues)
                except Exception as exc:
                    log.warning("could not requeue jobs after the Redis outage: %s", exc)
                    down = True
                    continue
                log.warning("Redis is back: %d jobs of this worker handed back to the queue", moved)

    def stop(self) -> None:
        """Stop consuming (running jobs finish or are redelivered) and close the broker."""
        self._stopping.set()
        if self.worker is not None:
            worker, self.worker = self.worker, None
            worker.stop(timeout=STOP_MS)
        self.broker.close()


def requeue_orphans(broker: dramatiq.Broker, queues: Iterable[str]) -> int:
    """Put the jobs Redis lists as this worker's (acked by no one yet) back on their queues."""
    moved = 0
    ns, me = broker.namespace, broker.broker_id
    for queue in queues:
        for name in (queue, f"{queue}.DQ"):
            ids = [m.decode() for m in broker.client.smembers(f"{ns}:__acks__.{me}.{name}")]
            if ids:
                broker.do_requeue(name, *ids)
                moved += len(ids)
    return moved


def delivery_ports(settings: Settings, store: Store, extra: Iterable[ChatPort] = ()) -> dict:
    """The ports a worker delivers through: Slack from the settings, plus `extra` ones
    that live elsewhere in the process (Discord's gateway client, the console)."""
    ports: dict[str, Any] = {p.platform: p for p in extra}
    if "slack" not in ports and (settings.slack_bot_token or settings.slack_install_flow):
        from bot.slack_app import delivery_port

        port = delivery_port(settings, store)
        if port is not None:
            ports["slack"] = port
    return ports


def serving_queues(ports: dict[str, Any]) -> list[str]:
    """The queues a process with these ports can work on."""
    return [QUEUE, *(deliver_queue(p) for p in sorted(ports))]


def start_engine(
    settings: Settings,
    core: Any,
    runtime: Any,
    *,
    loop: asyncio.AbstractEventLoop,
    ports: dict[str, Any],
    threads: int | None = None,
    queues: Iterable[str] | None = None,
    consume: bool = True,
) -> Engine:
    """Build the broker and actors, install this process's job context and, with
    `consume`, start a Dramatiq worker on `queues` (default: all this process can serve)."""
    store: Store = core.store
    broker = build_broker(settings, store.r)
    dramatiq.set_broker(broker)
    jobs = Jobs(broker)
    gate = RateGate(
        limits_client(broker, store.r),
        slack_workspace_rate=settings.slack_workspace_rate,
        discord_rate=settings.discord_rate,
    )
    delivery = Delivery(store, core.builder, ports, gate=gate)
    context = JobContext(settings, store, core.service, delivery, loop, runtime=runtime, jobs=jobs)
    install(context)
    if runtime is not None:
        runtime.jobs = jobs
    engine = Engine(broker, jobs, context)
    if consume:
        chosen = list(queues) if queues else serving_queues(ports)
        engine.queues = tuple(chosen)
        for queue in chosen:
            broker.declare_queue(queue)
        engine.worker = dramatiq.Worker(
            broker,
            queues=set(chosen),
            worker_threads=threads or settings.worker_threads,
            worker_timeout=POLL_MS,
        )
        engine.worker.start()
        engine.watch_redis()
        log.info("worker: %d threads on %s", threads or settings.worker_threads, ", ".join(chosen))
    return engine
