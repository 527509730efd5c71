"""What the chat core hands to a platform adapter, and what an adapter must offer back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from recommender.types import Feedback

# Buttons shown under every paper, in order: (feedback kind, emoji, label).
BUTTONS: tuple[tuple[Feedback, str, str], ...] = (
    (Feedback.LIKE, "👍", "More like this"),
    (Feedback.SAVE, "🔖", "Save"),
    (Feedback.DISLIKE, "👎", "Not for me"),
    (Feedback.MUTE, "🔇", "Mute author"),
)
# Buttons of a first-use card: (value kind, emoji, label); `skip` records nothing.
RATE_BUTTONS: tuple[tuple[str, str, str], ...] = (
    ("like", "👍", "Interesting"),
    ("dislike", "👎", "Not for me"),
    ("skip", "⏭️", "Skip"),
)


@dataclass(frozen=True, slots=True)
class Context:
    """Who is asking, from where: the neutral form of a slash command's envelope."""

    platform: str  # "slack", "discord", "console"
    workspace: str  # Slack team id, Discord guild id, "local"
    user: str  # platform user id
    channel: str | None = None
    user_name: str = ""
    timezone: str | None = None  # the person's own timezone when the platform knows it
    is_dm: bool = False

    @property
    def uid(self) -> str:
        """The person's key: `slack:T…:U…` (per platform and workspace)."""
        return f"{self.platform}:{self.workspace}:{self.user}"

    @property
    def channel_key(self) -> str | None:
        """The channel's key: `slack:T…:C…`."""
        return f"{self.platform}:{self.workspace}:{self.channel}" if self.channel else None

    @property
    def team(self) -> str:
        """The workspace key: `slack:T…`."""
        return f"{self.platform}:{self.workspace}"


@dataclass(slots=True)
class PaperCard:
    """One paper as shown in chat, platform-neutral (adapters escape and truncate)."""

    paper_id: str
    title: str
    url: str
    authors: str = ""
    blurb: str = ""
    code_url: str | None = None
    upvotes: int = 0
    reason: str = ""
    teammates: int = 0
    position: int = 0
    published: str = ""
    # "feedback": 👍 🔖 👎 🔇; "rate": the first-use card's 👍 👎 skip.
    actions: str = "feedback"
    # Teammates who may be named (`settings visible`) and saved / liked the paper, and how
    # many others did without being named.
    saved_by: list[str] = field(default_factory=list)
    liked_by: list[str] = field(default_factory=list)
    unnamed: int = 0


@dataclass(frozen=True, slots=True)
class Image:
    """A picture to upload with a reply or a digest (a PNG chart)."""

    filename: str
    data: bytes
    title: str = ""


@dataclass(slots=True)
class Reply:
    """The answer to a command: text, optional paper cards, and whether only the asker sees it."""

    text: str
    cards: list[PaperCard] = field(default_factory=list)
    ephemeral: bool = True
    title: str | None = None
    # Extra lines shown after the cards (e.g. "3 more: /papers search … n:20").
    footer: str = ""
    images: list[Image] = field(default_factory=list)
    # Further replies sent right after this one (a first-use card after the answer).
    followups: list[Reply] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a digest goes: a person's DM or a channel, on one platform/workspace."""

    platform: str
    workspace: str
    kind: str  # "dm" or "channel"
    id: str  # platform user id (dm) or channel id


@dataclass(slots=True)
class Digest:
    """A digest ready to send."""

    subscription: str
    title: str
    intro: str
    cards: list[PaperCard]
    period: str
    # A chart posted after the intro, and papers shown after the ranked ones ("Top this week").
    image: Image | None = None
    top: list[PaperCard] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Sent:
    """One message an adapter posted: its platform key and the paper it shows (if one)."""

    message_key: str
    paper_id: str | None


class DeliveryError(Exception):
    """A send failed. `permanent` = retrying will not help (channel gone, DMs closed)."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class ChatPort(Protocol):
    """What every platform adapter provides to the core.

    A digest goes out as an intro message and then one message per paper (threaded under
    the intro in channels), so every reaction maps to exactly one paper and a failed send
    can resume where it stopped.
    """

    platform: str

    async def post_intro(self, target: Target, digest: Digest) -> Sent:
        """Post the digest's intro; its `message_key` is the thread for the papers."""
        ...

    async def post_card(
        self, target: Target, digest: Digest, card: PaperCard, thread: str | None
    ) -> Sent:
        """Post one paper of a digest."""
        ...

    async def send_text(self, target: Target, text: str) -> None:
        """Post a plain notice (e.g. "your channel digest could not be delivered")."""
        ...

    # Optional: `async def post_image(self, target: Target, image: Image, thread: str | None)`
    # uploads a digest's chart; a port without it sends digests without the chart.
