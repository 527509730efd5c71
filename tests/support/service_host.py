"""One paperbot process for multi-process tests: a BotCore on a real Redis, driven by JSON
lines on stdin (one request per line, one JSON answer per line on stdout).

    python -m tests.support.service_host REDIS_URL [--watch SECONDS]
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bot.core import BotCore
from bot.feedback import button_value
from bot.ports import Context
from recommender.ingest import ingest
from recommender.service import PaperService
from recommender.sources import parse_body
from recommender.store import Store
from recommender.types import Feedback


def _ctx(uid: str) -> Context:
    """A DM context for `slack:T:U`."""
    platform, workspace, user = uid.split(":")
    return Context(platform, workspace, user, is_dm=True)


def handle(core: BotCore, request: dict[str, Any]) -> Any:
    """Run one request against this process's core."""
    service = core.service
    op = request["op"]
    if op == "ingest":
        when = datetime.fromtimestamp(request.get("at", time.time()), UTC)
        result = parse_body("jsonl", request["body"].encode(), now=when)
        return ingest(service.store, result, "jsonl").new_ids
    if op == "train":
        return service.train().version
    if op == "version":
        return service.model_version
    if op == "click":
        kind = Feedback(request["kind"])
        return core.button(_ctx(request["uid"]), button_value(kind, request["paper"]))
    if op == "peek":
        # What the person's digest would show now (without marking anything as sent).
        ranked = core.builder.personal(request["uid"], since=0, n=request.get("n", 10))
        return [r.paper.id for r in ranked]
    if op == "search":
        reply = core.answer(_ctx(request["uid"]), f"search {request['query']}")
        return [card.paper_id for card in reply.cards]
    if op == "pid":
        import os

        return os.getpid()
    raise ValueError(f"unknown op {op!r}")


def main() -> int:
    """Serve requests until stdin closes."""
    url = sys.argv[1]
    watch = float(sys.argv[sys.argv.index("--watch") + 1]) if "--watch" in sys.argv else 0.0
    service = PaperService(Store.connect(url), encoder=None)
    if watch:
        service.start(interval=watch)
    core = BotCore(service)
    print(json.dumps({"ok": True, "result": "ready"}), flush=True)
    for line in sys.stdin:
        try:
            result = handle(core, json.loads(line))
            print(json.dumps({"ok": True, "result": result}), flush=True)
        except Exception as exc:
            print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}), flush=True)
    service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
