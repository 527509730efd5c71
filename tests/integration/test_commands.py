"""`/papers …` commands end to end on a real Redis, the seed corpus and the TF-IDF model."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.commands import COMMANDS, MAX_TEXT, CommandService, help_text
from bot.core import FAILED, BotCore
from bot.ports import Context
from bot.repo import ChatRepo
from recommender.ingest import ingest
from recommender.service import PaperService
from recommender.sources import parse_body
from recommender.store import PREFIX, Store, user_key
from recommender.types import Feedback

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seed_papers.jsonl"
T0 = datetime(2026, 1, 14, 6, 0, tzinfo=UTC)  # when the seed papers were first seen
NOW = datetime(2026, 1, 14, 10, 0, tzinfo=UTC)  # the commands' clock (11:00 in Berlin)

HOPPER = [
    {
        "arxiv_id": f"2601.0000{i}",
        "title": title,
        "abstract": abstract,
        "authors": ["Grace Hopper", "Alan Turing"],
        "published": "2026-01-10",
        "primary_category": "cs.LG",
    }
    for i, (title, abstract) in enumerate(
        [
            (
                "Compilers for Diffusion Models",
                "We compile diffusion models for fast sampling with guidance.",
            ),
            (
                "Diffusion Guidance without Classifiers",
                "Classifier-free guidance for diffusion models, revisited and compiled.",
            ),
            (
                "Debugging Large Language Models",
                "A study of bugs found in large language models and how to remove them.",
            ),
        ],
        start=1,
    )
]
SPECIAL = {
    "arxiv_id": "2601.00009",
    "title": "R&D at 50%: tuning a_b with $5 budgets #1",
    "abstract": "Budget tuning for research and development of language models.",
    "authors": ["Ada Lovelace"],
    "published": "2026-01-09",
}


def add_records(store: Store, records: list[dict], when: datetime) -> None:
    body = "\n".join(json.dumps(r) for r in records).encode()
    ingest(store, parse_body("jsonl", body, now=when), "jsonl")


@pytest.fixture
def service(store: Store) -> PaperService:
    ingest(store, parse_body("jsonl", SEED.read_bytes(), now=T0), "jsonl")
    add_records(store, [*HOPPER, SPECIAL], T0)
    return PaperService(store, encoder=None)


@pytest.fixture
def commands(service: PaperService) -> CommandService:
    return CommandService(service, clock=NOW.timestamp)


@pytest.fixture
def core(service: PaperService) -> BotCore:
    return BotCore(service)


def ctx(user: str = "U1", **kw) -> Context:
    fields = {
        "platform": "slack",
        "workspace": "T1",
        "user": user,
        "channel": "C1",
        "user_name": f"name-{user}",
    }
    fields.update(kw)
    return Context(**fields)


def dm(user: str = "U1", **kw) -> Context:
    return ctx(user, channel="D1", is_dm=True, **kw)


def titles(reply) -> list[str]:
    return [c.title for c in reply.cards]


# -- help and parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", [c.name for c in COMMANDS])
def test_help_for_every_command(commands: CommandService, command: str) -> None:
    reply = commands.handle(ctx(), f"help {command}")
    spec = next(c for c in COMMANDS if c.name == command)
    assert reply.text.startswith(f"`/papers {spec.usage}`")
    assert spec.summary in reply.text
    for example in spec.examples:
        assert f"`/papers {example}`" in reply.text


@pytest.mark.parametrize(("alias", "name"), [("find", "search"), ("sub", "subscribe")])
def test_help_understands_aliases(commands: CommandService, alias: str, name: str) -> None:
    assert commands.handle(ctx(), f"help {alias}").text == help_text(name)


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "help", "?", "/help", "HELP"])
def test_empty_text_and_help_give_the_full_help(commands: CommandService, text: str) -> None:
    reply = commands.handle(ctx(), text)
    assert reply.text == help_text()
    for c in COMMANDS:
        assert f"/papers {c.usage}" in reply.text


def test_unknown_subcommand_quotes_the_name_and_helps(commands: CommandService) -> None:
    reply = commands.handle(ctx(), "frobnicate the papers")
    assert reply.text.startswith("I don't know the command “frobnicate”.")
    assert help_text() in reply.text


def test_every_subcommand_answers(core: BotCore) -> None:
    # Each subcommand (with plausible arguments) gives a real answer, never the failure line.
    lines = [
        "search diffusion",
        "subscribe",
        "settings",
        "digest",
        "topics",
        "topics add diffusion",
        "mute author Grace Hopper",
        "unmute author Grace Hopper",
        "saved",
        "export",
        "unsubscribe",
        "forget-me",
        "help",
        "start",
        "import",
        "who diffusion",
        "trends",
    ]
    assert {line.split()[0] for line in lines} == {c.name for c in COMMANDS}
    for line in lines:
        reply = core.answer(dm(), line)
        assert reply.text
        assert reply.text != FAILED
        assert "I don't know the command" not in reply.text


@pytest.mark.parametrize("name", ["search", "topics add", "mute", "unmute"])
def test_commands_missing_arguments_explain_themselves(commands: CommandService, name: str) -> None:
    reply = commands.handle(ctx(), name)
    assert reply.text == help_text(name.split()[0])


# -- hostile or odd input -----------------------------------------------------------------------

ODD = [
    "x" * 10_000,
    "diffusion " * 1_000,
    "扩散模型 とトランスフォーマー 🧪🔬👩‍🔬 naïve Schrödinger",
    "<!channel> <@U123> <!here> @everyone <#C1|general>",
    "'; DROP TABLE users; --",
    "$(rm -rf /) `rm -rf /` && shutdown",
    "{{7*7}} ${7*7} <%= 7*7 %> {% raw %}",
    "<script>alert(1)</script> &amp; &lt;",
    "\x00\x1b[31mred\x07 \u202etxt.exe",
]


@pytest.mark.parametrize("text", ODD, ids=range(len(ODD)))
@pytest.mark.parametrize("prefix", ["", "search ", "subscribe ", "topics ", "mute author "])
def test_odd_input_gets_a_helpful_reply(core: BotCore, prefix: str, text: str) -> None:
    reply = core.answer(ctx(), prefix + text)
    assert reply.text
    assert reply.text != FAILED
    assert len(reply.text) < MAX_TEXT + 4000
    assert "49" not in reply.text.replace(text, "")  # nothing was evaluated
    assert "\x00" not in reply.text
    assert "\u202e" not in reply.text


def test_injection_looking_text_is_kept_as_data(commands: CommandService, store: Store) -> None:
    me = ctx()
    commands.handle(me, "topics add '; DROP TABLE users; --, $(rm -rf /), {{7*7}}")
    assert store.words(me.uid, "topics") == {"'; drop table users; --", "$(rm -rf /)", "{{7*7}}"}
    commands.handle(me, "mute author <!channel> <@U123>")
    assert store.words(me.uid, "muted") == {"<!channel> <@u123>"}
    shown = commands.handle(me, "settings").text
    assert "$(rm -rf /)" in shown
    assert "{{7*7}}" in shown
    assert "<!channel> <@u123>" in shown
    assert store.paper_count() == 99  # the corpus is untouched


def test_unicode_and_emoji_survive_intact(commands: CommandService, store: Store) -> None:
    me = ctx()
    commands.handle(me, "topics add 扩散模型, 👩‍🔬 lab, می‌خواهم")
    assert store.words(me.uid, "topics") == {"扩散模型", "👩‍🔬 lab", "می‌خواهم"}


def test_ten_kilobytes_are_capped(commands: CommandService, store: Store) -> None:
    me = ctx()
    reply = commands.handle(me, "topics add " + "word " * 2_000)
    # Without commas the text is one phrase, capped at 80 characters (16 whole words).
    phrase = " ".join(["word"] * 16)
    assert reply.text.startswith(f"Boosting: {phrase}.")
    assert store.words(me.uid, "topics") == {phrase}
    commands.handle(me, "topics add " + ", ".join(f"topic{i}" * 20 for i in range(100)))
    topics = store.words(me.uid, "topics") - {phrase}
    assert 0 < len(topics) <= 20
    assert all(len(t) <= 80 for t in topics)
    unknown = commands.handle(me, "z" * 10_000).text
    assert unknown.startswith("I don't know the command “" + "z" * 30 + "”")


def test_search_with_a_bad_filter_explains_the_syntax(commands: CommandService) -> None:
    reply = commands.handle(ctx(), "search diffusion since:yesterday")
    assert "since: expects a date like 2025-01-31" in reply.text
    assert "search <query>" in reply.text


def test_search_without_match_suggests_what_to_try(commands: CommandService) -> None:
    reply = commands.handle(ctx(), "search qwzxv")
    assert reply.text.startswith("No papers match “qwzxv”")
    assert not reply.cards


def test_search_returns_ranked_cards(commands: CommandService) -> None:
    reply = commands.handle(ctx(), "search diffusion guidance")
    assert 0 < len(reply.cards) <= 5
    assert [c.position for c in reply.cards] == list(range(1, len(reply.cards) + 1))
    assert all("diffusion" in (c.title + c.blurb).lower() for c in reply.cards[:3])
    assert reply.ephemeral


# -- subscriptions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "hint"),
    [
        ("subscribe daily 25:00", "hours 0–23"),
        ("subscribe 13pm", "1–12"),
        ("subscribe noonish", "subscribe weekly monday 09:00 Europe/Berlin"),
        ("subscribe Mars/Olympus_Mons", "Europe/Berlin"),
        ("subscribe channel weekly Moon/Base", "America/New_York"),
    ],
)
def test_invalid_schedule_says_what_is_valid(
    commands: CommandService, store: Store, line: str, hint: str
) -> None:
    reply = commands.handle(ctx(), line)
    assert hint in reply.text
    assert "/papers subscribe [channel]" in reply.text
    assert ChatRepo(store).subscriptions() == []


def test_subscribe_defaults_to_nine_in_the_persons_timezone(
    commands: CommandService, store: Store
) -> None:
    reply = commands.handle(dm(timezone="Europe/Berlin"), "subscribe")
    sub = ChatRepo(store).get_subscription("dm:slack:T1:U1")
    assert (sub["cadence"], sub["at"], sub["tz"], sub["kind"]) == (
        "daily",
        "09:00",
        "Europe/Berlin",
        "dm",
    )
    assert sub["owner"] == "slack:T1:U1"
    assert sub["created"] == NOW.timestamp()
    # 10:00 UTC is 11:00 in Berlin: today's 09:00 is gone, so tomorrow's is next.
    assert reply.text == (
        "Subscribed: a digest by DM, daily at 09:00 (Europe/Berlin). "
        "Next one: Thu 15 Jan 09:00 (Europe/Berlin)."
    )
    assert reply.ephemeral


def test_subscribe_without_a_known_timezone_uses_utc(
    commands: CommandService, store: Store
) -> None:
    reply = commands.handle(dm(), "subscribe 10:30")
    assert ChatRepo(store).get_subscription("dm:slack:T1:U1")["tz"] == "UTC"
    assert "Next one: Wed 14 Jan 10:30 (UTC)" in reply.text


def test_subscribe_with_explicit_schedule(commands: CommandService, store: Store) -> None:
    commands.handle(dm(timezone="Europe/Berlin"), "subscribe asia/tokyo 8am weekly fri")
    sub = ChatRepo(store).get_subscription("dm:slack:T1:U1")
    assert (sub["cadence"], sub["weekday"], sub["at"], sub["tz"]) == (
        "weekly",
        4,
        "08:00",
        "Asia/Tokyo",
    )


def test_subscribe_channel_in_a_dm_is_refused(commands: CommandService, store: Store) -> None:
    reply = commands.handle(dm(), "subscribe channel")
    assert "inside the channel" in reply.text
    assert ChatRepo(store).subscriptions() == []
    reply = commands.handle(ctx(channel=None), "subscribe channel daily")
    assert "inside the channel" in reply.text
    assert ChatRepo(store).subscriptions() == []


def test_subscribe_channel_in_a_channel(commands: CommandService, store: Store) -> None:
    reply = commands.handle(ctx(timezone="America/New_York"), "subscribe channel daily 10:00")
    sub = ChatRepo(store).get_subscription("channel:slack:T1:C1")
    assert sub["kind"] == "channel"
    assert sub["target"] == "C1"
    assert sub["owner"] == "slack:T1:U1"
    assert sub["tz"] == "America/New_York"
    assert "in this channel" in reply.text
    assert not reply.ephemeral
    assert ChatRepo(store).channel_members("slack:T1:C1") == {"slack:T1:U1"}


def test_subscribe_twice_updates_and_keeps_history(commands: CommandService, store: Store) -> None:
    commands.handle(dm(), "subscribe")
    record = ChatRepo(store).get_subscription("dm:slack:T1:U1")
    record.update(last_sent=1_700_000_000.0, last_period="2026-01-13", created=1_600_000_000.0)
    ChatRepo(store).put_subscription("dm:slack:T1:U1", record)
    reply = commands.handle(dm(), "subscribe weekly monday 07:00")
    assert reply.text.startswith("Updated: a digest by DM, weekly on Monday at 07:00 (UTC).")
    updated = ChatRepo(store).get_subscription("dm:slack:T1:U1")
    assert (updated["cadence"], updated["at"]) == ("weekly", "07:00")
    assert updated["last_sent"] == 1_700_000_000.0
    assert updated["last_period"] == "2026-01-13"
    assert updated["created"] == 1_600_000_000.0
    assert len(ChatRepo(store).subscriptions()) == 1


def test_unsubscribe_dm_and_channel(commands: CommandService, store: Store) -> None:
    assert "no DM digest" in commands.handle(dm(), "unsubscribe").text
    commands.handle(dm(), "subscribe")
    commands.handle(ctx(), "subscribe channel")
    assert len(ChatRepo(store).subscriptions()) == 2
    assert commands.handle(dm(), "unsubscribe").text.startswith("Your DM digest is off.")
    assert [s["id"] for s in ChatRepo(store).subscriptions()] == ["channel:slack:T1:C1"]
    assert "inside the channel" in commands.handle(dm(), "unsubscribe channel").text
    assert (
        commands.handle(ctx(), "unsubscribe channel").text == "This channel's team digest is off."
    )
    assert ChatRepo(store).subscriptions() == []
    assert commands.handle(ctx(), "unsubscribe channel").text == "This channel has no team digest."
    assert commands.handle(dm(), "unsubscribe everything").text == help_text("unsubscribe")


# -- settings -----------------------------------------------------------------------------------


def test_settings_show_everything_in_effect(
    commands: CommandService, service: PaperService, store: Store
) -> None:
    me = ctx(timezone="Europe/Berlin")
    empty = commands.handle(me, "settings").text
    assert "Digests: none" in empty
    assert "Topics: none" in empty
    assert "Feedback so far: 0 👍, 0 🔖, 0 👎" in empty

    commands.handle(me, "subscribe weekly tuesday 08:00")
    commands.handle(me, "subscribe channel daily 10:00 UTC")
    commands.handle(me, "topics add graph neural networks, diffusion")
    commands.handle(me, "topics exclude survey")
    commands.handle(me, "mute author Grace Hopper")
    ids = store.all_paper_ids()
    service.record(me.uid, ids[0], Feedback.LIKE)
    service.record(me.uid, ids[1], Feedback.LIKE)
    service.record(me.uid, ids[2], Feedback.SAVE)
    service.record(me.uid, ids[3], Feedback.DISLIKE)

    text = commands.handle(me, "settings").text
    assert "• DM digest: weekly on Tuesday at 08:00 (Europe/Berlin); next Tue 20 Jan 08:00" in text
    assert "• team digest in channel C1: daily at 10:00 (UTC); next Thu 15 Jan 10:00" in text
    assert "• Topics: diffusion, graph neural networks" in text
    assert "• Excluded words: survey" in text
    assert "• Muted authors: grace hopper" in text
    assert "• Feedback so far: 2 👍, 1 🔖, 1 👎" in text
    assert "• Timezone: Europe/Berlin" in text


def test_settings_of_another_person_do_not_leak(commands: CommandService) -> None:
    commands.handle(dm("U1"), "topics add secret-topic")
    commands.handle(dm("U1"), "subscribe")
    text = commands.handle(dm("U2"), "settings").text
    assert "secret-topic" not in text
    assert "Digests: none" in text


# -- topics, exclusions and muted authors -------------------------------------------------------


def test_topics_add_remove_exclude_include(commands: CommandService, store: Store) -> None:
    me = ctx()
    assert commands.handle(me, "topics").text == "Topics: none\nExcluded: none"
    reply = commands.handle(me, "topics add graph neural networks, Diffusion")
    assert reply.text.startswith("Boosting: graph neural networks, diffusion.")
    commands.handle(me, "topics add pruning, routing")
    commands.handle(me, "topics add large language models")  # no comma: one phrase
    assert store.words(me.uid, "topics") == {
        "graph neural networks",
        "diffusion",
        "pruning",
        "routing",
        "large language models",
    }
    commands.handle(me, "topics exclude survey, benchmark")
    assert store.words(me.uid, "exclude") == {"survey", "benchmark"}
    assert commands.handle(me, "topics remove routing, survey, large language models").text == (
        "Removed 3 of: routing, survey, large language models."
    )
    assert commands.handle(me, "topics include benchmark").text == (
        "No longer excluding 1 of: benchmark."
    )
    assert store.words(me.uid, "topics") == {"graph neural networks", "diffusion", "pruning"}
    assert store.words(me.uid, "exclude") == set()
    assert commands.handle(me, "topics").text == (
        "Topics: diffusion, graph neural networks, pruning\nExcluded: none"
    )
    assert commands.handle(me, "topics shuffle x").text == help_text("topics")


def mentions(card, word: str, service: PaperService) -> bool:
    paper = service.store.get_paper(card.paper_id)
    return word in f"{paper.title} {paper.abstract}".lower()


def test_exclude_hides_papers_mentioning_the_word(
    commands: CommandService, service: PaperService
) -> None:
    me = ctx()
    before = commands.handle(me, "search diffusion guidance")
    assert any(mentions(c, "diffusion", service) for c in before.cards)
    commands.handle(me, "topics exclude diffusion")
    after = commands.handle(me, "search guidance")
    assert after.cards
    assert not any(mentions(c, "diffusion", service) for c in after.cards)
    hidden = commands.handle(me, "search diffusion").text
    assert hidden.startswith("No papers to show for “diffusion”: ")
    assert "hidden by your excluded words and muted authors; `/papers settings`" in hidden
    # The digest never offers such a paper either, however many times it is asked.
    shown = []
    while (reply := commands.handle(me, "digest")).cards:
        shown += reply.cards
    assert len(shown) > 50
    assert not any(mentions(c, "diffusion", service) for c in shown)
    commands.handle(me, "topics include diffusion")
    assert commands.handle(me, "search diffusion").cards


def test_topics_boost_matching_papers(commands: CommandService, service: PaperService) -> None:
    plain = commands.handle(ctx("U2"), "digest")
    commands.handle(ctx("U1"), "topics add pruning")
    boosted = commands.handle(ctx("U1"), "digest")
    plain_hits = sum(mentions(c, "pruning", service) for c in plain.cards)
    boosted_hits = sum(mentions(c, "pruning", service) for c in boosted.cards)
    assert boosted_hits > plain_hits
    assert all(mentions(c, "pruning", service) for c in boosted.cards[:3])


def test_muted_author_never_appears_in_a_digest(
    commands: CommandService, store: Store, service: PaperService
) -> None:
    me = ctx()
    hopper = {store.resolve_ids([r["arxiv_id"]])[0] for r in HOPPER}
    assert commands.handle(me, "mute author GRACE HOPPER").text == (
        "Muted GRACE HOPPER. `/papers unmute author GRACE HOPPER` undoes it."
    )
    assert store.words(me.uid, "muted") == {"grace hopper"}
    shown: list[str] = []
    while (reply := commands.handle(me, "digest")).cards:
        shown += [c.paper_id for c in reply.cards]
    # What is left is what the mute hides, and the reply says so instead of "nothing new".
    s = "s" if len(hopper) != 1 else ""
    assert reply.text == (
        f"Nothing to show you right now: {len(hopper)} paper{s} hidden by your excluded "
        "words and muted authors; `/papers settings` shows them."
    )
    assert len(shown) == len(set(shown)) == store.paper_count() - len(hopper)
    assert not hopper & set(shown)
    assert not any(
        c.paper_id in hopper for c in commands.handle(me, "search compilers diffusion").cards
    )

    assert commands.handle(me, 'unmute author "Grace Hopper"').text == "Unmuted Grace Hopper."
    assert commands.handle(me, "unmute author Grace Hopper").text == "Grace Hopper was not muted."
    found = commands.handle(me, "search compilers diffusion")
    assert found.cards[0].paper_id in hopper


# -- saved papers and export --------------------------------------------------------------------


def test_saved_and_export(commands: CommandService, service: PaperService, store: Store) -> None:
    me = ctx()
    assert commands.handle(me, "saved").text.startswith("Nothing saved yet")
    assert commands.handle(me, "export").text == "Nothing saved yet, so nothing to export."
    special = store.resolve_ids(["2601.00009"])[0]
    other = store.all_paper_ids()[0]
    service.record(me.uid, special, Feedback.SAVE)
    service.record(me.uid, other, Feedback.SAVE)
    service.record(me.uid, store.all_paper_ids()[1], Feedback.LIKE)  # a like is not a save

    saved = commands.handle(me, "saved")
    assert {c.paper_id for c in saved.cards} == {special, other}
    assert [c.position for c in saved.cards] == [1, 2]

    text = commands.handle(me, "export").text
    assert text.startswith("BibTeX for your 2 saved papers:\n```\n")
    assert text.endswith("\n```")
    bib = text.split("```\n", 1)[1].rsplit("\n```", 1)[0]
    assert bib.count("@misc{") == 2
    assert r"title = {{R\&D at 50\%: tuning a\_b with \$5 budgets \#1}}" in bib
    assert "eprint = {2601.00009}" in bib
    assert "author = {Ada Lovelace}" in bib
    keys = re.findall(r"^@misc\{([^,]+),$", bib, flags=re.MULTILINE)
    assert len(set(keys)) == 2


def test_saved_lists_twenty_and_points_to_export(
    commands: CommandService, service: PaperService, store: Store
) -> None:
    me = ctx()
    for pid in store.all_paper_ids()[:23]:
        service.record(me.uid, pid, Feedback.SAVE)
    reply = commands.handle(me, "saved")
    assert len(reply.cards) == 20
    assert "showing 20 of 23" in reply.text
    assert "BibTeX for your 23 saved papers" in commands.handle(me, "export").text


# -- forget-me ----------------------------------------------------------------------------------


def traces(store: Store, uid: str) -> dict[str, object]:
    """Everything in Redis that still points at one person."""
    r = store.r
    user_keys = [k.decode() for k in r.scan_iter(match=f"{PREFIX}user:{{{uid}}}:*")]
    likers = [k.decode() for k in r.scan_iter(match=f"{PREFIX}likers:*") if r.sismember(k, uid)]
    log = [f for _, f in r.xrange(f"{PREFIX}feedback:log") if f[b"user"].decode() == uid]
    subs = [s["id"] for s in ChatRepo(store).subscriptions() if s.get("owner") == uid]
    members = [
        k.decode() for k in r.scan_iter(match=f"{PREFIX}channel:*:members") if r.sismember(k, uid)
    ]
    # The order hashes of global indexes (`{pb:likers:<paper>}:seq`) name people too.
    orders = [k.decode() for k in r.scan_iter(match="{pb:likers:*}:seq") if r.hexists(k, uid)]
    return {
        "user_keys": user_keys,
        "orders": orders,
        "likers": likers,
        "log": log,
        "subs": subs,
        "members": members,
        "in_users": r.sismember(f"{PREFIX}users", uid),
    }


def test_forget_me_needs_confirmation_then_deletes_only_that_person(
    commands: CommandService, service: PaperService, store: Store
) -> None:
    ids = store.all_paper_ids()
    people = {"U1": ctx("U1", timezone="Europe/Berlin"), "U2": ctx("U2")}
    for c in people.values():
        commands.handle(c, "subscribe")
        commands.handle(c, "topics add diffusion")
        commands.handle(c, "mute author Grace Hopper")
        service.record(c.uid, ids[0], Feedback.LIKE)
        service.record(c.uid, ids[1], Feedback.SAVE)
        service.record(c.uid, ids[2], Feedback.DISLIKE)
        store.mark_seen(c.uid, ids[3:6])
    commands.handle(people["U1"], "subscribe channel")
    me, other = people["U1"].uid, people["U2"].uid
    before = traces(store, me)
    assert before["user_keys"]
    assert before["likers"]
    assert before["log"]
    assert len(before["subs"]) == 2

    refused = commands.handle(people["U1"], "forget-me confirm")
    assert refused.text == "Run `/papers forget-me` first; then confirm within 5 minutes."
    assert traces(store, me) == before

    warning = commands.handle(people["U1"], "forget-me")
    assert "cannot be undone" in warning.text
    assert "`/papers forget-me confirm` within 5 minutes" in warning.text
    marker = f"{PREFIX}once:forget:{me}"
    assert 0 < store.r.ttl(marker) <= 300
    store.r.delete(marker)  # the five minutes pass
    assert "first" in commands.handle(people["U1"], "forget-me confirm").text
    assert traces(store, me)["user_keys"]

    commands.handle(people["U1"], "forget-me")
    done = commands.handle(people["U1"], "forget-me confirm")
    assert done.text.startswith("Done: everything about you is deleted.")
    assert traces(store, me) == {
        "user_keys": [],
        "orders": [],
        "likers": [],
        "log": [],
        "subs": [],
        "members": [],
        "in_users": False,
    }
    assert store.user_feedback(me) == {}
    assert store.saved(me) == []
    assert not ChatRepo(store).is_marked(f"forget:{me}")

    kept = traces(store, other)
    assert sorted(k.rsplit(":", 1)[1] for k in kept["user_keys"]) == [
        "muted",
        "onboard",
        "profile",
        "rated",
        "rx",
        "saved",
        "seen",
        "seq",
        "topics",
    ]
    assert len(kept["orders"]) == store.r.scard(user_key(other, "rated")) == 3
    assert len(kept["likers"]) == 2
    assert len(kept["log"]) == 3
    assert kept["subs"] == ["dm:slack:T1:U2"]
    assert kept["in_users"]
    assert store.words(other, "topics") == {"diffusion"}
    assert store.r.exists(user_key(other, "rx"))
    assert len(service.training_data()) == 3


def test_per_person_lists_are_bounded_with_a_clear_reply(
    commands: CommandService, store: Store
) -> None:
    me = ctx()
    for start in range(0, 50, 10):
        commands.handle(
            me, "topics add " + ", ".join(f"topic {i}" for i in range(start, start + 10))
        )
    assert len(store.words(me.uid, "topics")) == 50
    full = commands.handle(me, "topics add one more").text
    assert full.startswith("You have 50 topics; the limit is 50.")
    assert "`/papers topics remove <topic>`" in full
    assert len(store.words(me.uid, "topics")) == 50
    # Adding one already there is fine; removing one makes room.
    assert commands.handle(me, "topics add topic 3").text.startswith("Boosting: topic 3.")
    commands.handle(me, "topics remove topic 3")
    assert commands.handle(me, "topics add one more").text.startswith("Boosting: one more.")
    for i in range(200):
        store.add_words(me.uid, "muted", [f"author {i}"])
    assert commands.handle(me, "mute author Jane Doe").text.startswith(
        "You have 200 muted authors; the limit is 200."
    )
