"""Each role as a real process does its job and only that.

- `paperbot web` twice (replicas behind a load balancer): a Slack retry of an event that
  reaches the other replica is applied once; either replica answers commands; neither
  runs the clock.
- `paperbot discord` twice (shards 0,1 and 2,3 of 4) against a local fake gateway: every
  shard connects once, the commands are published once, a reaction is recorded once, and
  a Discord digest job is delivered by a shard process, each paper once.
"""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

from bot.config import load_settings
from bot.jobs.actors import Jobs
from bot.jobs.broker import build_broker
from bot.repo import ChatRepo
from bot.repo.clock import LEASE_KEY
from recommender import pipeline
from recommender.store import Store
from tests.e2e.discord_fake import FakeDiscord
from tests.e2e.slack_fakes import (
    BOT_TOKEN,
    SIGNING_SECRET,
    TEAM,
    FakeSlack,
    command_body,
    event_body,
    reaction_event,
)
from tests.integration.roles_support import SEED, Role, post, role_env, until

CHANNEL = "C0PAPERS"


def a_paper(store: Store) -> str:
    """The seed corpus in the store; one of its paper ids."""
    pipeline.ingest_source(store, "jsonl", path=SEED)
    return next(iter(store.iter_papers())).id


async def test_two_web_replicas_share_their_state_through_redis(
    store: Store, redis_url: str, tmp_path: Path
) -> None:
    paper = a_paper(store)
    papers_before = store.paper_count()
    slack = FakeSlack()
    await slack.start()
    env = role_env(
        redis_url,
        tmp_path,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.api_url,
        # Were the clock running here, it would ingest this at once.
        PAPERBOT_SOURCES="jsonl",
        PAPERBOT_JSONL_PATH=str(SEED),
    )
    replicas = [Role(env, "web", "--port", "0"), Role(env, "web", "--port", "0")]
    try:
        urls = []
        for replica in replicas:
            await until(lambda r=replica: r.find(r"Slack requests on (\S+)"), 60, "a replica")
            match = replica.find(r"Slack requests on (\S+)")
            assert match
            urls.append(match.group(1))

        # A reaction on a digest card; Slack's retry of the same event lands on the other one.
        ts = "1700000000.000100"
        ChatRepo(store).remember_message(
            f"slack:{CHANNEL}:{ts}", {"paper": paper, "workspace": TEAM}
        )
        version = store.feedback_version()
        body = event_body(reaction_event("+1", CHANNEL, ts, user="U7"), event_id="Ev0001")
        assert await post(urls[0], body, "application/json") == 200
        assert await post(urls[1], body, "application/json") == 200
        uid = f"slack:{TEAM}:U7"
        await until(lambda: store.user_feedback(uid).get(paper) == {"like"}, 30, "the like")
        await asyncio.sleep(1.0)  # time for a duplicate to land, were it applied
        assert store.feedback_version() == version + 1

        # Either replica answers a command.
        for url in urls:
            response_url = slack.response_url()
            body = command_body("help", response_url, channel=CHANNEL)
            assert await post(url, body, "application/x-www-form-urlencoded") == 200
            answers = await slack.wait_response(response_url)
            assert answers and "papers" in str(answers[0]).lower()

        # Neither replica runs the clock.
        assert store.r.get(LEASE_KEY) is None
        assert store.paper_count() == papers_before
        for replica in replicas:
            err = await asyncio.to_thread(replica.stop, signal.SIGTERM)
            assert replica.proc.returncode == 0, err
            assert "Traceback" not in err
            assert "scheduler lease" not in err
            assert "paperbot web stopped." in err
    finally:
        for replica in replicas:
            replica.kill()
        await slack.stop()


GUILD_A = str((1 << 22) * 5)  # shard 5 % 4 = 1
GUILD_B = str((1 << 22) * 6)  # shard 6 % 4 = 2


async def test_two_discord_shard_processes_split_the_guilds(
    store: Store, redis_url: str, tmp_path: Path
) -> None:
    paper = a_paper(store)
    fake = FakeDiscord()
    await fake.start()
    env = role_env(
        redis_url,
        tmp_path,
        DISCORD_TOKEN="test-token",
        DISCORD_API_URL=fake.api_url,
        DISCORD_GATEWAY_URL=fake.gateway_url,
        PAPERBOT_SOURCES="jsonl",
        PAPERBOT_JSONL_PATH=str(SEED),
    )
    shards = [
        Role(env, "discord", "--shards", "0,1", "--shard-count", "4"),
        Role(env, "discord", "--shards", "2,3", "--shard-count", "4"),
    ]
    try:
        for role in shards:
            await until(lambda r=role: r.has("connected. Ctrl-C to stop."), 90, "a shard process")
        assert sorted(tuple(i["shard"]) for i in fake.identifies) == [
            (0, 4),
            (1, 4),
            (2, 4),
            (3, 4),
        ]
        assert fake.command_syncs() == 1
        assert "publishes the commands" in shards[0].err
        assert "publishes the commands" not in shards[1].err

        # A reaction in each guild: delivered to one shard only, recorded once.
        for guild, channel, user in ((GUILD_A, "701", "801"), (GUILD_B, "702", "802")):
            message = {"id": f"9{channel}", "channel_id": channel}
            key = f"discord:{channel}:{message['id']}"
            ChatRepo(store).remember_message(key, {"paper": paper, "workspace": guild})
            version = store.feedback_version()
            await fake.react(message, "🔖", user_id=user, guild_id=guild)
            uid = f"discord:{guild}:{user}"
            await until(lambda u=uid: [p for p, _ in store.saved(u)] == [paper], 30, "the save")
            await asyncio.sleep(0.5)
            assert store.feedback_version() == version + 1
        reactions = [shard for event, shard in fake.dispatched if event == "MESSAGE_REACTION_ADD"]
        assert reactions == [1, 2]

        # A team digest in guild B, subscribed through its shard, is delivered by a shard
        # process from the deliver_discord queue (workers have no Discord client).
        token = await fake.slash(
            "subscribe", {"where": "channel"}, user_id="803", channel_id="703", guild_id=GUILD_B
        )
        await fake.answers(token)
        sub_id = f"channel:discord:{GUILD_B}:703"
        assert ChatRepo(store).get_subscription(sub_id) is not None
        broker = build_broker(load_settings(REDIS_URL=redis_url), store.r)
        Jobs(broker).deliver(sub_id, "discord", "2026-01-05")
        broker.close()
        await until(lambda: len(fake.messages.get("703", [])) >= 2, 60, "the team digest")
        await asyncio.sleep(1.0)
        cards = [m for m in fake.messages["703"] if m.get("embeds")]
        footers = [m["embeds"][0]["footer"]["text"] for m in cards]
        assert footers and len(footers) == len(set(footers))

        # Neither process runs the clock.
        assert store.r.get(LEASE_KEY) is None
        for role in shards:
            err = await asyncio.to_thread(role.stop, signal.SIGTERM)
            assert role.proc.returncode == 0, err
            assert "Traceback" not in err
            assert "scheduler lease" not in err
            assert re.search(r"paperbot discord stopped\.", err)
    finally:
        for role in shards:
            role.kill()
        await fake.stop()
