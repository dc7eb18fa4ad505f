"""The per-process cache of API tokens checked moments ago."""

from __future__ import annotations

import time

from sparkplane.services.principal import Principal
from sparkplane.services.security import RecentTokens

ALICE = Principal(1, "alice", False)
BOB = Principal(2, "bob", False)


def test_a_checked_token_is_remembered_until_its_time_is_up() -> None:
    tokens = RecentTokens(ttl_seconds=0.05)
    tokens.put("a", ALICE, tokens.generation())
    assert tokens.get("a") == ALICE
    assert tokens.get("b") is None
    time.sleep(0.1)
    assert tokens.get("a") is None


def test_a_read_that_raced_a_revoke_is_not_remembered() -> None:
    tokens = RecentTokens()
    seen = tokens.generation()  # a request reads the token from the database...
    tokens.forget("a")  # ...while another revokes it and commits
    tokens.put("a", ALICE, seen)
    assert tokens.get("a") is None
    tokens.put("a", ALICE, tokens.generation())
    assert tokens.get("a") == ALICE


def test_forgetting_a_user_drops_only_their_tokens() -> None:
    tokens = RecentTokens()
    for key, who in (("a1", ALICE), ("a2", ALICE), ("b1", BOB)):
        tokens.put(key, who, tokens.generation())
    tokens.forget_user(ALICE.user_id)
    assert (tokens.get("a1"), tokens.get("a2"), tokens.get("b1")) == (None, None, BOB)


def test_a_full_cache_starts_over_instead_of_growing() -> None:
    tokens = RecentTokens(max_entries=2)
    for key in ("a", "b", "c"):
        tokens.put(key, ALICE, tokens.generation())
    assert tokens.get("c") == ALICE and tokens.get("a") is None
