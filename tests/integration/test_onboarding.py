"""The first-use card on a real Redis and the seed corpus: offered once, rated, personal."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core import BotCore
from bot.onboarding import ANSWERS_NEEDED
from bot.ports import Context
from recommender.ingest import ingest
from recommender.service import PaperService
from recommender.sources import parse_body
from recommender.store import Store

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seed_papers.jsonl"


@pytest.fixture
def core(store: Store) -> BotCore:
    """The chat core over the seed corpus with a trained (TF-IDF) model."""
    ingest(store, parse_body("jsonl", SEED.read_bytes()), "jsonl")
    service = PaperService(store, encoder=None)
    service.train()
    return BotCore(service)


def ann(user: str = "U1", workspace: str = "T1") -> Context:
    return Context("slack", workspace, user, channel="C1", user_name="ann")


def test_the_first_command_brings_the_card_once(core: BotCore) -> None:
    first = core.answer(ann(), "saved")
    assert first.text.startswith("Nothing saved yet")
    [card] = first.followups
    assert card.title == "Start here: rate a few papers"
    assert card.text.startswith("Welcome to paperbot!")
    assert len(card.cards) == 8 == len({c.paper_id for c in card.cards})
    assert all(c.actions == "rate" for c in card.cards)
    assert core.answer(ann(), "saved").followups == []
    # `start` brings a card at any time, without the welcome.
    again = core.answer(ann(), "start")
    assert again.title == "Start here: rate a few papers"
    assert not again.text.startswith("Welcome")


def test_five_answers_make_the_digest_personal(core: BotCore, store: Store) -> None:
    uid = ann().uid
    generic = [r.paper.id for r in core.builder.personal(uid, since=0, n=10)]
    card = core.answer(ann(), "help").followups[0].cards
    answers = [("like", 0), ("dislike", 1), ("skip", 2), ("like", 3), ("like", 4), ("like", 5)]
    said = [core.click(ann(), f"{kind}|{card[i].paper_id}").message for kind, i in answers]
    assert said[0] == (
        "👍 Noted: more like this. 1 of 5 answered: 4 more and your digest is personal."
    )
    assert said[1].endswith("2 of 5 answered: 3 more and your digest is personal.")
    assert said[2] == "Skipped. 2 of 5 answered: 3 more and your digest is personal."
    assert said[4].endswith("4 of 5 answered: 1 more and your digest is personal.")
    assert "That makes 5 ratings: your digest is personal now" in said[5]
    # Told once: later ratings on the card are plain acknowledgements.
    assert core.click(ann(), f"dislike|{card[6].paper_id}").message == "👎 Noted: fewer like this."
    assert "• Your profile is built from 6 ratings" in core.answer(ann(), "settings").text
    personal = [r.paper.id for r in core.builder.personal(uid, since=0, n=10)]
    assert personal != generic
    rated = {card[i].paper_id for i in (0, 1, 3, 4, 5, 6)}
    assert not rated & set(personal)


def test_a_new_card_leaves_out_rated_and_skipped_papers(core: BotCore) -> None:
    card = core.answer(ann(), "help").followups[0].cards
    core.click(ann(), f"like|{card[0].paper_id}")
    core.click(ann(), f"skip|{card[1].paper_id}")
    fresh = {c.paper_id for c in core.answer(ann(), "start").cards}
    assert len(fresh) == 8
    assert not fresh & {card[0].paper_id, card[1].paper_id}
    assert "Your profile is built from 1 rating so far." in core.answer(ann(), "start").footer


def test_skips_past_the_card_and_too_many_skips(core: BotCore) -> None:
    card = core.answer(ann(), "help").followups[0].cards
    outsider = core.click(ann("U9"), f"skip|{card[0].paper_id}")
    assert not outsider.ok and "no longer open" in outsider.message
    for c in card[:3]:
        last = core.click(ann(), f"skip|{c.paper_id}").message
    assert last == "Skipped. 0 of 5 answered: 5 more and your digest is personal."
    last = core.click(ann(), f"skip|{card[3].paper_id}").message
    assert "this card has too few papers left: `/papers start` shows new ones" in last


def test_people_who_rated_enough_already_get_no_card(core: BotCore, store: Store) -> None:
    papers = store.all_paper_ids()[:ANSWERS_NEEDED]
    for pid in papers:
        store.apply_feedback(ann("U7").uid, pid, "like")
    assert core.answer(ann("U7"), "saved").followups == []
    assert core.welcome(ann("U7")) is None
    # Someone arriving without a command (first DM, App Home) gets it once.
    assert core.welcome(ann("U8")) is not None
    assert core.welcome(ann("U8")) is None


def test_forget_me_brings_the_card_back(core: BotCore) -> None:
    core.answer(ann(), "help")
    core.answer(ann(), "forget-me")
    assert core.answer(ann(), "forget-me confirm").text.startswith("Done")
    assert core.answer(ann(), "help").followups


def test_an_empty_library_says_so(store: Store) -> None:
    core = BotCore(PaperService(store, encoder=None))
    reply = core.answer(ann(), "start")
    assert reply.text.startswith("There are no papers in the library to rate yet.")
