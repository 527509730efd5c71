"""The console chat: the same commands and feedback as Slack and Discord, in a terminal."""

from __future__ import annotations

import getpass
import shlex
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

from bot.commands import CommandService, help_text
from bot.feedback import EMOJI, FeedbackHandler
from bot.importer import ArxivLookup, Importer
from bot.ports import Context, Digest, Image, PaperCard, Reply, Sent, Target
from bot.team import team_line
from recommender.service import PaperService
from recommender.sources import arxiv_api
from recommender.types import Feedback

# Console words for reactions (the emoji work too): `like 2`, `👍 2`, `unlike 2`.
WORDS: dict[str, Feedback] = {
    "like": Feedback.LIKE,
    "save": Feedback.SAVE,
    "dislike": Feedback.DISLIKE,
    "mute": Feedback.MUTE,
    **{k: v for k, v in EMOJI.items() if not k.isalpha()},
}
UNDO_WORDS = {"unlike": Feedback.LIKE, "unsave": Feedback.SAVE, "undislike": Feedback.DISLIKE}
INTRO = """paperbot console — the chat commands, without Slack or Discord.
Type a command (`search diffusion models`, `digest`, `subscribe`, `help`), react to a
listed paper with `like 2`, `save 1`, `dislike 3`, `mute 4` (or 👍 2, 🔖 1, 👎 3),
take it back with `unlike 2`, and `quit` to leave."""


def render(reply: Reply, save: Callable[[Image], Path] | None = None) -> str:
    """A reply as terminal text (images saved through `save`, their paths printed)."""
    lines = [reply.text]
    for c in reply.cards:
        lines.append(render_card(c))
    if reply.footer:
        lines.append(reply.footer)
    for image in reply.images:
        if save is not None:
            lines.append(f"{image.title or 'Chart'} saved to {save(image)}")
    for more in reply.followups:
        lines.append("")
        if more.title:
            lines.append(more.title)
        lines.append(render(more, save))
    return "\n".join(lines)


def render_card(c: PaperCard) -> str:
    """One numbered paper."""
    head = f"\n[{c.position}] {c.title}"
    meta = [x for x in (c.authors, c.published) if x]
    parts = [head, f"    {' · '.join(meta)}" if meta else "", f"    {c.url}" if c.url else ""]
    if c.blurb:
        parts.append(f"    {c.blurb}")
    extras = []
    if c.code_url:
        extras.append(f"code: {c.code_url}")
    if c.upvotes:
        extras.append(f"▲ {c.upvotes}")
    team = team_line(c)
    if team:
        extras.append(team)
    if extras:
        parts.append("    " + " · ".join(extras))
    if c.reason:
        parts.append(f"    ↳ {c.reason}")
    if c.actions == "rate":
        n = c.position
        parts.append(f"    rate it: `like {n}`, `dislike {n}` or `skip {n}`")
    return "\n".join(p for p in parts if p)


class Console:
    """A REPL bound to one local person."""

    def __init__(
        self,
        service: PaperService,
        *,
        user: str | None = None,
        timezone: str | None = None,
        charts_dir: Path | None = None,
        arxiv_url: str = arxiv_api.DEFAULT_BASE_URL,
    ) -> None:
        self.service = service
        self.charts_dir = charts_dir or Path.cwd()
        self.commands = CommandService(
            service, importer=Importer(service, ArxivLookup(arxiv_url))
        )
        self.feedback = FeedbackHandler(service)
        self.ctx = Context(
            platform="console",
            workspace="local",
            user=user or _local_user(),
            user_name=user or _local_user(),
            timezone=timezone,
            is_dm=True,
        )
        self.last: list[PaperCard] = []
        # 🔇 on a paper with several authors asks which: (menu values) until answered.
        self.choosing: list[str] = []

    def handle(self, line: str) -> str:
        """Answer one line of input."""
        text = line.strip()
        if self.choosing:
            values, self.choosing = self.choosing, []
            if text.isdigit() and 1 <= int(text) <= len(values):
                return self.feedback.button(self.ctx, values[int(text) - 1]).message
            if not text:
                return "Nothing muted."
        if text.startswith("/papers"):
            text = text[len("/papers") :].strip()
        if not text:
            return ""
        try:
            words = shlex.split(text)
        except ValueError:
            words = text.split()
        head = words[0].lower() if words else ""
        # `mute 2` reacts to a listed paper; `mute author Jane Doe` is the command.
        command = head == "mute" and len(words) > 1 and not words[1].isdigit()
        if (head in WORDS or head in UNDO_WORDS) and not command:
            return self._react(head, words[1:])
        if head == "skip" and len(words) == 2 and words[1].isdigit():
            return self._skip(words[1])
        reply = self.commands.handle(self.ctx, text)
        shown = list(reply.cards)
        for more in reply.followups:
            # A card that follows the answer goes on with its numbers: `like 7` is unambiguous.
            for c in more.cards:
                c.position = len(shown) + 1
                shown.append(c)
        if shown:
            self.last = shown
        return render(reply, self._save)

    def _save(self, image: Image) -> Path:
        """Write a chart next to where the console runs; returns its path."""
        self.charts_dir.mkdir(parents=True, exist_ok=True)
        stem, _, suffix = image.filename.rpartition(".")
        path = self.charts_dir / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}.{suffix}"
        path.write_bytes(image.data)
        return path.resolve()

    def _skip(self, number: str) -> str:
        """`skip 3`: pass on a paper of the first-use card."""
        if not self.last or not 1 <= int(number) <= len(self.last):
            return "Nothing to skip: `start` shows papers to rate."
        paper = self.last[int(number) - 1]
        return self.commands.onboarding.skip(self.ctx, paper.paper_id).message

    def _react(self, head: str, args: list[str]) -> str:
        """`like 2` / `unlike 2`: feedback on a paper of the last list."""
        kind = WORDS.get(head) or UNDO_WORDS[head]
        removed = head in UNDO_WORDS
        if not self.last:
            return "Nothing to react to yet: run `search …` or `digest` first."
        if len(args) != 1 or not args[0].isdigit() or not 1 <= int(args[0]) <= len(self.last):
            return f"Say which paper: `{head} 1` … `{head} {len(self.last)}`."
        paper = self.last[int(args[0]) - 1]
        outcome = self.feedback.apply(self.ctx, paper.paper_id, kind, removed=removed)
        if outcome.choices:
            self.choosing = [value for _, value in outcome.choices]
            lines = [outcome.message]
            lines += [f"  [{i}] {label}" for i, (label, _) in enumerate(outcome.choices, 1)]
            lines.append("Type the number (Enter cancels).")
            return "\n".join(lines)
        progress = "" if removed else self.commands.onboarding.after_feedback(
            self.ctx.uid, paper.paper_id
        )
        return f"{outcome.message} {progress}".strip()

    def run(
        self, lines: Iterable[str], out: TextIO, prompt: Callable[[], None] | None = None
    ) -> None:
        """Read lines until `quit` or end of input, answering each."""
        print(INTRO, file=out)
        for line in lines:
            if line.strip().lower() in ("quit", "exit", ":q"):
                break
            answer = self.handle(line)
            if answer:
                print(answer, file=out)
            if prompt:
                prompt()
        print("Bye. Your likes are kept for next time.", file=out)


class ConsolePort:
    """Scheduled digests for console subscribers, printed in the terminal."""

    platform = "console"

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.count = 0

    async def post_intro(self, target: Target, digest: Digest) -> Sent:
        """Print the digest's heading."""
        self.count += 1
        print(f"\n=== {digest.title} ({digest.period}) ===\n{digest.intro}", file=self.out)
        return Sent(f"console:{target.id}:{self.count}", None)

    async def post_card(
        self, target: Target, digest: Digest, card: PaperCard, thread: str | None
    ) -> Sent:
        """Print one paper of the digest."""
        self.count += 1
        print(render_card(card), file=self.out, flush=True)
        return Sent(f"console:{target.id}:{self.count}", card.paper_id)

    async def send_text(self, target: Target, text: str) -> None:
        """Print a notice."""
        print(text, file=self.out, flush=True)


def _local_user() -> str:
    """The login name, for a stable local identity."""
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "me"


def interactive(console: Console) -> None:
    """Run the REPL on the terminal."""

    def lines() -> Iterable[str]:
        while True:
            try:
                yield input("papers> ")
            except (EOFError, KeyboardInterrupt):
                return

    console.run(lines(), sys.stdout)


__all__ = ["Console", "help_text", "interactive", "render"]
