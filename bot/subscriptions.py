"""Subscriptions: what a person or channel asked for, and when each digest falls due.

Times are wall-clock times in the subscriber's own timezone. A daily 09:00 digest in
Europe/Berlin fires at 09:00 Berlin time on both sides of a DST change; a time that does
not exist on the day the clocks spring forward fires at the first instant after the gap,
and an ambiguous time (clocks fall back) fires once, at its first occurrence.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DEFAULT_TIME = "09:00"
# A digest due while the bot was down is still sent if the bot is back within this window.
GRACE = timedelta(hours=6)
_TIME = re.compile(r"^(\d{1,2})(?::(\d{2}))?\s*(am|pm)?$", re.IGNORECASE)


class SubscriptionError(ValueError):
    """A subscribe request that cannot be honoured; the message says what is valid."""


@dataclass(slots=True)
class Subscription:
    """A personal (DM) or team (channel) digest subscription."""

    id: str
    kind: str  # "dm" or "channel"
    platform: str
    workspace: str
    target: str  # user id (dm) or channel id
    owner: str  # uid of whoever set it up
    cadence: str = "daily"  # "daily" or "weekly"
    weekday: int = 0  # 0 = Monday, used by weekly
    at: str = DEFAULT_TIME  # "HH:MM", local to `tz`
    tz: str = "UTC"
    size: int = 10
    created: float = field(default_factory=time.time)
    last_sent: float | None = None
    last_period: str | None = None

    @property
    def subscriber(self) -> str:
        """Whose "already sent" list this digest uses: the person, or the channel."""
        if self.kind == "dm":
            return self.owner
        return f"{self.platform}:{self.workspace}:{self.target}"

    def describe(self) -> str:
        """`daily at 09:00 (Europe/Berlin)` / `weekly on Monday at 08:30 (UTC)`."""
        when = "daily" if self.cadence == "daily" else f"weekly on {DAYS[self.weekday].title()}"
        return f"{when} at {self.at} ({self.tz})"

    def to_dict(self) -> dict:
        """JSON-ready form for the store."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Subscription:
        """Inverse of `to_dict` (unknown keys ignored)."""
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


def subscription_id(kind: str, platform: str, workspace: str, target: str) -> str:
    """Stable id: one DM subscription per person, one team digest per channel."""
    return f"{kind}:{platform}:{workspace}:{target}"


def parse_time(text: str) -> str:
    """`9`, `9:30`, `09:30`, `9am`, `5:15pm` -> `HH:MM`, or SubscriptionError."""
    match = _TIME.match(text.strip())
    if not match:
        raise SubscriptionError(f"“{text[:20]}” is not a time: use HH:MM, e.g. 09:00 or 17:30")
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    suffix = (match.group(3) or "").lower()
    if suffix:
        if not 1 <= hour <= 12:
            raise SubscriptionError("with am/pm the hour must be 1–12, e.g. 9am or 5:30pm")
        hour = hour % 12 + (12 if suffix == "pm" else 0)
    if hour > 23 or minute > 59:
        raise SubscriptionError(f"“{text[:20]}” is not a time of day: hours 0–23, minutes 0–59")
    return f"{hour:02d}:{minute:02d}"


def parse_timezone(text: str) -> str:
    """A valid IANA timezone name (case-insensitive), or SubscriptionError with examples."""
    name = text.strip()
    if name.upper() in ("UTC", "GMT", "Z"):
        return "UTC"
    if len(name) > 64:
        raise SubscriptionError("that is not a timezone: use a name like Europe/Berlin or UTC")
    try:
        ZoneInfo(name)
        return name
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    lowered = {tz.lower(): tz for tz in available_timezones()}
    if name.lower() in lowered:
        return lowered[name.lower()]
    raise SubscriptionError(
        f"“{name[:40]}” is not a timezone I know: use a name like Europe/Berlin, "
        "America/New_York, Asia/Tokyo or UTC"
    )


def timezone_suggestions(prefix: str, limit: int = 25) -> list[str]:
    """Timezone names matching what someone has typed so far (for autocompletion)."""
    needle = prefix.strip().lower().replace(" ", "_")
    names = sorted(available_timezones())
    starts = [n for n in names if n.lower().startswith(needle)]
    contains = [n for n in names if needle in n.lower() and n not in starts]
    return (starts + contains)[:limit]


@dataclass(slots=True)
class Schedule:
    """The parsed part of `subscribe [daily|weekly <day>] [HH:MM] [timezone]`."""

    cadence: str = "daily"
    weekday: int = 0
    at: str | None = None
    tz: str | None = None


def parse_schedule(words: list[str]) -> Schedule:
    """Parse subscribe arguments in any order; unknown words raise a helpful error."""
    schedule = Schedule()
    rest = list(words)
    while rest:
        word = rest.pop(0)
        low = word.lower()
        if low in ("daily", "day", "everyday"):
            schedule.cadence = "daily"
        elif low in ("weekly", "week"):
            schedule.cadence = "weekly"
            if rest and _day(rest[0]) is not None:
                schedule.weekday = _day(rest.pop(0))  # type: ignore[assignment]
        elif _day(low) is not None:
            schedule.cadence, schedule.weekday = "weekly", _day(low)  # type: ignore[assignment]
        elif _TIME.match(low) or (":" in low and low.replace(":", "").isdigit()):
            schedule.at = parse_time(word)
        elif "/" in word or low in ("utc", "gmt") or _is_timezone(word):
            schedule.tz = parse_timezone(word)
        else:
            raise SubscriptionError(
                f"I did not understand “{word[:30]}”. Try: `subscribe`, `subscribe daily 08:30`, "
                "`subscribe weekly monday 09:00 Europe/Berlin`"
            )
    return schedule


def _day(word: str) -> int | None:
    """Weekday index of `monday`/`mon`/`Mo`, or None."""
    low = word.lower()
    for i, day in enumerate(DAYS):
        if len(low) >= 2 and day.startswith(low):
            return i
    return None


def _local(day: date, at: str, tz: ZoneInfo) -> datetime:
    """The UTC instant of wall-clock `at` on `day` in `tz` (a time in a gap: the gap's end)."""
    hour, minute = (int(x) for x in at.split(":"))
    local = datetime.combine(day, dtime(hour, minute), tzinfo=tz)
    # An ambiguous time reads as its first occurrence (fold=0).
    instant = local.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == local.replace(tzinfo=None):
        return instant
    # `at` does not exist (clocks sprang forward): the two readings of it lie either side
    # of the change, so search between them for the first instant with the new offset.
    after = instant.astimezone(tz).utcoffset()
    lo, hi = int(local.replace(fold=1).astimezone(UTC).timestamp()), int(instant.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def latest_slot(sub: Subscription, now: datetime) -> tuple[str, datetime] | None:
    """The most recent scheduled time at or before `now`: (period key, UTC instant)."""
    tz = ZoneInfo(sub.tz)
    today = now.astimezone(tz).date()
    for back in range(0, 9):
        day = today - timedelta(days=back)
        if sub.cadence == "weekly" and day.weekday() != sub.weekday:
            continue
        instant = _local(day, sub.at, tz)
        if instant <= now:
            if sub.cadence == "weekly":
                year, week, _ = day.isocalendar()
                return f"{year}-W{week:02d}", instant
            return day.isoformat(), instant
    return None


def due(sub: Subscription, now: datetime, grace: timedelta = GRACE) -> tuple[str, datetime] | None:
    """The period to send now, if one fell due within the grace window after `created`."""
    slot = latest_slot(sub, now)
    if slot is None:
        return None
    period, instant = slot
    if instant.timestamp() < sub.created or now - instant > grace:
        return None
    if sub.last_period == period:
        return None
    return period, instant


def next_slot(sub: Subscription, now: datetime) -> datetime:
    """When the next digest will be sent (for `settings`)."""
    tz = ZoneInfo(sub.tz)
    today = now.astimezone(tz).date()
    for ahead in range(0, 9):
        day = today + timedelta(days=ahead)
        if sub.cadence == "weekly" and day.weekday() != sub.weekday:
            continue
        instant = _local(day, sub.at, tz)
        if instant > now:
            return instant
    raise AssertionError("a weekly slot always falls within 8 days")


def _is_timezone(word: str) -> bool:
    """Whether a bare word is a timezone name (`EST`, `Japan`, `Singapore`)."""
    try:
        parse_timezone(word)
    except SubscriptionError:
        return False
    return True
