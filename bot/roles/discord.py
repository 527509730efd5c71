"""`paperbot discord --shards 0,1 --shard-count 4`: some of the Discord bot's gateway shards.

Discord sends each guild's events to one shard, so processes with disjoint shard ids
handle every guild exactly once. The process holding shard 0 publishes `/papers`. Every
shard process also delivers Discord digests (the `deliver_discord` queue): sending needs
a logged-in client, which workers do not have.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bot.cli_app import App, CommandError, add_command
from bot.jobs.actors import deliver_queue
from bot.jobs.engine import Engine, start_engine
from bot.roles.common import chat_core, serve, stop_on_signals


def shard_ids(text: str) -> tuple[int, ...]:
    """`0,1` or `2-3` -> (0, 1) / (2, 3) (argparse type)."""
    ids: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            first, sep, last = part.partition("-")
            ids.extend(range(int(first), int(last) + 1) if sep else [int(first)])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected shard ids like 0,1 or 0-3, got {text!r}"
        ) from None
    if not ids:
        raise argparse.ArgumentTypeError("give at least one shard id")
    return tuple(ids)


def cmd_discord(args: argparse.Namespace, app: App) -> int:
    """Connect the chosen shards and serve their guilds until SIGTERM/Ctrl-C."""
    from bot.discord_app import Shards, build_discord

    settings = app.settings
    shards = None
    if args.shards is not None or args.shard_count is not None:
        count = args.shard_count or 1
        try:
            shards = Shards(args.shards or tuple(range(count)), count)
        except ValueError as exc:
            raise CommandError(str(exc), code=2) from None
    if settings.discord_token is None:
        raise CommandError("paperbot discord needs DISCORD_TOKEN", code=2)
    with stop_on_signals() as stop:
        core = chat_core(app)
        runtime = build_discord(core, settings, shards=shards)
        which = (
            "every shard"
            if shards is None
            else f"shards {','.join(map(str, shards.ids))} of {shards.count}"
        )

        engine: Engine | None = None

        def started() -> None:
            """Consume the Discord deliveries through this client; say which shards run."""
            nonlocal engine
            engine = start_engine(
                settings,
                core,
                None,
                loop=asyncio.get_running_loop(),
                ports={"discord": runtime.port},
                queues=[deliver_queue("discord")],
            )
            app.err.print(f"paperbot discord: {which} connected. Ctrl-C to stop.")

        async def stopping() -> None:
            """Let deliveries in flight end (or go back to the queue) while the client runs."""
            if engine is not None:
                await asyncio.to_thread(engine.stop)

        asyncio.run(serve([runtime], stop, started=started, stopping=stopping))
    app.err.print("paperbot discord stopped.")
    return 0


def add_discord(sub: Any) -> None:
    """Register `discord`."""
    p = add_command(
        sub,
        "discord",
        help="serve the Discord gateway only, optionally some shards of it",
        description="Connect to Discord's gateway and answer /papers, buttons and reactions, "
        "and deliver the Discord digests that workers plan; no clock, no Slack. With "
        "--shards and --shard-count this process connects only those "
        "shards: Discord sends each server's events to exactly one shard, so run one process "
        "per group of shards, together covering 0 to N-1. The process with shard 0 publishes "
        "the /papers command; the others do not.",
        epilog=(
            "examples:\n"
            "  paperbot discord                                  # the whole bot\n"
            "  paperbot discord --shards 0,1 --shard-count 4     # first of two processes\n"
            "  paperbot discord --shards 2,3 --shard-count 4     # second"
        ),
    )
    p.add_argument(
        "--shards", type=shard_ids, metavar="IDS", help="shard ids to connect: 0,1 or 0-3"
    )
    p.add_argument("--shard-count", type=int, metavar="N", help="how many shards the whole bot has")
    p.set_defaults(handler=cmd_discord)
