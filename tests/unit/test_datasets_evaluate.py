"""Dataset directories, the CiteULike-a converter, and offline evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recommender.datasets import Dataset, DatasetError, convert_citeulike, load_dataset
from recommender.evaluate import (
    MODELS,
    EvaluationError,
    evaluate_model,
    parse_ks,
    parse_models,
)
from recommender.types import Paper


def write_dataset(
    root: Path,
    papers: list[dict] | None = None,
    train: str = "alice\tp1\nalice\tp2\t2\nbob\t3\t-1\n",
    test: str = "alice\t3\nbob\tp1\t1.0\n",
    candidates: str | None = None,
) -> Path:
    """Write a dataset directory (papers.jsonl, train.tsv, test.tsv, candidates.txt)."""
    root.mkdir(parents=True, exist_ok=True)
    if papers is None:
        papers = [
            {"id": "p1", "title": "Graph neural networks", "abstract": "Message passing."},
            {"id": "p2", "title": "Protein folding"},
            {"id": 3, "title": "", "abstract": "Only an abstract."},
        ]
    lines = [json.dumps(p) for p in papers]
    (root / "papers.jsonl").write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    (root / "train.tsv").write_text(train, encoding="utf-8")
    (root / "test.tsv").write_text(test, encoding="utf-8")
    if candidates is not None:
        (root / "candidates.txt").write_text(candidates, encoding="utf-8")
    return root


# ---------------------------------------------------------------- load_dataset


def test_load_valid_dataset(tmp_path: Path) -> None:
    root = write_dataset(
        tmp_path / "tiny", train="alice\tp1\n\nalice\tp2\t2\nbob\t3\t-1\n", candidates="p1\n3\n\n"
    )
    ds = load_dataset(root)
    assert ds.name == "tiny"
    assert [p.id for p in ds.papers] == ["p1", "p2", "3"]
    assert ds.papers[0].abstract == "Message passing."
    assert ds.papers[1].abstract == ""
    assert ds.papers[2].title == ""
    assert ds.train == [("alice", "p1", 1.0), ("alice", "p2", 2.0), ("bob", "3", -1.0)]
    assert ds.test == [("alice", "3", 1.0), ("bob", "p1", 1.0)]
    assert ds.unknown_papers == 0
    assert ds.candidates == ["p1", "3"]


def test_load_dataset_without_candidates(tmp_path: Path) -> None:
    ds = load_dataset(write_dataset(tmp_path / "d", test="bob\tp1\t1.0\n"))
    assert ds.candidates is None
    assert ds.test == [("bob", "p1", 1.0)]
    assert ds.unknown_papers == 0
    assert ds.notes == []


def test_unknown_paper_ids_are_skipped_and_noted(tmp_path: Path) -> None:
    ds = load_dataset(
        write_dataset(tmp_path / "d", train="alice\tp1\nalice\tghost\n", test="bob\tnope\n")
    )
    assert ds.train == [("alice", "p1", 1.0)]
    assert ds.test == []
    assert ds.unknown_papers == 2
    assert len(ds.notes) == 1
    assert "2 interactions" in ds.notes[0]
    assert "papers.jsonl" in ds.notes[0]


@pytest.mark.parametrize("missing", ["papers.jsonl", "train.tsv", "test.tsv"])
def test_missing_file_is_named(tmp_path: Path, missing: str) -> None:
    root = write_dataset(tmp_path / "d")
    (root / missing).unlink()
    with pytest.raises(DatasetError, match=rf"{missing}: file not found"):
        load_dataset(root)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a directory"):
        load_dataset(tmp_path / "absent")


def test_malformed_json_line_names_file_and_line(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "d")
    text = (root / "papers.jsonl").read_text().splitlines()
    text[1] = '{"id": "p2", "title": '
    (root / "papers.jsonl").write_text("\n".join(text))
    with pytest.raises(DatasetError, match=r"papers\.jsonl:2: not valid JSON"):
        load_dataset(root)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('["p9"]', r"papers\.jsonl:4: expected an object"),
        ('{"title": "no id"}', r"papers\.jsonl:4: expected an object"),
        ('{"id": "p1", "title": "again"}', r"papers\.jsonl:4: duplicate paper id 'p1'"),
        ('{"id": "p9", "title": ["x"]}', r"papers\.jsonl:4: title and abstract must be strings"),
    ],
)
def test_bad_paper_records(tmp_path: Path, line: str, message: str) -> None:
    root = write_dataset(tmp_path / "d")
    text = (root / "papers.jsonl").read_text().splitlines()[:3]
    (root / "papers.jsonl").write_text("\n".join([*text, line]) + "\n")
    with pytest.raises(DatasetError, match=message):
        load_dataset(root)


def test_no_papers(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "d")
    (root / "papers.jsonl").write_text("\n\n")
    with pytest.raises(DatasetError, match=r"papers\.jsonl: no papers"):
        load_dataset(root)


@pytest.mark.parametrize("weight", ["abc", "", "nan", "inf", "-inf"])
def test_bad_weight_names_file_and_line(tmp_path: Path, weight: str) -> None:
    root = write_dataset(tmp_path / "d", train=f"alice\tp1\nalice\tp2\t{weight}\n")
    with pytest.raises(DatasetError, match=rf"train\.tsv:2: weight '{weight}' is not a number"):
        load_dataset(root)


@pytest.mark.parametrize("line", ["alice", "alice\tp1\t1\textra", "\tp1", "alice\t\t1"])
def test_bad_pair_line(tmp_path: Path, line: str) -> None:
    root = write_dataset(tmp_path / "d", test=f"bob\tp1\n{line}\n")
    with pytest.raises(DatasetError, match=r"test\.tsv:2: expected user<TAB>paper"):
        load_dataset(root)


def test_candidates_with_unknown_id(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "d", candidates="p1\nghost\n")
    with pytest.raises(DatasetError, match=r"candidates\.txt: unknown paper id 'ghost'"):
        load_dataset(root)


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "d")
    (root / "train.tsv").write_bytes(b"alice\tp1\n\xff\xfe\tp2\n")
    with pytest.raises(DatasetError, match=r"train\.tsv: not UTF-8"):
        load_dataset(root)


# ---------------------------------------------------------------- CiteULike-a converter

TITLES = ["Zero title", "One title", "Two title", "Three title", "Four title", "Five title"]


@pytest.fixture
def citeulike(tmp_path: Path) -> Path:
    """A tiny fake CiteULike-a tree in the layout of the real one (see datasets.py)."""
    src = tmp_path / "citeulike-a"
    (src / "splits" / "cvae").mkdir(parents=True)
    (src / "titles.txt").write_text("\n".join(f"  {t} " for t in TITLES) + "\n")
    (src / "abstracts_subset.csv").write_text(
        "item_id,citeulike_id,title,abstract,year,journal,booktitle\n"
        '1,42,One title,"An abstract,  with a comma\nand a line break.",2001,J,\n'
        "4,43,Four title,Plain abstract.,,,\n"
    )
    cvae = src / "splits" / "cvae"
    # Line u is `N i1 ... iN` for user u, ids 0-based.
    (cvae / "cf-train-1-users.dat").write_text("1 2\n1 5\n")
    (cvae / "cf-test-1-users.dat").write_text("2 0 3\n1 4\n")
    (cvae / "cf-train-10-users.dat").write_text("2 2 0\n2 5 1\n")
    (cvae / "cf-test-10-users.dat").write_text("1 3\n0\n")
    for kind, train, test, items in (
        ("warm", "1,1,1\n1,3,1\n2,6,1\n", "1,4,1\n2,1,1\n", "1\n2\n3\n4\n5\n6\n"),
        ("cold", "1,1,1\n2,2,1\n", "1,5,1\n2,6,1\n2,5,1\n", "5\n6\n"),
    ):
        folder = src / "splits" / "dropoutnet" / kind
        folder.mkdir(parents=True)
        (folder / "train.csv").write_text(train)
        (folder / "test.csv").write_text(test)
        (folder / "test_item_ids.csv").write_text(items)
    return src


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """The (user, paper) pairs of a converted train/test file."""
    return [tuple(line.split("\t")) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    ("split", "train", "test", "candidates"),
    [
        ("cvae-1", [("0", "2"), ("1", "5")], [("0", "0"), ("0", "3"), ("1", "4")], None),
        ("cvae-10", [("0", "2"), ("0", "0"), ("1", "5"), ("1", "1")], [("0", "3")], None),
        ("dropoutnet-warm", [("0", "0"), ("0", "2"), ("1", "5")], [("0", "3"), ("1", "0")], None),
        (
            "dropoutnet-cold",
            [("0", "0"), ("1", "1")],
            [("0", "4"), ("1", "5"), ("1", "4")],
            ["4", "5"],
        ),
    ],
)
def test_convert_citeulike(
    citeulike: Path, tmp_path: Path, split: str, train: list, test: list, candidates: list | None
) -> None:
    out = convert_citeulike(citeulike, tmp_path / "out" / split, split)
    assert out == tmp_path / "out" / split
    papers = [json.loads(line) for line in (out / "papers.jsonl").read_text().splitlines()]
    assert [p["id"] for p in papers] == ["0", "1", "2", "3", "4", "5"]
    assert [p["title"] for p in papers] == TITLES
    assert papers[1]["abstract"] == "An abstract, with a comma and a line break."
    assert papers[4]["abstract"] == "Plain abstract."
    assert papers[0]["abstract"] == ""
    assert read_pairs(out / "train.tsv") == train
    assert read_pairs(out / "test.tsv") == test
    assert (out / "candidates.txt").exists() == (candidates is not None)
    ds = load_dataset(out)
    assert ds.candidates == candidates
    assert ds.unknown_papers == 0
    assert all(w == 1.0 for _, _, w in ds.train + ds.test)


def test_convert_warm_over_cold_removes_stale_candidates(citeulike: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    convert_citeulike(citeulike, out, "dropoutnet-cold")
    assert (out / "candidates.txt").exists()
    convert_citeulike(citeulike, out, "dropoutnet-warm")
    assert not (out / "candidates.txt").exists()
    assert load_dataset(out).candidates is None


def test_convert_unknown_split(citeulike: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"unknown split 'cvae-5'.*dropoutnet-cold"):
        convert_citeulike(citeulike, tmp_path / "out", "cvae-5")


def test_convert_missing_split_file_is_named(citeulike: Path, tmp_path: Path) -> None:
    (citeulike / "splits" / "cvae" / "cf-test-10-users.dat").unlink()
    with pytest.raises(DatasetError, match=r"cf-test-10-users\.dat: file not found"):
        convert_citeulike(citeulike, tmp_path / "out", "cvae-10")


# ---------------------------------------------------------------- evaluation

WORDS = (
    ["graph", "node", "edge", "message", "passing", "spectral", "neighbour"],
    ["protein", "gene", "folding", "enzyme", "genome", "molecule", "cell"],
)


def tiny_dataset(seed: int = 0, candidates: list[str] | None = None) -> tuple[Dataset, np.ndarray]:
    """40 papers in two topics, 12 users who each like one topic, and embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2, 16))
    papers, emb = [], []
    for i in range(40):
        t = i % 2
        title = " ".join(rng.choice(WORDS[t], 4, replace=False))
        papers.append(Paper(id=f"q{i}", title=title, upvotes=int(rng.integers(0, 9))))
        emb.append(centres[t] + 0.3 * rng.normal(size=16))
    train, test = [], []
    for u in range(12):
        mine = [f"q{j}" for j in rng.permutation(np.arange(u % 2, 40, 2))[:8]]
        train += [(f"user{u}", p, 1.0) for p in mine[:5]]
        test += [(f"user{u}", p, 1.0) for p in mine[5:]]
    train.append(("user0", "q1", -1.0))  # a dislike in training
    test.append(("user1", "q2", -1.0))  # a dislike in test is not a target
    return Dataset(papers, train, test, candidates=candidates, name="tiny"), np.asarray(emb)


@pytest.mark.parametrize("name", ["hybrid", "content", "als", "popularity"])
def test_evaluate_model_metrics(name: str) -> None:
    dataset, emb = tiny_dataset()
    result = evaluate_model(name, dataset, emb, ks=(1, 5, 10))
    assert result.name == name
    assert set(result.metrics) == {f"{m}@{k}" for m in ("recall", "ndcg") for k in (1, 5, 10)}
    assert list(result.metrics)[:3] == ["recall@1", "recall@5", "recall@10"]
    assert all(0.0 <= v <= 1.0 for v in result.metrics.values())
    assert result.metrics["recall@1"] <= result.metrics["recall@5"] <= result.metrics["recall@10"]
    assert result.extra["users"] == 12
    assert result.fit_seconds >= 0 and result.score_seconds >= 0
    row = result.as_dict()
    assert row["users"] == 12 and "fit_seconds" in row
    if name == "hybrid":
        div = result.extra["diversity"]
        assert set(div) == {"ils@10_plain", "recall@10_plain", "ils@10_mmr", "recall@10_mmr"}
        assert div["ils@10_mmr"] <= div["ils@10_plain"]
        assert result.extra["procedure"]["users"] == 12
    if name in ("hybrid", "content"):
        # Held-out papers are on the user's topic (15 candidates of 35): a content model
        # finds far more of them than chance (recall@10 about 10/35).
        assert result.metrics["recall@10"] >= 0.5
        assert result.metrics["ndcg@10"] >= 0.3


def test_evaluate_with_lsa_fallback_and_candidates() -> None:
    dataset, _ = tiny_dataset()
    truth: dict[str, set[str]] = {}
    for user, pid, weight in dataset.test:
        if weight > 0:
            truth.setdefault(user, set()).add(pid)
    # Every third paper, minus the held-out papers of user0 and user1.
    hidden = truth["user0"] | truth["user1"]
    dataset.candidates = [f"q{i}" for i in range(0, 40, 3) if f"q{i}" not in hidden]
    result = evaluate_model("hybrid", dataset, None, ks=(2, 20))
    assert result.extra["procedure"]["content"] == "lsa"
    assert all(0.0 <= v <= 1.0 for v in result.metrics.values())
    # Users whose held-out papers all lie outside the candidates cannot be measured.
    measurable = [u for u, ps in truth.items() if ps & set(dataset.candidates)]
    assert "user0" not in measurable and "user1" not in measurable
    assert result.extra["users"] == len(measurable)
    # With at most 14 candidates and k=20 every measurable held-out paper is found.
    assert result.metrics["recall@20"] == 1.0


def test_evaluate_on_a_catalogue_too_small_for_full_lists() -> None:
    """Regression: the diversity report used to crash when no user had 10 papers left."""
    papers = [
        Paper(id=str(i), title=f"{'alpha beta' if i < 6 else 'gamma delta'} {i}") for i in range(10)
    ]
    train = [("a", str(i), 1.0) for i in range(5)] + [("b", "6", 1.0), ("b", "7", 1.0)]
    test = [("a", "5", 1.0), ("b", "8", 1.0)]
    result = evaluate_model("hybrid", Dataset(papers, train, test), None, ks=(1, 3))
    assert result.extra["diversity"]["ils@10_plain"] == 0.0
    assert result.metrics["recall@3"] == 1.0


def test_parse_models() -> None:
    assert parse_models("hybrid, als,,content") == ["hybrid", "als", "content"]
    assert parse_models(",".join(MODELS)) == list(MODELS)
    with pytest.raises(EvaluationError, match="unknown model 'bpr': choose from hybrid, content"):
        parse_models("hybrid,bpr")
    with pytest.raises(EvaluationError, match=r"unknown model '\(none\)'"):
        parse_models(" , ")


def test_parse_ks() -> None:
    assert parse_ks("50,10,20,10") == (10, 20, 50)
    assert parse_ks(" 5 ") == (5,)
    with pytest.raises(EvaluationError, match="--k expects comma-separated integers, got '10,x'"):
        parse_ks("10,x")
    with pytest.raises(EvaluationError, match="must be positive"):
        parse_ks("0,10")
    with pytest.raises(EvaluationError, match="must be positive"):
        parse_ks("")
