"""The model version a process serves: loaded from Redis, swapped in when a new one appears.

Trained models live in Redis (chunked under their version, with a pointer to the current
one), so every process on every host that shares the Redis serves the same model. A
process checks the pointer every few seconds and loads a new version beside the one it
serves, then swaps with one assignment: nobody being served waits. A version that cannot
be read (incomplete, corrupt, removed) is logged once and retried later; the previous
version keeps serving. Old versions are removed only after nobody has started reading
them for a grace period.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from recommender.model import persist
from recommender.model.state import FittedState, StateParts, assemble
from recommender.store import ModelArtefactError, Store, StoreUnavailable

log = logging.getLogger(__name__)

# Old model versions are removed this long after they stopped being current and read.
GRACE_SECONDS = 600.0
# A version that failed to load is tried again after this long.
RETRY_BAD_SECONDS = 30.0


class LiveModel:
    """The current fitted state of one process, kept in step with the store's pointer."""

    def __init__(self, store: Store, *, grace: float = GRACE_SECONDS) -> None:
        self.store = store
        self.grace = grace
        self.state: FittedState | None = None
        self._load_lock = threading.Lock()
        self._bad: dict[str, float] = {}
        self.listeners: list[Callable[[FittedState], None]] = []

    @property
    def version(self) -> str | None:
        """The version being served, if any."""
        state = self.state
        return state.version if state is not None else None

    def check(self) -> bool:
        """Load and swap in the store's current version if it is newer; True if swapped.

        Never raises for a bad version or a Redis outage: the current state keeps serving.
        """
        try:
            pointer = self.store.current_model()
        except StoreUnavailable as exc:
            log.debug("model check skipped: %s", exc)
            return False
        if not pointer or pointer.get("version") == self.version:
            return False
        version = str(pointer["version"])
        if time.monotonic() < self._bad.get(version, 0.0):
            return False
        with self._load_lock:
            if version == self.version:
                return False
            try:
                state = self.load(version)
            except (ModelArtefactError, persist.ModelFormatError) as exc:
                self._bad[version] = time.monotonic() + RETRY_BAD_SECONDS
                log.warning("model %s not loaded, still serving %s: %s", version, self.version, exc)
                return False
            except StoreUnavailable as exc:
                log.warning("model %s not loaded yet: %s", version, exc)
                return False
            self._swap(state)
        return True

    def load(self, version: str) -> FittedState:
        """Read and assemble one stored version (does not swap it in)."""
        parts = persist.from_bytes(self.store.read_model(version), f"model {version}")
        parts.version = version
        return assemble(parts)

    def publish(self, parts: StateParts) -> FittedState:
        """Store a new fit for every process, point them at it, and serve it here.

        The artefact is written to Redis (serialising, hashing, waiting on the network)
        while the serving state is assembled here; only then is the pointer moved.
        """
        parts.version = parts.version or new_version()
        with ThreadPoolExecutor(1, thread_name_prefix="model-store") as pool:
            stored = pool.submit(self._store, parts)
            try:
                state = assemble(parts)
            except BaseException:
                # Nothing points at a half-published version: remove what was written.
                if stored.exception() is None:
                    self.store.delete_model(parts.version)
                raise
            meta = stored.result()
        self.store.publish_model(meta)
        with self._load_lock:
            self._swap(state)
        self.collect()
        return state

    def _store(self, parts: StateParts) -> dict:
        """Write a fit's artefact under its version; returns its meta."""
        return self.store.put_model(
            parts.version,
            persist.to_bytes(parts),
            {
                "trained_at": time.time(),
                "feedback_version": parts.trained_feedback_version,
                "papers": len(parts.paper_ids),
                "people": len(parts.user_ids),
            },
        )

    def _swap(self, state: FittedState) -> None:
        """Serve `state` from now on (one assignment: readers see the old or the new)."""
        old = self.version
        self.state = state
        log.info("serving model %s (was %s)", state.version, old)
        for listener in self.listeners:
            listener(state)

    def collect(self, now: float | None = None) -> list[str]:
        """Remove stored versions nobody has served or started reading for the grace period."""
        now = time.time() if now is None else now
        try:
            current = (self.store.current_model() or {}).get("version")
            versions = sorted(self.store.model_versions(), key=lambda v: v[1])
        except StoreUnavailable:
            return []
        removed = []
        for i, (version, _published, read) in enumerate(versions):
            if version == current or i + 1 >= len(versions):
                continue
            superseded = versions[i + 1][1]
            if now - max(superseded, read) > self.grace:
                self.store.delete_model(version)
                removed.append(version)
        return removed


def new_version() -> str:
    """A fresh, sortable model version id."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:8]
