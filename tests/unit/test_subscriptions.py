"""Subscriptions: parsing what people type, and when each digest falls due (fake clock)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.subscriptions import (
    GRACE,
    Subscription,
    SubscriptionError,
    due,
    latest_slot,
    next_slot,
    parse_schedule,
    parse_time,
    parse_timezone,
    subscription_id,
    timezone_suggestions,
)

NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    """A UTC instant."""
    return datetime(*args, tzinfo=UTC)


def sub(**kw) -> Subscription:
    """A DM subscription created long before any instant the tests use."""
    fields = {
        "id": "dm:slack:T1:U1",
        "kind": "dm",
        "platform": "slack",
        "workspace": "T1",
        "target": "U1",
        "owner": "slack:T1:U1",
        "created": utc(2025, 1, 1).timestamp(),
    }
    fields.update(kw)
    return Subscription(**fields)


def simulate(s: Subscription, start: datetime, end: datetime, step=timedelta(minutes=5)):
    """A scheduler ticking every `step`: sends whatever is due; returns (period, tick) sent."""
    fired = []
    now = start
    while now <= end:
        slot = due(s, now)
        if slot is not None:
            fired.append((slot[0], now))
            s.last_period = slot[0]
            s.last_sent = now.timestamp()
        now += step
    return fired


# -- parse_time ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9", "09:00"),
        ("9:30", "09:30"),
        ("09:30", "09:30"),
        ("0:05", "00:05"),
        ("23:59", "23:59"),
        ("9am", "09:00"),
        ("9AM", "09:00"),
        ("9 pm", "21:00"),
        ("12pm", "12:00"),
        ("12am", "00:00"),
        ("5:15pm", "17:15"),
        (" 7:45 ", "07:45"),
    ],
)
def test_parse_time_accepts_common_forms(text: str, expected: str) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("24:00", "hours 0–23"),
        ("9:60", "minutes 0–59"),
        ("13pm", "1–12"),
        ("0am", "1–12"),
        ("noon", "HH:MM"),
        ("9.30", "HH:MM"),
        ("", "HH:MM"),
    ],
)
def test_parse_time_errors_say_what_is_valid(text: str, hint: str) -> None:
    with pytest.raises(SubscriptionError) as info:
        parse_time(text)
    assert hint in str(info.value)


# -- parse_timezone -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Europe/Berlin", "Europe/Berlin"),
        ("europe/berlin", "Europe/Berlin"),
        ("AMERICA/NEW_YORK", "America/New_York"),
        (" asia/tokyo ", "Asia/Tokyo"),
        ("UTC", "UTC"),
        ("utc", "UTC"),
        ("gmt", "UTC"),
        ("Z", "UTC"),
        ("Etc/UTC", "Etc/UTC"),
    ],
)
def test_parse_timezone_is_case_insensitive_with_utc_aliases(text: str, expected: str) -> None:
    assert parse_timezone(text) == expected


@pytest.mark.parametrize(
    "text", ["Mars/Olympus_Mons", "Berlin time", "../../etc/passwd", "Europe", "", "+02:00"]
)
def test_parse_timezone_garbage_lists_examples(text: str) -> None:
    with pytest.raises(SubscriptionError) as info:
        parse_timezone(text)
    message = str(info.value)
    for example in ("Europe/Berlin", "America/New_York", "UTC"):
        assert example in message


def test_timezone_suggestions_prefer_prefix_matches() -> None:
    found = timezone_suggestions("europe/ber")
    assert found[0] == "Europe/Berlin"
    assert all("new_york" in n.lower() for n in timezone_suggestions("new york"))
    assert len(timezone_suggestions("a", limit=5)) == 5


# -- parse_schedule ---------------------------------------------------------------------------


def test_parse_schedule_defaults_leave_time_and_zone_open() -> None:
    schedule = parse_schedule([])
    assert (schedule.cadence, schedule.at, schedule.tz) == ("daily", None, None)


@pytest.mark.parametrize(
    "words", list(itertools.permutations(["weekly", "08:30", "Europe/Berlin"]))
)
def test_parse_schedule_any_order(words: tuple[str, ...]) -> None:
    # A day named anywhere makes it weekly on that day.
    schedule = parse_schedule([*words, "monday"])
    assert (schedule.cadence, schedule.weekday, schedule.at, schedule.tz) == (
        "weekly",
        0,
        "08:30",
        "Europe/Berlin",
    )


def test_parse_schedule_time_zone_first_then_day() -> None:
    schedule = parse_schedule(["america/new_york", "5:15pm", "Fri"])
    assert (schedule.cadence, schedule.weekday, schedule.at, schedule.tz) == (
        "weekly",
        4,
        "17:15",
        "America/New_York",
    )


@pytest.mark.parametrize(
    ("words", "weekday"),
    [
        (["weekly", "monday"], 0),
        (["weekly", "Tue"], 1),
        (["wednesday"], 2),
        (["th"], 3),
        (["FRIDAY"], 4),
        (["sat"], 5),
        (["su"], 6),
        (["weekly"], 0),
    ],
)
def test_parse_schedule_weekday_forms(words: list[str], weekday: int) -> None:
    schedule = parse_schedule(words)
    assert schedule.cadence == "weekly"
    assert schedule.weekday == weekday


def test_parse_schedule_daily_and_utc() -> None:
    schedule = parse_schedule(["daily", "7am", "utc"])
    assert (schedule.cadence, schedule.at, schedule.tz) == ("daily", "07:00", "UTC")


@pytest.mark.parametrize("word", ["tomorrow", "often", "@here", "'; DROP TABLE subs; --"])
def test_parse_schedule_unknown_word_is_a_helpful_error(word: str) -> None:
    with pytest.raises(SubscriptionError) as info:
        parse_schedule(["daily", word])
    message = str(info.value)
    assert word[:30] in message
    assert "subscribe weekly monday 09:00 Europe/Berlin" in message


def test_parse_schedule_bad_time_and_zone_are_explained() -> None:
    with pytest.raises(SubscriptionError, match="hours 0–23"):
        parse_schedule(["daily", "24:00"])
    with pytest.raises(SubscriptionError, match="Europe/Berlin"):
        parse_schedule(["Mars/Olympus_Mons"])


# -- the subscription record -------------------------------------------------------------------


def test_subscription_ids_subscriber_and_description() -> None:
    assert subscription_id("dm", "slack", "T1", "U1") == "dm:slack:T1:U1"
    dm = sub()
    channel = sub(id="channel:slack:T1:C9", kind="channel", target="C9", tz="Europe/Berlin")
    assert dm.subscriber == "slack:T1:U1"
    assert channel.subscriber == "slack:T1:C9"
    assert dm.describe() == "daily at 09:00 (UTC)"
    weekly = sub(cadence="weekly", weekday=2, at="08:30", tz="Asia/Tokyo")
    assert weekly.describe() == "weekly on Wednesday at 08:30 (Asia/Tokyo)"


def test_subscription_round_trips_and_ignores_unknown_keys() -> None:
    original = sub(cadence="weekly", weekday=4, last_period="2026-W03", last_sent=123.0)
    data = original.to_dict() | {"added_by_a_future_version": True}
    assert Subscription.from_dict(data) == original


# -- when a digest is due ---------------------------------------------------------------------


def test_berlin_nine_oclock_is_eight_utc_in_winter_and_seven_in_summer() -> None:
    s = sub(tz="Europe/Berlin")
    assert latest_slot(s, utc(2026, 1, 14, 8, 0)) == ("2026-01-14", utc(2026, 1, 14, 8, 0))
    assert latest_slot(s, utc(2026, 1, 14, 7, 59))[0] == "2026-01-13"
    assert latest_slot(s, utc(2026, 7, 14, 7, 0)) == ("2026-07-14", utc(2026, 7, 14, 7, 0))
    assert latest_slot(s, utc(2026, 7, 14, 6, 59))[0] == "2026-07-13"
    assert next_slot(s, utc(2026, 1, 14, 7, 0)) == utc(2026, 1, 14, 8, 0)
    assert next_slot(s, utc(2026, 1, 14, 8, 0)) == utc(2026, 1, 15, 8, 0)
    assert next_slot(s, utc(2026, 7, 14, 12, 0)) == utc(2026, 7, 15, 7, 0)


def test_berlin_daily_fires_at_nine_local_across_spring_forward() -> None:
    s = sub(tz="Europe/Berlin")
    fired = simulate(s, utc(2026, 3, 27, 16), utc(2026, 3, 30, 12))
    assert fired == [
        ("2026-03-28", utc(2026, 3, 28, 8, 0)),
        ("2026-03-29", utc(2026, 3, 29, 7, 0)),
        ("2026-03-30", utc(2026, 3, 30, 7, 0)),
    ]


def test_time_in_the_spring_forward_gap_fires_once_just_after_it() -> None:
    # 2026-03-08 02:30 does not exist in New York: clocks jump from 02:00 EST to 03:00 EDT.
    s = sub(at="02:30", tz="America/New_York")
    fired = simulate(s, utc(2026, 3, 7, 0), utc(2026, 3, 9, 23))
    assert [period for period, _ in fired] == ["2026-03-07", "2026-03-08", "2026-03-09"]
    gap_day = fired[1][1]
    assert gap_day == utc(2026, 3, 8, 7, 0)  # 03:00 EDT, the first instant after the gap
    assert gap_day.astimezone(NEW_YORK).strftime("%H:%M %Z") == "03:00 EDT"
    assert fired[0][1] == utc(2026, 3, 7, 7, 30)  # 02:30 EST
    assert fired[2][1] == utc(2026, 3, 9, 6, 30)  # 02:30 EDT


def test_ambiguous_time_on_fall_back_day_fires_once_at_first_occurrence() -> None:
    # 2026-11-01 01:30 happens twice in New York (EDT, then EST an hour later).
    s = sub(at="01:30", tz="America/New_York")
    fired = simulate(s, utc(2026, 10, 31, 0), utc(2026, 11, 2, 23))
    assert [period for period, _ in fired] == ["2026-10-31", "2026-11-01", "2026-11-02"]
    assert fired[1][1] == utc(2026, 11, 1, 5, 30)  # 01:30 EDT
    # At the second 01:30 (EST) the day's digest has gone out: nothing is due.
    s.last_period = "2026-11-01"
    assert due(s, utc(2026, 11, 1, 6, 30)) is None
    assert latest_slot(s, utc(2026, 11, 1, 6, 30))[0] == "2026-11-01"


def test_weekly_slot_period_and_next() -> None:
    s = sub(cadence="weekly", weekday=0, at="08:30")
    wednesday = utc(2026, 1, 14, 12, 0)
    assert latest_slot(s, wednesday) == ("2026-W03", utc(2026, 1, 12, 8, 30))
    assert next_slot(s, wednesday) == utc(2026, 1, 19, 8, 30)
    fired = simulate(s, utc(2026, 1, 11), utc(2026, 1, 27), step=timedelta(minutes=30))
    assert fired == [
        ("2026-W03", utc(2026, 1, 12, 8, 30)),
        ("2026-W04", utc(2026, 1, 19, 8, 30)),
        ("2026-W05", utc(2026, 1, 26, 8, 30)),
    ]


def test_weekly_across_new_year_uses_iso_week_year() -> None:
    s = sub(cadence="weekly", weekday=3, at="10:00")  # Thursday 2026-12-31 is ISO week 53
    assert latest_slot(s, utc(2027, 1, 1, 0, 0))[0] == "2026-W53"


def test_grace_window_after_the_slot() -> None:
    s = sub()
    slot = utc(2026, 1, 14, 9, 0)
    # Just before the slot, yesterday's slot is long past its grace window.
    assert due(s, slot - timedelta(seconds=1)) is None
    assert due(s, slot) == ("2026-01-14", slot)
    assert due(s, slot + GRACE - timedelta(minutes=1)) == ("2026-01-14", slot)
    assert due(s, slot + GRACE) == ("2026-01-14", slot)
    assert due(s, slot + GRACE + timedelta(seconds=1)) is None
    assert timedelta(hours=6) == GRACE


def test_not_due_before_the_subscription_existed() -> None:
    created = utc(2026, 1, 14, 9, 30)
    s = sub(created=created.timestamp())
    # Today's 09:00 passed before the subscription was made: nothing until tomorrow.
    assert due(s, utc(2026, 1, 14, 10, 0)) is None
    assert due(s, utc(2026, 1, 15, 8, 59)) is None
    assert due(s, utc(2026, 1, 15, 9, 0)) == ("2026-01-15", utc(2026, 1, 15, 9, 0))


def test_not_due_twice_for_the_same_period() -> None:
    s = sub()
    now = utc(2026, 1, 14, 9, 5)
    period, _ = due(s, now)
    s.last_period = period
    assert due(s, now) is None
    assert due(s, now + timedelta(hours=3)) is None
    assert due(s, utc(2026, 1, 15, 9, 0))[0] == "2026-01-15"


def test_simulated_month_sends_exactly_one_digest_a_day() -> None:
    s = sub(at="07:15", tz="Asia/Kolkata")
    fired = simulate(s, utc(2026, 1, 1), utc(2026, 1, 31, 23), step=timedelta(minutes=15))
    periods = [p for p, _ in fired]
    assert len(periods) == len(set(periods)) == 31
    assert all(t.astimezone(ZoneInfo("Asia/Kolkata")).hour == 7 for _, t in fired)
