"""One way to rank: what `paperbot eval` measures is what a person's digest shows.

The same feedback goes into a dataset directory for `paperbot eval` and into the store the
bot serves from. For every person, eval's diversified top 10 over the whole catalogue is
exactly the order of that person's `/papers digest` over the same papers.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.commands import CommandService
from bot.ports import Context
from recommender.ingest import ingest
from recommender.service import PaperService
from recommender.sources import parse_body
from recommender.store import Store
from recommender.types import Feedback

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seed_papers.jsonl"
T0 = datetime(2026, 1, 14, 6, 0, tzinfo=UTC)
PEOPLE = {
    "U1": ("diffusion", "guidance"),
    "U2": ("language model", "reasoning"),
    "U3": ("expert", "routing"),
    "U4": ("recommend", "retrieval"),
    "U5": ("video", "image"),
    "U6": ("agent", "tool"),
}


def _feedback(store: Store) -> dict[str, list[tuple[str, float]]]:
    """Each person likes papers on their two words, dislikes one on another's."""
    papers = list(store.iter_papers())
    out: dict[str, list[tuple[str, float]]] = {}
    for user, words in PEOPLE.items():
        mine = [p.id for p in papers if any(w in p.text.lower() for w in words)]
        other = [p.id for p in papers if p.id not in mine]
        out[f"slack:T1:{user}"] = [(pid, 1.0) for pid in mine[:6]] + [(other[0], -1.0)]
    return out


@pytest.fixture
def world(store: Store, tmp_path: Path) -> tuple[PaperService, Path, dict]:
    """The store with seed papers and feedback, and the same data as an eval dataset."""
    ingest(store, parse_body("jsonl", SEED.read_bytes(), now=T0), "jsonl")
    feedback = _feedback(store)
    service = PaperService(store, encoder=None)
    for uid, rows in feedback.items():
        for pid, weight in rows:
            service.record(uid, pid, Feedback.LIKE if weight > 0 else Feedback.DISLIKE)
    service.train()
    data = tmp_path / "data"
    data.mkdir()
    # The catalogue in the order the bot reads it, so both fit the very same matrix.
    with (data / "papers.jsonl").open("w") as handle:
        for paper in store.iter_papers():
            row = {"id": paper.id, "title": paper.title, "abstract": paper.abstract}
            handle.write(json.dumps(row) + "\n")
    rows = sorted((u, p, w) for u, items in feedback.items() for p, w in items)
    (data / "train.tsv").write_text("".join(f"{u}\t{p}\t{w:g}\n" for u, p, w in rows))
    liked = {u: {p for p, _ in items} for u, items in feedback.items()}
    spare = [p.id for p in store.iter_papers()]
    test = [(u, next(p for p in spare if p not in liked[u])) for u in sorted(feedback)]
    (data / "test.tsv").write_text("".join(f"{u}\t{p}\n" for u, p in test))
    return service, data, feedback


def test_eval_ranks_each_person_exactly_as_their_digest(
    world: tuple[PaperService, Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, data, feedback = world
    out = tmp_path / "rankings.json"
    monkeypatch.setenv("PAPERBOT_EMBEDDINGS", "false")
    monkeypatch.setenv("PAPERBOT_DATA_DIR", str(tmp_path / "home"))
    code = main(
        [
            "eval",
            str(data),
            "--models",
            "hybrid",
            "--k",
            "10",
            "--diversify",
            "--rankings",
            str(out),
        ]
    )
    assert code == 0
    evaluated = json.loads(out.read_text())["hybrid"]
    assert set(evaluated) == set(feedback)
    commands = CommandService(service, clock=lambda: T0.timestamp() + 3600)
    for uid in sorted(feedback):
        user = uid.rsplit(":", 1)[1]
        reply = commands.handle(Context("slack", "T1", user, is_dm=True), "digest")
        shown = [card.paper_id for card in reply.cards]
        assert len(shown) == 10
        assert shown == evaluated[uid], uid
