"""Reactions and button clicks -> feedback on exactly one paper, for the person who gave it.

The rule: a button always names its paper. An emoji reaction counts only on a message
that shows a single paper (every paper in a digest is its own message; a search answer
with several papers takes buttons only). Removing a reaction takes the feedback back.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.ports import Context
from bot.repo import ChatRepo
from recommender.service import LIMITS, PaperService
from recommender.store import WordLimitReached
from recommender.types import Feedback

# Emoji names as Slack sends them (and the unicode forms Discord sends) -> feedback.
EMOJI: dict[str, Feedback] = {
    "+1": Feedback.LIKE,
    "thumbsup": Feedback.LIKE,
    "👍": Feedback.LIKE,
    "heart": Feedback.LIKE,
    "❤️": Feedback.LIKE,
    "bookmark": Feedback.SAVE,
    "🔖": Feedback.SAVE,
    "-1": Feedback.DISLIKE,
    "thumbsdown": Feedback.DISLIKE,
    "👎": Feedback.DISLIKE,
    "mute": Feedback.MUTE,
    "🔇": Feedback.MUTE,
}

ACK = {
    Feedback.LIKE: "👍 Noted: more like this.",
    Feedback.SAVE: "🔖 Saved. `/papers saved` lists them, `/papers export` gives BibTeX.",
    Feedback.DISLIKE: "👎 Noted: fewer like this.",
    Feedback.MUTE: "🔇 Muted {author}. `/papers unmute author {author}` undoes it.",
}
UNDO = {
    Feedback.LIKE: "Like removed.",
    Feedback.SAVE: "Removed from your saved papers.",
    Feedback.DISLIKE: "Dislike removed.",
    Feedback.MUTE: "Unmuted {author}.",
}


# Unicode skin-tone modifiers (Discord sends `👍🏽`) and the emoji variation selector.
_MODIFIERS = dict.fromkeys([*range(0x1F3FB, 0x1F400), 0xFE0F])
_PLAIN = {k.translate(_MODIFIERS): v for k, v in EMOJI.items()}


def emoji_feedback(name: str) -> Feedback | None:
    """The feedback an emoji stands for (skin tones ignored), or None."""
    base = name.split("::")[0].strip(":")
    return _PLAIN.get(base.translate(_MODIFIERS))


# A paper's authors offered when 🔇 needs a choice (Discord selects hold at most 25).
MAX_AUTHOR_CHOICES = 25


def button_value(kind: Feedback, paper_id: str) -> str:
    """What a button carries: `like|2401.12345` (fits Slack's and Discord's limits)."""
    return f"{kind.value}|{paper_id}"


def author_choice_value(paper_id: str, index: int) -> str:
    """What a choice in the "which author?" menu carries: `mute|2401.12345|2`."""
    return f"{Feedback.MUTE.value}|{paper_id}|{index}"


def parse_button(value: str) -> tuple[Feedback, str] | None:
    """Inverse of `button_value`, or None for anything malformed."""
    parsed = parse_choice(value)
    return None if parsed is None else parsed[:2]


def parse_choice(value: str) -> tuple[Feedback, str, int | None] | None:
    """A button or author-menu value: (kind, paper id, author index or None), or None."""
    kind, sep, rest = (value or "").partition("|")
    if not sep or not rest:
        return None
    author = None
    if kind == Feedback.MUTE.value and "|" in rest:
        rest, _, index = rest.rpartition("|")
        if not index.isdigit() or len(index) > 3:
            return None
        author = int(index)
    if not rest or len(rest) > 80 or "|" in rest:
        return None
    try:
        return Feedback(kind), rest, author
    except ValueError:
        return None


def limit_reply(kind: str, size: int, limit: int) -> str:
    """What to say when a person's topics, excluded phrases or muted authors are full."""
    what = {"topics": "topics", "exclude": "excluded phrases", "muted": "muted authors"}[kind]
    undo = {
        "topics": "`/papers topics remove <topic>`",
        "exclude": "`/papers topics include <phrase>`",
        "muted": "`/papers unmute author <name>`",
    }[kind]
    return (
        f"You have {size} {what}; the limit is {limit}. Remove some first with {undo}, "
        "then try again."
    )


@dataclass(slots=True)
class Outcome:
    """What happened, in words for the person; `choices` asks them to pick an author
    (label, value for `FeedbackHandler.button`) before anything is recorded."""

    ok: bool
    message: str
    kinds: frozenset[str] = frozenset()
    choices: tuple[tuple[str, str], ...] = ()


class FeedbackHandler:
    """Applies feedback through the recommender service."""

    def __init__(self, service: PaperService) -> None:
        self.service = service
        self.chat = ChatRepo(service.store)

    def apply(
        self,
        ctx: Context,
        paper_id: str,
        kind: Feedback,
        *,
        removed: bool = False,
        toggle: bool = False,
        author: int | None = None,
    ) -> Outcome:
        """Record feedback for the person in `ctx`; `toggle` undoes a kind already given.

        🔇 on a paper with several authors asks which one (`author` is the answer: an
        index into the paper's authors) instead of guessing.
        """
        store = self.service.store
        paper = store.get_paper(paper_id)
        if paper is None:
            return Outcome(
                False, "That paper is no longer in the library, so I could not record it."
            )
        uid = ctx.uid
        if ctx.channel_key and not ctx.is_dm:
            self.chat.add_channel_member(ctx.channel_key, uid)
        if kind is Feedback.MUTE:
            return self._mute(uid, paper, removed=removed, toggle=toggle, author=author)
        kinds = self.service.record(uid, paper.id, kind, removed=removed, toggle=toggle)
        undo = removed or kind.value not in kinds
        return Outcome(True, UNDO[kind] if undo else ACK[kind], frozenset(kinds))

    def _mute(self, uid: str, paper, *, removed: bool, toggle: bool, author: int | None) -> Outcome:
        """🔇: mute (or unmute) one of the paper's authors, asking which when several."""
        store = self.service.store
        authors = [a.strip() for a in paper.authors if a and a.strip()]
        if not authors:
            return Outcome(False, "That paper lists no authors to mute.")
        muted = store.words(uid, "muted")
        if author is not None:
            if not 0 <= author < len(authors):
                return Outcome(False, "That author is not on this paper (any more).")
            name = authors[author]
        elif removed:
            # A 🔇 taken back: unmute whichever of the paper's authors it muted.
            gone = [a for a in authors if a.casefold() in muted]
            if not gone:
                return Outcome(True, "None of this paper's authors is muted.")
            name = gone[0]
        elif len(authors) == 1:
            name = authors[0]
        else:
            choices = tuple(
                (
                    f"{a} (muted: unmute)" if a.casefold() in muted else a,
                    author_choice_value(paper.id, i),
                )
                for i, a in enumerate(authors[:MAX_AUTHOR_CHOICES])
            )
            title = paper.title if len(paper.title) <= 60 else paper.title[:59] + "…"
            return Outcome(True, f"Which author of “{title}” should I mute?", choices=choices)
        if removed:
            store.remove_words(uid, "muted", [name.casefold()])
            return Outcome(True, UNDO[Feedback.MUTE].format(author=name))
        try:
            # One atomic step: two clicks at once (two replicas, a button and a reaction)
            # end as if one came after the other. A click toggles; a 🔇 reaction mutes.
            if toggle or author is not None:
                now_muted = store.toggle_word(uid, "muted", name.casefold(), limit=LIMITS["muted"])
            else:
                store.add_words(uid, "muted", [name.casefold()], limit=LIMITS["muted"])
                now_muted = True
        except WordLimitReached as full:
            return Outcome(False, limit_reply("muted", full.size, full.limit))
        template = ACK if now_muted else UNDO
        return Outcome(True, template[Feedback.MUTE].format(author=name))

    def reaction(
        self, ctx: Context, message_key: str, emoji: str, *, removed: bool
    ) -> Outcome | None:
        """A reaction on a sent message: only on single-paper messages, else ignored (None)."""
        kind = emoji_feedback(emoji)
        if kind is None:
            return None
        record = self.chat.message(message_key)
        if not record or not record.get("paper"):
            return None
        if record.get("workspace") not in (None, ctx.workspace):
            # A shared channel's guest from another workspace: not one of our readers.
            return None
        return self.apply(ctx, record["paper"], kind, removed=removed)

    def button(self, ctx: Context, value: str, message_key: str | None = None) -> Outcome:
        """A button click (or an author picked from the 🔇 menu): toggles that feedback;
        clicks from another workspace are refused."""
        parsed = parse_choice(value)
        if parsed is None:
            return Outcome(False, "That button is not one of mine, so nothing was recorded.")
        if message_key:
            record = self.chat.message(message_key)
            if record and record.get("workspace") not in (None, ctx.workspace):
                return Outcome(
                    False, "That digest belongs to another workspace, so I did not record it."
                )
        kind, paper_id, author = parsed
        return self.apply(ctx, paper_id, kind, toggle=True, author=author)
