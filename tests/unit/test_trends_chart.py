"""The trends chart: a PNG with both panels, and a clear absence without matplotlib."""

from __future__ import annotations

import sys

import pytest

from bot.trends import Rising, TrendReport, chart

PNG = b"\x89PNG\r\n\x1a\n"


def report() -> TrendReport:
    return TrendReport(
        reactions=[Rising("diffusion models", 4, 0.5)],
        papers=[Rising("agents", 9, 2.0), Rising("graph neural", 5, 1.25)],
    )


def test_the_chart_is_a_png() -> None:
    data = chart(report())
    assert data is not None and data.startswith(PNG)
    # One panel only when the other has nothing to show.
    single = chart(TrendReport(papers=[Rising("agents", 9, 2.0)]))
    assert single is not None and single.startswith(PNG)


def test_without_matplotlib_there_is_no_chart(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import matplotlib` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert chart(report()) is None
