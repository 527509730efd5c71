"""`paperbot web`: the Slack HTTP receiver only; stateless, so any number of replicas.

Everything a request leaves behind is in Redis: Events API de-duplication (event ids),
the OAuth state of the install flow, installations, feedback and message records.
What a replica keeps in memory is a cache (the published model, user timezones).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bot.cli_app import App, CommandError, add_command
from bot.roles.common import chat_core, serve, stop_on_signals


def cmd_web(args: argparse.Namespace, app: App) -> int:
    """Serve the Slack Request URL (and install pages) until SIGTERM/Ctrl-C."""
    from bot.slack_app import build_slack, slack_configured

    settings = app.settings
    if settings.slack_app_token is not None:
        raise CommandError(
            "paperbot web serves Slack over HTTP; unset SLACK_APP_TOKEN (Socket Mode is for "
            "`paperbot run`)",
            code=2,
        )
    if not slack_configured(settings):
        raise CommandError(
            "paperbot web needs SLACK_SIGNING_SECRET plus SLACK_BOT_TOKEN (one workspace) or "
            "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (many workspaces)",
            code=2,
        )
    overrides = {"http_host": args.host, "http_port": args.port}
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    with stop_on_signals() as stop:
        core = chat_core(app)
        slack = build_slack(core, settings)

        def started() -> None:
            """One line saying where requests are served."""
            app.err.print(f"paperbot web: Slack requests on {slack.url} (Ctrl-C to stop)")

        asyncio.run(serve([slack], stop, started=started))
    app.err.print("paperbot web stopped.")
    return 0


def add_web(sub: Any) -> None:
    """Register `web`."""
    p = add_command(
        sub,
        "web",
        help="serve only Slack's HTTP requests (stateless; run replicas behind a load balancer)",
        description="Serve Slack's Request URL (/slack/events: slash commands, buttons, "
        "events) and, with the install flow, /slack/install and /slack/oauth_redirect. No "
        "clock, no Discord, no digests. Keeps no state of its own (event de-duplication and "
        "OAuth state are in Redis), so any number of replicas can share one Redis behind a "
        "load balancer; /healthz answers `ok`.",
        epilog="example:\n  PAPERBOT_HTTP_HOST=0.0.0.0 paperbot web --port 3000",
    )
    p.add_argument("--host", help="address to listen on (default PAPERBOT_HTTP_HOST, 127.0.0.1)")
    p.add_argument(
        "--port", type=int, metavar="PORT", help="port to listen on (default PAPERBOT_HTTP_PORT)"
    )
    p.set_defaults(handler=cmd_web)
