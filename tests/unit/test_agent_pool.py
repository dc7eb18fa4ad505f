"""The warm pool's folders and its claim race, with fake agents (httpx.MockTransport) and impersonated
supervisors (a held supervisor.lock); the helpers live in test_agent_local_backend.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sparkplane.backends.local.agent_client import AgentClient
from sparkplane.backends.local.pool import CLAIM_FILE, WarmPool
from tests.unit.test_agent_local_backend import FakeAgents, agents, fake_agent, locks

__all__ = ["agents", "locks"]  # fixtures, imported to be shared


@pytest.fixture
def stopped() -> list[Path]:
    return []


@pytest.fixture
def pool(tmp_path: Path, agents: FakeAgents, stopped: list[Path]) -> Iterator[WarmPool]:
    client = AgentClient(httpx.MockTransport(agents))
    made = WarmPool(tmp_path / "runs", size=2, client=client, launch=lambda p: None, stop=stopped.append)
    made.root.mkdir(parents=True)
    yield made
    client.close()


def test_concurrent_claims_take_each_agent_once(pool: WarmPool, locks: list[int], agents: FakeAgents) -> None:
    for name in ("pool-a", "pool-b", "pool-c"):
        fake_agent(pool.root / name, locks)
    fake_agent(pool.root / "pool-starting", locks, ready=False)
    fake_agent(pool.root / "pool-dead", locks, alive=False)
    barrier = threading.Barrier(8)
    won: dict[str, bool] = {}

    def claim(key: str) -> None:
        barrier.wait()
        won[key] = pool.claim(key, {"spark.sql.shuffle.partitions": "2"}, pool.root.parent / key)

    threads = [threading.Thread(target=claim, args=(f"s{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    winners = sorted(key for key, ok in won.items() if ok)
    assert len(winners) == 3
    targets = sorted((pool.root.parent / key).resolve().name for key in winners)
    assert targets == ["pool-a", "pool-b", "pool-c"]
    for key in winners:
        link = pool.root.parent / key
        assert link.is_symlink() and (link / CLAIM_FILE).read_text() == key
    claims = [body for _, method, path, body in agents.requests if path == "/claim"]
    assert len(claims) == 3 and all(body["conf"] == {"spark.sql.shuffle.partitions": "2"} for body in claims)
    assert pool.status().ready == 0 and pool.status().starting == 1


def test_a_refused_claim_stops_that_agent_and_gives_up(
    pool: WarmPool, locks: list[int], agents: FakeAgents, stopped: list[Path]
) -> None:
    fake_agent(pool.root / "pool-a", locks)
    fake_agent(pool.root / "pool-b", locks)
    agents.refuse_claims = True
    assert not pool.claim("s1", {"spark.sql.warehouse.dir": "/x"}, pool.root.parent / "s1")
    assert not (pool.root.parent / "s1").exists()
    assert len(stopped) == 1  # the other agent would refuse it too: a cold start takes over


def test_an_unreachable_agent_is_stopped_and_the_next_one_taken(
    pool: WarmPool, locks: list[int], agents: FakeAgents, stopped: list[Path]
) -> None:
    fake_agent(pool.root / "pool-a", locks)
    fake_agent(pool.root / "pool-b", locks)
    first = pool.entries()[0].name
    agents.state[first] = "down"
    assert pool.claim("s1", {}, pool.root.parent / "s1")
    assert stopped == [pool.root / first]
    assert (pool.root.parent / "s1").resolve().name != first


def test_refill_removes_ended_folders_touches_ready_ones_and_launches_the_rest(
    tmp_path: Path, locks: list[int], agents: FakeAgents
) -> None:
    launched: list[Path] = []
    client = AgentClient(httpx.MockTransport(agents))
    pool = WarmPool(tmp_path / "runs", size=3, client=client, launch=launched.append, stop=lambda p: None)
    pool.root.mkdir(parents=True)
    fake_agent(pool.root / "pool-ready", locks)
    fake_agent(pool.root / "pool-dead", locks, alive=False)
    claimed = fake_agent(pool.root / "pool-claimed", locks)
    (claimed / CLAIM_FILE).write_text("s1")
    pool.refill()
    assert not (pool.root / "pool-dead").exists()
    assert ("pool-ready", "GET", "/health", None) in agents.requests
    assert len(launched) == 2 and all(path.parent == pool.root for path in launched)
    client.close()
