"""What a team knows together: who reads about a topic, and who saved a digest's papers.

Only people of the asker's own workspace (or guild) are ever considered, and only those
who turned on `settings visible` are named; everyone else is a count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bot.ports import Context, PaperCard, Reply
from recommender import phrases
from recommender.service import PaperService
from recommender.types import Paper

POSITIVE = frozenset({"like", "save"})
# A teammate reads about a topic when one of their papers is at least this close to it
# (cosine of content vectors), or names it outright.
CLOSE_ENOUGH = 0.3
SHOWN = 5
# Their best few papers make a person's closeness (one stray paper is not an interest).
TOP_PAPERS = 3
MAX_PAPERS_PER_PERSON = 2000


@dataclass(frozen=True, slots=True)
class Reader:
    """A teammate close to a topic, and the paper of theirs that is closest."""

    uid: str
    score: float
    paper: Paper


def is_visible(profile: dict[str, str]) -> bool:
    """Whether a person agreed to be named to teammates (`settings visible on`)."""
    return profile.get("visible") == "1"


class Team:
    """Team-level answers over one workspace's people."""

    def __init__(self, service: PaperService) -> None:
        self.service = service
        self.store = service.store

    # -- visibility -----------------------------------------------------------------------

    def set_visible(self, ctx: Context, on: bool) -> Reply:
        """`settings visible on|off`."""
        self.store.set_profile(ctx.uid, visible="1" if on else "0")
        if on:
            return Reply(
                "Teammates in this workspace can now see your name next to papers you 👍 or "
                "🔖 (in channel digests and `/papers who`). `/papers settings visible off` "
                "undoes it."
            )
        return Reply(
            "Your name is no longer shown to teammates; your reactions still count, "
            "without your name."
        )

    # -- who ------------------------------------------------------------------------------

    def readers(self, team: str, topic: str, *, exclude: str = "") -> list[Reader]:
        """Teammates whose 👍 and 🔖 are closest to a topic, closest first."""
        people = [u for u in self.store.workspace_people(team) if u != exclude]
        liked: dict[str, list[str]] = {}
        for uid in people:
            mine = [p for p, kinds in self.store.user_feedback(uid).items() if kinds & POSITIVE]
            if mine:
                liked[uid] = mine[:MAX_PAPERS_PER_PERSON]
        if not liked:
            return []
        ids = list(dict.fromkeys(p for mine in liked.values() for p in mine))
        papers = {p.id: p for p in self.store.get_papers(ids) if p is not None}
        state = self.service.ensure_model()
        if state is None or not papers:
            return []
        order = list(papers.values())
        cands = self.service.papers.candidates(state, order)
        probe = Paper(id="topic:" + topic, title=topic)
        query = self.service.papers.vectors(state, [probe]).dense[0]
        sims = _cosine(cands.dense, query)
        wanted = phrases.normalise(topic)
        # Naming the topic outright counts as close, whatever the vectors say.
        for j, paper in enumerate(order):
            if wanted and phrases.matches(phrases.normalise(paper.text), topic):
                sims[j] = max(sims[j], 1.0)
        position = {p.id: j for j, p in enumerate(order)}
        out = []
        for uid, mine in liked.items():
            rows = [position[p] for p in mine if p in position]
            if not rows:
                continue
            values = sims[rows]
            best = int(np.argmax(values))
            if values[best] < CLOSE_ENOUGH:
                continue
            top = np.sort(values)[::-1][:TOP_PAPERS]
            out.append(Reader(uid, float(top.mean()), order[rows[best]]))
        out.sort(key=lambda r: -r.score)
        return out

    def who(self, ctx: Context, topic: str) -> Reply:
        """`who <topic>`: visible teammates closest to the topic, each with a paper."""
        topic = " ".join(topic.split())[:80]
        if not topic:
            return Reply("Which topic? `/papers who diffusion models`")
        if ctx.workspace == "dm":
            return Reply("Ask `/papers who` inside a server: it answers for that server's people.")
        readers = self.readers(ctx.team, topic, exclude=ctx.uid)
        if not readers:
            return Reply(f"Nobody here has 👍 or 🔖 papers on “{topic}” yet.")
        profiles = {r.uid: self.store.get_profile(r.uid) for r in readers}
        named = [r for r in readers if is_visible(profiles[r.uid])]
        hidden = len(readers) - len(named)
        lines = [f"*Who reads about “{topic}”*"]
        for r in named[:SHOWN]:
            name = profiles[r.uid].get("name") or "a teammate"
            lines.append(f"• {name}: “{_cut(r.paper.title, 90)}”")
        if hidden:
            lines.append(
                f"{'Also ' if named else ''}{hidden} other teammate{'s' if hidden != 1 else ''} "
                f"read{'s' if hidden == 1 else ''} about it (not named: only people who turn on "
                "`/papers settings visible` are)."
            )
        return Reply("\n".join(lines))

    # -- digest cards ---------------------------------------------------------------------

    def annotate(self, cards: Sequence[PaperCard], team: str) -> None:
        """Fill each card's named savers and likers (visible teammates) and the rest's count."""
        likers = self.store.likers([c.paper_id for c in cards])
        prefix = team + ":"
        profiles: dict[str, dict[str, str]] = {}
        feedback: dict[str, dict[str, set[str]]] = {}
        for c in cards:
            people = sorted(u for u in likers.get(c.paper_id, ()) if u.startswith(prefix))
            saved, liked, unnamed = [], [], 0
            for uid in people:
                profile = profiles.setdefault(uid, self.store.get_profile(uid))
                if not is_visible(profile) or not profile.get("name"):
                    unnamed += 1
                    continue
                kinds = feedback.setdefault(uid, self.store.user_feedback(uid)).get(
                    c.paper_id, set()
                )
                (saved if "save" in kinds else liked).append(profile["name"])
            c.saved_by, c.liked_by, c.unnamed = saved, liked, unnamed
            c.teammates = len(people)

    # -- top this week ------------------------------------------------------------------

    def top_this_week(
        self, team: str, subscriber: str, *, exclude: Sequence[str] = (), now: float, n: int = 3
    ) -> list[tuple[Paper, str]]:
        """The week's papers most liked by the team and most upvoted on Hugging Face, not yet
        sent to `subscriber`: (paper, why) pairs, team favourites first."""
        since = now - 7 * 86400
        skip = self.store.seen(subscriber) | set(exclude)
        prefix = team + ":"
        counts: dict[str, set[str]] = {}
        for _ts, uid, pid, kind in self.store.feedback_since(since):
            if kind in POSITIVE and uid.startswith(prefix) and pid not in skip:
                counts.setdefault(pid, set()).add(uid)
        liked = sorted(counts, key=lambda p: (-len(counts[p]), p))[:n]
        out: list[tuple[Paper, str]] = []
        for paper in self.store.get_papers(liked):
            if paper is not None:
                k = len(counts[paper.id])
                out.append(
                    (paper, f"🏆 Top this week: liked by {k} teammate{'s' if k != 1 else ''}")
                )
        fresh = [pid for pid, _ in self.store.paper_seen_times(since) if pid not in skip]
        fresh = [p for p in self.store.get_papers(fresh) if p is not None and p.upvotes > 0]
        taken = {p.id for p, _ in out}
        fresh = [p for p in fresh if p.id not in taken]
        fresh.sort(key=lambda p: (-p.upvotes, p.id))
        out += [(p, f"🏆 Top this week: ▲ {p.upvotes} on Hugging Face") for p in fresh[:n]]
        return out


def team_line(card: PaperCard) -> str:
    """`🔖 saved by Ana, Bo · 👍 liked by Cy · 👥 2 more teammates` ("" for none)."""
    parts = []
    if card.saved_by:
        parts.append("🔖 saved by " + ", ".join(card.saved_by[:5]))
    if card.liked_by:
        parts.append("👍 liked by " + ", ".join(card.liked_by[:5]))
    named = len(card.saved_by) + len(card.liked_by)
    if card.unnamed:
        n = card.unnamed
        more = "more " if named else ""
        parts.append(f"👥 {n} {more}teammate{'s' if n != 1 else ''} liked this")
    elif not named and card.teammates:
        n = card.teammates
        parts.append(f"👥 {n} teammate{'s' if n != 1 else ''} liked this")
    return " · ".join(parts)


def _cosine(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Cosine of every row with a vector (0 for empty rows)."""
    norms = np.linalg.norm(matrix, axis=1) * max(float(np.linalg.norm(vector)), 1e-9)
    return (matrix @ vector) / np.maximum(norms, 1e-9)


def _cut(text: str, limit: int) -> str:
    """Text cut to `limit` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = ["Reader", "Team", "is_visible", "team_line"]
