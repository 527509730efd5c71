"""PaperService on a real Redis: search per asker, filters, training, persistence, freshness."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bot.core import UNAVAILABLE, BotCore
from bot.feedback import button_value
from bot.ports import Context
from recommender.ingest import ingest
from recommender.service import PaperService, Preferences
from recommender.sources import parse_body
from recommender.store import Store
from recommender.types import Feedback

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seed_papers.jsonl"
T0 = datetime(2026, 1, 14, 6, 0, tzinfo=UTC)
AUTHORED = [
    {
        "arxiv_id": "2601.00001",
        "title": "Compilers for Diffusion Models",
        "abstract": "We compile diffusion models for fast sampling with guidance.",
        "authors": ["Grace Hopper", "Alan Turing"],
    },
    {
        "arxiv_id": "2601.00002",
        "title": "Diffusion Models on a Budget",
        "abstract": "Cheap diffusion models and guidance for small labs.",
        "authors": ["Ada Lovelace"],
    },
]


def add(store: Store, records: list[dict], when: datetime = T0) -> list[str]:
    body = "\n".join(json.dumps(r) for r in records).encode()
    return ingest(store, parse_body("jsonl", body, now=when), "jsonl").new_ids


@pytest.fixture
def service(store: Store) -> PaperService:
    ingest(store, parse_body("jsonl", SEED.read_bytes(), now=T0), "jsonl")
    add(store, AUTHORED)
    return PaperService(store, encoder=None)


def titled(store: Store, word: str) -> list[str]:
    return [p.id for p in store.iter_papers() if word in p.title.lower()]


def test_search_reranks_for_the_asker(service: PaperService, store: Store) -> None:
    fan = "slack:T1:U1"
    service.train()  # the model a new team starts with; reactions are folded in at once
    for pid in titled(store, "recommend")[:4]:
        service.record(fan, pid, Feedback.LIKE)
    for pid in titled(store, "pruning")[:3]:
        service.record(fan, pid, Feedback.DISLIKE)
    query = "large language models"
    anonymous = [r.paper.id for r in service.search(None, query, 10)]
    newcomer = [r.paper.id for r in service.search("slack:T1:U2", query, 10)]
    personal = [r.paper.id for r in service.search(fan, query, 10)]
    assert anonymous == newcomer
    assert personal != anonymous
    recommend = set(titled(store, "recommend"))
    assert sum(p in recommend for p in personal[:5]) > sum(p in recommend for p in anonymous[:5])
    # Re-ranking reorders what the text matched; it does not invent matches.
    hits = {r.paper.id for r in service.search(None, query, 50)}
    assert set(personal) <= hits


def test_search_keeps_rated_papers_but_applies_filters(service: PaperService, store: Store) -> None:
    uid = "slack:T1:U1"
    hopper = store.resolve_ids(["2601.00001"])[0]
    service.record(uid, hopper, Feedback.LIKE)
    assert hopper in [r.paper.id for r in service.search(uid, "compilers diffusion", 5)]
    muted = Preferences(muted={"grace hopper"})
    found = service.search(uid, "compilers diffusion", 5, prefs=muted)
    assert hopper not in [r.paper.id for r in found]


def test_rank_with_muted_and_excluded(service: PaperService, store: Store) -> None:
    papers = list(store.iter_papers())
    hopper, lovelace = store.resolve_ids(["2601.00001", "2601.00002"])
    everything = {r.paper.id for r in service.rank(["u"], papers, len(papers))}
    assert {hopper, lovelace} <= everything

    muted = service.rank(["u"], papers, len(papers), prefs=Preferences(muted={"alan turing"}))
    assert {r.paper.id for r in muted} == everything - {hopper}

    no_diffusion = service.rank(
        ["u"], papers, len(papers), prefs=Preferences(exclude={"diffusion"})
    )
    left = {r.paper.id for r in no_diffusion}
    for p in papers:
        mentions = "diffusion" in f"{p.title} {p.abstract}".lower()
        assert (p.id in left) != mentions

    phrase = service.rank(["u"], papers, len(papers), prefs=Preferences(exclude={"small labs"}))
    assert {r.paper.id for r in phrase} == everything - {lovelace}

    boosted = service.rank(["u"], papers, 5, prefs=Preferences(topics={"diffusion"}))
    assert all("diffusion" in f"{r.paper.title} {r.paper.abstract}".lower() for r in boosted)
    authored = [p for p in papers if p.id in (hopper, lovelace)]
    assert service.rank(["u"], authored, 5, prefs=Preferences(exclude={"diffusion"})) == []
    assert service.rank(["u"], [], 5) == []


def test_rank_explains_with_liked_papers(service: PaperService, store: Store) -> None:
    uid = "slack:T1:U1"
    service.train()
    diffusion = titled(store, "diffusion")
    for pid in diffusion[:3]:
        service.record(uid, pid, Feedback.LIKE)
    top = service.rank([uid], list(store.iter_papers()), 3)
    assert all(r.paper.id not in diffusion[:3] for r in top)
    reasons = [r.explanation.text() for r in top]
    assert all(r.startswith(("Because you liked", "Matches your interest in")) for r in reasons)
    assert any("diffusion" in reason.lower() for reason in reasons)


def test_train_then_load_gives_the_same_scores(
    service: PaperService, store: Store, tmp_path: Path
) -> None:
    users = ["slack:T1:U1", "slack:T1:U2", "slack:T1:U3"]
    ids = store.all_paper_ids()
    for i, uid in enumerate(users):
        for pid in ids[i * 7 : i * 7 + 6]:
            service.record(uid, pid, Feedback.LIKE)
        service.record(uid, ids[-1 - i], Feedback.DISLIKE)
    trainer = PaperService(store, encoder=None, model_dir=tmp_path)
    trainer.train()
    saved = list(tmp_path.glob("model-*.npz"))
    assert len(saved) == 1
    assert store.current_model()["path"] == str(saved[0])

    loader = PaperService(store, encoder=None, model_dir=tmp_path)
    loaded = loader.load_or_train()
    assert loader.model_version == trainer.model_version
    people = [*users, "slack:T1:nobody"]
    assert loaded.paper_ids == trainer.model.paper_ids
    np.testing.assert_allclose(loaded.score(people), trainer.model.score(people), rtol=1e-5)
    papers = list(store.iter_papers())
    assert [r.paper.id for r in loader.rank(users[:1], papers, 10)] == [
        r.paper.id for r in trainer.rank(users[:1], papers, 10)
    ]
    # The loaded model knows which feedback it saw: nothing new, no refit needed.
    assert not loader.needs_training()
    loader.record(users[0], ids[50], Feedback.LIKE)
    assert loader.needs_training()

    # A second training replaces the file; the old one is removed.
    trainer.train()
    assert list(tmp_path.glob("model-*.npz")) == [Path(store.current_model()["path"])]


def test_load_or_train_trains_when_nothing_is_saved(store: Store, tmp_path: Path) -> None:
    ingest(store, parse_body("jsonl", SEED.read_bytes(), now=T0), "jsonl")
    service = PaperService(store, encoder=None, model_dir=tmp_path)
    assert store.current_model() is None
    model = service.load_or_train()
    assert len(model.paper_ids) == store.paper_count()
    assert store.current_model() is not None
    assert len(service.index) == store.paper_count()


def test_needs_training_flips_after_feedback(service: PaperService, store: Store) -> None:
    assert service.needs_training()
    service.train()
    assert not service.needs_training()
    pid = store.all_paper_ids()[0]
    service.record("slack:T1:U1", pid, Feedback.LIKE)
    assert service.needs_training()
    service.train()
    assert not service.needs_training()
    service.record("slack:T1:U1", pid, Feedback.LIKE, removed=True)
    assert service.needs_training()


def test_refresh_makes_new_papers_searchable_and_recommendable(
    service: PaperService, store: Store
) -> None:
    uid = "slack:T1:U1"
    service.train()
    # The first look indexes the whole catalogue (training only trains); the model knows it.
    assert service.refresh() == store.paper_count()
    assert len(service.model.paper_ids) == store.paper_count()
    assert service.refresh() == 0
    for pid in titled(store, "mixture")[:3] + titled(store, "expert")[:2]:
        service.record(uid, pid, Feedback.LIKE)
    new = add(
        store,
        [
            {
                "arxiv_id": "2601.05555",
                "title": "Sparse Mixture-of-Experts Routing with Expert Choice",
                "abstract": "A mixture of experts model whose router lets experts choose tokens; "
                "expert routing and load balancing for sparse MoE language models.",
            }
        ],
        when=datetime(2026, 1, 15, tzinfo=UTC),
    )
    assert len(new) == 1
    assert new[0] not in service.model.pidx
    assert service.refresh() == 1
    assert new[0] in service.index
    assert new[0] in service.model.pidx
    assert service.refresh() == 0
    assert service.search(None, "expert choice routing", 3)[0].paper.id == new[0]
    picked = service.rank([uid], list(store.iter_papers()), 5)
    assert new[0] in [r.paper.id for r in picked]


def test_search_sees_papers_ingested_elsewhere(service: PaperService, store: Store) -> None:
    service.train()
    new = add(store, [{"title": "Quantum Annealing for Sudoku", "abstract": "Annealing sudoku."}])
    assert service.search(None, "annealing sudoku", 3)[0].paper.id == new[0]


def test_teammates_counts_one_workspace(service: PaperService, store: Store) -> None:
    pid = store.all_paper_ids()[0]
    service.record("slack:T1:U1", pid, Feedback.LIKE)
    service.record("slack:T1:U2", pid, Feedback.SAVE)
    service.record("slack:T1:U3", pid, Feedback.DISLIKE)
    service.record("slack:T2:U1", pid, Feedback.LIKE)
    assert service.teammates([pid], "slack:T1") == {pid: 2}
    assert service.teammates([pid], "slack:T2") == {pid: 1}
    assert service.teammates([pid], "discord:T1") == {pid: 0}


def test_dead_redis_gets_the_polite_reply() -> None:
    client = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    core = BotCore(PaperService(Store(client, where="redis://127.0.0.1:1"), encoder=None))
    ctx = Context("slack", "T1", "U1", channel="C1")
    for text in ("settings", "search diffusion", "digest", "subscribe", "help"):
        assert core.answer(ctx, text).text == UNAVAILABLE
    assert core.button(ctx, button_value(Feedback.LIKE, "2401.00001")) == UNAVAILABLE
    assert core.reaction(ctx, "slack:C1:1.0", "+1", removed=False) is None
    # Empty text needs no database: it is answered.
    assert core.answer(ctx, "").text.startswith("*paperbot*")
    client.close()


def test_a_retrain_rereads_only_the_people_whose_feedback_changed(
    service: PaperService, store: Store
) -> None:
    papers = [p.id for p in store.iter_papers()]
    for i, user in enumerate(("slack:T1:U1", "slack:T1:U2", "slack:T1:U3")):
        for pid in papers[i * 5 : i * 5 + 5]:
            service.record(user, pid, Feedback.LIKE)
    first = service.train()
    assert service._feedback.last_read == 3
    service.record("slack:T1:U2", papers[40], Feedback.SAVE)
    second = service.train()
    assert service._feedback.last_read == 1  # only U2 was read again
    assert second.report["interactions"] == first.report["interactions"] + 1
    row = second.R[second.uidx["slack:T1:U2"]]
    assert row[0, second.pidx[papers[40]]] == pytest.approx(2.0)
