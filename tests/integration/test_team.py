"""What a team knows, on a real Redis: who reads about a topic, named savers, trends, top."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.core import BotCore
from bot.delivery import Delivery
from bot.ports import Context, Digest, Image, PaperCard, Sent, Target
from bot.repo import ChatRepo
from bot.subscriptions import Subscription
from bot.team import Team, team_line
from bot.trends import Trends, rising, topics_of
from recommender.ingest import ingest
from recommender.service import PaperService
from recommender.sources import parse_body
from recommender.store import Store
from recommender.types import Paper, ParseResult

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seed_papers.jsonl"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def core(store: Store) -> BotCore:
    """The chat core over the seed corpus with a trained (TF-IDF) model."""
    ingest(store, parse_body("jsonl", SEED.read_bytes()), "jsonl")
    service = PaperService(store, encoder=None)
    service.train()
    return BotCore(service)


def person(name: str, workspace: str = "T1") -> Context:
    return Context("slack", workspace, "U" + name.upper(), channel="C1", user_name=name)


def about(store: Store, word: str) -> list[str]:
    """Seed papers whose title has `word`."""
    return [p.id for p in store.iter_papers() if word in p.title.lower()]


@pytest.fixture
def team(core: BotCore, store: Store) -> dict[str, Context]:
    """Bo (visible) likes diffusion, Cy (not visible) saves diffusion, Dee (visible) likes
    recommender papers; Eve, in another workspace, is visible and saves diffusion too."""
    people = {n: person(n) for n in ("ann", "bo", "cy", "dee")}
    people["eve"] = person("eve", "T2")
    for ctx in people.values():
        core.answer(ctx, "help")
    for name in ("bo", "dee", "eve"):
        core.answer(people[name], "settings visible on")
    diffusion, recsys = about(store, "diffusion"), about(store, "recommend")
    for pid in diffusion[:3]:
        store.apply_feedback(people["bo"].uid, pid, "like")
        store.apply_feedback(people["cy"].uid, pid, "save")
        store.apply_feedback(people["eve"].uid, pid, "save")
    for pid in recsys[:3]:
        store.apply_feedback(people["dee"].uid, pid, "like")
    return people


def test_visibility_is_off_until_turned_on(core: BotCore) -> None:
    assert "see your name on papers you liked: no" in core.answer(person("zed"), "settings").text
    on = core.answer(person("zed"), "settings visible on")
    assert on.text.startswith("Teammates in this workspace can now see your name")
    assert "liked: yes" in core.answer(person("zed"), "settings").text
    assert "no longer shown" in core.answer(person("zed"), "settings visible off").text
    assert "visible on` or" in core.answer(person("zed"), "settings visible maybe").text


def test_who_names_visible_teammates_and_counts_the_rest(
    core: BotCore, team: dict[str, Context], store: Store
) -> None:
    answer = core.answer(team["ann"], "who diffusion models").text
    lines = answer.splitlines()
    assert lines[0] == "*Who reads about “diffusion models”*"
    diffusion = {p.title for p in store.iter_papers() if "diffusion" in p.title.lower()}
    assert lines[1].startswith("• bo: “")
    assert lines[1][len("• bo: “") : -1].rstrip("…") in " ".join(diffusion)
    assert lines[2] == (
        "Also 1 other teammate reads about it (not named: only people who turn on "
        "`/papers settings visible` are)."
    )
    # Dee reads other things; Eve is in another workspace: neither appears, not even counted.
    assert "dee" not in answer and "eve" not in answer and len(lines) == 3
    recsys = core.answer(team["ann"], "who recommender systems").text
    assert "• dee: “" in recsys and "• bo" not in recsys


def test_who_with_nobody_close_and_outside_a_workspace(
    core: BotCore, team: dict[str, Context]
) -> None:
    assert core.answer(team["ann"], "who").text.startswith("Which topic?")
    alone = core.answer(person("ann", "T3"), "who diffusion").text
    assert alone == "Nobody here has 👍 or 🔖 papers on “diffusion” yet."
    dm = Context("discord", "dm", "U1", is_dm=True)
    assert "inside a server" in core.answer(dm, "who diffusion").text


def test_cards_name_visible_savers_and_count_the_others(
    core: BotCore, team: dict[str, Context], store: Store
) -> None:
    first = about(store, "diffusion")[0]
    cards = [PaperCard(first, "t", ""), PaperCard(about(store, "recommend")[0], "u", "")]
    Team(core.service).annotate(cards, "slack:T1")
    assert (cards[0].saved_by, cards[0].liked_by, cards[0].unnamed) == ([], ["bo"], 1)
    assert cards[0].teammates == 2
    assert team_line(cards[0]) == "👍 liked by bo · 👥 1 more teammate liked this"
    assert team_line(cards[1]) == "👍 liked by dee"
    store.apply_feedback(team["bo"].uid, first, "save")
    Team(core.service).annotate(cards, "slack:T1")
    assert team_line(cards[0]) == "🔖 saved by bo · 👥 1 more teammate liked this"
    assert team_line(PaperCard("x", "t", "", teammates=3)) == "👥 3 teammates liked this"


def test_topics_of_titles() -> None:
    paper = Paper(id="x", title="Diffusion Models for Graph Neural Networks: A Study")
    topics = topics_of(paper)
    assert {"diffusion", "graph", "diffusion models", "graph neural"} <= topics
    # Generic words are no topic on their own; function words end a phrase.
    assert "models" not in topics and "study" not in topics and "for graph" not in topics


def test_rising_needs_a_real_rise() -> None:
    from collections import Counter

    weeks = [Counter({"graph": 3, "old": 5}) for _ in range(4)]
    weeks.append(Counter({"graph": 4, "old": 5, "agents": 6, "agents memory": 5, "once": 1}))
    found = {r.topic: r for r in rising(weeks, 2)}
    # "agents" rises mostly as "agents memory": shown as that phrase, once.
    assert list(found) == ["agents memory"]
    assert (found["agents memory"].now, found["agents memory"].before) == (5, 0.0)


def test_trends_count_this_week_against_the_four_before(store: Store) -> None:
    now = time.time()
    day = 86400
    papers = []
    for week in range(5):
        when = datetime.fromtimestamp(now - week * 7 * day - day, UTC)
        titles = ["Graph Transformers Revisited"]
        if week == 0:
            titles += [f"Retrieval Augmented Agents {i}" for i in range(4)]
        for i, title in enumerate(titles):
            papers.append(Paper(id=f"260{week}.{i:05d}", title=title, first_seen=when))
    ingest(store, ParseResult(papers=papers), "jsonl")
    service = PaperService(store, encoder=None)
    for i in range(3):
        store.apply_feedback("slack:T1:UA", f"2600.{i + 1:05d}", "like", ts=now - day)
        store.apply_feedback("slack:T2:UZ", f"2600.{i + 1:05d}", "like", ts=now - day)
    # An old like counts for its own week, not this one.
    store.apply_feedback("slack:T1:UB", "2603.00000", "like", ts=now - 3 * 7 * day - day)
    report = Trends(service).report("slack:T1", now)
    # One topic for the new phrase (either half of "retrieval augmented agents"); the graph
    # papers come every week and do not rise.
    phrase = {"retrieval augmented", "augmented agents"}
    [papers] = report.papers
    assert papers.topic in phrase and (papers.now, papers.before) == (4, 0.0)
    [reactions] = report.reactions
    assert reactions.topic in phrase and reactions.now == 3
    assert report.reacted == 3 and report.arrived == 5
    reply = Trends(service).reply(Context("slack", "T1", "UA", channel="C1"))
    assert f"{papers.topic} (4 vs 0.0)" in reply.text
    [image] = reply.images
    assert image.data.startswith(PNG) and image.filename.endswith(".png")
    quiet = Trends(service).reply(Context("slack", "T9", "UA", channel="C1"))
    assert "nothing rising (0 papers reacted to this week)" in quiet.text


class Recording:
    """A port that records what a digest posts, images included."""

    platform = "slack"

    def __init__(self) -> None:
        self.posted: list[tuple[str, object]] = []

    async def post_intro(self, target: Target, digest: Digest) -> Sent:
        self.posted.append(("intro", digest.intro))
        return Sent("slack:C1:1", None)

    async def post_card(self, target: Target, digest: Digest, card: PaperCard, thread) -> Sent:
        self.posted.append(("card", card))
        return Sent(f"slack:C1:{len(self.posted)}", card.paper_id)

    async def send_text(self, target: Target, text: str) -> None:
        self.posted.append(("text", text))

    async def post_image(self, target: Target, image: Image, thread: str | None) -> None:
        self.posted.append(("image", image))


def test_a_weekly_channel_digest_brings_the_chart_names_and_the_top_of_the_week(
    core: BotCore, team: dict[str, Context], store: Store
) -> None:
    now = datetime.now(UTC)
    # Loved on Hugging Face, but from before this digest's window: only "Top this week"
    # can bring it.
    hf = Paper(
        id="2609.00001",
        title="A Paper Hugging Face Loves",
        upvotes=321,
        first_seen=now - timedelta(days=3),
    )
    ingest(store, ParseResult(papers=[hf]), "jsonl")
    sub = Subscription(
        id="channel:slack:T1:C1",
        kind="channel",
        platform="slack",
        workspace="T1",
        target="C1",
        owner=team["ann"].uid,
        cadence="weekly",
        size=5,
        last_sent=(now - timedelta(days=1)).timestamp(),
    )
    ChatRepo(store).put_subscription(sub.id, sub.to_dict())
    for name in ("bo", "cy", "dee"):
        ChatRepo(store).add_channel_member("slack:T1:C1", team[name].uid)
    port = Recording()
    delivery = Delivery(store, core.builder, {"slack": port})
    assert asyncio.run(delivery.send(sub, "2026-W01", now=now)) == "sent"
    kinds = [k for k, _ in port.posted]
    assert kinds[:2] == ["intro", "image"]
    image = port.posted[1][1]
    assert isinstance(image, Image) and image.data.startswith(PNG)
    cards = [c for k, c in port.posted if k == "card"]
    top = [c for c in cards if c.reason.startswith("🏆 Top this week")]
    assert any(c.reason == "🏆 Top this week: ▲ 321 on Hugging Face" for c in top)
    assert len(cards) == 5 + len(top)
    named = [c for c in cards if c.liked_by or c.saved_by]
    assert named and all(set(c.liked_by + c.saved_by) <= {"bo", "dee"} for c in named)
    # Every top paper was marked as sent: the next week's digest does not repeat it.
    seen = store.seen(sub.subscriber)
    assert {c.paper_id for c in top} <= seen
    again = core.builder.digest_for(sub, "2026-W02", (now + timedelta(days=7)).timestamp())
    assert again is None or not {c.paper_id for c in again.top} & seen
