"""A two-minute start: the first time someone uses paperbot, they rate a few papers.

The card shows `CARD_SIZE` recent papers that cover different areas of the library
(`recommender.onboarding.card_picks`), each with 👍 / 👎 / skip. Ratings are ordinary
feedback, so each one changes the next ranking at once; after `ANSWERS_NEEDED` of them the
person is told their digest is now theirs. The card's state lives in one key of the
person's (`pb:user:{uid}:onboard`), updated atomically.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.digest import card
from bot.feedback import Outcome
from bot.ports import Context, Reply
from recommender.model import Explanation, Ranked
from recommender.onboarding import CARD_SIZE, card_picks
from recommender.service import PaperService

ANSWERS_NEEDED = 5
# The card's papers come from the newest papers: those of this window, at most POOL of them.
RECENT_SECONDS = 30 * 86400
POOL = 2000
MIN_POOL = 5 * CARD_SIZE
RATED = frozenset({"like", "save", "dislike"})

INTRO = (
    "Welcome to paperbot! Rate a few of these recent papers, one from each area of the "
    "library: 👍 if you would read it, 👎 if not, or skip. After {need} answers your "
    "digest is built from your taste instead of what is popular."
)
DONE = (
    "That makes {n} ratings: your digest is personal now, ranked from your own 👍 and 👎. "
    "`/papers digest` shows it; every reaction keeps teaching it."
)
PROGRESS = "{n} of {need} answered: {left} more and your digest is personal."


class Onboarding:
    """The first-use card: who gets it, what it shows, and how far a person is."""

    def __init__(self, service: PaperService, *, clock: Callable[[], float] = time.time) -> None:
        self.service = service
        self.store = service.store
        self.clock = clock

    def ratings(self, uid: str) -> int:
        """How many papers a person rated (👍, 🔖 or 👎): what their profile is built from."""
        return sum(1 for kinds in self.store.user_feedback(uid).values() if kinds & RATED)

    def wants_card(self, uid: str) -> bool:
        """True for someone never offered the card who has rated fewer than enough papers."""
        return (
            self.store.get_user_json(uid, "onboard") is None and self.ratings(uid) < ANSWERS_NEEDED
        )

    def card(self, ctx: Context, *, first: bool = False) -> Reply:
        """A fresh card for the person (also `/papers start`, at any time)."""
        uid = ctx.uid
        rated = self.store.user_feedback(uid)
        previous = self.store.get_user_json(uid, "onboard") or {}
        skipped = set(previous.get("skipped", []))
        now = self.clock()
        ids = self.store.paper_ids_since(now - RECENT_SECONDS)
        if len(ids) < MIN_POOL:
            ids = self.store.all_paper_ids()
        ids = [i for i in ids[-POOL:] if i not in rated and i not in skipped]
        papers = [p for p in self.store.get_papers(ids) if p is not None]
        state = self.service.ensure_model()
        if state is None or not papers:
            return Reply(
                "There are no papers in the library to rate yet. Once some arrive, "
                "`/papers start` shows a few to rate."
            )
        cands = self.service.papers.candidates(state, papers)
        by_id = {p.id: p for p in papers}
        picks = [by_id[cands.ids[j]] for j in card_picks(cands)]
        self.store.put_user_json(
            uid,
            "onboard",
            {
                "card": [p.id for p in picks],
                "skipped": sorted(skipped),
                "at": now,
                "done": self.ratings(uid) >= ANSWERS_NEEDED,
            },
        )
        cards = []
        for i, paper in enumerate(picks):
            shown = card(Ranked(paper, 0.0, Explanation(), 0), i + 1)
            shown.actions = "rate"
            shown.reason = ""
            cards.append(shown)
        text = INTRO.format(need=ANSWERS_NEEDED)
        if not first:
            text = text.replace("Welcome to paperbot! ", "")
        have = self.ratings(uid)
        footer = (
            f"Your profile is built from {have} rating{'s' if have != 1 else ''} so far."
            if have
            else ""
        )
        return Reply(text, cards=cards, title="Start here: rate a few papers", footer=footer)

    def after_feedback(self, uid: str, paper_id: str) -> str:
        """A line to add to a rating's acknowledgement while the card is open ("" otherwise)."""
        state = self.store.get_user_json(uid, "onboard")
        if not state or paper_id not in state.get("card", []) or state.get("done"):
            return ""
        return self._progress(uid, state)

    def skip(self, ctx: Context, paper_id: str) -> Outcome:
        """`skip` on a card paper: remembered (it is not offered again), nothing recorded."""
        uid = ctx.uid

        def add(state: dict | None) -> dict | None:
            if not state or paper_id not in state.get("card", []):
                return None
            skipped = set(state.get("skipped", [])) | {paper_id}
            return {**state, "skipped": sorted(skipped)}

        state = self.store.update_user_json(uid, "onboard", add)
        if state is None:
            return Outcome(False, "That card is no longer open: `/papers start` shows a new one.")
        if state.get("done"):
            return Outcome(True, "Skipped.")
        line = self._progress(uid, state)
        return Outcome(True, "Skipped. " + line)

    def _progress(self, uid: str, state: dict) -> str:
        """How far the person is; marks the card done (once) at `ANSWERS_NEEDED` ratings."""
        have = self.ratings(uid)
        if have >= ANSWERS_NEEDED:

            def finish(current: dict | None) -> dict | None:
                if not current or current.get("done"):
                    return None
                return {**current, "done": True}

            if self.store.update_user_json(uid, "onboard", finish) is None:
                return ""
            return DONE.format(n=have)
        feedback = self.store.user_feedback(uid)
        open_ = [
            p
            for p in state.get("card", [])
            if p not in state.get("skipped", []) and not (feedback.get(p, set()) & RATED)
        ]
        left = ANSWERS_NEEDED - have
        if len(open_) < left:
            return (
                f"{have} of {ANSWERS_NEEDED} answered, and this card has too few papers left: "
                "`/papers start` shows new ones."
            )
        return PROGRESS.format(n=have, need=ANSWERS_NEEDED, left=left)


__all__ = ["ANSWERS_NEEDED", "Onboarding"]
