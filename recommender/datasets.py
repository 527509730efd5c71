"""Evaluation datasets: the on-disk format, its loader, and the CiteULike-a converter.

A dataset is a directory holding `papers.jsonl` (`{"id", "title", "abstract"}` per line),
`train.tsv` and `test.tsv` (`user<TAB>paper[<TAB>weight]`, weight 1 if absent, negative
for a dislike) and optionally `candidates.txt` (one paper id per line: rank only these).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from recommender.types import Paper

SPLITS = ("cvae-1", "cvae-10", "dropoutnet-warm", "dropoutnet-cold")


class DatasetError(ValueError):
    """A dataset file is missing or malformed; the message names the file and line."""


@dataclass(slots=True)
class Dataset:
    """An evaluation dataset in memory."""

    papers: list[Paper]
    train: list[tuple[str, str, float]]
    test: list[tuple[str, str, float]]
    candidates: list[str] | None = None
    name: str = ""
    unknown_papers: int = 0
    notes: list[str] = field(default_factory=list)


def _read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file, or a DatasetError naming the file."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def _load_papers(path: Path) -> list[Paper]:
    """Parse `papers.jsonl`."""
    papers: list[Paper] = []
    seen: set[str] = set()
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("id"), str | int):
            raise DatasetError(f'{path}:{number}: expected an object with an "id"')
        pid = str(row["id"])
        if pid in seen:
            raise DatasetError(f"{path}:{number}: duplicate paper id {pid!r}")
        seen.add(pid)
        title, abstract = row.get("title") or "", row.get("abstract") or ""
        if not isinstance(title, str) or not isinstance(abstract, str):
            raise DatasetError(f"{path}:{number}: title and abstract must be strings")
        papers.append(Paper(id=pid, title=title, abstract=abstract))
    if not papers:
        raise DatasetError(f"{path}: no papers")
    return papers


def _load_pairs(path: Path) -> list[tuple[str, str, float]]:
    """Parse a `user<TAB>paper[<TAB>weight]` file."""
    rows: list[tuple[str, str, float]] = []
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise DatasetError(f"{path}:{number}: expected user<TAB>paper[<TAB>weight]")
        weight = 1.0
        if len(parts) == 3:
            try:
                weight = float(parts[2])
            except ValueError:
                weight = math.nan
            if not math.isfinite(weight):  # "nan" and "inf" parse, but poison the model
                raise DatasetError(f"{path}:{number}: weight {parts[2]!r} is not a number")
        rows.append((parts[0], parts[1], weight))
    return rows


def load_dataset(directory: str | Path) -> Dataset:
    """Load and check a dataset directory; interactions with unknown papers are dropped."""
    root = Path(directory)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    papers = _load_papers(root / "papers.jsonl")
    known = {p.id for p in papers}
    train = _load_pairs(root / "train.tsv")
    test = _load_pairs(root / "test.tsv")
    unknown = sum(1 for _, pid, _ in train + test if pid not in known)
    candidates = None
    if (root / "candidates.txt").exists():
        candidates = [c.strip() for c in _read_lines(root / "candidates.txt") if c.strip()]
        missing = [c for c in candidates if c not in known]
        if missing:
            raise DatasetError(f"{root / 'candidates.txt'}: unknown paper id {missing[0]!r}")
    dataset = Dataset(
        papers=papers,
        train=[t for t in train if t[1] in known],
        test=[t for t in test if t[1] in known],
        candidates=candidates,
        name=root.name,
        unknown_papers=unknown,
    )
    if unknown:
        dataset.notes.append(f"{unknown} interactions name papers not in papers.jsonl: skipped")
    return dataset


# -- CiteULike-a ----------------------------------------------------------------------------


def _citeulike_papers(src: Path) -> list[dict[str, str]]:
    """Titles from `titles.txt`, abstracts from `abstracts_subset.csv` where present."""
    titles = _read_lines(src / "titles.txt")
    abstracts: dict[int, str] = {}
    with (src / "abstracts_subset.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            abstracts[int(row["item_id"])] = " ".join((row.get("abstract") or "").split())
    return [
        {"id": str(i), "title": t.strip(), "abstract": abstracts.get(i, "")}
        for i, t in enumerate(titles)
    ]


def _read_user_lists(path: Path) -> list[tuple[str, str]]:
    """CVAE `users.dat` format: line u is `N i1 ... iN` (0-based ids)."""
    pairs = []
    for user, line in enumerate(_read_lines(path)):
        parts = line.split()
        for item in parts[1:]:
            pairs.append((str(user), item))
    return pairs


def _read_csv_pairs(path: Path) -> list[tuple[str, str]]:
    """DropoutNet `user,item,1` rows with 1-based ids, returned 0-based."""
    pairs = []
    for line in _read_lines(path):
        if line.strip():
            user, item = line.split(",")[:2]
            pairs.append((str(int(user) - 1), str(int(item) - 1)))
    return pairs


def convert_citeulike(src: str | Path, out: str | Path, split: str) -> Path:
    """Write one CiteULike-a split as a dataset directory; returns the directory."""
    src, out = Path(src), Path(out)
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    candidates: list[str] | None = None
    if split.startswith("cvae-"):
        p = split.split("-")[1]
        train = _read_user_lists(src / "splits" / "cvae" / f"cf-train-{p}-users.dat")
        test = _read_user_lists(src / "splits" / "cvae" / f"cf-test-{p}-users.dat")
    else:
        folder = src / "splits" / "dropoutnet" / split.split("-")[1]
        train = _read_csv_pairs(folder / "train.csv")
        test = _read_csv_pairs(folder / "test.csv")
        ids = [str(int(x) - 1) for x in _read_lines(folder / "test_item_ids.csv") if x.strip()]
        # Warm lists every paper, which is the same as no candidate list.
        if split.endswith("cold"):
            candidates = ids
    out.mkdir(parents=True, exist_ok=True)
    with (out / "papers.jsonl").open("w", encoding="utf-8") as handle:
        for row in _citeulike_papers(src):
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    for name, pairs in (("train.tsv", train), ("test.tsv", test)):
        with (out / name).open("w", encoding="utf-8") as handle:
            handle.writelines(f"{u}\t{i}\n" for u, i in pairs)
    if candidates is not None:
        (out / "candidates.txt").write_text("\n".join(candidates) + "\n", encoding="utf-8")
    elif (out / "candidates.txt").exists():
        (out / "candidates.txt").unlink()
    return out
