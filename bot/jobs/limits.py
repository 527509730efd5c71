"""Platform rate limits shared by every process, on Dramatiq's Redis-backed limiters.

Slack: one message per second per channel plus a per-workspace budget; Discord: a global
budget per bot (discord.py follows the per-route buckets its response headers announce).
All windows are whole seconds of the clock, so every process counts in the same windows.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from dramatiq.rate_limits import WindowRateLimiter
from dramatiq.rate_limits.backends import RedisBackend

from bot.ports import Target
from recommender.store import PREFIX

KEY = f"{PREFIX}rate:"
CHANNEL_RATE = 1  # Slack: about one message per second per channel
# A post taken in the last moments of a window may reach the platform in the next one and
# count there: the end of each window is left unused.
GUARD = 0.03


def until_next_window(now: float | None = None) -> float:
    """Seconds until the next one-second window opens."""
    now = time.time() if now is None else now
    return max(0.001, 1.0 - (now % 1.0))


class RateGate:
    """Asks before each post: may this channel take a message now, and is there budget?"""

    def __init__(self, client: Any, *, slack_workspace_rate: int = 8, discord_rate: int = 50):
        self.backend = RedisBackend(client=client)
        self.slack_workspace_rate = slack_workspace_rate
        self.discord_rate = discord_rate

    def _take(self, key: str, limit: int) -> bool:
        """One unit of `key`'s budget in the current window; False when it is spent (or the
        window is about to close)."""
        if time.time() % 1.0 > 1.0 - GUARD:
            return False
        limiter = WindowRateLimiter(self.backend, KEY + key, limit=limit, window=1)
        with limiter.acquire(raise_on_failure=False) as acquired:
            return bool(acquired)

    def channel_delay(self, target: Target) -> float:
        """0 when `target` may take a message now (its slot is taken), else seconds to wait.

        A caller told to wait should give its worker thread back and come back later: one
        message per second per channel would otherwise hold a thread for seconds.
        """
        if target.platform != "slack":
            return 0.0
        key = f"slack:ch:{target.workspace}:{target.kind}:{target.id}"
        return 0.0 if self._take(key, CHANNEL_RATE) else until_next_window()

    def _budget(self, target: Target) -> bool:
        """One unit of the workspace's (or bot's) budget in the current window."""
        if target.platform == "slack":
            return self._take(f"slack:ws:{target.workspace}", self.slack_workspace_rate)
        if target.platform == "discord":
            return self._take("discord:bot", self.discord_rate)
        return True

    async def clear(self, target: Target) -> float:
        """Take a channel slot and a unit of budget in the same window: 0 when the post may
        go now, else seconds until the channel takes its next message.

        With the budget spent it waits for the next window (waiting wastes no budget;
        raising and retrying the job would) and takes the channel's slot there anew.
        """
        while True:
            delay = self.channel_delay(target)
            if delay > 0:
                return delay
            if self._budget(target):
                return 0.0
            await asyncio.sleep(until_next_window() + 0.002)
