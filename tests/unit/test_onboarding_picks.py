"""The first-use card's picks: one paper per content area, not the most popular cluster."""

from __future__ import annotations

import numpy as np

from recommender.model.ranking import Candidates
from recommender.onboarding import card_picks, popular_picks


def pool(areas: int = 8, per_area: int = 30, seed: int = 0) -> tuple[Candidates, np.ndarray]:
    """Papers in well-separated areas; area 0 is far more popular than the rest."""
    rng = np.random.default_rng(seed)
    centres = np.eye(areas, 32, dtype=np.float32) * 4
    area = np.repeat(np.arange(areas), per_area)
    dense = centres[area] + 0.3 * rng.standard_normal((len(area), 32)).astype(np.float32)
    prior = rng.standard_normal(len(area)).astype(np.float32) + 5.0 * (area == 0)
    n = len(area)
    cands = Candidates(
        ids=tuple(f"p{i}" for i in range(n)),
        cols=np.arange(n),
        dense=dense,
        prior=prior,
        warm=np.zeros(n, dtype=bool),
        weights=np.zeros(6, dtype=np.float32),
        signals=(),
        stacked=np.zeros((n, 0), np.float32),
        widths=(),
        knn=None,
    )
    return cands, area


def test_the_card_takes_one_paper_from_every_area() -> None:
    cands, area = pool()
    picks = card_picks(cands, 8)
    assert len(picks) == 8 == len(set(picks))
    assert sorted(area[picks].tolist()) == list(range(8))
    # Within its area, each pick is well regarded: above the area's median prior.
    for j in picks:
        same = cands.prior[area == area[j]]
        assert cands.prior[j] >= np.median(same)


def test_the_most_popular_papers_crowd_into_one_area() -> None:
    cands, area = pool()
    assert set(area[popular_picks(cands, 8)].tolist()) == {0}


def test_small_pools_and_papers_without_text() -> None:
    cands, _ = pool(areas=2, per_area=3)
    assert card_picks(cands, 8) == list(range(6))
    blank, _ = pool()
    blank = Candidates(
        **{
            **{f: getattr(blank, f) for f in blank.__dataclass_fields__},
            "dense": np.zeros_like(blank.dense),
        }
    )
    # Without content to tell areas apart, the community prior decides.
    assert card_picks(blank, 8) == popular_picks(blank, 8)
