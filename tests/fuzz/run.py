"""The long fuzz run: every fuzz test at 10,000 random cases (CI runs 1,000, derandomized).

    PAPERBOT_TEST_REDIS_URL=redis://127.0.0.1:<port>/9 python tests/fuzz/run.py [--examples N]

Prints, per test, the cases run and how many failed, then pytest's verdict; exits non-zero
when any case failed. A failing case is printed by hypothesis with its shrunk input: keep
it as an `@example` on the test.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_TEST = re.compile(r"^(tests/fuzz/\S+::\S+):$")
_COUNTS = re.compile(r"(\d+) passing, (\d+) failing")


def main() -> int:
    """Run the fuzz tests with many random cases and summarise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument(
        "--log",
        type=Path,
        default=Path(tempfile.gettempdir()) / "paperbot-fuzz.log",
        help="where pytest's whole output goes (failing cases in full)",
    )
    parser.add_argument("tests", nargs="*", default=["tests/fuzz"])
    args = parser.parse_args()
    env = {**os.environ, "PAPERBOT_FUZZ_EXAMPLES": str(args.examples), "PAPERBOT_FUZZ_RANDOM": "1"}
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--hypothesis-show-statistics",
            *args.tests,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    current = None
    totals: dict[str, list[int]] = {}
    for line in proc.stdout.splitlines():
        match = _TEST.match(line.strip())
        if match:
            current = match.group(1)
            continue
        counts = _COUNTS.search(line)
        if counts and current:
            entry = totals.setdefault(current, [0, 0])
            entry[0] += int(counts.group(1))
            entry[1] += int(counts.group(2))
    for name, (passing, failing) in totals.items():
        print(f"{name}: {passing + failing} cases, {failing} failing")
    print(
        f"total: {sum(p + f for p, f in totals.values())} cases in "
        f"{time.monotonic() - started:.0f} s"
    )
    args.log.write_text(proc.stdout + proc.stderr, encoding="utf-8")
    print(f"pytest exit status {proc.returncode}; full output in {args.log}")
    if proc.returncode != 0:
        # Each failure's shrunk case and error, cut short (cases can be 10 kB strings).
        for line in proc.stdout.splitlines():
            if line.startswith(("E ", "FAILED")) and len(line) < 2000:
                print(line[:400])
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
