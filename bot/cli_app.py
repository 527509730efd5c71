"""Shared plumbing of the command line: the per-run App, errors, argument types, progress."""

from __future__ import annotations

import argparse
import logging
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from bot import scheduler as sched
from bot.config import Settings
from recommender import pipeline
from recommender.embeddings import TextEncoder, default_encoder
from recommender.index import SearchIndex
from recommender.service import FeedbackWeights, PaperService
from recommender.store import Store

log = logging.getLogger("bot")


class CommandError(Exception):
    """A failure reported as one line on stderr; `code` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        """`message` is shown after `error: `."""
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------
# The per-invocation application: settings, consoles and lazily built dependencies
# ---------------------------------------------------------------------------------------


class App:
    """What a command needs; the store, encoder and index are built only when asked for."""

    def __init__(self, settings: Settings, out: Console, err: Console) -> None:
        """An app over `settings`, printing to `out` (results) and `err` (progress, errors)."""
        self.settings = settings
        self.out = out
        self.err = err
        self._store: Store | None = None
        self._encoder: TextEncoder | None = None
        self._encoder_loaded = False

    def store(self) -> Store:
        """The Redis store (embedded when REDIS_URL is unset); StoreUnavailable if down."""
        if self._store is None:
            self._store = Store.connect(self.settings.redis_dsn, self.settings.data_dir)
        return self._store

    def encoder(self) -> TextEncoder | None:
        """The sentence encoder, or None when disabled or not installed."""
        if not self._encoder_loaded:
            self._encoder = default_encoder() if self.settings.embeddings else None
            self._encoder_loaded = True
            if self._encoder is not None:
                quiet_model_loading()
        return self._encoder

    def service(self) -> PaperService:
        """The recommender service over the store, with the configured feedback weights."""
        settings = self.settings
        weights = FeedbackWeights(
            like=settings.weight_like, save=settings.weight_save, dislike=settings.weight_dislike
        )
        return PaperService(self.store(), encoder=self.encoder(), weights=weights)

    def runtime(self, *, index: SearchIndex | None = None) -> sched.Runtime:
        """The dependencies the ingest jobs share (the encoder is loaded when first needed)."""
        return sched.Runtime(self.settings, self.store(), index=index, encoder_factory=self.encoder)

    def where(self) -> str:
        """Where the papers live, without any password."""
        if self.settings.redis_url is None:
            return f"embedded Redis in {self.settings.data_dir}"
        return self._store.where if self._store else "Redis"

    def close(self) -> None:
        """Release the store (an embedded Redis saves and stops)."""
        if self._store is not None:
            store, self._store = self._store, None
            try:
                store.close()
            except Exception as exc:  # closing must never hide the command's own outcome
                log.debug("closing the store failed: %s", exc)


def quiet_model_loading() -> None:
    """Hide the model library's own weight-loading bar: paperbot draws its own progress."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()


def add_command(
    sub: Any, name: str, *, help: str, description: str, epilog: str | None = None
) -> argparse.ArgumentParser:
    """A subcommand parser whose description is wrapped and whose examples keep their lines."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help,
        description=textwrap.fill(description, width=88),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


Handler = Callable[[argparse.Namespace, App], int]
# Registers one command on the subparsers object that `add_subparsers` returned.
Registrar = Callable[[Any], None]


def iso_date(text: str) -> date:
    """argparse type for `YYYY-MM-DD`."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2025-01-31, got {text!r}") from None


def positive_int(text: str) -> int:
    """argparse type for a count of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


def categories_arg(text: str | None) -> list[str] | None:
    """`cs.LG,cs.CL` -> `["cs.LG", "cs.CL"]`."""
    if text is None:
        return None
    cats = [c.strip() for c in text.replace("+", ",").split(",") if c.strip()]
    return cats or None


class _Bars:
    """A rich progress display on stderr with one bar per (source, stage)."""

    def __init__(self, console: Console) -> None:
        """Bars drawn on `console`; nothing is drawn when it is not a terminal."""
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self.tasks: dict[tuple[str, str], Any] = {}

    def callback(self, label: str) -> pipeline.Progress:
        """A `pipeline.Progress` drawing the bars of `label` (fetch shows as a spinner first)."""
        self.tasks[(label, "fetch")] = self.progress.add_task(f"{label}: fetch", total=None)

        def update(stage: str, done: int, total: int | None) -> None:
            """Create the stage's bar on first use, then move it."""
            key = (label, stage)
            if key not in self.tasks:
                self.tasks[key] = self.progress.add_task(f"{label}: {stage}", total=total)
            self.progress.update(self.tasks[key], completed=done, total=total)

        return update


@contextmanager
def bars(console: Console) -> Iterator[_Bars]:
    """Progress bars for the duration of the block."""
    bars = _Bars(console)
    with bars.progress:
        yield bars
