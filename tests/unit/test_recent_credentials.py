"""The per-process cache of callers checked moments ago (API tokens, Basic pairs), one database check each."""

from __future__ import annotations

import asyncio
import time

from sparkplane.api.deps import CredentialChecks
from sparkplane.domain.errors import Unauthenticated
from sparkplane.services.principal import Principal
from sparkplane.services.security import RecentCredentials
from tests.conftest import on_own_loop

ALICE = Principal(1, "alice", False)
BOB = Principal(2, "bob", False)


def test_a_checked_token_is_remembered_until_its_time_is_up() -> None:
    tokens = RecentCredentials(ttl_seconds=0.05)
    tokens.put("a", ALICE, tokens.generation())
    assert tokens.get("a") == ALICE
    assert tokens.get("b") is None
    time.sleep(0.1)
    assert tokens.get("a") is None


def test_a_read_that_raced_a_revoke_is_not_remembered() -> None:
    tokens = RecentCredentials()
    seen = tokens.generation()  # a request reads the token from the database...
    tokens.forget("a")  # ...while another revokes it and commits
    tokens.put("a", ALICE, seen)
    assert tokens.get("a") is None
    tokens.put("a", ALICE, tokens.generation())
    assert tokens.get("a") == ALICE


def test_forgetting_a_user_drops_only_their_tokens() -> None:
    tokens = RecentCredentials()
    for key, who in (("a1", ALICE), ("a2", ALICE), ("b1", BOB)):
        tokens.put(key, who, tokens.generation())
    tokens.forget_user(ALICE.user_id)
    assert (tokens.get("a1"), tokens.get("a2"), tokens.get("b1")) == (None, None, BOB)


def test_a_full_cache_starts_over_instead_of_growing() -> None:
    tokens = RecentCredentials(max_entries=2)
    for key in ("a", "b", "c"):
        tokens.put(key, ALICE, tokens.generation())
    assert tokens.get("c") == ALICE and tokens.get("a") is None


def test_requests_waiting_on_one_token_share_one_check() -> None:
    calls = 0

    async def authenticate() -> Principal:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)  # the database check, while the other requests arrive
        return ALICE

    async def main() -> list[Principal]:
        checks = CredentialChecks()
        return await asyncio.gather(*(checks.check("spk_a", authenticate) for _ in range(20)))

    assert on_own_loop(main()) == [ALICE] * 20
    assert calls == 1


def test_a_refused_token_is_refused_to_every_waiter_and_checked_again_next_time() -> None:
    calls = 0

    async def refuse() -> Principal:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise Unauthenticated("the API token is unknown or revoked")

    async def main() -> list[BaseException | Principal]:
        checks = CredentialChecks()
        first = await asyncio.gather(*(checks.check("spk_b", refuse) for _ in range(5)), return_exceptions=True)
        second = await asyncio.gather(checks.check("spk_b", refuse), return_exceptions=True)
        return [*first, *second]

    results = on_own_loop(main())
    assert all(isinstance(r, Unauthenticated) for r in results) and len(results) == 6
    assert calls == 2
