"""Building digests: which papers are new for a subscriber, ranked and explained, as cards."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from bot.ports import Digest, Image, PaperCard
from bot.repo import ChatRepo
from bot.subscriptions import Subscription
from bot.team import Team
from bot.trends import Trends, chart
from recommender.ids import abs_url
from recommender.model import Explanation
from recommender.service import PaperService, Preferences, Ranked, RankResult
from recommender.types import Paper

# The first digest of a new subscriber looks back this far for papers.
FIRST_LOOKBACK = {"daily": 2 * 86400, "weekly": 8 * 86400}
# An on-demand digest with nothing new falls back to this window of unseen papers.
ON_DEMAND_LOOKBACK = 14 * 86400
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def short_authors(authors: Sequence[str], limit: int = 3) -> str:
    """`A, B, C et al.` style author line."""
    names = [a for a in authors if a]
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + " et al."


def blurb(paper: Paper, limit: int = 280) -> str:
    """One or two sentences: the source's short summary if any, else the abstract's start."""
    text = " ".join((paper.summary or paper.abstract or "").split())
    if not text:
        return ""
    out = ""
    for sentence in _SENTENCE.split(text):
        candidate = f"{out} {sentence}".strip()
        if len(candidate) > limit:
            break
        out = candidate
        if out.count(". ") >= 1:
            break
    if not out:
        out = text[: limit - 1].rsplit(" ", 1)[0] + "…"
    return out


def paper_url(paper: Paper) -> str:
    """Where a title links to: the arXiv abstract page, else the best link known."""
    if paper.abs_url:
        return paper.abs_url
    if paper.is_arxiv:
        return abs_url(paper.id)
    return paper.project_url or paper.code_url or paper.pdf_url or ""


def card(ranked: Ranked, position: int, teammates: int = 0) -> PaperCard:
    """A ranked paper as a neutral card."""
    paper = ranked.paper
    return PaperCard(
        paper_id=paper.id,
        title=paper.title,
        url=paper_url(paper),
        authors=short_authors(paper.authors),
        blurb=blurb(paper),
        code_url=paper.code_url,
        upvotes=paper.upvotes,
        reason=ranked.explanation.text(),
        teammates=teammates,
        position=position,
        published=paper.published.date().isoformat() if paper.published else "",
    )


class DigestBuilder:
    """Chooses and ranks the papers of one digest."""

    def __init__(self, service: PaperService) -> None:
        self.service = service
        self.store = service.store
        self.chat = ChatRepo(service.store)

    def candidates(self, subscriber: str, since: float, *, limit: int = 2000) -> list[Paper]:
        """Papers first seen since `since` that this subscriber has not been sent."""
        ids = self.store.paper_ids_since(since)[-limit:]
        seen = self.store.seen(subscriber)
        fresh = [i for i in ids if i not in seen]
        return [p for p in self.store.get_papers(fresh) if p is not None]

    def personal(self, uid: str, *, since: float, n: int = 10) -> RankResult:
        """A person's digest: new papers ranked for them alone (with how many were hidden)."""
        pool = self.candidates(uid, since)
        result = self.service.rank([uid], pool, n, prefs=self.service.preferences(uid))
        return self.service.with_teammates(result, uid.rsplit(":", 1)[0])

    def team(self, sub: Subscription, *, since: float, n: int = 10) -> list[tuple[Ranked, int]]:
        """A channel's digest: ranked for its members together, with teammates' likes."""
        channel = sub.subscriber
        members = sorted(self.chat.channel_members(channel) | {sub.owner})
        pool = {p.id: p for p in self.candidates(channel, since)}
        team = f"{sub.platform}:{sub.workspace}"
        # Papers teammates liked lately join the pool even if they are not brand new.
        seen = self.store.seen(channel)
        liked = [
            pid
            for pid in self.store.liked_since(since, team)
            if pid not in pool and pid not in seen
        ]
        for paper in self.store.get_papers(liked):
            if paper is not None:
                pool[paper.id] = paper
        counts = self.service.teammates(list(pool), team)
        boost = {pid: 0.5 * c for pid, c in counts.items() if c}
        # Team-level filters: only words every member excluded / muted apply to all.
        prefs = _shared_preferences([self.service.preferences(m) for m in members])
        ranked = self.service.rank(
            members,
            list(pool.values()),
            n,
            prefs=prefs,
            boost=boost,
            teammates=counts,
            names=self.service.names(members),
        )
        return [(r, counts.get(r.paper.id, 0)) for r in ranked]

    def digest_for(self, sub: Subscription, period: str, now: float | None = None) -> Digest | None:
        """The digest a subscription gets for a period, or None when nothing is new."""
        now = time.time() if now is None else now
        since = sub.last_sent or (now - FIRST_LOOKBACK.get(sub.cadence, 2 * 86400))
        if sub.kind == "dm":
            picks = [(r, r.teammates) for r in self.personal(sub.owner, since=since, n=sub.size)]
        else:
            picks = self.team(sub, since=since, n=sub.size)
        return self._assemble(sub, period, picks, now)

    def digests_for(
        self, subs: Sequence[tuple[Subscription, str]], now: float | None = None
    ) -> list[Digest | None]:
        """`digest_for` of many subscriptions; personal ones are ranked in one batch."""
        now = time.time() if now is None else now
        personal = [i for i, (sub, _) in enumerate(subs) if sub.kind == "dm"]
        out = [
            None if i in personal else self.digest_for(s, p, now) for i, (s, p) in enumerate(subs)
        ]
        if not personal:
            return out
        uids = [subs[i][0].owner for i in personal]
        pools = []
        for i in personal:
            sub = subs[i][0]
            since = sub.last_sent or (now - FIRST_LOOKBACK.get(sub.cadence, 2 * 86400))
            pools.append(self.candidates(sub.owner, since))
        prefs = [self.service.preferences(uid) for uid in uids]
        size = max(subs[i][0].size for i in personal)
        results = self.service.rank_many(uids, pools, size, prefs=prefs)
        for i, uid, result in zip(personal, uids, results, strict=True):
            sub, period = subs[i]
            result = self.service.with_teammates(result, uid.rsplit(":", 1)[0])
            picks = [(r, r.teammates) for r in list(result)[: sub.size]]
            out[i] = self._assemble(sub, period, picks, now)
        return out

    def _assemble(
        self,
        sub: Subscription,
        period: str,
        picks: list[tuple[Ranked, int]],
        now: float,
    ) -> Digest | None:
        """The digest of chosen papers (None when there are none)."""
        title = "Your papers" if sub.kind == "dm" else "Papers for the team"
        if not picks:
            return None
        cards = [card(r, i + 1, teammates) for i, (r, teammates) in enumerate(picks)]
        image, top = None, []
        if sub.kind == "channel":
            image, top = self._team_extras(sub, cards, now)
        when = "today" if sub.cadence == "daily" else "this week"
        intro = (
            f"{len(cards)} new paper{'s' if len(cards) != 1 else ''} {when}, ranked for "
            + ("you" if sub.kind == "dm" else "this channel")
            + ". React 👍 🔖 👎 on a paper (or use its buttons) and the next digest learns."
        )
        return Digest(
            subscription=sub.id,
            title=title,
            intro=intro,
            cards=cards,
            period=period,
            image=image,
            top=top,
        )

    def _team_extras(
        self, sub: Subscription, cards: list[PaperCard], now: float
    ) -> tuple[Image | None, list[PaperCard]]:
        """A channel digest names visible teammates on its cards; a weekly one also brings
        the trends chart and the week's top papers."""
        team = f"{sub.platform}:{sub.workspace}"
        helper = Team(self.service)
        helper.annotate(cards, team)
        if sub.cadence != "weekly":
            return None, []
        report = Trends(self.service).report(team, now)
        png = chart(report) if report else None
        image = Image("paperbot-trends.png", png, "Rising topics this week") if png else None
        picks = helper.top_this_week(
            team, sub.subscriber, exclude=[c.paper_id for c in cards], now=now
        )
        top = []
        for i, (paper, why) in enumerate(picks):
            shown = card(Ranked(paper, 0.0, Explanation(reason=why), 0), len(cards) + i + 1)
            top.append(shown)
        helper.annotate(top, team)
        return image, top


def _shared_preferences(prefs: list[Preferences]) -> Preferences:
    """Preferences a whole team shares (intersections), so no one filters for everyone."""
    if not prefs:
        return Preferences()
    topics = set.intersection(*(p.topics for p in prefs)) if prefs else set()
    exclude = set.intersection(*(p.exclude for p in prefs))
    muted = set.intersection(*(p.muted for p in prefs))
    return Preferences(topics=topics, exclude=exclude, muted=muted)
