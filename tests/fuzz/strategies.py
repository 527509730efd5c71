"""Hypothesis strategies for hostile input, and the example count every fuzz test uses.

`PAPERBOT_FUZZ_EXAMPLES` sets the number of generated cases per test (CI runs 1,000;
`tests/fuzz/run.py` runs 10,000). CI runs are derandomized so a red build reproduces.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("PAPERBOT_FUZZ_EXAMPLES", "1000"))
# A fixed seed in CI (reproducible); the long script explores new cases each run.
RANDOM = os.environ.get("PAPERBOT_FUZZ_RANDOM") == "1"


def fuzz_settings(examples: int | None = None) -> settings:
    """Settings for one fuzz test: its count, no deadline (shared noisy machine)."""
    return settings(
        max_examples=examples or EXAMPLES,
        deadline=None,
        derandomize=not RANDOM,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
        print_blob=True,
    )


COMMANDS = (
    "search",
    "subscribe",
    "unsubscribe",
    "settings",
    "digest",
    "topics",
    "mute",
    "unmute",
    "saved",
    "export",
    "help",
    "find",
    "sub",
    "topic",
    "config",
    "?",
    "forget-me",
)
HOSTILE = (
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "@everyone",
    "@here",
    "<@U123ABC>",
    "<#C42|general>",
    "<!subteam^S1>",
    "<https://evil.example|click me>",
    "&lt;!channel&gt;",
    "&amp;",
    "*bold*",
    "_it_",
    "~s~",
    "`code`",
    "```block```",
    "> quote",
    "<b>html</b>",
    "<script>x</script>",
    "[link](https://evil.example)",
    "||spoiler||",
    "\u202eevil\u202c",
    "\u2066iso\u2069",
    "\u200b",
    "\u200d",
    "\ufeff",
    "\x00",
    "\x1b[31m",
    "\r\n",
    "\t",
    "\u0085",
    "\u2028",
    "👩‍🔬",
    "🏳️‍🌈",
    "😀" * 3,
    "Ω≈ç√",
    "الانتباه",
    "注意力",
    "ε-greedy",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "9" * 40,
    "-1",
    "1e309",
    "NaN",
    "0x10",
    "999999999999999999999999:99",
    "25:61",
    "24:00",
    "9am",
    "12:60pm",
    "-0:00",
    "Europe/Berlin",
    "Etc/GMT+14",
    "Etc/GMT-14",
    "America/Argentina/ComodRivadavia",
    "../../etc/passwd",
    "UTC+99",
    "GMT-25",
    "Mars/Olympus",
    "europe/berlin",
    "Asia/Kathmandu",
    "since:2024-02-30",
    "since:0000-00-00",
    "since:9999-12-31",
    "since:-1",
    "since:1e9",
    "since:2024-13",
    "since:",
    "author:",
    'author:"',
    'author:"Ada',
    "cat:",
    "cat:cs.*",
    "cat:\u0000",
    "n:99999999999999",
    "weekly",
    "daily",
    "monday",
    "channel",
    "confirm",
    "add",
    "remove",
    "exclude",
    "include",
    "author",
    ",",
    ",,,",
    '"',
    "'",
    "\\",
    "%s",
    "{0}",
)


def _word() -> st.SearchStrategy[str]:
    """One argument: hostile tokens, arbitrary unicode, or occasionally a 10 kB string."""
    return st.one_of(
        st.sampled_from(HOSTILE),
        st.text(max_size=30),
        st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=12),
        st.integers(min_value=-(10**30), max_value=10**30).map(str),
        st.from_regex(r"\A\d{1,5}-\d{1,3}-\d{1,3}\Z").map(lambda d: "since:" + d),
        st.builds(lambda c, n: c * n, st.sampled_from("a<@&é😀 \u202e"), st.integers(1, 10_000)),
    )


@st.composite
def command_texts(draw: st.DrawFn) -> str:
    """What someone might type after `/papers`: a command (or anything) and odd arguments."""
    head = draw(st.one_of(st.sampled_from(COMMANDS), st.sampled_from(HOSTILE), st.text(max_size=8)))
    words = draw(st.lists(_word(), max_size=8))
    joiner = draw(st.sampled_from([" ", ", ", "  ", "\n", " ,"]))
    return f"{head} {joiner.join(words)}"
