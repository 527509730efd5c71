"""Named leases (`pb:lease:<name>`): a token with a TTL, renewed and released by its owner."""

from __future__ import annotations

from bot.repo.base import RedisRepo
from recommender.store import PREFIX
from recommender.store import translate_errors as _translate

# Compare-and-extend / compare-and-delete in one step, so an expired holder never
# extends or deletes a lease another process took since.
_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
)
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('del', KEYS[1]) else return 0 end"
)


def lease_key(name: str) -> str:
    """The key of a named lease."""
    return f"{PREFIX}lease:{name}"


class LeaseRepo(RedisRepo):
    """Owner-checked leases: only the token that took one may renew or release it."""

    @_translate
    def acquire_lease(self, name: str, token: str, ttl_ms: int) -> bool:
        """Take (or renew, if already ours) a named lease; True when we hold it."""
        if self.r.set(lease_key(name), token, nx=True, px=ttl_ms):
            return True
        return self.renew_lease(name, token, ttl_ms)

    @_translate
    def renew_lease(self, name: str, token: str, ttl_ms: int) -> bool:
        """Extend our lease; False if it expired or another process holds it now."""
        return bool(self.r.eval(_RENEW, 1, lease_key(name), token, ttl_ms))

    @_translate
    def lease_holder(self, name: str) -> str | None:
        """The token holding a lease, if any (diagnostics)."""
        raw = self.r.get(lease_key(name))
        return raw.decode() if raw else None

    @_translate
    def release_lease(self, name: str, token: str) -> bool:
        """Give a lease back if we hold it; True if it was ours."""
        return bool(self.r.eval(_RELEASE, 1, lease_key(name), token))
