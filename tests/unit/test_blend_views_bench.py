"""`bench/blend_views.py` runs from a fresh install and measures through the ranking path."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from recommender import synthetic

ROOT = Path(__file__).resolve().parents[2]


def test_the_blend_views_bench_runs_small(tmp_path: Path) -> None:
    """On a small synthetic set: one row per setting and per candidate of the baseline, the
    baseline's own row at ratio 1, and the all-views candidate equal to what it picked
    (the shipped procedure picks one of its candidates, measured by the same code)."""
    spec = synthetic.SynthSpec("mixed", users=150, papers=400, groups=8, saves=(10, 20))
    data = synthetic.write(spec, tmp_path / "synth")
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "blend_views.py"), str(data), "--no-embeddings"],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    rows = {
        m.group(1).strip(): (float(m.group(2)), float(m.group(3)), m.group(4), m.group(5))
        for m in re.finditer(
            r"^(\S.*?|  candidate tuned on .*?)\s+(\d\.\d{4})\s+(\d\.\d{4})\s+(\S+)\s+(\S+)",
            out,
            re.MULTILINE,
        )
    }
    picked = rows["holdout=both: picked"]
    assert picked[2:] == ("1.000", "1.000")
    assert "holdout=random: picked" in rows
    candidates = [k for k in rows if k.startswith("candidate tuned on")]
    assert candidates[-1] == "candidate tuned on all views"
    assert len(candidates) == 3
    # The pick is one of the candidates: its recall equals that candidate's.
    assert any(rows[c][:2] == picked[:2] for c in candidates)
    assert 0.0 < picked[1] <= 1.0
