"""Digests and their delivery through a fake chat port, with a fake clock, on a real Redis."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.commands import CommandService
from bot.core import BotCore
from bot.delivery import MAX_ATTEMPTS
from bot.digest import DigestBuilder
from bot.ports import Context, DeliveryError, Digest, PaperCard, Sent, Target
from bot.repo import ChatRepo
from bot.subscriptions import Subscription, subscription_id
from recommender.ingest import ingest
from recommender.service import PaperService
from recommender.sources import parse_body
from recommender.store import Store
from recommender.types import Feedback, Paper

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seed_papers.jsonl"
CREATED = datetime(2026, 1, 10, tzinfo=UTC)
T0 = datetime(2026, 1, 14, 6, 0, tzinfo=UTC)  # the seed papers are first seen
SLOT = datetime(2026, 1, 14, 9, 0, tzinfo=UTC)  # a 09:00 UTC daily digest falls due
DAY1 = SLOT + timedelta(minutes=1)
DAY2 = DAY1 + timedelta(days=1)


class FakePort:
    """A ChatPort that records what it posts and fails on request."""

    platform = "slack"

    def __init__(self) -> None:
        self.calls = 0
        self.intros: list[tuple[Target, Digest, str]] = []
        self.cards: list[tuple[Target, PaperCard, str | None, str]] = []
        self.texts: list[tuple[Target, str]] = []
        self.failures: dict[int, DeliveryError] = {}
        self.broken: DeliveryError | None = None

    def fail(self, n: int, *, permanent: bool = False) -> None:
        """Make the n-th post (intro or card, counted from 1) raise DeliveryError."""
        self.failures[n] = DeliveryError(f"post {n} failed", permanent=permanent)

    def _call(self) -> int:
        self.calls += 1
        if self.broken is not None:
            raise self.broken
        error = self.failures.pop(self.calls, None)
        if error is not None:
            raise error
        return self.calls

    async def post_intro(self, target: Target, digest: Digest) -> Sent:
        n = self._call()
        key = f"slack:{target.id}:{n}.0"
        self.intros.append((target, digest, key))
        return Sent(key, None)

    async def post_card(
        self, target: Target, digest: Digest, card: PaperCard, thread: str | None
    ) -> Sent:
        n = self._call()
        key = f"slack:{target.id}:{n}.0"
        self.cards.append((target, card, thread, key))
        return Sent(key, card.paper_id)

    async def send_text(self, target: Target, text: str) -> None:
        self.texts.append((target, text))

    def paper_ids(self) -> list[str]:
        return [card.paper_id for _, card, _, _ in self.cards]


def add_papers(store: Store, titles: list[str], when: datetime) -> list[str]:
    body = "\n".join(
        json.dumps({"title": t, "abstract": f"{t}. A study of {t.lower()}."}) for t in titles
    )
    report = ingest(store, parse_body("jsonl", body.encode(), now=when), "jsonl")
    return report.new_ids


@pytest.fixture
def service(store: Store) -> PaperService:
    ingest(store, parse_body("jsonl", SEED.read_bytes(), now=T0), "jsonl")
    return PaperService(store, encoder=None)


@pytest.fixture
def port() -> FakePort:
    return FakePort()


@pytest.fixture
def core(service: PaperService, port: FakePort) -> BotCore:
    core = BotCore(service)
    core.register(port)
    return core


def subscribe(
    store: Store,
    *,
    kind: str = "dm",
    user: str = "U1",
    channel: str = "C1",
    workspace: str = "T1",
    at: str = "09:00",
    size: int = 5,
) -> Subscription:
    target = user if kind == "dm" else channel
    sub = Subscription(
        id=subscription_id(kind, "slack", workspace, target),
        kind=kind,
        platform="slack",
        workspace=workspace,
        target=target,
        owner=f"slack:{workspace}:{user}",
        at=at,
        size=size,
        created=CREATED.timestamp(),
    )
    ChatRepo(store).put_subscription(sub.id, sub.to_dict())
    return sub


def titled(store: Store, word: str) -> list[Paper]:
    return [p for p in store.iter_papers() if word in p.title.lower()]


def dm_ctx() -> Context:
    return Context("slack", "T1", "U1", channel="D1", is_dm=True)


# -- building digests ---------------------------------------------------------------------------


def test_personal_digest_skips_papers_sent_or_rated(service: PaperService, store: Store) -> None:
    uid = "slack:T1:U1"
    ids = store.all_paper_ids()
    store.mark_seen(uid, ids[:10])
    service.record(uid, ids[10], Feedback.LIKE)
    service.record(uid, ids[11], Feedback.DISLIKE)
    service.record(uid, ids[12], Feedback.SAVE)
    picked = DigestBuilder(service).personal(uid, since=0, n=500)
    got = {r.paper.id for r in picked}
    assert got == set(ids[13:])
    # Another person still gets everything.
    assert len(DigestBuilder(service).personal("slack:T1:U2", since=0, n=500)) == len(ids)


def test_personal_digest_only_looks_at_papers_since(service: PaperService, store: Store) -> None:
    new = add_papers(store, ["Graph Neural Networks for Chemistry"], T0 + timedelta(hours=5))
    picked = DigestBuilder(service).personal(
        "slack:T1:U1", since=(T0 + timedelta(hours=1)).timestamp()
    )
    assert [r.paper.id for r in picked] == new


def test_digest_for_describes_itself(service: PaperService, store: Store) -> None:
    sub = subscribe(store, size=3)
    digest = DigestBuilder(service).digest_for(sub, "2026-01-14", DAY1.timestamp())
    assert digest.subscription == sub.id
    assert digest.period == "2026-01-14"
    assert digest.title == "Your papers"
    assert digest.intro.startswith("3 new papers today, ranked for you.")
    assert [c.position for c in digest.cards] == [1, 2, 3]
    assert all(c.title and c.paper_id for c in digest.cards)


def test_team_digest_counts_likes_within_the_workspace_only(
    service: PaperService, store: Store
) -> None:
    sub = subscribe(store, kind="channel", size=200)
    ChatRepo(store).add_channel_member("slack:T1:C1", "slack:T1:U2")
    liked, other = store.all_paper_ids()[:2]
    for uid in ("slack:T1:U1", "slack:T1:U2", "slack:T2:U9"):
        service.record(uid, liked, Feedback.LIKE)
    service.record("slack:T2:U9", other, Feedback.SAVE)
    service.record("slack:T2:U8", other, Feedback.LIKE)
    digest = DigestBuilder(service).digest_for(sub, "2026-01-14", DAY1.timestamp())
    assert digest.title == "Papers for the team"
    by_id = {c.paper_id: c for c in digest.cards}
    assert by_id[liked].teammates == 2
    assert by_id[other].teammates == 0
    assert digest.cards[0].paper_id == liked
    assert sum(c.teammates for c in digest.cards) == 2


def test_team_digest_ranks_for_the_members_taste(service: PaperService, store: Store) -> None:
    diffusion = [p.id for p in titled(store, "diffusion")]
    mixture = {p.id for p in store.iter_papers() if "expert" in p.title.lower()}
    team = subscribe(store, kind="channel", size=8)
    ChatRepo(store).add_channel_member("slack:T1:C1", "slack:T1:U2")
    for uid in ("slack:T1:U1", "slack:T1:U2"):
        for pid in diffusion[:2]:
            service.record(uid, pid, Feedback.LIKE)
    for pid in list(mixture)[:3]:
        service.record("slack:T1:U2", pid, Feedback.DISLIKE)
    picks = DigestBuilder(service).team(team, since=0, n=8)
    top = [r.paper.id for r, _ in picks]
    assert set(diffusion[2:]) & set(top[:5])
    assert not mixture & set(top[:3])
    # Papers both members liked come first, with their teammates counted.
    assert [c for _, c in picks[:2]] == [2, 2]


# -- delivery ---------------------------------------------------------------------------------


async def test_run_due_sends_each_digest_once_per_period(
    core: BotCore, port: FakePort, store: Store
) -> None:
    sub = subscribe(store)
    assert await core.delivery.run_due(SLOT - timedelta(minutes=1)) == {}
    assert await core.delivery.run_due(DAY1) == {sub.id: "sent"}
    assert len(port.intros) == 1
    target, digest, intro_key = port.intros[0]
    assert target == Target("slack", "T1", "dm", "U1")
    assert digest.period == "2026-01-14"
    assert len(port.cards) == 5
    assert all(thread == intro_key for _, _, thread, _ in port.cards)
    for _, card, _, key in port.cards:
        assert ChatRepo(store).message(key) == {
            "paper": card.paper_id,
            "sub": sub.id,
            "workspace": "T1",
        }
    assert store.seen(sub.subscriber) == set(port.paper_ids())
    record = ChatRepo(store).get_subscription(sub.id)
    assert record["last_period"] == "2026-01-14"
    assert record["last_sent"] == DAY1.timestamp()

    # Later runs in the same period, in this process or another one, send nothing.
    assert await core.delivery.run_due(DAY1 + timedelta(hours=1)) == {}
    other_port = FakePort()
    second = BotCore(PaperService(store, encoder=None))
    second.register(other_port)
    assert await second.delivery.run_due(DAY1 + timedelta(hours=2)) == {}
    assert await second.delivery.send(sub, "2026-01-14", now=DAY1) == "skipped"
    assert other_port.calls == 0
    assert port.calls == 6


async def test_two_processes_sending_at_once_send_one_digest(
    core: BotCore, port: FakePort, store: Store
) -> None:
    sub = subscribe(store)
    lock = f"sending:{sub.id}:2026-01-14"
    assert ChatRepo(store).acquire_lease(lock, "another-process", 60_000)  # it holds the digest
    assert await core.delivery.run_due(DAY1) == {sub.id: "skipped"}
    assert port.calls == 0
    assert ChatRepo(store).release_lease(lock, "another-process")
    assert await core.delivery.run_due(DAY1) == {sub.id: "sent"}


async def test_restart_within_grace_sends_the_missed_digest_once(
    core: BotCore, port: FakePort, store: Store
) -> None:
    nine = subscribe(store, user="U1", at="09:00")
    eight = subscribe(store, user="U2", at="08:00")
    back = datetime(2026, 1, 14, 14, 30, tzinfo=UTC)  # 5.5 h after 09:00, 6.5 h after 08:00
    assert await core.delivery.run_due(back) == {nine.id: "sent"}
    assert await core.delivery.run_due(back + timedelta(minutes=5)) == {}
    assert len(port.intros) == 1
    assert port.intros[0][0].id == "U1"
    # The one missed beyond the grace window resumes with the next day's digest.
    nxt = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
    assert await core.delivery.run_due(nxt) == {eight.id: "sent"}


async def test_a_paper_is_never_sent_twice_to_the_same_person(
    core: BotCore, port: FakePort, store: Store, service: PaperService
) -> None:
    sub = subscribe(store, size=5)
    asked = CommandService(service, clock=(SLOT - timedelta(hours=1)).timestamp)
    on_demand = {c.paper_id for c in asked.handle(dm_ctx(), "digest").cards}
    assert len(on_demand) == 10

    assert await core.delivery.run_due(DAY1) == {sub.id: "sent"}
    day1 = set(port.paper_ids())
    assert len(day1) == 5
    assert not day1 & on_demand

    fresh = add_papers(
        store,
        ["Sparse Autoencoders at Scale", "Protein Folding with Flows"],
        DAY1 + timedelta(hours=6),
    )
    assert await core.delivery.run_due(DAY2) == {sub.id: "sent"}
    day2 = port.paper_ids()[5:]
    assert sorted(day2) == sorted(fresh)
    # Nothing new on day three: no message at all.
    assert await core.delivery.run_due(DAY2 + timedelta(days=1)) == {sub.id: "empty"}
    assert len(port.intros) == 2
    assert len(port.paper_ids()) == len(set(port.paper_ids()))


async def test_empty_digest_posts_nothing(core: BotCore, port: FakePort, store: Store) -> None:
    sub = subscribe(store)
    later = datetime(2026, 1, 20, 9, 1, tzinfo=UTC)  # the seed papers are six days old
    assert await core.delivery.run_due(later) == {sub.id: "empty"}
    assert port.calls == 0
    assert ChatRepo(store).get_subscription(sub.id)["last_period"] == "2026-01-20"
    assert ChatRepo(store).is_marked(f"sent:{sub.id}:2026-01-20")
    assert await core.delivery.run_due(later + timedelta(minutes=5)) == {}


async def test_retryable_failure_resumes_without_resending(
    core: BotCore, port: FakePort, store: Store
) -> None:
    sub = subscribe(store, size=5)
    port.fail(4)  # intro, two papers, then the third paper fails
    assert await core.delivery.run_due(DAY1) == {sub.id: "retry"}
    assert len(port.intros) == 1
    assert len(port.cards) == 2
    pending = ChatRepo(store).get_pending(f"{sub.id}:2026-01-14")
    assert pending["done"] == port.paper_ids()
    assert pending["attempts"] == 1
    assert port.texts == []

    assert await core.delivery.run_due(DAY1 + timedelta(minutes=1)) == {sub.id: "sent"}
    assert len(port.intros) == 1  # the intro is not posted again
    sent = port.paper_ids()
    assert len(sent) == len(set(sent)) == 5
    assert sent == [c.paper_id for c in port.intros[0][1].cards]  # in digest order
    intro_key = port.intros[0][2]
    assert all(thread == intro_key for _, _, thread, _ in port.cards)
    assert ChatRepo(store).get_pending(f"{sub.id}:2026-01-14") is None
    assert store.seen(sub.subscriber) == set(sent)
    assert await core.delivery.run_due(DAY1 + timedelta(minutes=2)) == {}


async def test_permanent_failure_keeps_the_digest_and_tells_the_owner(
    core: BotCore, port: FakePort, store: Store
) -> None:
    sub = subscribe(store, kind="channel", user="U1", channel="C7", size=3)
    port.broken = DeliveryError("channel_not_found", permanent=True)
    assert await core.delivery.run_due(DAY1) == {sub.id: "retry"}
    assert len(port.texts) == 1
    target, text = port.texts[0]
    assert target == Target("slack", "T1", "dm", "U1")
    assert "could not post the team digest to channel C7" in text
    assert "channel_not_found" in text
    assert ChatRepo(store).get_pending(f"{sub.id}:2026-01-14") is not None

    outcomes = [
        (await core.delivery.run_due(DAY1 + timedelta(minutes=i)))[sub.id]
        for i in range(1, MAX_ATTEMPTS + 2)
    ]
    assert outcomes == ["retry"] * (MAX_ATTEMPTS - 2) + ["failed"] * 3
    assert len(port.texts) == 2  # once at the first failure, once when giving up

    port.broken = None  # the bot was invited back
    assert await core.delivery.run_due(DAY1 + timedelta(hours=1)) == {sub.id: "sent"}
    assert len(port.intros) == 1
    assert len(port.cards) == 3
    assert port.intros[0][0] == Target("slack", "T1", "channel", "C7")
    assert ChatRepo(store).get_pending(f"{sub.id}:2026-01-14") is None


async def test_permanent_failure_of_a_dm_digest_sends_no_notice(
    core: BotCore, port: FakePort, store: Store
) -> None:
    sub = subscribe(store)
    port.fail(1, permanent=True)
    assert await core.delivery.run_due(DAY1) == {sub.id: "retry"}
    assert port.texts == []
    assert await core.delivery.run_due(DAY1 + timedelta(minutes=1)) == {sub.id: "sent"}


async def test_papers_posted_before_a_failure_are_not_offered_again(
    core: BotCore, port: FakePort, store: Store
) -> None:
    sub = subscribe(store, size=5)
    port.fail(4)
    assert await core.delivery.run_due(DAY1) == {sub.id: "retry"}
    posted = set(port.paper_ids())
    port.broken = DeliveryError("service unavailable")  # down until the next day
    assert await core.delivery.run_due(DAY1 + timedelta(minutes=5)) == {sub.id: "retry"}
    port.broken = None
    assert await core.delivery.run_due(DAY2) == {sub.id: "sent"}
    day2 = port.paper_ids()[len(posted) :]
    assert len(day2) == 5
    assert not posted & set(day2)


async def test_digest_for_a_platform_without_adapter_waits(
    core: BotCore, port: FakePort, store: Store
) -> None:
    sub = subscribe(store)
    record = sub.to_dict() | {"platform": "discord", "id": "dm:discord:G1:U1"}
    ChatRepo(store).put_subscription("dm:discord:G1:U1", record)
    assert await core.delivery.run_due(DAY1) == {sub.id: "sent"}


# -- feedback closes the loop ---------------------------------------------------------------------


def positions(picked, ids) -> list[int]:
    order = [r.paper.id for r in picked]
    return [order.index(i) for i in ids]


def test_feedback_moves_the_liked_topic_up(service: PaperService, store: Store) -> None:
    uid = "slack:T1:U1"
    builder = DigestBuilder(service)
    diffusion = [p.id for p in titled(store, "diffusion")]
    recommend = [p.id for p in titled(store, "recommend")]
    assert len(diffusion) >= 6
    assert len(recommend) >= 6
    total = store.paper_count()
    before = builder.personal(uid, since=0, n=total)
    before_scores = {r.paper.id: r.score for r in before}

    for pid in diffusion[:3]:
        service.record(uid, pid, Feedback.LIKE)
    for pid in recommend[:3]:
        service.record(uid, pid, Feedback.DISLIKE)
    after = builder.personal(uid, since=0, n=total)
    after_scores = {r.paper.id: r.score for r in after}

    liked_rest, disliked_rest = diffusion[3:], recommend[3:]
    d_before, d_after = positions(before, liked_rest), positions(after, liked_rest)
    r_before, r_after = positions(before, disliked_rest), positions(after, disliked_rest)
    assert sum(d_after) / len(d_after) < sum(d_before) / len(d_before) - 20
    assert sum(r_after) / len(r_after) > sum(r_before) / len(r_before) + 10
    assert max(d_after) < 15
    assert all(after_scores[p] > before_scores[p] for p in liked_rest)
    assert all(after_scores[p] < before_scores[p] for p in disliked_rest)
    # The rated papers themselves are never offered again.
    assert not {r.paper.id for r in after} & set(diffusion[:3] + recommend[:3])
    # A retrain keeps the lesson.
    service.train()
    retrained = builder.personal(uid, since=0, n=total)
    assert max(positions(retrained, liked_rest)) < 15


async def test_reacting_to_a_delivered_paper_reaches_the_recommender(
    core: BotCore, port: FakePort, store: Store
) -> None:
    sub = subscribe(store, size=3)
    await core.delivery.run_due(DAY1)
    _, card, _, key = port.cards[1]
    said = core.reaction(dm_ctx(), key, "thumbsup", removed=False)
    assert said is not None
    assert store.user_feedback(sub.owner) == {card.paper_id: {"like"}}
    state = core.service.ensure_model()
    assert core.service.people.get(state, [sub.owner]).known[0]
    assert core.reaction(dm_ctx(), port.intros[0][2], "thumbsup", removed=False) is None
