"""The console chat driven by a scripted session, on a real Redis and the seed corpus."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from bot.console import INTRO, Console, render
from bot.ports import PaperCard, Reply
from bot.repo import ChatRepo
from recommender.ingest import ingest
from recommender.service import PaperService
from recommender.sources import parse_body
from recommender.store import Store

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seed_papers.jsonl"
BYE = "Bye. Your likes are kept for next time."


@pytest.fixture
def console(store: Store) -> Console:
    ingest(store, parse_body("jsonl", SEED.read_bytes()), "jsonl")
    body = (
        b'{"arxiv_id": "2601.00001", "title": "Compilers for Diffusion Models", '
        b'"abstract": "We compile diffusion models.", '
        b'"authors": ["Grace Hopper", "Alan Turing"]}'
    )
    ingest(store, parse_body("jsonl", body), "jsonl")
    return Console(PaperService(store, encoder=None), user="ann", timezone="Europe/Berlin")


def run(console: Console, lines: list[str]) -> str:
    out = io.StringIO()
    console.run(lines, out)
    return out.getvalue()


def listed(text: str) -> dict[int, str]:
    """`[n] title` lines of one answer."""
    return {int(n): t for n, t in re.findall(r"^\[(\d+)\] (.+)$", text, flags=re.MULTILINE)}


def test_scripted_session(console: Console, store: Store) -> None:
    uid = "console:local:ann"
    out = io.StringIO()
    answers: list[str] = []
    console.run(
        [
            "like 1",  # nothing listed yet
            "search diffusion models",
            "like 1",
            "save 2",
            "unlike 1",
            "like 99",
            "save two",
            "digest",
            "subscribe",
            "settings",
            "saved",
            "export",
            "",
            "quit",
            "search never reached",
        ],
        out,
        prompt=lambda: answers.append(out.getvalue()),
    )
    text = out.getvalue()
    # One prompt per line read before `quit`; each shows what that line answered.
    steps = [b[len(a) :] for a, b in zip(["", *answers], answers, strict=False)]
    steps[0] = steps[0].removeprefix(INTRO + "\n")
    (
        early,
        search,
        like,
        save,
        unlike,
        bad_index,
        bad_word,
        digest,
        subscribe,
        settings,
        saved,
        export,
        blank,
    ) = steps

    assert text.startswith(INTRO)
    assert text.endswith(BYE + "\n")
    assert "never reached" not in text

    assert early == "Nothing to react to yet: run `search …` or `digest` first.\n"
    assert search.startswith("Top 5 for “diffusion models”, ranked for you:")
    answer, card = search.split("\nStart here: rate a few papers\n")
    found = listed(answer)
    assert sorted(found) == [1, 2, 3, 4, 5]
    # The first command is followed by the first-use card, numbered on from the answer.
    assert sorted(listed(card)) == list(range(6, 14))
    assert all("diffusion" in t.lower() for t in found.values())
    first = next(p for p in store.iter_papers() if p.title == found[1])
    second = next(p for p in store.iter_papers() if p.title == found[2])

    assert like == "👍 Noted: more like this.\n"
    assert save.startswith("🔖 Saved.")
    assert unlike == "Like removed.\n"
    assert store.user_feedback(uid) == {second.id: {"save"}}
    assert bad_index == "Say which paper: `like 1` … `like 13`.\n"
    assert bad_word == "Say which paper: `save 1` … `save 13`.\n"

    assert digest.startswith("Your digest: 10 papers ranked for you.")
    shown = listed(digest)
    assert sorted(shown) == list(range(1, 11))
    assert second.title not in shown.values()  # saved already: not offered again
    assert store.seen(uid) == {p.id for p in store.iter_papers() if p.title in set(shown.values())}

    assert subscribe.startswith("Subscribed: a digest by DM, daily at 09:00 (Europe/Berlin).")
    assert ChatRepo(store).get_subscription("dm:console:local:ann")["tz"] == "Europe/Berlin"
    assert "• DM digest: daily at 09:00 (Europe/Berlin); next " in settings
    assert "• Feedback so far: 0 👍, 1 🔖, 0 👎" in settings
    assert "• Timezone: Europe/Berlin" in settings

    assert saved.startswith("Your saved papers:")
    assert listed(saved) == {1: second.title}
    assert export.startswith("BibTeX for your 1 saved papers:")
    assert "@misc{" in export
    assert first.title not in export
    assert blank == ""


def test_reactions_use_the_latest_list(console: Console, store: Store) -> None:
    text = run(console, ["digest", "👍 3", "saved", "save 1"])
    assert "Nothing saved yet" in text
    # `saved` had no cards, so `save 1` still points at the digest.
    digest = listed(text.split("Nothing saved yet")[0])
    liked = next(p for p in store.iter_papers() if p.title == digest[3])
    saved = next(p for p in store.iter_papers() if p.title == digest[1])
    assert store.user_feedback("console:local:ann") == {liked.id: {"like"}, saved.id: {"save"}}


def test_mute_by_index_and_mute_author_command(console: Console, store: Store) -> None:
    text = run(console, ["search compilers", "mute 1", "2"])
    assert "Which author of “Compilers for Diffusion Models” should I mute?" in text
    assert "  [1] Grace Hopper\n  [2] Alan Turing" in text
    assert "🔇 Muted Alan Turing." in text
    assert store.words("console:local:ann", "muted") == {"alan turing"}
    text = run(console, ["search compilers", "mute 1", "", "unmute author alan turing"])
    assert "Nothing muted." in text
    assert "Unmuted alan turing." in text
    text = run(console, ["search compilers", "mute 1", "1", "unmute author grace hopper"])
    assert "🔇 Muted Grace Hopper." in text
    assert "Unmuted grace hopper." in text
    text = run(console, ["mute author Grace Hopper", "search compilers"])
    assert "Muted Grace Hopper. `/papers unmute author Grace Hopper` undoes it." in text
    assert "Compilers for Diffusion Models" not in text
    assert store.words("console:local:ann", "muted") == {"grace hopper"}


def test_slash_prefix_help_and_unknown(console: Console) -> None:
    text = run(console, ["/papers help saved", "frobnicate", "exit"])
    assert "`/papers saved`" in text
    assert "I don't know the command “frobnicate”." in text
    assert text.endswith(BYE + "\n")


def test_unbalanced_quotes_do_not_break_the_console(console: Console) -> None:
    text = run(console, ['search "diffusion', "search don't stop"])
    assert text.count("Top ") + text.count("No papers match") == 2


def test_render_shows_every_part_of_a_card() -> None:
    card = PaperCard(
        paper_id="2401.1",
        title="A Paper",
        url="https://arxiv.org/abs/2401.1",
        authors="A, B",
        blurb="Short.",
        code_url="https://github.com/a/b",
        upvotes=7,
        reason="Because you liked “X”",
        teammates=2,
        position=1,
        published="2024-01-02",
    )
    text = render(Reply("Head", cards=[card], footer="More: n:20"))
    assert text.splitlines() == [
        "Head",
        "",
        "[1] A Paper",
        "    A, B · 2024-01-02",
        "    https://arxiv.org/abs/2401.1",
        "    Short.",
        "    code: https://github.com/a/b · ▲ 7 · 👥 2 teammates liked this",
        "    ↳ Because you liked “X”",
        "More: n:20",
    ]


async def test_scheduled_console_digest_is_printed_once(console: Console, store: Store) -> None:
    """A console subscriber's digest falls due and is printed, once per period."""
    from datetime import UTC, datetime

    from bot.console import ConsolePort
    from bot.core import BotCore

    run(console, ["subscribe daily 09:00 UTC"])
    sub = ChatRepo(store).subscriptions()[0]
    sub["created"] = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    ChatRepo(store).put_subscription(sub["id"], sub)
    out = io.StringIO()
    core = BotCore(console.service)
    core.register(ConsolePort(out))
    due = datetime(2026, 3, 2, 9, 5, tzinfo=UTC)
    assert await core.delivery.run_due(due) == {sub["id"]: "sent"}
    printed = out.getvalue()
    assert "=== Your papers (2026-03-02) ===" in printed
    assert len(listed(printed)) == 10
    assert await core.delivery.run_due(due) == {}
    assert out.getvalue() == printed


def test_trends_chart_is_saved_and_its_path_printed(store: Store, tmp_path: Path) -> None:
    ingest(store, parse_body("jsonl", SEED.read_bytes()), "jsonl")
    console = Console(PaperService(store, encoder=None), user="ann", charts_dir=tmp_path)
    for pid in store.all_paper_ids()[:3]:
        store.apply_feedback("console:local:ann", pid, "like")
    text = console.handle("trends")
    assert text.startswith("*Rising this week*")
    [saved] = re.findall(r"Rising topics this week saved to (\S+\.png)", text)
    chart = Path(saved)
    assert chart.parent == tmp_path.resolve()
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_the_card_can_be_rated_and_skipped_by_number(console: Console, store: Store) -> None:
    text = console.handle("start")
    card = listed(text)
    assert sorted(card) == list(range(1, 9))
    assert "rate it: `like 1`, `dislike 1` or `skip 1`" in text
    skipped = console.handle("skip 1")
    assert skipped == "Skipped. 0 of 5 answered: 5 more and your digest is personal."
    assert console.handle("like 2").endswith("1 of 5 answered: 4 more and your digest is personal.")
    assert console.handle("skip 42") == "Nothing to skip: `start` shows papers to rate."
    liked = next(p for p in store.iter_papers() if p.title == card[2])
    assert store.user_feedback("console:local:ann") == {liked.id: {"like"}}
