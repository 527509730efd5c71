"""`paperbot run`: every role in one process (clock, Slack, Discord, console), the default.

The command lives in `bot.cli_chat` beside the console it falls back to; this module
names it among the roles.
"""

from __future__ import annotations

from bot.cli_chat import add_run, cmd_run

__all__ = ["add_run", "cmd_run"]
