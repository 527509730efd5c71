"""Discord adapter: `/papers` slash commands, persistent paper buttons, reactions, DiscordPort.

Every slash command is turned back into the text a Slack user would type after `/papers`
and answered by the same core, so both platforms behave identically. Buttons carry their
action and paper in the `custom_id` (`pb:like|2401.12345`) and are matched by a
`DynamicItem`, so buttons on messages sent before a restart keep working.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import aiohttp
import discord
import yarl
from discord import app_commands

from bot import resend
from bot.commands import BY_NAME, COMMANDS
from bot.config import Settings
from bot.core import FAILED, UNAVAILABLE, BotCore
from bot.feedback import Outcome, button_value, emoji_feedback
from bot.ports import (
    BUTTONS,
    RATE_BUTTONS,
    Context,
    DeliveryError,
    Digest,
    Image,
    PaperCard,
    Reply,
    Sent,
    Target,
)
from bot.subscriptions import DAYS, timezone_suggestions
from bot.team import team_line
from recommender.library import size_error
from recommender.store import StoreUnavailable
from recommender.types import Feedback

__all__ = [
    "INTENTS",
    "INVITE_PERMISSIONS",
    "DiscordPort",
    "DiscordRuntime",
    "PaperButton",
    "build_discord",
    "card_embed",
    "invite_url",
    "render_reply",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

PLATFORM = "discord"

# Discord's limits (https://discord.com/developers/docs/resources/message).
CONTENT_LIMIT = 2000
EMBED_TITLE = 256
EMBED_DESCRIPTION = 4096
EMBED_FOOTER = 2048
EMBED_TOTAL = 6000
EMBEDS_PER_MESSAGE = 10
CUSTOM_ID_LIMIT = 100
CHOICES_LIMIT = 25
OPTION_NAME_LIMIT = 100
DESCRIPTION_LIMIT = 100
# One row of four buttons per paper and at most five rows per message.
CARDS_PER_MESSAGE = 5
# A reply longer than this many messages is attached as a file instead.
MAX_TEXT_MESSAGES = 3

# Only non-privileged intents: slash commands and buttons arrive as interactions anyway;
# reactions are the one thing that needs the gateway.
INTENTS = discord.Intents.none()
INTENTS.guilds = True
INTENTS.guild_reactions = True
INTENTS.dm_reactions = True

INVITE_PERMISSIONS = discord.Permissions(
    send_messages=True,
    embed_links=True,
    read_message_history=True,
    add_reactions=True,
    use_application_commands=True,
)

# Nothing paperbot echoes (paper titles, queries, author names) may ping anyone.
NO_MENTIONS = discord.AllowedMentions.none()

BUTTON_PREFIX = "pb:"
# Permissive on purpose: the core validates the value and answers "not one of mine".
BUTTON_TEMPLATE = re.compile(r"pb:(?P<value>[a-z]+\|.+)")

# Discord error codes that retrying cannot fix.
PERMANENT_CODES = {
    50007: "this user does not accept direct messages from the bot",
    50001: "the bot has no access to this channel",
    50013: "the bot lacks permission to post here (Send Messages, Embed Links)",
    10003: "the channel no longer exists",
    10013: "the user no longer exists",
}

COLOUR = discord.Colour(0x4F6BED)
_FENCE = re.compile(r"```[a-z]*\n(.*?)\n?```", re.DOTALL)
# Slack-style `*bold*` in the core's text becomes Discord's `**bold**`.
_SLACK_BOLD = re.compile(r"(?<![*\w])\*([^*\n]+)\*(?![*\w])")
_SKIN_TONES = re.compile("[\U0001f3fb-\U0001f3ff]")
_HTTP_URL = re.compile(r"^https?://[^\s<>()]+$", re.IGNORECASE)
_COMMON_ZONES = (
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Paris",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Sydney",
)
_COMMON_TIMES = ("07:00", "08:00", "08:30", "09:00", "10:00", "12:00", "17:00", "18:00")


# -- text helpers --------------------------------------------------------------------------


def inert(text: str) -> str:
    """Text with every `@everyone`, `@here` and user/role mention made harmless."""
    return discord.utils.escape_mentions(text or "")


def plain(text: str) -> str:
    """User or paper text shown verbatim: markdown escaped, mentions inert."""
    return discord.utils.escape_markdown(inert(text))


def truncate(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def core_text(text: str) -> str:
    """The core's Slack-flavoured text as Discord markdown, mentions inert."""
    return _SLACK_BOLD.sub(r"**\1**", inert(text))


def split_text(text: str, limit: int = CONTENT_LIMIT) -> list[str]:
    """Text in pieces of at most `limit` characters, cut at line ends where possible."""
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            pieces.append(current)
            current = line
        else:
            current = candidate
    if current.strip():
        pieces.append(current)
    return pieces or [""]


def _link(url: str | None) -> str | None:
    """An http(s) URL Discord will accept in an embed, or None (a bad URL fails the send)."""
    if url and len(url) <= 2048 and _HTTP_URL.match(url):
        return url
    return None


# -- rendering -----------------------------------------------------------------------------


def card_embed(card: PaperCard, *, description_limit: int = 1000) -> discord.Embed:
    """One paper as an embed, inside Discord's limits."""
    prefix = f"{card.position}. " if card.position else ""
    embed = discord.Embed(
        title=truncate(prefix + plain(card.title or card.paper_id), EMBED_TITLE),
        url=_link(card.url),
        colour=COLOUR,
    )
    lines = []
    meta = " · ".join(x for x in (plain(card.authors), card.published) if x)
    if meta:
        lines.append(meta)
    if card.blurb:
        lines.append(plain(card.blurb))
    extras = []
    code = _link(card.code_url)
    if code:
        extras.append(f"[code]({code})")
    if card.upvotes:
        extras.append(f"▲ {card.upvotes}")
    team = team_line(card)
    if team:
        extras.append(plain(team))
    if extras:
        lines.append(" · ".join(extras))
    if card.reason:
        lines.append(f"↳ {plain(card.reason)}")
    text = "\n".join(lines)
    if text:
        embed.description = truncate(text, min(description_limit, EMBED_DESCRIPTION))
    embed.set_footer(text=truncate(card.paper_id, 200))
    return embed


_FACES: dict[Feedback, tuple[str, str]] = {kind: (emoji, label) for kind, emoji, label in BUTTONS}
_STYLES = {Feedback.LIKE: discord.ButtonStyle.primary}


def _feedback_kind(value: str) -> Feedback | None:
    """The feedback kind a button value starts with, or None."""
    try:
        return Feedback(value.partition("|")[0])
    except ValueError:
        return None


class PaperButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=BUTTON_TEMPLATE,
):
    """A feedback button whose custom_id names its action and paper, routed after restarts."""

    def __init__(self, value: str, *, label: str | None = None, row: int | None = None) -> None:
        kind = _feedback_kind(value)
        emoji, default = _FACES[kind] if kind else ("", value.partition("|")[0])
        super().__init__(
            discord.ui.Button(
                style=_STYLES.get(kind, discord.ButtonStyle.secondary)
                if kind
                else discord.ButtonStyle.secondary,
                label=truncate(label or default or "?", 80),
                emoji=emoji or None,
                custom_id=BUTTON_PREFIX + value,
            ),
            row=row,
        )
        self.value = value

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[discord.Client],
        item: discord.ui.Button[discord.ui.View],
        match: re.Match[str],
        /,
    ) -> PaperButton:
        """Rebuild the button from a clicked message (any message, however old)."""
        return cls(match["value"], label=item.label)

    async def callback(self, interaction: discord.Interaction[discord.Client]) -> None:
        """Hand the click to the runtime that owns this client."""
        client = interaction.client
        if isinstance(client, PaperbotClient):
            await client.runtime.on_button(interaction, self.value)


class AuthorPicker(discord.ui.View):
    """ "Which author?" after 🔇 on a paper with several authors: one select menu."""

    def __init__(self, choices: Sequence[tuple[str, str]]) -> None:
        super().__init__(timeout=15 * 60)
        select: discord.ui.Select[AuthorPicker] = discord.ui.Select(
            placeholder="Pick an author",
            options=[
                discord.SelectOption(label=truncate(label, 100), value=value)
                for label, value in choices[:25]
            ],
            custom_id="paperbot-mute-author",
        )
        select.callback = self._picked  # type: ignore[method-assign]
        self.select = select
        self.add_item(select)

    async def _picked(self, interaction: discord.Interaction[discord.Client]) -> None:
        """Record the author picked, as a click on the 🔇 button for that author."""
        client = interaction.client
        if isinstance(client, PaperbotClient) and self.select.values:
            await client.runtime.on_button(interaction, self.select.values[0])


def paper_view(cards: Sequence[PaperCard]) -> discord.ui.View | None:
    """Buttons for the papers of one message: full labels for one paper, numbered for several."""
    view = discord.ui.View(timeout=None)
    single = len(cards) == 1
    for row, card in enumerate(cards[:CARDS_PER_MESSAGE]):
        if card.actions == "rate":
            # A first-use card: 👍 👎 skip, numbered when several papers share a message.
            for kind, emoji, label in RATE_BUTTONS:
                value = f"{kind}|{card.paper_id}"
                if len(BUTTON_PREFIX + value) > CUSTOM_ID_LIMIT:
                    break
                shown = label if single else f"{emoji} #{card.position or row + 1}"
                view.add_item(PaperButton(value, label=shown, row=row))
            continue
        for kind, _emoji, label in BUTTONS:
            value = button_value(kind, card.paper_id)
            if len(BUTTON_PREFIX + value) > CUSTOM_ID_LIMIT:
                break  # an id this long cannot be carried; the paper keeps its reactions
            shown = label if single else f"#{card.position or row + 1}"
            view.add_item(PaperButton(value, label=shown, row=row))
    return view if view.children else None


@dataclass(slots=True)
class Outgoing:
    """One Discord message to send: content, embeds, buttons, an optional file."""

    content: str = ""
    embeds: list[discord.Embed] = field(default_factory=list)
    cards: list[PaperCard] = field(default_factory=list)
    file: tuple[str, bytes] | None = None

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `send` (files are rebuilt: a discord.File is read once)."""
        out: dict[str, Any] = {"allowed_mentions": NO_MENTIONS}
        if self.content:
            out["content"] = self.content
        if self.embeds:
            out["embeds"] = self.embeds
        view = paper_view(self.cards) if self.cards else None
        if view is not None:
            out["view"] = view
        if self.file:
            name, data = self.file
            out["file"] = discord.File(io.BytesIO(data), filename=name)
        return out


def _batches(cards: Sequence[PaperCard]) -> list[list[tuple[PaperCard, discord.Embed]]]:
    """Cards grouped into messages: at most five (one button row each) and 6000 characters."""
    batches: list[list[tuple[PaperCard, discord.Embed]]] = []
    current: list[tuple[PaperCard, discord.Embed]] = []
    size = 0
    for card in cards:
        embed = card_embed(card)
        length = len(embed)
        if current and (
            len(current) >= min(CARDS_PER_MESSAGE, EMBEDS_PER_MESSAGE)
            or size + length > EMBED_TOTAL
        ):
            batches.append(current)
            current, size = [], 0
        current.append((card, embed))
        size += length
    if current:
        batches.append(current)
    return batches


def render_reply(reply: Reply, *, filename: str = "paperbot.txt") -> list[Outgoing]:
    """A core Reply as Discord messages within every limit (long text goes into a file)."""
    text = core_text(reply.text)
    if reply.title:
        text = f"**{plain(reply.title)}**\n{text}"
    file: tuple[str, bytes] | None = None
    if len(text) > CONTENT_LIMIT:
        fence = _FENCE.search(text)
        if fence:
            # A long code block (BibTeX) is far more useful as a file than split in pieces.
            file = (filename, fence.group(1).encode())
            text = (text[: fence.start()] + f"(attached: {filename})" + text[fence.end() :]).strip()
    pieces = split_text(text)
    if len(pieces) > MAX_TEXT_MESSAGES:
        file = file or (filename, reply.text.encode())
        pieces = [truncate(pieces[0], CONTENT_LIMIT - 40) + "\n(the full text is attached)"]
    messages = [Outgoing(content=p) for p in pieces]
    messages[0].file = file
    for image in reply.images:
        # Discord shows an attached PNG as a picture.
        if messages[-1].file is None:
            messages[-1].file = (image.filename, image.data)
        else:
            messages.append(Outgoing(file=(image.filename, image.data)))
    for i, batch in enumerate(_batches(reply.cards)):
        target = messages[-1] if i == 0 and not messages[-1].embeds else Outgoing()
        target.embeds = [embed for _, embed in batch]
        target.cards = [card for card, _ in batch]
        if target is not messages[-1]:
            messages.append(target)
    if reply.footer:
        footer = core_text(reply.footer)
        if not reply.cards and len(messages[-1].content) + len(footer) + 1 <= CONTENT_LIMIT:
            messages[-1].content = f"{messages[-1].content}\n{footer}".strip()
        else:
            messages.extend(Outgoing(content=p) for p in split_text(footer))
    return [m for m in messages if m.content or m.embeds or m.file]


def message_key(channel_id: int | str | None, message_id: int | str) -> str:
    """The store key of a sent message: `discord:{channel}:{message}`."""
    return f"{PLATFORM}:{channel_id}:{message_id}"


def invite_url(application_id: int | str) -> str:
    """The OAuth2 URL that adds the bot with the permissions it needs."""
    return (
        "https://discord.com/oauth2/authorize"
        f"?client_id={application_id}&scope=bot+applications.commands"
        f"&permissions={INVITE_PERMISSIONS.value}"
    )


def emoji_name(emoji: discord.PartialEmoji) -> str | None:
    """The reaction as a name the core knows (skin tones and variation selectors ignored)."""
    if emoji.id is not None or not emoji.name:
        # A custom server emoji: only its name can match (e.g. a :bookmark: upload).
        return emoji.name if emoji.name and emoji_feedback(emoji.name) else None
    base = _SKIN_TONES.sub("", emoji.name)
    for candidate in (base, base.replace("\ufe0f", ""), base.replace("\ufe0f", "") + "\ufe0f"):
        if emoji_feedback(candidate) is not None:
            return candidate
    return None


# -- errors --------------------------------------------------------------------------------


def delivery_error(exc: Exception) -> DeliveryError:
    """A discord.py or network failure as a DeliveryError the outbox understands."""
    if isinstance(exc, discord.RateLimited):
        return DeliveryError(
            f"rate limited by Discord for {exc.retry_after:.0f}s", retry_after=exc.retry_after
        )
    if isinstance(exc, discord.HTTPException):
        code = exc.code
        if code in PERMANENT_CODES:
            return DeliveryError(f"{PERMANENT_CODES[code]} (Discord {code})", permanent=True)
        if exc.status == 429:
            retry = _retry_after(exc)
            return DeliveryError("rate limited by Discord", retry_after=retry)
        return DeliveryError(f"Discord answered {exc.status} ({code}): {exc.text[:200]}")
    return DeliveryError(f"Discord is unreachable: {type(exc).__name__}: {exc}"[:300])


def _retry_after(exc: discord.HTTPException) -> float | None:
    """Retry-After of a 429 that discord.py did not handle itself."""
    try:
        return float(exc.response.headers.get("Retry-After", ""))
    except (TypeError, ValueError, AttributeError):
        return None


_NETWORK_ERRORS = (discord.HTTPException, aiohttp.ClientError, asyncio.TimeoutError, OSError)
SEND_TIMEOUT = 30.0  # seconds one send may take before it is retried (same nonce)


# -- the port ------------------------------------------------------------------------------


class DiscordPort:
    """Digest delivery into Discord DMs and channels, one message per paper.

    Every digest message is sent with its idempotency key as an enforced nonce: Discord
    answers a repeated send with the message it already created, so a retry after a 5xx
    or a timeout never posts twice.
    """

    platform = PLATFORM

    def __init__(
        self,
        runtime: DiscordRuntime,
        *,
        attempts: int = resend.ATTEMPTS,
        backoff: float = resend.BACKOFF,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        timeout: float = SEND_TIMEOUT,
    ) -> None:
        self.runtime = runtime
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
        self.sleep = sleep

    async def post_intro(self, target: Target, digest: Digest) -> Sent:
        """The digest's heading and intro."""
        content = truncate(f"**{plain(digest.title)}**\n{core_text(digest.intro)}", CONTENT_LIMIT)
        message = await self._send(target, key=resend.post_key(digest), content=content)
        return Sent(message_key(message.channel.id, message.id), None)

    async def post_card(
        self, target: Target, digest: Digest, card: PaperCard, thread: str | None
    ) -> Sent:
        """One paper: an embed with its four buttons (reactions on it count too)."""
        kwargs: dict[str, Any] = {"embed": card_embed(card, description_limit=EMBED_DESCRIPTION)}
        view = paper_view([card])
        if view is not None:
            kwargs["view"] = view
        message = await self._send(target, key=resend.post_key(digest, card), **kwargs)
        return Sent(message_key(message.channel.id, message.id), card.paper_id)

    async def send_text(self, target: Target, text: str) -> None:
        """A plain notice."""
        for piece in split_text(core_text(text)):
            await self._send(target, content=piece)

    async def post_image(self, target: Target, image: Image, thread: str | None = None) -> None:
        """A chart, as an attached PNG (Discord shows it as a picture)."""
        await self._send(target, file=discord.File(io.BytesIO(image.data), filename=image.filename))

    async def _send(self, target: Target, *, key: str = "", **kwargs: Any) -> discord.Message:
        """Send to a DM or channel on the client's own loop, retried with backoff when the
        message has a `key` (its nonce); failures become DeliveryError."""

        try:
            snowflake = int(target.id)
        except ValueError:
            raise DeliveryError(f"not a Discord id: {target.id[:40]}", permanent=True) from None
        if key:
            kwargs["nonce"] = resend.nonce(key)

        async def send() -> discord.Message:
            """Open the DM (or address the channel) and post."""
            client = self.runtime.client
            try:
                if target.kind == "dm":
                    destination: discord.abc.Messageable = await client.create_dm(
                        discord.Object(snowflake)
                    )
                else:
                    destination = client.get_partial_messageable(snowflake)
                # discord.py itself never gives up on a hung request: bound each try.
                return await asyncio.wait_for(
                    destination.send(allowed_mentions=NO_MENTIONS, **kwargs), self.timeout
                )
            except TimeoutError:
                raise DeliveryError(f"Discord did not answer within {self.timeout:g}s") from None
            except (discord.RateLimited, *_NETWORK_ERRORS) as exc:
                raise delivery_error(exc) from exc

        return await resend.post_once(
            lambda: self.runtime.on_client_loop(send),
            what=f"Discord message to {target.kind} {target.id}",
            attempts=self.attempts if key else 1,
            backoff=self.backoff,
            sleep=self.sleep,
        )


# -- slash commands ------------------------------------------------------------------------


def _summary(name: str) -> str:
    """A command's summary as a Discord description (first sentence if it is too long)."""
    text = BY_NAME[name].summary
    if len(text) > DESCRIPTION_LIMIT:
        text = text.split(". ")[0].rstrip(".") + "."
    return truncate(text.replace("`", ""), DESCRIPTION_LIMIT)


def _quoted(value: str) -> str:
    """A filter value quoted when it has spaces (`author:"Jane Doe"`)."""
    value = " ".join(value.replace('"', " ").split())
    return f'"{value}"' if " " in value else value


def _choices(values: Sequence[str]) -> list[app_commands.Choice[str]]:
    """Autocomplete choices within Discord's limits."""
    out = []
    for value in values[:CHOICES_LIMIT]:
        shown = truncate(value, OPTION_NAME_LIMIT)
        out.append(app_commands.Choice(name=shown, value=value[:OPTION_NAME_LIMIT]))
    return out


Where = Literal["me", "channel"]
Cadence = Literal["daily", "weekly"]
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
TopicAction = Literal["add", "remove", "exclude", "include"]
OnOff = Literal["on", "off"]


class PapersGroup(app_commands.Group):
    """`/papers …`: each subcommand builds the Slack-equivalent text and asks the core."""

    def __init__(self, runtime: DiscordRuntime) -> None:
        super().__init__(
            name="papers", description="Research papers ranked for you: search, digests, topics."
        )
        self.runtime = runtime

    @app_commands.command(name="search", description=_summary("search"))
    @app_commands.describe(
        query="Words to look for, e.g. diffusion transformers",
        author="Only papers by this author",
        since="Only papers from this date on (YYYY, YYYY-MM or YYYY-MM-DD)",
        category="arXiv category, e.g. cs.LG (cs covers all of cs.*)",
    )
    async def search(
        self,
        interaction: discord.Interaction,
        query: str | None = None,
        author: str | None = None,
        since: str | None = None,
        category: str | None = None,
    ) -> None:
        """`/papers search`."""
        words = [query or ""]
        if author and author.strip():
            words.append(f"author:{_quoted(author)}")
        if since and since.strip():
            words.append(f"since:{since.split()[0]}")
        if category and category.strip():
            words.append(f"cat:{category.split()[0]}")
        await self.runtime.run_command(interaction, "search " + " ".join(w for w in words if w))

    @app_commands.command(name="subscribe", description=_summary("subscribe"))
    @app_commands.describe(
        where="me: a personal digest by DM (default); channel: a team digest here",
        cadence="daily (default) or weekly",
        weekday="Day of a weekly digest (implies weekly)",
        time="Time of day, HH:MM (default 09:00)",
        timezone="Your timezone, e.g. Europe/Berlin (default UTC)",
    )
    async def subscribe(
        self,
        interaction: discord.Interaction,
        where: Where = "me",
        cadence: Cadence | None = None,
        weekday: Weekday | None = None,
        time: str | None = None,
        timezone: str | None = None,
    ) -> None:
        """`/papers subscribe`."""
        words = ["subscribe"]
        if where == "channel":
            words.append("channel")
        if cadence == "daily":
            words.append("daily")
        elif cadence == "weekly" or weekday:
            words += ["weekly", weekday or DAYS[0]]
        if time and time.strip():
            words.append("".join(time.split()))
        if timezone and timezone.strip():
            words.append("_".join(timezone.split()))
        await self.runtime.run_command(interaction, " ".join(words))

    @subscribe.autocomplete("timezone")
    async def _timezone(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """Timezone names matching what has been typed (common ones first when empty)."""
        if not current.strip():
            return _choices(_COMMON_ZONES)
        return _choices(timezone_suggestions(current[:64], limit=CHOICES_LIMIT))

    @subscribe.autocomplete("time")
    async def _time(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """Usual digest times, filtered by what has been typed."""
        typed = current.strip()
        return _choices([t for t in _COMMON_TIMES if t.startswith(typed)] or [typed[:5]])

    @app_commands.command(name="unsubscribe", description=_summary("unsubscribe"))
    @app_commands.describe(where="me: your DM digest (default); channel: this channel's digest")
    async def unsubscribe(self, interaction: discord.Interaction, where: Where = "me") -> None:
        """`/papers unsubscribe`."""
        await self.runtime.run_command(
            interaction, "unsubscribe channel" if where == "channel" else "unsubscribe"
        )

    @app_commands.command(name="settings", description=_summary("settings"))
    @app_commands.describe(visible="on: teammates see your name on papers you liked; off: not")
    async def settings(
        self, interaction: discord.Interaction, visible: OnOff | None = None
    ) -> None:
        """`/papers settings [visible]`."""
        text = f"settings visible {visible}" if visible else "settings"
        await self.runtime.run_command(interaction, text)

    @app_commands.command(name="start", description=_summary("start"))
    async def start(self, interaction: discord.Interaction) -> None:
        """`/papers start`: the first-use card, at any time."""
        await self.runtime.run_command(interaction, "start")

    @app_commands.command(name="import", description=_summary("import"))
    @app_commands.describe(
        file="A BibTeX (.bib) or RIS (.ris) export of your library (Zotero, Mendeley, …)",
        ids="arXiv ids or URLs, separated by spaces",
        author="An author's full name: their arXiv papers, shown first for confirmation",
        confirm="True to like the papers of the author shown last",
    )
    async def import_(
        self,
        interaction: discord.Interaction,
        file: discord.Attachment | None = None,
        ids: str | None = None,
        author: str | None = None,
        confirm: bool = False,
    ) -> None:
        """`/papers import`: a file, a list of ids, or an author."""
        if file is not None:
            await self.runtime.import_attachment(interaction, file)
        elif author and author.strip():
            await self.runtime.run_command(interaction, f"import author {_quoted(author)}")
        elif confirm:
            await self.runtime.run_command(interaction, "import author confirm")
        else:
            await self.runtime.run_command(interaction, f"import {ids or ''}".strip())

    @app_commands.command(name="who", description=_summary("who"))
    @app_commands.describe(topic="A topic, e.g. diffusion models")
    async def who(self, interaction: discord.Interaction, topic: str) -> None:
        """`/papers who <topic>`."""
        await self.runtime.run_command(interaction, f"who {topic}")

    @app_commands.command(name="trends", description=_summary("trends"))
    async def trends(self, interaction: discord.Interaction) -> None:
        """`/papers trends`: rising topics, with the chart attached."""
        await self.runtime.run_command(interaction, "trends")

    @app_commands.command(name="digest", description=_summary("digest"))
    async def digest(self, interaction: discord.Interaction) -> None:
        """`/papers digest`."""
        await self.runtime.run_command(interaction, "digest")

    @app_commands.command(name="topics", description=_summary("topics"))
    @app_commands.describe(
        action="add (boost), remove, exclude (hide papers), include (stop hiding)",
        words="Words, or phrases separated by commas",
    )
    async def topics(
        self,
        interaction: discord.Interaction,
        action: TopicAction | None = None,
        words: str | None = None,
    ) -> None:
        """`/papers topics` (no arguments lists them)."""
        text = " ".join((words or "").split())
        if text and not action:
            action = "add"
        await self.runtime.run_command(interaction, f"topics {action or ''} {text}".strip())

    @topics.autocomplete("words")
    async def _topic_words(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """For remove/include, the person's own topics and excluded words."""
        action = getattr(interaction.namespace, "action", None)
        if action not in ("remove", "include"):
            return []
        lists = ("topics", "exclude") if action == "remove" else ("exclude",)
        words = await self.runtime.own_words(interaction, lists)
        needle = current.strip().casefold()
        return _choices([w for w in words if needle in w.casefold()])

    @app_commands.command(name="mute", description=_summary("mute"))
    @app_commands.describe(author="The author's name as shown on papers")
    async def mute(self, interaction: discord.Interaction, author: str) -> None:
        """`/papers mute author <name>`."""
        await self.runtime.run_command(interaction, f"mute author {' '.join(author.split())}")

    @app_commands.command(name="unmute", description=_summary("unmute"))
    @app_commands.describe(author="An author you muted")
    async def unmute(self, interaction: discord.Interaction, author: str) -> None:
        """`/papers unmute author <name>`."""
        await self.runtime.run_command(interaction, f"unmute author {' '.join(author.split())}")

    @unmute.autocomplete("author")
    async def _muted(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """The authors this person muted."""
        words = await self.runtime.own_words(interaction, ("muted",))
        needle = current.strip().casefold()
        return _choices([w for w in words if needle in w.casefold()])

    @app_commands.command(name="saved", description=_summary("saved"))
    async def saved(self, interaction: discord.Interaction) -> None:
        """`/papers saved`."""
        await self.runtime.run_command(interaction, "saved")

    @app_commands.command(name="export", description=_summary("export"))
    async def export(self, interaction: discord.Interaction) -> None:
        """`/papers export` (a long BibTeX list arrives as a .bib file)."""
        await self.runtime.run_command(interaction, "export", filename="saved-papers.bib")

    @app_commands.command(name="forget-me", description=_summary("forget-me"))
    @app_commands.describe(confirm="True to delete everything (run once without it first)")
    async def forget_me(self, interaction: discord.Interaction, confirm: bool = False) -> None:
        """`/papers forget-me [confirm]`."""
        await self.runtime.run_command(interaction, "forget-me confirm" if confirm else "forget-me")

    @app_commands.command(name="help", description=_summary("help"))
    @app_commands.describe(command="Help on one command")
    @app_commands.choices(
        command=[app_commands.Choice(name=c.name, value=c.name) for c in COMMANDS]
    )
    async def help(
        self, interaction: discord.Interaction, command: app_commands.Choice[str] | None = None
    ) -> None:
        """`/papers help [command]`."""
        await self.runtime.run_command(interaction, f"help {command.value}" if command else "help")


# -- the client and runtime ------------------------------------------------------------------


class PaperbotClient(discord.Client):
    """discord.py client wired to one DiscordRuntime."""

    def __init__(self, runtime: DiscordRuntime, **options: Any) -> None:
        # paperbot never joins voice: the "PyNaCl/davey not installed" warnings only confuse.
        discord.VoiceClient.warn_nacl = False
        discord.VoiceClient.warn_dave = False
        super().__init__(
            intents=INTENTS,
            allowed_mentions=NO_MENTIONS,
            max_messages=None,
            # A long rate-limit wait is better spent on other digests: raise and retry later.
            max_ratelimit_timeout=30.0,
            **options,
        )
        self.runtime = runtime
        self.tree = app_commands.CommandTree(self)
        self.tree.add_command(PapersGroup(runtime))
        self.tree.on_error = self._on_command_error  # type: ignore[method-assign]

    async def setup_hook(self) -> None:
        """Route every old and new paper button, then publish `/papers`."""
        self.add_dynamic_items(PaperButton)
        try:
            await self.tree.sync()
        except discord.HTTPException:
            # Buttons, reactions and digests still work; commands keep their last sync.
            log.exception("could not sync the /papers command with Discord")

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        """A reaction on a message: feedback when it is on a single-paper message."""
        await self.runtime.on_reaction(payload, removed=False)

    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        """A reaction taken back: the feedback is taken back too."""
        await self.runtime.on_reaction(payload, removed=True)

    async def _on_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """Log, and tell the person something went wrong instead of leaving them waiting."""
        log.error("/papers failed", exc_info=error)
        await self.runtime.apologise(interaction)


class DiscordRuntime:
    """The Discord side of paperbot in one process: client, commands, buttons, port."""

    def __init__(
        self, core: BotCore, settings: Settings, *, guild_ready_timeout: float = 2.0
    ) -> None:
        if settings.discord_token is None:
            raise ValueError("DISCORD_TOKEN is not set")
        self.core = core
        self.settings = settings
        self.client = PaperbotClient(self, guild_ready_timeout=guild_ready_timeout)
        self.port = DiscordPort(self)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, timeout: float = 60.0) -> None:
        """Log in, sync `/papers`, connect the gateway in the background, wait until ready."""
        assert self.settings.discord_token is not None
        self.loop = asyncio.get_running_loop()
        await self.client.login(self.settings.discord_token.get_secret_value())
        self._task = asyncio.create_task(self.client.connect(reconnect=True), name="discord")
        ready = asyncio.create_task(self.client.wait_until_ready())
        done, _ = await asyncio.wait(
            {ready, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if ready not in done:
            ready.cancel()
            if self._task in done:
                await self._task  # re-raises why the gateway connection ended
            await self.stop()
            raise TimeoutError(f"Discord gateway not ready after {timeout:g}s")
        log.info("discord: connected as %s", self.client.user)

    async def stop(self) -> None:
        """Close the gateway and HTTP session."""
        await self.client.close()
        if self._task is not None:
            try:
                await self._task
            except Exception:
                log.debug("discord connection ended with an error during stop", exc_info=True)
            self._task = None

    async def on_client_loop(self, factory: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine on the client's event loop, from whichever loop asks."""
        if self.loop is None or self.client.is_closed():
            raise DeliveryError("the Discord client is not running")
        if asyncio.get_running_loop() is self.loop:
            return await factory()

        async def run() -> T:
            """The coroutine, created on the client's loop."""
            return await factory()

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(run(), self.loop))

    # -- interactions -----------------------------------------------------------------------

    async def context(self, interaction: discord.Interaction, key: str | None = None) -> Context:
        """The neutral Context of an interaction (a DM click belongs to its digest's server)."""
        guild_id = interaction.guild_id
        workspace = str(guild_id) if guild_id else "dm"
        if guild_id is None and key:
            record = await asyncio.to_thread(self.core.chat.message, key)
            if record and record.get("workspace"):
                workspace = str(record["workspace"])
        user = interaction.user
        return Context(
            platform=PLATFORM,
            workspace=workspace,
            user=str(user.id),
            channel=str(interaction.channel_id) if interaction.channel_id else None,
            user_name=user.display_name,
            timezone=None,
            is_dm=guild_id is None,
        )

    async def run_command(
        self, interaction: discord.Interaction, text: str, *, filename: str = "paperbot.txt"
    ) -> None:
        """Defer at once (3-second deadline), ask the core, answer by follow-up."""
        try:
            await interaction.response.defer(ephemeral=True, thinking=True)
        except discord.HTTPException:
            log.warning("could not acknowledge /papers %s in time", text.split(" ")[0])
            return
        ctx = await self.context(interaction)
        reply = await self.core.answer_async(ctx, text)
        await self.send_reply(interaction, reply, filename=filename)

    async def import_attachment(
        self, interaction: discord.Interaction, attachment: discord.Attachment
    ) -> None:
        """`/papers import file:`: read the attachment (size checked first) and import it."""
        try:
            await interaction.response.defer(ephemeral=True, thinking=True)
        except discord.HTTPException:
            log.warning("could not acknowledge /papers import in time")
            return
        ctx = await self.context(interaction)
        name = attachment.filename or "library"
        too_big = size_error(int(attachment.size or 0))
        if too_big:
            reply = Reply(f"Nothing imported from “{name[:60]}”: {too_big}")
        else:
            try:
                data = await attachment.read()
            except (discord.HTTPException, *_NETWORK_ERRORS) as exc:
                log.warning("could not download an attachment: %s", type(exc).__name__)
                reply = Reply(f"Nothing imported from “{name[:60]}”: the download failed.")
            else:
                reply = await asyncio.to_thread(self.core.import_file, ctx, name, data)
        await self.send_reply(interaction, reply)

    async def send_reply(
        self, interaction: discord.Interaction, reply: Reply, *, filename: str = "paperbot.txt"
    ) -> None:
        """Follow-ups for a deferred interaction; a public reply is posted to the channel.
        The reply's own follow-ups (a first-use card) come after it."""
        await self._send_one(interaction, reply, filename=filename)
        for more in reply.followups:
            await self._send_one(interaction, more, filename=filename)

    async def _send_one(
        self, interaction: discord.Interaction, reply: Reply, *, filename: str
    ) -> None:
        """One reply's messages as follow-ups."""
        messages = render_reply(reply, filename=filename)
        public = not reply.ephemeral and interaction.guild_id is not None
        try:
            if public:
                # The deferred answer is private; tell the asker, then post for everyone.
                await interaction.followup.send(
                    "Done: posted in this channel.", ephemeral=True, allowed_mentions=NO_MENTIONS
                )
            for message in messages:
                await interaction.followup.send(ephemeral=not public, **message.kwargs())
        except discord.HTTPException:
            log.exception("could not send the answer to a /papers command")

    async def on_button(self, interaction: discord.Interaction, value: str) -> None:
        """A paper button: feedback for whoever clicked, acknowledged only to them."""
        key = (
            message_key(interaction.channel_id, interaction.message.id)
            if interaction.message is not None
            else None
        )
        try:
            await interaction.response.defer(ephemeral=True, thinking=True)
        except discord.HTTPException:
            log.warning("could not acknowledge a button click in time")
            return
        outcome = Outcome(False, FAILED)
        try:
            ctx = await self.context(interaction, key)
            outcome = await asyncio.to_thread(self.core.click, ctx, value, key)
        except StoreUnavailable:
            outcome = Outcome(False, UNAVAILABLE)
        except Exception:
            log.exception("button %s failed", value)
        try:
            extra = {"view": AuthorPicker(outcome.choices)} if outcome.choices else {}
            await interaction.followup.send(
                truncate(core_text(outcome.message), CONTENT_LIMIT),
                ephemeral=True,
                allowed_mentions=NO_MENTIONS,
                **extra,
            )
        except discord.HTTPException:
            log.exception("could not acknowledge a button click")

    async def on_reaction(self, payload: discord.RawReactionActionEvent, *, removed: bool) -> None:
        """A raw reaction (cached message or not) as feedback on the message's one paper."""
        me = self.client.user
        if me is not None and payload.user_id == me.id:
            return
        emoji = emoji_name(payload.emoji)
        if emoji is None:
            return
        key = message_key(payload.channel_id, payload.message_id)
        try:
            if payload.guild_id is not None:
                workspace = str(payload.guild_id)
            else:
                record = await asyncio.to_thread(self.core.chat.message, key)
                if not record or not record.get("workspace"):
                    return  # not a paper message paperbot sent
                workspace = str(record["workspace"])
            member = payload.member
            ctx = Context(
                platform=PLATFORM,
                workspace=workspace,
                user=str(payload.user_id),
                channel=str(payload.channel_id),
                user_name=member.display_name if member is not None else "",
                is_dm=payload.guild_id is None,
            )
            outcome = await asyncio.to_thread(self.core.react, ctx, key, emoji, removed=removed)
        except Exception:
            log.exception("reaction on %s failed", key)
            return
        if outcome is not None and outcome.choices:
            # A reaction cannot be answered in place: ask which author in a DM.
            try:
                user = await self.client.fetch_user(payload.user_id)
                await user.send(
                    truncate(core_text(outcome.message), CONTENT_LIMIT),
                    view=AuthorPicker(outcome.choices),
                    allowed_mentions=NO_MENTIONS,
                )
            except discord.HTTPException as exc:
                log.info("could not ask which author to mute: %s", exc)
        elif outcome:
            log.debug("reaction %s on %s by %s: %s", emoji, key, payload.user_id, outcome)

    async def own_words(self, interaction: discord.Interaction, lists: Sequence[str]) -> list[str]:
        """The asker's stored words (topics, excluded, muted) for autocompletion."""
        ctx = await self.context(interaction)
        try:
            found: set[str] = set()
            for name in lists:
                found |= await asyncio.to_thread(self.core.store.words, ctx.uid, name)
        except StoreUnavailable:
            return []
        return sorted(found)

    async def apologise(self, interaction: discord.Interaction) -> None:
        """Answer a failed interaction with one polite line."""
        try:
            if interaction.response.is_done():
                await interaction.followup.send(
                    FAILED, ephemeral=True, allowed_mentions=NO_MENTIONS
                )
            else:
                await interaction.response.send_message(
                    FAILED, ephemeral=True, allowed_mentions=NO_MENTIONS
                )
        except discord.HTTPException:
            log.warning("could not tell the user about a failed command")


def configure_endpoints(settings: Settings) -> None:
    """Point discord.py at the configured REST and gateway URLs (process-wide settings)."""
    # Both are class attributes in discord.py: they apply to every client in this process.
    discord.http.Route.BASE = settings.discord_api_url.rstrip("/")
    if settings.discord_gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


def build_discord(
    core: BotCore, settings: Settings, *, guild_ready_timeout: float = 2.0
) -> DiscordRuntime:
    """The Discord runtime for `paperbot run`: registers its DiscordPort on the core."""
    configure_endpoints(settings)
    runtime = DiscordRuntime(core, settings, guild_ready_timeout=guild_ready_timeout)
    core.register(runtime.port)
    return runtime
