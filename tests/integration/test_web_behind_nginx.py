"""deploy/nginx.conf in front of two `paperbot web` replicas (skipped where nginx is absent).

Signed Slack requests pass through the load balancer unchanged (the signature checks out
on whichever replica gets them), requests are spread over both replicas, and an event
retried through the balancer is applied once.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from bot.repo import ChatRepo
from recommender import pipeline
from recommender.store import Store
from tests.e2e.slack_fakes import (
    BOT_TOKEN,
    SIGNING_SECRET,
    TEAM,
    FakeSlack,
    command_body,
    event_body,
    reaction_event,
)
from tests.integration.roles_support import ROOT, SEED, Role, post, role_env, until

NGINX = shutil.which("nginx")
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
CHANNEL = "C0LB"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nginx_config(tmp: Path, listen: int, replicas: list[int]) -> Path:
    """deploy/nginx.conf with the compose names replaced by local ports, in a runnable file."""
    site = (ROOT / "deploy" / "nginx.conf").read_text()
    servers = "".join(f"server 127.0.0.1:{p} max_fails=2 fail_timeout=10s;\n" for p in replicas)
    site, found = re.subn(r"server web:3000[^;]*;\n", servers, site)
    assert found == 1
    site = site.replace("listen 80;", f"listen 127.0.0.1:{listen};")
    (tmp / "site.conf").write_text(site)
    main = f"""
daemon off;
user root;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{
    log_format upstream '$request_uri $status $upstream_addr';
    access_log {tmp}/access.log upstream;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/site.conf;
}}
"""
    path = tmp / "nginx.conf"
    path.write_text(main)
    return path


async def test_signed_requests_pass_the_balancer_to_both_replicas(
    store: Store, redis_url: str, tmp_path: Path
) -> None:
    pipeline.ingest_source(store, "jsonl", path=SEED)
    paper = next(iter(store.iter_papers())).id
    slack = FakeSlack()
    await slack.start()
    env = role_env(
        redis_url,
        tmp_path,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.api_url,
    )
    replicas = [Role(env, "web", "--port", "0"), Role(env, "web", "--port", "0")]
    balancer = None
    try:
        ports = []
        for replica in replicas:
            await until(lambda r=replica: r.find(r"Slack requests on (\S+)"), 60, "a replica")
            match = replica.find(r"Slack requests on http://127\.0\.0\.1:(\d+)/")
            assert match
            ports.append(int(match.group(1)))
        listen = free_port()
        config = nginx_config(tmp_path, listen, ports)
        balancer = subprocess.Popen([NGINX, "-c", str(config), "-p", str(tmp_path)])
        url = f"http://127.0.0.1:{listen}/slack/events"

        async def answered() -> bool:
            """One signed `/papers help` through the balancer, answered."""
            response_url = slack.response_url()
            body = command_body("help", response_url, channel=CHANNEL)
            status = await post(url, body, "application/x-www-form-urlencoded")
            return status == 200 and bool(await slack.wait_response(response_url))

        await until(lambda: (tmp_path / "nginx.pid").exists(), 20, "nginx")
        for _ in range(4):
            assert await answered()

        ts = "1700000000.000200"
        ChatRepo(store).remember_message(
            f"slack:{CHANNEL}:{ts}", {"paper": paper, "workspace": TEAM}
        )
        version = store.feedback_version()
        body = event_body(reaction_event("+1", CHANNEL, ts, user="U9"), event_id="EvLB01")
        for _ in range(2):  # Slack's retry, balanced to the other replica
            assert await post(url, body, "application/json") == 200
        uid = f"slack:{TEAM}:U9"
        await until(lambda: store.user_feedback(uid).get(paper) == {"like"}, 30, "the like")
        await asyncio.sleep(1.0)
        assert store.feedback_version() == version + 1

        upstreams = {
            line.split()[-1]
            for line in (tmp_path / "access.log").read_text().splitlines()
            if line.startswith("/slack/events")
        }
        assert upstreams == {f"127.0.0.1:{p}" for p in ports}
    finally:
        if balancer is not None:
            balancer.send_signal(signal.SIGQUIT)
            balancer.wait(timeout=20)
        for replica in replicas:
            await asyncio.to_thread(replica.stop, signal.SIGTERM)
            replica.kill()
        await slack.stop()
