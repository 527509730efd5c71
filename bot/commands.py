"""`/papers …`: parse the text of one slash command and answer it. No platform code here."""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.digest import ON_DEMAND_LOOKBACK, DigestBuilder, card
from bot.feedback import limit_reply
from bot.importer import IMPORT_HELP, Importer
from bot.onboarding import ANSWERS_NEEDED, Onboarding
from bot.ports import Context, Reply
from bot.repo import ChatRepo
from bot.subscriptions import (
    DAYS,
    DEFAULT_TIME,
    Subscription,
    SubscriptionError,
    next_slot,
    parse_schedule,
    parse_timezone,
    subscription_id,
)
from bot.team import Team, is_visible
from bot.trends import Trends
from recommender.bibtex import to_bibtex
from recommender.index import QueryError
from recommender.library import size_error
from recommender.model import Explanation
from recommender.service import LIMITS, PaperService, Ranked
from recommender.store import WordLimitReached

MAX_TEXT = 2000  # longer command text is cut (Slack allows ~4,000; nobody types more)
HIDDEN = (
    "{n} paper{s} hidden by your excluded words and muted authors; `/papers settings` shows them."
)
SEARCH_RESULTS = 5
FORGET_WINDOW = 300  # seconds a forget-me confirmation stays valid
FILE_SUFFIXES = (".bib", ".bibtex", ".ris", ".txt")
# Where each platform takes a library file (a slash command cannot carry one in Slack).
UPLOAD_HINT = {
    "slack": "To upload a file, drop the .bib or .ris file into a direct message with me.",
    "discord": "To upload a file, use `/papers import` with its `file` option.",
    "console": "To import a file, give its path: `import ~/Downloads/library.bib`.",
}


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand: its usage line and a one-sentence summary."""

    name: str
    usage: str
    summary: str
    examples: tuple[str, ...] = ()


COMMANDS: tuple[Command, ...] = (
    Command(
        "search",
        "search <query> [author:<name>] [since:YYYY-MM-DD] [cat:cs.LG]",
        "Find papers by words, ranked for you. Filters narrow by author, date or category.",
        ("search diffusion transformers", 'search author:"Yann LeCun" since:2025-01-01'),
    ),
    Command(
        "subscribe",
        "subscribe [channel] [daily | weekly <day>] [HH:MM] [timezone]",
        "Get a personal digest by DM (or, with `channel`, a team digest in this channel). "
        "Default: daily at 09:00 in your own timezone.",
        (
            "subscribe",
            "subscribe weekly monday 08:30",
            "subscribe channel daily 10:00 Europe/Berlin",
        ),
    ),
    Command("unsubscribe", "unsubscribe [channel]", "Stop your DM digest (or this channel's)."),
    Command(
        "settings",
        "settings [visible on|off]",
        "Show your subscriptions, topics, muted authors and how many ratings your profile "
        "is built from. `visible on` lets teammates see your name next to papers you liked.",
        ("settings", "settings visible on"),
    ),
    Command("digest", "digest", "Your digest right now: the best new papers for you."),
    Command(
        "topics",
        "topics [add|remove|exclude|include] <phrase>[, <phrase>…]",
        "Boost a topic (a phrase, matched as a whole and by meaning); `exclude` hides papers "
        "that mention a phrase. Commas separate several.",
        (
            "topics add large language models",
            "topics add diffusion, graph neural networks",
            "topics exclude reinforcement learning",
        ),
    ),
    Command("mute", "mute author <name>", "Never show papers by this author."),
    Command("unmute", "unmute author <name>", "Show papers by this author again."),
    Command(
        "start",
        "start",
        "Rate 8 recent papers from different areas (👍 / 👎 / skip): after 5 answers your "
        "digest is personal.",
    ),
    Command(
        "import",
        'import [<arXiv ids or URLs> | author "<name>"]',
        "Bring your library: a BibTeX or RIS file (Zotero, Mendeley) becomes 🔖 saves, and so "
        "do arXiv ids; an author's arXiv papers become 👍 likes after you confirm.",
        ("import 2401.12345 https://arxiv.org/abs/1706.03762", 'import author "Ada Lovelace"'),
    ),
    Command(
        "who",
        "who <topic>",
        "Teammates whose 👍 and 🔖 are closest to a topic (only those who turned on "
        "`settings visible` are named).",
        ("who diffusion models",),
    ),
    Command(
        "trends",
        "trends",
        "Topics rising this week in the team's reactions and in new papers, with a chart.",
    ),
    Command("saved", "saved", "List the papers you saved with 🔖."),
    Command("export", "export", "Your saved papers as BibTeX."),
    Command("forget-me", "forget-me", "Delete everything paperbot knows about you."),
    Command("help", "help [command]", "This help, or help on one command."),
)
BY_NAME = {c.name: c for c in COMMANDS}
ALIASES = {
    "find": "search",
    "sub": "subscribe",
    "unsub": "unsubscribe",
    "topic": "topics",
    "forget": "forget-me",
    "forgetme": "forget-me",
    "config": "settings",
    "?": "help",
    "onboard": "start",
    "welcome": "start",
    "trend": "trends",
}


# Bidi embeddings, overrides and isolates: they could make a reply read differently.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def clean_text(text: str) -> str:
    """Trim, cap the length and drop control characters (keeps every script and emoji).

    Joiners stay (emoji sequences like 👩‍🔬, Persian and Indic words need them), and so do
    characters newer than this Python's Unicode tables (new emoji).
    """
    text = (text or "")[:MAX_TEXT]
    text = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Cs") or ch in _BIDI else ch for ch in text
    )
    return " ".join(text.split())


def help_text(name: str | None = None) -> str:
    """Help for every command, or for one."""
    if name and name in BY_NAME:
        cmd = BY_NAME[name]
        lines = [f"`/papers {cmd.usage}`", cmd.summary]
        if cmd.examples:
            lines.append("Examples: " + " · ".join(f"`/papers {e}`" for e in cmd.examples))
        return "\n".join(lines)
    lines = ["*paperbot* — research papers ranked for you. Commands:"]
    lines += [f"• `/papers {c.usage}` — {c.summary}" for c in COMMANDS]
    lines.append(
        "React 👍 🔖 👎 🔇 on a paper in a digest (or use its buttons): every reaction "
        "teaches your next digest."
    )
    return "\n".join(lines)


class CommandService:
    """Turns a command's text into a Reply for the person who sent it."""

    def __init__(
        self,
        service: PaperService,
        *,
        clock: Callable[[], float] = time.time,
        importer: Importer | None = None,
    ) -> None:
        self.service = service
        self.store = service.store
        self.chat = ChatRepo(service.store)
        self.builder = DigestBuilder(service)
        self.clock = clock
        self.onboarding = Onboarding(service, clock=clock)
        self.importer = importer or Importer(service)
        self.team = Team(service)
        self.trends = Trends(service, clock=clock)
        self.handlers: dict[str, Callable[[Context, str], Reply]] = {
            "search": self.search,
            "subscribe": self.subscribe,
            "unsubscribe": self.unsubscribe,
            "settings": self.settings,
            "digest": self.digest,
            "topics": self.topics,
            "mute": self.mute,
            "unmute": self.unmute,
            "saved": self.saved,
            "export": self.export,
            "forget-me": self.forget_me,
            "start": lambda ctx, rest: self.onboarding.card(ctx),
            "import": self.import_,
            "who": lambda ctx, rest: self.team.who(ctx, rest),
            "trends": lambda ctx, rest: self.trends.reply(ctx),
            "help": lambda ctx, rest: Reply(help_text(_command_name(rest) or None)),
        }

    def handle(self, ctx: Context, text: str) -> Reply:
        """Answer one `/papers …` command; unknown or empty text gets help."""
        text = clean_text(text)
        if not text:
            return Reply(help_text())
        name, _, rest = text.partition(" ")
        name = name.lower().lstrip("/")
        name = ALIASES.get(name, name)
        handler = self.handlers.get(name)
        if handler is None:
            shown = name[:30]
            return Reply(f"I don't know the command “{shown}”.\n\n" + help_text())
        first = self.touch(ctx)
        reply = handler(ctx, rest.strip())
        if first and name not in ("start", "forget-me"):
            self.offer_card(ctx, reply)
        return reply

    def touch(self, ctx: Context) -> bool:
        """Remember who is asking (name, platform, timezone, channel); True on their first use."""
        first = not self.store.get_profile(ctx.uid)
        self.store.set_profile(
            ctx.uid,
            name=ctx.user_name or ctx.user,
            platform=ctx.platform,
            workspace=ctx.workspace,
            **({"tz": ctx.timezone} if ctx.timezone else {}),
        )
        if ctx.channel_key and not ctx.is_dm:
            self.chat.add_channel_member(ctx.channel_key, ctx.uid)
        return first

    def offer_card(self, ctx: Context, reply: Reply) -> None:
        """Add the first-use card after a reply, for someone who has not had it."""
        if self.onboarding.wants_card(ctx.uid):
            reply.followups.append(self.onboarding.card(ctx, first=True))

    def welcome(self, ctx: Context) -> Reply | None:
        """The first-use card for someone arriving without a command (first DM, first App
        Home visit), or None when they had it or need none."""
        self.touch(ctx)
        if not self.onboarding.wants_card(ctx.uid):
            return None
        return self.onboarding.card(ctx, first=True)

    # -- import -------------------------------------------------------------------------------

    def import_(self, ctx: Context, rest: str) -> Reply:
        """`import <ids>`, `import author "<name>"`, `import <path>` (console only)."""
        head, _, tail = rest.partition(" ")
        if head.lower() == "author":
            return self.importer.author(ctx, tail)
        if not rest:
            return Reply(IMPORT_HELP + "\n" + UPLOAD_HINT.get(ctx.platform, ""))
        if ctx.platform == "console":
            path = Path(rest.strip("\"'")).expanduser()
            if path.suffix.lower() in FILE_SUFFIXES or path.is_file():
                return self._import_path(ctx, path)
        return self.importer.ids(ctx, rest)

    def _import_path(self, ctx: Context, path: Path) -> Reply:
        """A file on this machine (the console only: chat users never name server paths)."""
        try:
            too_big = size_error(path.stat().st_size)
            if too_big:
                return Reply(f"Nothing imported from “{path.name}”: {too_big}")
            data = path.read_bytes()
        except OSError as exc:
            return Reply(f"Cannot read {path}: {exc.strerror or exc}.")
        return self.importer.file(ctx, path.name, data)

    def import_file(self, ctx: Context, name: str, data: bytes) -> Reply:
        """A file shared with the bot (Slack file share, Discord attachment)."""
        self.touch(ctx)
        return self.importer.file(ctx, name, data)

    # -- search and digests ---------------------------------------------------------------

    def search(self, ctx: Context, rest: str) -> Reply:
        """`search <query>`: index hits re-ranked for the asker."""
        if not rest:
            return Reply(help_text("search"))
        try:
            ranked = self.service.search(
                ctx.uid, rest, SEARCH_RESULTS, prefs=self.service.preferences(ctx.uid)
            )
        except QueryError as exc:
            return Reply(f"{exc}. {BY_NAME['search'].usage}")
        hidden = _hidden(ranked.hidden)
        if not ranked:
            if hidden:
                return Reply(f"No papers to show for “{rest[:80]}”: {hidden}")
            return Reply(
                f"No papers match “{rest[:80]}”. Try fewer words, or check a filter "
                "(`author:`, `since:`, `cat:`)."
            )
        cards = [card(r, i + 1) for i, r in enumerate(ranked)]
        return Reply(
            f"Top {len(cards)} for “{rest[:80]}”, ranked for you:", cards=cards, footer=hidden
        )

    def digest(self, ctx: Context, rest: str) -> Reply:
        """`digest`: the best unseen papers for the asker, now (and marked as sent)."""
        now = self.clock()
        sub = self.chat.get_subscription(
            subscription_id("dm", ctx.platform, ctx.workspace, ctx.user)
        )
        since = (sub or {}).get("last_sent") or now - ON_DEMAND_LOOKBACK
        ranked = self.builder.personal(ctx.uid, since=since, n=10)
        if not ranked:
            ranked = self.builder.personal(ctx.uid, since=0, n=10)
        hidden = _hidden(ranked.hidden)
        if not ranked:
            if hidden:
                return Reply(f"Nothing to show you right now: {hidden}")
            return Reply(
                "Nothing new for you right now: every paper in the library has been sent to you."
            )
        self.store.mark_seen(ctx.uid, [r.paper.id for r in ranked], now)
        cards = [card(r, i + 1, r.teammates) for i, r in enumerate(ranked)]
        return Reply(
            f"Your digest: {len(cards)} papers ranked for you.",
            cards=cards,
            title="Your papers",
            footer=hidden,
        )

    # -- subscriptions ----------------------------------------------------------------------

    def subscribe(self, ctx: Context, rest: str) -> Reply:
        """`subscribe [channel] [daily|weekly <day>] [HH:MM] [timezone]`."""
        words = rest.split()
        kind = "dm"
        if words and words[0].lower() == "channel":
            words = words[1:]
            kind = "channel"
            if ctx.is_dm or not ctx.channel:
                return Reply(
                    "Run `/papers subscribe channel` inside the channel that should get "
                    "the team digest."
                )
        try:
            schedule = parse_schedule(words)
            tz = schedule.tz or (parse_timezone(ctx.timezone) if ctx.timezone else "UTC")
        except SubscriptionError as exc:
            return Reply(f"{exc}\n{help_text('subscribe')}")
        target = ctx.user if kind == "dm" else str(ctx.channel)
        sid = subscription_id(kind, ctx.platform, ctx.workspace, target)
        sub = Subscription(
            id=sid,
            kind=kind,
            platform=ctx.platform,
            workspace=ctx.workspace,
            target=target,
            owner=ctx.uid,
            cadence=schedule.cadence,
            weekday=schedule.weekday,
            at=schedule.at or DEFAULT_TIME,
            tz=tz,
            created=self.clock(),
        )
        # Keep history so an edit neither resends nor skips papers (merged in the store's
        # one atomic step, so a digest finishing meanwhile is not undone).
        existing = self.chat.put_subscription(
            sid, sub.to_dict(), keep=("last_sent", "last_period", "created")
        )
        nxt = next_slot(sub, datetime.fromtimestamp(self.clock(), UTC))
        where = "by DM" if kind == "dm" else "in this channel"
        verb = "Updated" if existing else "Subscribed"
        return Reply(
            f"{verb}: a digest {where}, {sub.describe()}. Next one: "
            f"{nxt.astimezone(_zone(tz)).strftime('%a %d %b %H:%M')} ({tz}).",
            ephemeral=kind == "dm",
        )

    def unsubscribe(self, ctx: Context, rest: str) -> Reply:
        """`unsubscribe [channel]`."""
        if rest.lower().startswith("channel"):
            if not ctx.channel or ctx.is_dm:
                return Reply("Run `/papers unsubscribe channel` inside the channel.")
            sid = subscription_id("channel", ctx.platform, ctx.workspace, ctx.channel)
            gone = self.chat.delete_subscription(sid)
            return Reply(
                "This channel's team digest is off." if gone else "This channel has no team digest."
            )
        if rest:
            return Reply(help_text("unsubscribe"))
        sid = subscription_id("dm", ctx.platform, ctx.workspace, ctx.user)
        gone = self.chat.delete_subscription(sid)
        return Reply(
            "Your DM digest is off. Your likes and saved papers stay."
            if gone
            else "You have no DM digest. `/papers subscribe` starts one."
        )

    def settings(self, ctx: Context, rest: str) -> Reply:
        """`settings [visible on|off]`: everything in effect for the asker."""
        words = rest.lower().split()
        if words[:1] == ["visible"]:
            if words[1:] not in (["on"], ["off"]):
                return Reply("`/papers settings visible on` or `/papers settings visible off`.")
            return self.team.set_visible(ctx, words[1] == "on")
        if words:
            return Reply(help_text("settings"))
        lines = ["*Your settings*"]
        now = datetime.fromtimestamp(self.clock(), UTC)
        mine = [
            Subscription.from_dict(s)
            for s in self.chat.subscriptions()
            if s.get("owner") == ctx.uid
            or (
                s.get("kind") == "channel"
                and ctx.channel
                and s.get("target") == ctx.channel
                and s.get("workspace") == ctx.workspace
            )
        ]
        if not mine:
            lines.append("• Digests: none. `/papers subscribe` for a daily DM.")
        for sub in mine:
            where = "DM digest" if sub.kind == "dm" else f"team digest in channel {sub.target}"
            nxt = next_slot(sub, now).astimezone(_zone(sub.tz)).strftime("%a %d %b %H:%M")
            lines.append(f"• {where}: {sub.describe()}; next {nxt}")
        prefs = self.service.preferences(ctx.uid)
        lines.append("• Topics: " + (", ".join(sorted(prefs.topics)) or "none"))
        lines.append("• Excluded words: " + (", ".join(sorted(prefs.exclude)) or "none"))
        lines.append("• Muted authors: " + (", ".join(sorted(prefs.muted)) or "none"))
        feedback = self.store.user_feedback(ctx.uid)
        likes = sum("like" in k for k in feedback.values())
        dislikes = sum("dislike" in k for k in feedback.values())
        lines.append(
            f"• Feedback so far: {likes} 👍, {len(self.store.saved(ctx.uid))} 🔖, {dislikes} 👎"
        )
        rated = self.onboarding.ratings(ctx.uid)
        lines.append(
            f"• Your profile is built from {rated} rating{'s' if rated != 1 else ''}"
            + (
                ""
                if rated >= ANSWERS_NEEDED
                else f" (rate {ANSWERS_NEEDED - rated} more for a personal digest: `/papers start`)"
            )
        )
        visible = is_visible(self.store.get_profile(ctx.uid))
        lines.append(
            "• Teammates see your name on papers you liked: "
            + ("yes (`settings visible off`)" if visible else "no (`settings visible on`)")
        )
        lines.append(
            f"• Timezone: {self.store.get_profile(ctx.uid).get('tz') or ctx.timezone or 'UTC'}"
        )
        return Reply("\n".join(lines))

    # -- preferences ------------------------------------------------------------------------

    def topics(self, ctx: Context, rest: str) -> Reply:
        """`topics [add|remove|exclude|include] <words>`."""
        action, _, words_text = rest.partition(" ")
        action = action.lower()
        phrases = _phrases(words_text)
        if not action:
            prefs = self.service.preferences(ctx.uid)
            return Reply(
                "Topics: "
                + (", ".join(sorted(prefs.topics)) or "none")
                + "\nExcluded: "
                + (", ".join(sorted(prefs.exclude)) or "none")
            )
        if action not in ("add", "remove", "exclude", "include") or not phrases:
            return Reply(help_text("topics"))
        if action == "add":
            full = self._add_bounded(ctx.uid, "topics", phrases)
            if full:
                return Reply(full)
            return Reply(
                "Boosting: " + ", ".join(phrases) + ". Papers on these rank higher for you."
            )
        if action == "remove":
            removed = self.store.remove_words(ctx.uid, "topics", phrases)
            removed += self.store.remove_words(ctx.uid, "exclude", phrases)
            return Reply(f"Removed {removed} of: " + ", ".join(phrases) + ".")
        if action == "include":
            removed = self.store.remove_words(ctx.uid, "exclude", phrases)
            return Reply(f"No longer excluding {removed} of: " + ", ".join(phrases) + ".")
        full = self._add_bounded(ctx.uid, "exclude", phrases)
        if full:
            return Reply(full)
        return Reply(
            "Hiding papers that mention: "
            + ", ".join(phrases)
            + ". `/papers topics include <word>` undoes it."
        )

    def mute(self, ctx: Context, rest: str) -> Reply:
        """`mute author <name>`."""
        name = _author_arg(rest)
        if not name:
            return Reply(help_text("mute"))
        full = self._add_bounded(ctx.uid, "muted", [name.casefold()])
        if full:
            return Reply(full)
        return Reply(f"Muted {name}. `/papers unmute author {name}` undoes it.")

    def _add_bounded(self, uid: str, kind: str, new: list[str]) -> str:
        """Add to a person's list in one atomic step; a reply when it would pass its limit
        (nothing added then), else ""."""
        try:
            self.store.add_words(uid, kind, new, limit=LIMITS[kind])
        except WordLimitReached as full:
            return limit_reply(kind, full.size, full.limit)
        return ""

    def unmute(self, ctx: Context, rest: str) -> Reply:
        """`unmute author <name>`."""
        name = _author_arg(rest)
        if not name:
            return Reply(help_text("unmute"))
        gone = self.store.remove_words(ctx.uid, "muted", [name.casefold()])
        return Reply(f"Unmuted {name}." if gone else f"{name} was not muted.")

    # -- saved papers and export ----------------------------------------------------------------

    def saved(self, ctx: Context, rest: str) -> Reply:
        """`saved`: the asker's 🔖 papers."""
        saved = self.store.saved(ctx.uid)
        if not saved:
            return Reply("Nothing saved yet: press 🔖 on a paper to keep it here.")
        papers = self.store.get_papers([pid for pid, _ in saved[:20]])
        cards = [
            card(Ranked(paper, 0.0, Explanation()), i + 1)
            for i, paper in enumerate(p for p in papers if p)
        ]
        more = (
            f" (showing 20 of {len(saved)}; `/papers export` has them all)"
            if len(saved) > 20
            else ""
        )
        return Reply(f"Your saved papers{more}:", cards=cards)

    def export(self, ctx: Context, rest: str) -> Reply:
        """`export`: BibTeX of the saved papers."""
        saved = self.store.saved(ctx.uid)
        if not saved:
            return Reply("Nothing saved yet, so nothing to export.")
        papers = [p for p in self.store.get_papers([pid for pid, _ in saved]) if p]
        return Reply(f"BibTeX for your {len(papers)} saved papers:\n```\n{to_bibtex(papers)}\n```")

    def forget_me(self, ctx: Context, rest: str) -> Reply:
        """`forget-me`, then `forget-me confirm` within five minutes."""
        token = f"forget:{ctx.uid}"
        if rest.lower() != "confirm":
            self.chat.mark(token, FORGET_WINDOW)
            return Reply(
                "This deletes everything paperbot knows about you: likes, saved papers, topics, "
                "muted authors, subscriptions and digest history. It cannot be undone.\n"
                "To go ahead, run `/papers forget-me confirm` within 5 minutes."
            )
        if not self.chat.is_marked(token):
            return Reply("Run `/papers forget-me` first; then confirm within 5 minutes.")
        self.chat.release_once(token)
        self.store.forget_user(ctx.uid)
        self.chat.forget_subscriber(ctx.uid)
        return Reply("Done: everything about you is deleted. Thanks for trying paperbot.")


def _command_name(text: str) -> str:
    """`Search` / `/sub` / `find` -> the command's name (aliases resolved)."""
    name = text.strip().lower().lstrip("/")
    return ALIASES.get(name, name)


def _phrases(text: str) -> list[str]:
    """`large language models, diffusion` -> ["large language models", "diffusion"]: each
    comma-separated part is one phrase (a topic is a phrase, not a bag of words)."""
    parts = (" ".join(p.split()) for p in (text or "").split(","))
    capped = (p.casefold()[:80].strip() for p in parts)
    return list(dict.fromkeys(p for p in capped if p))[:20]


def _hidden(count: int) -> str:
    """The line saying how many papers a person's filters hid ("" for none)."""
    if not count:
        return ""
    return HIDDEN.format(n=count, s="s" if count != 1 else "")


def _author_arg(rest: str) -> str:
    """`author Jane Doe` / `Jane Doe` -> `Jane Doe` (quotes stripped)."""
    text = re.sub(r"^author\b", "", rest.strip(), flags=re.IGNORECASE).strip()
    return text.strip("\"'“”")[:100]


def _zone(name: str):
    """A ZoneInfo, UTC for anything unknown."""
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(name)
    except Exception:
        return UTC


__all__ = ["COMMANDS", "DAYS", "CommandService", "help_text"]
