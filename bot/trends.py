"""Topics rising this week, in a team's reactions and in new papers, as words and a chart.

A topic is a word or a two-word phrase of paper titles (and keywords). Its weekly count is
the number of papers carrying it: papers the team 👍 or 🔖 that week, or papers that
arrived that week. A topic rises when this week's count beats the average of the previous
four weeks by more than chance would (a Poisson-style z score), and it needs a few papers
this week to count at all.
"""

from __future__ import annotations

import io
import itertools
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from bot.ports import Context, Image, Reply
from recommender.service import PaperService
from recommender.types import Paper

log = logging.getLogger(__name__)

WEEK = 7 * 86400
HISTORY_WEEKS = 4
SHOWN = 8
MIN_THIS_WEEK = {"reactions": 2, "papers": 3}
PNG_NAME = "paperbot-trends.png"

_WORD = re.compile(r"[a-z][a-z0-9\-]+")
# Words that say nothing about a topic in a paper title.
# Function words end a phrase; generic words may be part of one ("diffusion models") but
# are no topic on their own.
_FUNCTION_TEXT = """
a an and are as at be by can do does for from has have how in into is it its of on or
our over than that the their these this to towards toward under using via vs we what
when which while with without your through beyond all any more less not one two three
"""
_GENERIC_TEXT = """
new novel approach approaches method methods model models learning based study analysis
paper results improved improving efficient large scale data deep neural network networks
framework system systems task tasks use better make makes making towards via
"""
FUNCTION_WORDS = frozenset(_FUNCTION_TEXT.split())
GENERIC_WORDS = frozenset(_GENERIC_TEXT.split())


@dataclass(slots=True)
class Rising:
    """One rising topic: this week's count against the weekly average of the weeks before."""

    topic: str
    now: int
    before: float

    @property
    def z(self) -> float:
        """How far above its usual level the topic is this week."""
        return (self.now - self.before) / math.sqrt(self.before + 1.0)


@dataclass(slots=True)
class TrendReport:
    """Rising topics in the team's reactions and in new papers."""

    reactions: list[Rising] = field(default_factory=list)
    papers: list[Rising] = field(default_factory=list)
    reacted: int = 0  # papers the team reacted to this week
    arrived: int = 0  # papers that arrived this week

    def __bool__(self) -> bool:
        return bool(self.reactions or self.papers)


def topics_of(paper: Paper) -> set[str]:
    """The words and two-word phrases of a paper's title and keywords."""
    out: set[str] = set()
    for text in (paper.title, *paper.keywords):
        words = [w.strip("-") for w in _WORD.findall((text or "").casefold())]
        words = [w for w in words if len(w) > 1]
        kept = [w if w not in FUNCTION_WORDS else "" for w in words]
        out.update(w for w in kept if w and w not in GENERIC_WORDS and len(w) > 2)
        out.update(
            f"{a} {b}"
            for a, b in itertools.pairwise(kept)
            if a and b and not (a in GENERIC_WORDS and b in GENERIC_WORDS)
        )
    return out


def rising(weeks: Sequence[Counter[str]], minimum: int) -> list[Rising]:
    """Topics of the last week (`weeks[-1]`) rising against the weeks before it."""
    if not weeks:
        return []
    now, history = weeks[-1], weeks[:-1]
    out = []
    for topic, count in now.items():
        if count < minimum:
            continue
        before = sum(w.get(topic, 0) for w in history) / max(len(history), 1)
        item = Rising(topic, count, before)
        if item.z > 1.0:
            out.append(item)
    out.sort(key=lambda r: (-r.z, -r.now, r.topic))
    phrases = [r for r in out if " " in r.topic]
    named: list[Rising] = []
    for item in out:
        # A word whose rise is mostly one phrase ("language" in "language models") is
        # shown as that phrase.
        if " " not in item.topic:
            wider = [
                p for p in phrases if item.topic in p.topic.split() and p.now >= 0.6 * item.now
            ]
            item = max(wider, key=lambda p: p.now) if wider else item
        named.append(item)
    chosen: list[Rising] = []
    for item in named:
        # A phrase and its own words rise together: show the phrase once, not its parts.
        if any(_overlap(item.topic, c.topic) for c in chosen):
            continue
        chosen.append(item)
        if len(chosen) == SHOWN:
            break
    return chosen


def _overlap(first: str, second: str) -> bool:
    """Whether two topics say the same thing: equal, or sharing a word that is not generic
    ("large language" and "language models"; not "diffusion models" and "language models")."""
    shared = set(first.split()) & set(second.split())
    return first == second or bool(shared - GENERIC_WORDS)


class Trends:
    """This week's rising topics for one workspace."""

    def __init__(self, service: PaperService, *, clock: Callable[[], float] = time.time) -> None:
        self.service = service
        self.store = service.store
        self.clock = clock

    def report(self, team: str, now: float | None = None) -> TrendReport:
        """Rising topics in `team`'s reactions and in new papers, this week vs. the four before."""
        now = self.clock() if now is None else now
        start = now - (HISTORY_WEEKS + 1) * WEEK
        prefix = team + ":"
        reacted: list[tuple[int, str]] = []
        seen: set[tuple[int, str, str]] = set()
        for ts, uid, pid, kind in self.store.feedback_since(start):
            if kind not in ("like", "save") or not uid.startswith(prefix):
                continue
            week = _week(ts, now)
            if week is not None and (week, uid, pid) not in seen:
                seen.add((week, uid, pid))
                reacted.append((week, pid))
        arrived = [
            (week, pid)
            for pid, ts in self.store.paper_seen_times(start)
            if (week := _week(ts, now)) is not None
        ]
        ids = list(dict.fromkeys(pid for _, pid in reacted + arrived))
        topics = {p.id: topics_of(p) for p in self.store.get_papers(ids) if p is not None}
        report = TrendReport(
            reacted=len({pid for week, pid in reacted if week == HISTORY_WEEKS}),
            arrived=sum(1 for week, _ in arrived if week == HISTORY_WEEKS),
        )
        report.reactions = rising(_weekly(reacted, topics), MIN_THIS_WEEK["reactions"])
        report.papers = rising(_weekly(arrived, topics), MIN_THIS_WEEK["papers"])
        return report

    def reply(self, ctx: Context) -> Reply:
        """`/papers trends`: the rising topics in words, and the chart."""
        if ctx.workspace == "dm":
            return Reply("Ask `/papers trends` inside a server: trends are per server.")
        report = self.report(ctx.team)
        lines = ["*Rising this week* (against the previous four weeks)"]
        lines.append(
            _line("In the team's 👍 and 🔖", report.reactions, report.reacted, "reacted to")
        )
        lines.append(_line("In new papers", report.papers, report.arrived, "arrived"))
        images = []
        if report:
            png = chart(report)
            if png is None:
                lines.append("(The chart needs matplotlib, which this installation lacks.)")
            else:
                images.append(Image(PNG_NAME, png, "Rising topics this week"))
        return Reply("\n".join(lines), images=images)


def _week(ts: float, now: float) -> int | None:
    """Which of the last five weeks `ts` falls in (4 = this week), or None."""
    back = int((now - ts) // WEEK)
    return None if back < 0 or back > HISTORY_WEEKS else HISTORY_WEEKS - back


def _weekly(events: Iterable[tuple[int, str]], topics: dict[str, set[str]]) -> list[Counter[str]]:
    """Topic counts per week (oldest first) from (week, paper) events."""
    weeks: list[Counter[str]] = [Counter() for _ in range(HISTORY_WEEKS + 1)]
    for week, pid in events:
        weeks[week].update(topics.get(pid, ()))
    return weeks


def _line(label: str, items: list[Rising], count: int, verb: str) -> str:
    """One line of the text answer."""
    if not items:
        return f"• {label}: nothing rising ({count} papers {verb} this week)."
    shown = ", ".join(f"{r.topic} ({r.now} vs {r.before:.1f})" for r in items)
    return f"• {label}: {shown}"


def chart(report: TrendReport) -> bytes | None:
    """A PNG: rising topics this week next to their weekly average before (None without
    matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        log.warning("trends chart skipped: matplotlib is not installed")
        return None
    panels = [
        ("In the team's reactions", report.reactions),
        ("In new papers", report.papers),
    ]
    panels = [(title, items) for title, items in panels if items]
    height = 1.2 + 0.45 * sum(max(len(items), 1) for _, items in panels)
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, max(height, 3)), squeeze=False)
    try:
        for ax, (title, items) in zip(axes[:, 0], panels, strict=True):
            names = [r.topic for r in items][::-1]
            now = [r.now for r in items][::-1]
            before = [r.before for r in items][::-1]
            ys = range(len(names))
            ax.barh([y + 0.2 for y in ys], now, height=0.4, label="this week", color="#4f6bed")
            ax.barh(
                [y - 0.2 for y in ys],
                before,
                height=0.4,
                label="weekly average, previous 4 weeks",
                color="#b8c2f0",
            )
            ax.set_yticks(list(ys), names)
            # Bars keep one thickness however few topics a panel has.
            ax.set_ylim(-0.7, max(len(names), 4) - 0.3)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(title, loc="left", fontsize=11)
            ax.set_xlabel("papers")
            ax.legend(loc="lower right", fontsize=8, frameon=False)
            ax.spines[["top", "right"]].set_visible(False)
        fig.suptitle("Rising topics this week", fontsize=13, x=0.01, ha="left")
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=110)
        return out.getvalue()
    finally:
        plt.close(fig)


__all__ = ["Rising", "TrendReport", "Trends", "chart", "rising", "topics_of"]
