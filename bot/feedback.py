"""Reactions and button clicks -> feedback on exactly one paper, for the person who gave it.

The rule: a button always names its paper. An emoji reaction counts only on a message
that shows a single paper (every paper in a digest is its own message; a search answer
with several papers takes buttons only). Removing a reaction takes the feedback back.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.ports import Context
from recommender.service import PaperService
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


def button_value(kind: Feedback, paper_id: str) -> str:
    """What a button carries: `like|2401.12345` (fits Slack's and Discord's limits)."""
    return f"{kind.value}|{paper_id}"


def parse_button(value: str) -> tuple[Feedback, str] | None:
    """Inverse of `button_value`, or None for anything malformed."""
    kind, sep, paper_id = (value or "").partition("|")
    if not sep or not paper_id or len(paper_id) > 80:
        return None
    try:
        return Feedback(kind), paper_id
    except ValueError:
        return None


@dataclass(slots=True)
class Outcome:
    """What happened, in words for the person."""

    ok: bool
    message: str
    kinds: frozenset[str] = frozenset()


class FeedbackHandler:
    """Applies feedback through the recommender service."""

    def __init__(self, service: PaperService) -> None:
        self.service = service

    def apply(
        self,
        ctx: Context,
        paper_id: str,
        kind: Feedback,
        *,
        removed: bool = False,
        toggle: bool = False,
    ) -> Outcome:
        """Record feedback for the person in `ctx`; `toggle` undoes a kind already given."""
        store = self.service.store
        paper = store.get_paper(paper_id)
        if paper is None:
            return Outcome(
                False, "That paper is no longer in the library, so I could not record it."
            )
        uid = ctx.uid
        if ctx.channel_key and not ctx.is_dm:
            store.add_channel_member(ctx.channel_key, uid)
        if kind is Feedback.MUTE:
            author = paper.authors[0] if paper.authors else ""
            if not author:
                return Outcome(False, "That paper lists no authors to mute.")
            # One atomic step each: a read here and a write later could lose a second click.
            if removed:
                store.remove_words(uid, "muted", [author.casefold()])
                undo = True
            elif toggle:
                undo = not store.toggle_word(uid, "muted", author.casefold())
            else:
                store.add_words(uid, "muted", [author.casefold()])
                undo = False
            template = UNDO[kind] if undo else ACK[kind]
            return Outcome(True, template.format(author=author))
        kinds = self.service.record(uid, paper.id, kind, removed=removed, toggle=toggle)
        undo = removed or kind.value not in kinds
        return Outcome(True, UNDO[kind] if undo else ACK[kind], frozenset(kinds))

    def reaction(
        self, ctx: Context, message_key: str, emoji: str, *, removed: bool
    ) -> Outcome | None:
        """A reaction on a sent message: only on single-paper messages, else ignored (None)."""
        kind = emoji_feedback(emoji)
        if kind is None:
            return None
        record = self.service.store.message(message_key)
        if not record or not record.get("paper"):
            return None
        if record.get("workspace") not in (None, ctx.workspace):
            # A shared channel's guest from another workspace: not one of our readers.
            return None
        return self.apply(ctx, record["paper"], kind, removed=removed)

    def button(self, ctx: Context, value: str, message_key: str | None = None) -> Outcome:
        """A button click: toggles that feedback; clicks from another workspace are refused."""
        parsed = parse_button(value)
        if parsed is None:
            return Outcome(False, "That button is not one of mine, so nothing was recorded.")
        if message_key:
            record = self.service.store.message(message_key)
            if record and record.get("workspace") not in (None, ctx.workspace):
                return Outcome(
                    False, "That digest belongs to another workspace, so I did not record it."
                )
        kind, paper_id = parsed
        return self.apply(ctx, paper_id, kind, toggle=True)
