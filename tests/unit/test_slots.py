"""Key slots and per-slot grouping (no server needed)."""

from __future__ import annotations

from recommender.slots import group_by_slot, slot_of
from recommender.store import user_key


def test_a_persons_keys_hash_to_the_slot_of_their_tag() -> None:
    """`{uid}` decides the slot: every suffix of one person lands together."""
    uid = "slack:T1:U2"
    slots = {slot_of(user_key(uid, s)) for s in ("rx", "saved", "seen", "seq", "rated")}
    assert slots == {slot_of(uid)}
    assert slot_of(user_key("slack:T1:U3", "rx")) != slot_of(user_key(uid, "rx"))
    assert slot_of(b"pb:likers:2401.1") == slot_of("{pb:likers:2401.1}:seq")


def test_grouping_keeps_positions_in_order() -> None:
    """Each slot's group lists the keys' positions in the order they were given."""
    keys = ["pb:user:{a}:rx", "pb:paper:1", "pb:user:{a}:seen", "pb:paper:2", "pb:user:{a}:x"]
    groups = group_by_slot(keys)
    assert groups[slot_of("a")] == [0, 2, 4]
    assert sorted(i for g in groups.values() for i in g) == list(range(len(keys)))
    assert next(iter(groups)) == slot_of("a")  # first seen first
