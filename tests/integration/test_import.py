"""`/papers import` on a real Redis: libraries, id lists and authors, all or nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.commands import CommandService
from bot.importer import ArxivLookup, Importer
from bot.ports import Context
from recommender.ingest import ingest
from recommender.service import PaperService
from recommender.sources import parse_body
from recommender.store import Store
from tests.arxiv_fake import ArxivPaper, FakeArxiv, serve

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seed_papers.jsonl"
LOCAL = [
    {
        "arxiv_id": "2601.00001",
        "title": "Compilers for Diffusion Models",
        "abstract": "We compile diffusion models for fast sampling.",
        "authors": ["Grace Hopper"],
    },
    {
        "arxiv_id": "2601.00002",
        "title": "Typed Lambda Calculi for Transformers",
        "abstract": "Types for attention layers.",
        "authors": ["Alonzo Church"],
        "doi": "10.1000/church.2026",
    },
]
NEW = ArxivPaper("2601.00077", "A Paper Only arXiv Knows", ["Ada Lovelace"], "Engines.")
ADA = [
    ArxivPaper("2601.00081", "Notes on the Analytical Engine", ["Ada Lovelace"]),
    ArxivPaper("2601.00082", "Poetical Science", ["Ada Lovelace", "Charles Babbage"]),
]
LIBRARY = """
@misc{known_by_id, title = {Compilers for Diffusion Models}, eprint = {2601.00001v2},
  archivePrefix = {arXiv}}
@article{known_by_doi, title = {A Different Title for the Typed Paper},
  doi = {https://doi.org/10.1000/CHURCH.2026}}
@article{known_by_title, title = {{Faster Segment Anything}: Towards Lightweight {SAM}
  for Mobile Applications}}
@misc{fetched, title = {Whatever}, url = {https://arxiv.org/abs/2601.00077}}
@misc{nowhere_id, title = {Ghost}, eprint = {2601.99999}}
@article{nowhere_title, title = {A Paper Nobody Has Heard Of}}
"""


@pytest.fixture
def arxiv() -> Iterator[FakeArxiv]:
    """The fake arXiv API with one paper the library lacks and an author's papers."""
    fake = FakeArxiv()
    fake.add(NEW, *ADA)
    with serve(fake) as running:
        yield running


@pytest.fixture
def commands(store: Store, arxiv: FakeArxiv) -> CommandService:
    """Commands over the seed corpus plus two papers with arXiv ids (one with a DOI)."""
    ingest(store, parse_body("jsonl", SEED.read_bytes()), "jsonl")
    body = "\n".join(json.dumps(r) for r in LOCAL).encode()
    ingest(store, parse_body("jsonl", body), "jsonl")
    service = PaperService(store, encoder=None)
    return CommandService(service, importer=Importer(service, ArxivLookup(arxiv.url, interval=0)))


def ctx(user: str = "U1") -> Context:
    return Context("slack", "T1", user, channel="D1", user_name=user.lower(), is_dm=True)


def seed_id(store: Store, title_start: str) -> str:
    return next(p.id for p in store.iter_papers() if p.title.startswith(title_start))


def test_a_library_file_becomes_saves_matched_by_id_doi_and_title(
    commands: CommandService, store: Store, arxiv: FakeArxiv
) -> None:
    version = store.feedback_version()
    reply = commands.import_file(ctx(), "My Library.bib", LIBRARY.encode())
    assert reply.text.startswith(
        "Imported 4 papers from BibTeX file “My Library.bib” as 🔖 saves: 3 matched papers "
        "already in the library, 1 added from arXiv."
    )
    assert "2 not found: Ghost; A Paper Nobody Has Heard Of." in reply.text
    segment = seed_id(store, "Faster Segment Anything")
    saved = {pid for pid, _ in store.saved("slack:T1:U1")}
    assert saved == {"2601.00001", "2601.00002", segment, "2601.00077"}
    assert store.get_paper("2601.00077").title == "A Paper Only arXiv Knows"
    # One request for the two ids the library lacked; the unknown one is simply absent.
    [query] = arxiv.queries
    assert sorted(query["id_list"].split(",")) == ["2601.00077", "2601.99999"]
    # The shared indexes follow: likers, the audit log, one feedback version bump.
    assert store.likers(["2601.00077"]) == {"2601.00077": {"slack:T1:U1"}}
    assert store.feedback_version() == version + 1
    assert store.r.xlen("pb:feedback:log") == 4
    # Importing the same file again changes nothing.
    again = commands.import_file(ctx(), "My Library.bib", LIBRARY.encode())
    assert again.text.startswith("Imported 4 papers")
    assert store.feedback_version() == version + 1


def test_an_import_replaces_a_dislike_and_keeps_a_like(
    commands: CommandService, store: Store
) -> None:
    uid = "slack:T1:U1"
    store.apply_feedback(uid, "2601.00001", "dislike")
    store.apply_feedback(uid, "2601.00002", "like")
    commands.import_file(ctx(), "lib.bib", LIBRARY.encode())
    feedback = store.user_feedback(uid)
    assert feedback["2601.00001"] == {"save"}
    assert feedback["2601.00002"] == {"like", "save"}


def test_arxiv_down_means_nothing_is_imported(
    commands: CommandService, store: Store, arxiv: FakeArxiv
) -> None:
    arxiv.fail = True
    reply = commands.import_file(ctx(), "lib.bib", LIBRARY.encode())
    assert reply.text.startswith("Nothing imported from “lib.bib”: arXiv did not answer")
    # The papers already in the library were matched, but an import is all or nothing.
    assert store.user_feedback("slack:T1:U1") == {}
    assert store.saved("slack:T1:U1") == []


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"\x00\x01\x02PK\x03\x04" * 100, "binary"),
        (
            b"@article{x, title = {Unclosed",
            "No usable BibTeX entries in that file (1 could not be read)",
        ),
        (b"just some words", "neither BibTeX"),
    ],
)
def test_bad_files_get_a_clear_reply_and_change_nothing(
    commands: CommandService, store: Store, data: bytes, says: str
) -> None:
    reply = commands.import_file(ctx(), "upload.bib", data)
    assert reply.text.startswith("Nothing imported from “upload.bib”:")
    assert says in reply.text
    assert store.user_feedback("slack:T1:U1") == {}


def test_id_lists_and_their_mistakes(
    commands: CommandService, store: Store, arxiv: FakeArxiv
) -> None:
    bad = commands.handle(ctx(), "import 2601.00001 arxiv-paper-please")
    assert bad.text.startswith("Nothing imported: “arxiv-paper-please” is not an arXiv id")
    assert store.user_feedback("slack:T1:U1") == {}
    reply = commands.handle(
        ctx(), "import https://arxiv.org/abs/2601.00001v3 2601.00077 2601.99999"
    )
    assert reply.text.startswith(
        "Imported 2 papers from your list as 🔖 saves: 1 matched papers already in the library, "
        "1 added from arXiv."
    )
    assert "1 not found: 2601.99999." in reply.text
    assert {pid for pid, _ in store.saved("slack:T1:U1")} == {"2601.00001", "2601.00077"}


def test_an_author_is_shown_first_and_liked_only_after_confirming(
    commands: CommandService, store: Store, arxiv: FakeArxiv
) -> None:
    nobody = commands.handle(ctx(), 'import author "Nobody Atall"')
    assert nobody.text == "arXiv has no papers by “Nobody Atall”. Check the spelling (full name)."
    shown = commands.handle(ctx(), 'import author "Ada Lovelace"')
    assert shown.text.startswith("arXiv lists 3 papers by “Ada Lovelace”")
    assert {c.paper_id for c in shown.cards} == {"2601.00077", "2601.00081", "2601.00082"}
    assert "`/papers import author confirm`" in shown.footer
    assert store.user_feedback("slack:T1:U1") == {}
    # Someone else's confirmation does not apply Ann's pending import.
    assert "No author import is waiting" in commands.handle(ctx("U2"), "import author confirm").text
    done = commands.handle(ctx(), "import author confirm")
    assert done.text.startswith("Imported 3 papers from “Ada Lovelace” as 👍 likes")
    feedback = store.user_feedback("slack:T1:U1")
    assert feedback == {pid: {"like"} for pid in ("2601.00077", "2601.00081", "2601.00082")}
    assert store.get_paper("2601.00082").authors == ["Ada Lovelace", "Charles Babbage"]
    assert "No author import is waiting" in commands.handle(ctx(), "import author confirm").text


def test_an_author_import_can_be_cancelled(commands: CommandService, store: Store) -> None:
    commands.handle(ctx(), 'import author "Ada Lovelace"')
    assert commands.handle(ctx(), "import author cancel").text == "Author import cancelled."
    assert "No author import is waiting" in commands.handle(ctx(), "import author confirm").text
    assert store.user_feedback("slack:T1:U1") == {}


def test_import_without_arguments_explains_each_platform(commands: CommandService) -> None:
    slack = commands.handle(ctx(), "import").text
    assert "BibTeX or RIS" in slack and "direct message with me" in slack
    discord = commands.handle(Context("discord", "G1", "U1"), "import").text
    assert "`file` option" in discord


def test_the_console_imports_a_path_and_refuses_big_files(
    commands: CommandService, store: Store, tmp_path: Path
) -> None:
    console = Context("console", "local", "ann", is_dm=True)
    path = tmp_path / "zotero.bib"
    path.write_text(LIBRARY)
    reply = commands.handle(console, f"import {path}")
    assert reply.text.startswith("Imported 4 papers from BibTeX file “zotero.bib”")
    big = tmp_path / "big.ris"
    big.write_bytes(b" " * (5 * 1024 * 1024 + 1))
    assert "the limit is 5.0 MB" in commands.handle(console, f"import {big}").text
    missing = commands.handle(console, f"import {tmp_path / 'gone.bib'}")
    assert missing.text.startswith("Cannot read")
    # Chat people never name files on the server: a path from Slack is not an id either.
    assert "not an arXiv id" in commands.handle(ctx(), f"import {path}").text
