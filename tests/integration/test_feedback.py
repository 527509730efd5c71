"""Reactions and button clicks -> feedback on one paper, through BotCore on a real Redis."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from bot.commands import CommandService
from bot.core import BotCore
from bot.feedback import (
    ACK,
    UNDO,
    author_choice_value,
    button_value,
    emoji_feedback,
    parse_button,
)
from bot.ports import Context
from bot.repo import ChatRepo
from recommender.ingest import ingest
from recommender.service import PaperService
from recommender.sources import parse_body
from recommender.store import Store
from recommender.types import Feedback

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seed_papers.jsonl"
T0 = datetime(2026, 1, 14, 6, 0, tzinfo=UTC)
NOT_MINE = "That button is not one of mine, so nothing was recorded."


@pytest.fixture
def core(store: Store) -> BotCore:
    ingest(store, parse_body("jsonl", SEED.read_bytes(), now=T0), "jsonl")
    body = (
        b'{"arxiv_id": "2601.00001", "title": "Compilers for Diffusion Models", '
        b'"abstract": "We compile diffusion models.", "authors": ["Grace Hopper", "Alan Turing"]}'
    )
    ingest(store, parse_body("jsonl", body, now=T0), "jsonl")
    return BotCore(PaperService(store, encoder=None))


@pytest.fixture
def ids(store: Store, core: BotCore) -> list[str]:
    return store.all_paper_ids()


def ctx(user: str = "U1", workspace: str = "T1", **kw) -> Context:
    return Context("slack", workspace, user, channel="C1", **kw)


def kinds(store: Store, uid: str, pid: str) -> set[str]:
    return store.user_feedback(uid).get(pid, set())


def test_button_value_round_trip() -> None:
    for kind in Feedback:
        assert parse_button(button_value(kind, "2401.12345")) == (kind, "2401.12345")


def test_like_button_toggles(core: BotCore, store: Store, ids: list[str]) -> None:
    me, pid = ctx(), ids[0]
    assert core.button(me, button_value(Feedback.LIKE, pid)) == ACK[Feedback.LIKE]
    assert kinds(store, me.uid, pid) == {"like"}
    assert store.likers([pid])[pid] == {me.uid}
    assert core.button(me, button_value(Feedback.LIKE, pid)) == UNDO[Feedback.LIKE]
    assert kinds(store, me.uid, pid) == set()
    assert store.likers([pid])[pid] == set()
    assert core.button(me, button_value(Feedback.LIKE, pid)) == ACK[Feedback.LIKE]
    assert kinds(store, me.uid, pid) == {"like"}


def test_like_clears_a_dislike_and_dislike_clears_like_and_save(
    core: BotCore, store: Store, ids: list[str]
) -> None:
    me, pid = ctx(), ids[0]
    core.button(me, button_value(Feedback.DISLIKE, pid))
    assert kinds(store, me.uid, pid) == {"dislike"}
    core.button(me, button_value(Feedback.LIKE, pid))
    assert kinds(store, me.uid, pid) == {"like"}
    core.button(me, button_value(Feedback.SAVE, pid))
    assert kinds(store, me.uid, pid) == {"like", "save"}
    core.button(me, button_value(Feedback.DISLIKE, pid))
    assert kinds(store, me.uid, pid) == {"dislike"}
    assert store.saved(me.uid) == []


def test_saved_button_lists_the_paper(core: BotCore, store: Store, ids: list[str]) -> None:
    me = ctx()
    assert core.button(me, button_value(Feedback.SAVE, ids[3])) == ACK[Feedback.SAVE]
    reply = CommandService(core.service).handle(me, "saved")
    assert [c.paper_id for c in reply.cards] == [ids[3]]
    assert core.button(me, button_value(Feedback.SAVE, ids[3])) == UNDO[Feedback.SAVE]
    assert CommandService(core.service).handle(me, "saved").cards == []


def test_mute_asks_which_author_and_toggles_the_one_picked(core: BotCore, store: Store) -> None:
    me = ctx()
    pid = store.resolve_ids(["2601.00001"])[0]
    asked = core.click(me, button_value(Feedback.MUTE, pid))
    assert asked.message == "Which author of “Compilers for Diffusion Models” should I mute?"
    assert asked.choices == (
        ("Grace Hopper", author_choice_value(pid, 0)),
        ("Alan Turing", author_choice_value(pid, 1)),
    )
    assert store.words(me.uid, "muted") == set()  # nothing recorded before the choice
    turing = asked.choices[1][1]
    assert core.button(me, turing) == ACK[Feedback.MUTE].format(author="Alan Turing")
    assert store.words(me.uid, "muted") == {"alan turing"}
    again = core.click(me, button_value(Feedback.MUTE, pid))
    assert again.choices[1][0] == "Alan Turing (muted: unmute)"
    assert core.button(me, turing) == UNDO[Feedback.MUTE].format(author="Alan Turing")
    assert store.words(me.uid, "muted") == set()
    # A stale or forged choice is refused with a clear line.
    assert "not on this paper" in core.button(me, author_choice_value(pid, 7))
    assert core.button(me, f"mute|{pid}|x") == NOT_MINE
    # A paper without authors has nobody to mute.
    no_authors = next(p for p in store.iter_papers() if not p.authors)
    assert "no authors" in core.button(me, button_value(Feedback.MUTE, no_authors.id))


def test_reaction_on_a_single_paper_message(core: BotCore, store: Store, ids: list[str]) -> None:
    me, pid = ctx(), ids[5]
    ChatRepo(store).remember_message(
        "slack:C1:1700000000.000100", {"paper": pid, "workspace": "T1"}
    )
    said = core.reaction(me, "slack:C1:1700000000.000100", "+1", removed=False)
    assert said == ACK[Feedback.LIKE]
    assert kinds(store, me.uid, pid) == {"like"}
    said = core.reaction(me, "slack:C1:1700000000.000100", "bookmark", removed=False)
    assert kinds(store, me.uid, pid) == {"like", "save"}
    assert said == ACK[Feedback.SAVE]
    assert ChatRepo(store).channel_members("slack:T1:C1") == {me.uid}


@pytest.mark.parametrize(
    ("emoji", "kind"),
    [
        ("+1::skin-tone-4", Feedback.LIKE),
        (":thumbsup:", Feedback.LIKE),
        ("👍🏽", Feedback.LIKE),
        ("❤️", Feedback.LIKE),
        ("🔖", Feedback.SAVE),
        ("-1", Feedback.DISLIKE),
        ("👎🏿", Feedback.DISLIKE),
        ("🔇", Feedback.MUTE),
    ],
)
def test_emoji_forms(emoji: str, kind: Feedback) -> None:
    assert emoji_feedback(emoji) is kind


def test_reaction_on_unknown_message_or_other_emoji_is_ignored(
    core: BotCore, store: Store, ids: list[str]
) -> None:
    me = ctx()
    ChatRepo(store).remember_message("slack:C1:1.1", {"paper": ids[0], "workspace": "T1"})
    ChatRepo(store).remember_message("slack:C1:intro", {"workspace": "T1"})  # shows no single paper
    assert core.reaction(me, "slack:C1:nope", "+1", removed=False) is None
    assert core.reaction(me, "slack:C1:1.1", "tada", removed=False) is None
    assert core.reaction(me, "slack:C1:1.1", "eyes", removed=True) is None
    assert core.reaction(me, "slack:C1:intro", "+1", removed=False) is None
    assert store.user_feedback(me.uid) == {}
    assert store.feedback_version() == 0


def test_paper_no_longer_in_the_library(core: BotCore, store: Store) -> None:
    me = ctx()
    said = core.button(me, button_value(Feedback.LIKE, "2999.99999"))
    assert said == "That paper is no longer in the library, so I could not record it."
    ChatRepo(store).remember_message("slack:C1:2.2", {"paper": "2999.99999", "workspace": "T1"})
    assert "no longer in the library" in core.reaction(me, "slack:C1:2.2", "+1", removed=False)
    assert store.user_feedback(me.uid) == {}


def test_click_from_another_workspace_is_refused(
    core: BotCore, store: Store, ids: list[str]
) -> None:
    ChatRepo(store).remember_message("slack:C1:3.3", {"paper": ids[0], "workspace": "T1"})
    stranger = ctx("U9", workspace="T2")
    said = core.button(stranger, button_value(Feedback.LIKE, ids[0]), "slack:C1:3.3")
    assert said == "That digest belongs to another workspace, so I did not record it."
    assert store.user_feedback(stranger.uid) == {}
    # The same click from the digest's own workspace counts.
    assert (
        core.button(ctx(), button_value(Feedback.LIKE, ids[0]), "slack:C1:3.3")
        == ACK[Feedback.LIKE]
    )


@pytest.mark.parametrize(
    "value",
    ["", "like", "like|", "|2401.12345", "frobnicate|2401.12345", "LIKE|x", "like|" + "1" * 81],
)
def test_malformed_button_value_is_refused(core: BotCore, store: Store, value: str) -> None:
    assert core.button(ctx(), value) == NOT_MINE
    assert store.feedback_version() == 0


def test_removing_a_reaction_undoes_it_in_store_and_recommendations(
    core: BotCore, store: Store, ids: list[str]
) -> None:
    service = core.service
    me = ctx()
    papers = [p for p in store.iter_papers()]
    diffusion = [p for p in papers if "diffusion" in p.title.lower()]
    base = service.rank([me.uid], papers, len(papers), diversify=False)
    base_scores = {r.paper.id: r.score for r in base}

    for i, paper in enumerate(diffusion[:3]):
        ChatRepo(store).remember_message(f"slack:C1:{i}", {"paper": paper.id, "workspace": "T1"})
        core.reaction(me, f"slack:C1:{i}", "+1", removed=False)
    liked = {p.id for p in diffusion[:3]}
    during = service.rank([me.uid], papers, len(papers), diversify=False, exclude_rated=False)
    top = [r.paper.id for r in during[:10]]
    assert liked <= set(top)

    for i in range(3):
        said = core.reaction(me, f"slack:C1:{i}", "+1", removed=True)
        assert said == UNDO[Feedback.LIKE]
    assert store.user_feedback(me.uid) == {}
    assert all(store.likers([p])[p] == set() for p in liked)
    after = service.rank([me.uid], papers, len(papers), diversify=False)
    after_scores = {r.paper.id: r.score for r in after}
    assert after_scores.keys() == base_scores.keys()
    assert np.allclose([after_scores[k] for k in base_scores], list(base_scores.values()))
    assert service.training_data() == []
