"""PaperService on a real Redis: search per asker, filters, training, persistence, freshness."""

from __future__ import annotations

import json
import logging
import time
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
from recommender.model.config import FitConfig
from recommender.model.explain import close_threshold
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
    assert muted.hidden == 1

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
    hidden = service.rank(["u"], authored, 5, prefs=Preferences(exclude={"diffusion"}))
    assert list(hidden) == [] and hidden.hidden == 2
    assert list(service.rank(["u"], [], 5)) == []


def test_a_topic_is_a_phrase_not_its_words(service: PaperService, store: Store) -> None:
    """`large language models` lifts papers about that phrase, not every paper on "models"."""
    papers = list(store.iter_papers())
    phrase = "large language models"
    # The phrase in any case, hyphenation or number ("Large Language Model" counts too).
    having = {p.id for p in papers if "large language model" in p.text.lower().replace("-", " ")}
    only_models = {p.id for p in papers if "models" in p.text.lower() and p.id not in having}
    assert having and only_models
    ranked = service.rank(["u"], papers, len(papers), prefs=Preferences(topics={phrase}))
    assert all(r.paper.id in having for r in ranked[:5])
    for item in ranked:
        # Only papers with the whole phrase are lifted by it, and only they say so.
        said = item.explanation.text().startswith(f"On your topic “{phrase}”")
        assert said == (item.paper.id in having)
    # Excluding a phrase hides only papers that contain the whole phrase.
    rest = service.rank(["u"], papers, len(papers), prefs=Preferences(exclude={phrase}))
    assert rest.hidden == len(having)
    assert {r.paper.id for r in rest} == {p.id for p in papers} - having
    kept = service.rank(
        ["u"], papers, len(papers), prefs=Preferences(exclude={"reinforcement learning"})
    )
    learning = {p.id for p in papers if "learning" in p.text.lower()}
    assert learning & {r.paper.id for r in kept}


def test_rank_explains_with_close_liked_papers_only(service: PaperService, store: Store) -> None:
    uid = "slack:T1:U1"
    service.train()
    diffusion = titled(store, "diffusion")
    for pid in diffusion[:3]:
        service.record(uid, pid, Feedback.LIKE)
    top = service.rank([uid], list(store.iter_papers()), 3)
    assert all(r.paper.id not in diffusion[:3] for r in top)
    reasons = [r.explanation.text() for r in top]
    assert any(reason.startswith("Because you liked “") for reason in reasons)
    state = service.ensure_model()
    close = close_threshold(state.papers.dense)
    assert close >= 0.15
    for item in top:
        # Every paper named is one the person liked, and close to the recommended one.
        for pid, _title in item.explanation.liked:
            assert pid in diffusion[:3]
            a = state.papers.dense[state.pidx[pid]]
            b = state.papers.dense[state.pidx[item.paper.id]]
            assert float(a @ b) >= close
    # No list of generic shared words, ever.
    assert not any("Matches your interest" in reason for reason in reasons)


def test_train_publishes_to_redis_and_another_service_serves_it(
    service: PaperService, store: Store
) -> None:
    users = ["slack:T1:U1", "slack:T1:U2", "slack:T1:U3"]
    ids = store.all_paper_ids()
    for i, uid in enumerate(users):
        for pid in ids[i * 7 : i * 7 + 6]:
            service.record(uid, pid, Feedback.LIKE)
        service.record(uid, ids[-1 - i], Feedback.DISLIKE)
    trainer = PaperService(store, encoder=None)
    state = trainer.train()
    pointer = store.current_model()
    assert pointer["version"] == state.version == trainer.model_version
    assert pointer["feedback_version"] == store.feedback_version()
    assert "path" not in pointer  # nothing lives on one host's disk

    reader = PaperService(store, encoder=None)
    assert reader.model_version is None
    assert reader.check_model()
    assert reader.model_version == trainer.model_version
    people = [*users, "slack:T1:nobody"]
    papers = list(store.iter_papers())
    for uid in people:
        assert [r.paper.id for r in reader.rank([uid], papers, 10)] == [
            r.paper.id for r in trainer.rank([uid], papers, 10)
        ]
    # The loaded model knows which feedback it saw: nothing new, no refit needed.
    assert not reader.needs_training()
    reader.record(users[0], ids[50], Feedback.LIKE)
    assert reader.needs_training()


def test_old_versions_go_only_after_the_grace_period(store: Store) -> None:
    ingest(store, parse_body("jsonl", SEED.read_bytes(), now=T0), "jsonl")
    service = PaperService(store, encoder=None, grace=60)
    first = service.train().version
    second = service.train().version
    assert {v for v, _, _ in store.model_versions()} == {first, second}
    now = time.time()
    assert service.live.collect(now + 30) == []  # superseded, but within the grace period
    store.read_model(first)  # a slow process starts reading the old version ...
    assert store.model_versions()[0][2] >= now
    # ... which it does 100 s later, as far as the collector can tell:
    store.r.zadd("pb:model:read", {first: now + 100})
    assert service.live.collect(now + 130) == []  # read recently: kept
    assert service.live.collect(now + 161) == [first]
    assert {v for v, _, _ in store.model_versions()} == {second}
    assert service.live.collect(time.time() + 10_000) == []  # the current one always stays


def test_a_broken_version_keeps_the_previous_one_serving(
    service: PaperService, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    trainer = PaperService(store, encoder=None)
    good = trainer.train().version
    reader = PaperService(store, encoder=None)
    assert reader.check_model() and reader.model_version == good
    papers = list(store.iter_papers())
    before = [r.paper.id for r in reader.rank(["slack:T1:U1"], papers, 5)]
    # A newer version whose chunk went missing, then one whose bytes were damaged.
    for damage in ("missing", "corrupt"):
        blob = b"x" * 100
        meta = store.put_model(f"bad-{damage}", blob, {"feedback_version": 0})
        if damage == "missing":
            store.r.hdel(f"pb:model:{{bad-{damage}}}", "c0")
        else:
            store.r.hset(f"pb:model:{{bad-{damage}}}", "c0", b"y" * 100)
        store.publish_model(meta)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="recommender.serving.live"):
            assert not reader.check_model()
            assert not reader.check_model()  # retried later, not in a hot loop
        lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(lines) == 1
        assert f"bad-{damage}" in lines[0].getMessage() and good in lines[0].getMessage()
        assert reader.model_version == good
        assert [r.paper.id for r in reader.rank(["slack:T1:U1"], papers, 5)] == before
    # A good version published later is picked up.
    newer = trainer.train().version
    assert reader.check_model() and reader.model_version == newer


def test_a_publish_that_fails_half_way_leaves_nothing_behind(
    service: PaperService, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The artefact is written while the serving state is assembled: when assembling
    fails, the written version is removed and the pointer stays on the served one."""
    good = service.train().version

    def broken(_parts: object) -> None:
        raise MemoryError("no room to assemble")

    monkeypatch.setattr("recommender.serving.live.assemble", broken)
    service.record("slack:T1:U1", store.all_paper_ids()[0], Feedback.LIKE)
    with pytest.raises(MemoryError):
        service.train()
    assert store.current_model()["version"] == good == service.model_version
    assert [v for v, _, _ in store.model_versions()] == [good]
    assert list(store.r.scan_iter("pb:model:{*")) == [f"pb:model:{{{good}}}".encode()]


def test_a_model_swap_survives_redis_going_away(service: PaperService, store: Store) -> None:
    trainer = PaperService(store, encoder=None)
    trainer.train()
    down = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    reader = PaperService(store, encoder=None)
    reader.check_model()
    version = reader.model_version
    reader.live.store = Store(down, where="redis://127.0.0.1:1")
    assert not reader.check_model()  # no exception, nothing changes
    assert reader.model_version == version
    down.close()


def test_without_a_published_model_a_process_serves_the_content_default(
    service: PaperService, store: Store
) -> None:
    """No process trains on its own at start-up: until the trainer publishes, people get
    the content-only default, with their own feedback folded in."""
    uid = "slack:T1:U1"
    assert store.current_model() is None
    diffusion = titled(store, "diffusion")
    for pid in diffusion[:3]:
        service.record(uid, pid, Feedback.LIKE)
    top = service.rank([uid], list(store.iter_papers()), 5)
    assert store.current_model() is None  # nothing was trained or published
    assert service.ensure_model().version.startswith("default-")
    assert sum("diffusion" in r.paper.text.lower() for r in top) >= 3


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


def test_a_reaction_in_one_service_changes_the_next_ranking_in_another(
    service: PaperService, store: Store
) -> None:
    trainer = PaperService(store, encoder=None)
    trainer.train()
    other = PaperService(store, encoder=None)
    other.check_model()
    uid = "slack:T1:U1"
    papers = list(store.iter_papers())
    before = [r.paper.id for r in other.rank([uid], papers, 10)]
    for pid in titled(store, "diffusion")[:3]:
        trainer.record(uid, pid, Feedback.LIKE)  # handled by the first process
    after = other.rank([uid], papers, 10)
    assert [r.paper.id for r in after] != before
    assert sum("diffusion" in r.paper.text.lower() for r in after) >= 3
    assert other.people.folded >= 1
    # A swap to a new version loses nothing: the person is folded in again from Redis.
    trainer.train()
    other.check_model()
    assert [r.paper.id for r in other.rank([uid], papers, 10)][:3] == [
        r.paper.id for r in trainer.rank([uid], papers, 10)
    ][:3]


def test_refresh_makes_new_papers_searchable_and_recommendable(
    service: PaperService, store: Store
) -> None:
    uid = "slack:T1:U1"
    service.train()
    # The first look indexes the whole catalogue; later looks read only the changes.
    assert service.refresh() == store.paper_count()
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
    assert new[0] not in service.ensure_model().pidx  # newer than the model
    assert service.refresh() == 1
    assert new[0] in service.index
    assert service.refresh() == 0
    assert service.search(None, "expert choice routing", 3)[0].paper.id == new[0]
    picked = service.rank([uid], list(store.iter_papers()), 5)
    assert new[0] in [r.paper.id for r in picked]


def test_the_index_follows_updates_and_retired_ids(service: PaperService, store: Store) -> None:
    service.refresh()
    title_only = add(store, [{"title": "Lattice Sieving at Scale", "abstract": "Sieving."}])
    service.refresh()
    assert service.search(None, "lattice sieving", 3)[0].paper.id == title_only[0]
    # The arXiv record of the same paper adopts it: the `title:` id is retired everywhere.
    add(
        store,
        [
            {
                "arxiv_id": "2601.07777",
                "title": "Lattice Sieving at Scale",
                "abstract": "Sieving lattices with a new bucketing trick for huge dimensions.",
            }
        ],
    )
    assert service.refresh() >= 1
    hits = [r.paper.id for r in service.search(None, "lattice sieving", 5)]
    assert hits[0] == "2601.07777"
    assert title_only[0] not in hits
    assert title_only[0] not in service.index
    # A new version with new text replaces the old entry (no duplicate, new words found).
    add(
        store,
        [
            {
                "arxiv_id": "2601.07777v2",
                "title": "Lattice Sieving at Scale",
                "abstract": "Now with quantum walks.",
            }
        ],
    )
    service.refresh()
    assert [r.paper.id for r in service.search(None, "quantum walks", 3)][:1] == ["2601.07777"]
    assert len(service.index) == store.paper_count()


def test_a_new_version_gets_vectors_of_its_new_text(service: PaperService, store: Store) -> None:
    """Vectors are cached by a hash of their text, so a v2 is not ranked as its v1."""
    state = service.train()
    pid = store.resolve_ids(["2601.00002"])[0]
    old = store.get_paper(pid)
    assert service.papers.own_rows(state, [old]) == []  # the state holds this text
    add(
        store,
        [
            {
                "arxiv_id": "2601.00002v2",
                "title": "Diffusion Models on a Budget",
                "abstract": "Rewritten: protein folding with graph networks.",
            }
        ],
    )
    new = store.get_paper(pid)
    assert new.text != old.text
    assert service.papers.own_rows(state, [new]) == [0]
    fresh = service.papers.vectors(state, [new])
    cols = state.pidx[pid]
    assert not np.allclose(fresh.lexical[0], state.papers.lexical[cols])


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
    row = second.users.rows[second.user_index["slack:T1:U2"]]
    assert row[0, second.pidx[papers[40]]] == pytest.approx(2.0)


class CountingEncoder:
    """A tiny deterministic encoder that counts the texts it is asked to embed."""

    name = "counting-test-encoder"
    dim = 16

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.seen.extend(texts)
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, hash(word) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)


def test_a_topic_is_embedded_once_and_cached_by_its_text(store: Store) -> None:
    ingest(store, parse_body("jsonl", SEED.read_bytes(), now=T0), "jsonl")
    encoder = CountingEncoder()
    first = PaperService(store, encoder=encoder)
    first.train()
    papers = list(store.iter_papers())
    prefs = Preferences(topics={"graph neural networks"})
    encoder.seen.clear()
    first.rank(["slack:T1:U1"], papers, 5, prefs=prefs)
    first.rank(["slack:T1:U2"], papers, 5, prefs=prefs)
    assert encoder.seen == ["graph neural networks"]
    # Another process finds it in Redis, cached by a hash of the text.
    second = PaperService(store, encoder=encoder)
    second.check_model()
    second.rank(["slack:T1:U3"], papers, 5, prefs=prefs)
    assert encoder.seen == ["graph neural networks"]


def test_teammates_are_the_reason_when_nothing_else_is(service: PaperService, store: Store) -> None:
    service.train()
    pid = store.resolve_ids(["2601.00002"])[0]
    for user in ("U2", "U3", "U4"):
        service.record(f"slack:T1:{user}", pid, Feedback.LIKE)
    service.record("slack:T2:U9", pid, Feedback.LIKE)  # another workspace never counts
    paper = store.get_paper(pid)
    result = service.with_teammates(service.rank(["slack:T1:U1"], [paper], 1), "slack:T1")
    (item,) = result
    assert item.teammates == 3
    assert item.explanation.text() == "Liked by 3 teammates"


def test_bad_input_unknown_person_and_papers_newer_than_the_model(
    service: PaperService, store: Store
) -> None:
    state = service.train()
    papers = list(store.iter_papers())
    # Someone the model never saw gets the community's order, with a community reason.
    stranger = service.rank(["slack:T9:nobody"], papers, 5)
    assert len(stranger) == 5
    assert all(r.explanation.liked == () for r in stranger)
    # Feedback only on a paper newer than the model still shapes the person's ranking
    # (through its content), and that paper is never recommended back.
    new = add(
        store,
        [
            {
                "arxiv_id": "2601.09999",
                "title": "Mixture of Experts Routing for Sparse Language Models",
                "abstract": "Expert routing and load balancing in sparse mixture of experts.",
            }
        ],
    )
    assert new[0] not in state.pidx
    uid = "slack:T1:U7"
    service.record(uid, new[0], Feedback.LIKE)
    everything = list(store.iter_papers())
    picked = service.rank([uid], everything, 5)
    assert new[0] not in [r.paper.id for r in picked]
    moe = [r for r in picked if "expert" in r.paper.text.lower()]
    assert len(moe) >= 3
    # An empty profile (all feedback taken back) is the community's order again.
    service.record(uid, new[0], Feedback.LIKE, removed=True)
    again = [r.paper.id for r in service.rank([uid], papers, 5)]
    assert again == [r.paper.id for r in stranger]


def test_a_refit_on_a_little_new_feedback_keeps_the_tuning(store: Store) -> None:
    ingest(store, parse_body("jsonl", SEED.read_bytes(), now=T0), "jsonl")
    # Every model here is small: make it keep its tuning as a large one would.
    config = FitConfig(retune_above=0, retune_growth=0.5)
    service = PaperService(store, encoder=None, fit_config=config)
    papers = [p.id for p in store.iter_papers()]
    rng = np.random.default_rng(3)
    for u in range(30):
        for pid in rng.choice(papers[:60], 6, replace=False):
            service.record(f"slack:T1:U{u}", str(pid), Feedback.LIKE)
    first = service.train()
    assert first.report["tuned"]["interactions"] == first.report["interactions"]
    service.record("slack:T1:U0", papers[80], Feedback.SAVE)
    second = service.train()
    assert second.report["blend"]["note"].startswith("tuning kept")
    assert second.report["tuned"] == first.report["tuned"]
    assert second.als == first.als and second.whitening == first.whitening
    for kind in ("catalog", "cold"):
        assert np.array_equal(second.weights[kind], first.weights[kind])
    # The refit has the new save, and ALS moved the saver's factors to account for it.
    row = second.users.rows[second.user_index["slack:T1:U0"]]
    assert row[0, second.pidx[papers[80]]] > 0
    before = first.user_factors[first.user_index["slack:T1:U0"]]
    after = second.user_factors[second.user_index["slack:T1:U0"]]
    assert not np.allclose(before, after)
    # Asked to, a fit tunes afresh on the same feedback.
    forced = service.train(retune=True)
    assert "tuning kept" not in forced.report["blend"].get("note", "")
    assert forced.report["tuned"]["at"] > first.report["tuned"]["at"]
    # Half as much feedback again: the next fit tunes afresh.
    for u in range(30, 50):
        for pid in rng.choice(papers[:60], 6, replace=False):
            service.record(f"slack:T1:U{u}", str(pid), Feedback.LIKE)
    third = service.train()
    assert not third.report["blend"].get("note", "").startswith("tuning kept")
    assert third.report["tuned"]["interactions"] == third.report["interactions"]


def test_small_models_always_tune_afresh(service: PaperService, store: Store) -> None:
    papers = [p.id for p in store.iter_papers()]
    for pid in papers[:5]:
        service.record("slack:T1:U1", pid, Feedback.LIKE)
    first = service.train()
    service.record("slack:T1:U1", papers[6], Feedback.LIKE)
    second = service.train()
    # Below `retune_above` interactions a full fit costs little: it is always done.
    assert second.report["tuned"]["interactions"] == first.report["tuned"]["interactions"] + 1
