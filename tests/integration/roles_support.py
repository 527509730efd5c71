"""Helpers for the role tests: `python -m bot <role>` processes with their stderr collected."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.slack_fakes import SIGNING_SECRET, sign

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "tests" / "fixtures" / "seed_papers.jsonl"


def role_env(redis_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """A clean environment for a role process: only the given paperbot settings."""
    prefixes = ("PAPERBOT_", "REDIS_", "SLACK_", "DISCORD_", "HF_", "ARXIV_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(
        {
            "REDIS_URL": redis_url,
            "PAPERBOT_DATA_DIR": str(tmp_path),
            "PAPERBOT_EMBEDDINGS": "false",
            "PAPERBOT_LOG_LEVEL": "INFO",
            "PYTHONPATH": str(ROOT),
            **extra,
        }
    )
    return env


class Role:
    """A `python -m bot <role> …` process whose stderr lines are collected as they arrive."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def err(self) -> str:
        return "".join(self.lines)

    def has(self, text: str) -> bool:
        """Whether the process logged `text` (a substring) so far."""
        return text in self.err

    def find(self, pattern: str) -> re.Match[str] | None:
        """The first match of `pattern` in what the process logged so far."""
        return re.search(pattern, self.err)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> str:
        """Send a signal, wait for the exit, and return everything it logged."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=timeout)
        self._reader.join(5)
        return self.err

    def kill(self) -> None:
        """SIGKILL if still running (cleanup)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a stopped process cannot die otherwise
            self.proc.kill()
            self.proc.wait(timeout=10)


def wait_for(condition: Callable[[], object], timeout: float = 30.0, what: str = "") -> float:
    """Seconds until `condition()` holds; fails past `timeout`."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, f"timed out after {timeout} s: {what}"
        time.sleep(0.05)
    return time.monotonic() - start


async def until(check, timeout: float = 60.0, what: str = "") -> None:
    """Poll `check()` without blocking the event loop the fakes run on."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, f"timed out: {what}"
        await asyncio.sleep(0.05)


async def post(url: str, body: str, content_type: str) -> int:
    """A signed POST to a replica; its status."""
    import aiohttp

    headers = {"Content-Type": content_type, **sign(body, SIGNING_SECRET)}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        await response.read()
        return response.status
