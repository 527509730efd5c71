"""The signals the hybrid blends and the knobs of its training procedure."""

from __future__ import annotations

from dataclasses import dataclass, field

from recommender.cf import ALS_GRID, AlsParams

# Each signal is a score of a person for a paper:
#   content  whitened sentence-embedding profile (TF-IDF LSA when no encoder is installed)
#   tfidf    TF-IDF (LSA) profile
#   imc      a bilinear content model learned from the team's interactions
#   knn      item-item co-occurrence (people who liked this also liked)
#   als      implicit ALS; papers nobody has touched get factors mapped from their content
#   pop      community prior: interactions in training, Hugging Face upvotes, GitHub stars
SIGNALS = ("content", "tfidf", "imc", "knn", "als", "pop")
DENSE = ("content", "tfidf", "imc", "als", "pop")
SPARSE = ("knn",)
TUNE_KS = (10, 20, 50, 100, 300)


@dataclass(slots=True)
class FitConfig:
    """Knobs of the training procedure (the same procedure for every dataset)."""

    signals: tuple[str, ...] = SIGNALS
    als: AlsParams = field(default_factory=AlsParams)
    als_grid: tuple[AlsParams, ...] = ALS_GRID
    # The ALS grid is only searched while one fit stays cheap (interactions × factors).
    grid_budget: float = 4e7
    validation_users: int = 2000
    min_validation_users: int = 20
    validation_cells: float = 3e7  # cap on validation users × catalogue size
    # Above this many papers, validation ranks held-out papers among a uniform sample
    # of this many (depths scaled to match): the ranking is the same in expectation.
    validation_items: int = 20000
    holdout_fraction: float = 0.2
    debias_power: float = 2.0
    # Used only when no validation split can be carved (every user has a single paper):
    # two content readings, so text a sentence encoder reads badly (jargon, stemmed bags
    # of words) still has TF-IDF; the community prior breaks ties for thin histories.
    default_weights: dict[str, float] = field(
        default_factory=lambda: {"content": 1.0, "tfidf": 0.1, "pop": 0.1}
    )
    # A fixed blend instead of a tuned one (both the catalogue and new-papers blends).
    weights: dict[str, float] | None = None
    # Which interactions validation hides: "both" holds out half at random and half
    # weighted toward rarely saved papers (∝ count^-debias_power), and the blend must do
    # well on each; "random", "debiased" and "newest" hold out one kind only.
    holdout: str = "both"
    cold_items: int = 2000
    cold_fraction: float = 0.1
    whitening: tuple[float | None, ...] = (None, 4.0, 1.0)
    imc_ridge: tuple[float, ...] = (0.1, 0.3, 1.0)
    knn_neighbours: int = 100
    # A refit keeps the last full fit's tuning (ALS settings, blend, variants) while the
    # interactions have grown by less than `retune_growth` since it, for at most
    # `retune_hours`; below `retune_above` interactions a full fit is cheap: always tune.
    retune_growth: float = 0.1
    retune_hours: float = 24.0
    retune_above: int = 50_000
    seed: int = 0

    @property
    def default_imc_ridge(self) -> float:
        """The imc ridge used until validation picks one: the middle option."""
        return self.imc_ridge[len(self.imc_ridge) // 2]
