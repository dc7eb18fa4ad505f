"""LocalSessionBackend's warm pool against real Spark: a pool of one, claimed, refilled, drained; a cold start.

Tests run in file order on one module-wide backend. JVMs started: the pooled agent (claimed by the warm
session), its replacement (drained while it starts) and the cold session. The warm session ends by cancel, the
cold one by sys.exit() in a statement; teardown checks that nothing is left.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sparkplane.backends.base import Handle
from sparkplane.backends.local import LocalSessionBackend
from sparkplane.backends.local.pool import CLAIM_FILE
from sparkplane.domain.specs import Resources, SessionSpec
from sparkplane.domain.states import Observed, StatementState
from tests.e2e.test_agent import (
    GRACE,
    assert_nothing_left,
    make_backend,
    stop_everything,
    submit,
    text,
    wait_for,
    wait_observed,
    wait_statement,
)

pytestmark = pytest.mark.e2e

WARM = SessionSpec(kind="pyspark", conf={"spark.sql.shuffle.partitions": "3"})
COLD = SessionSpec(kind="pyspark", resources=Resources(driver_memory="768m"))


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSessionBackend]:
    made = make_backend(tmp_path_factory.mktemp("pool") / "sessions", pool_size=1)
    yield made
    stop_everything(made)


def pool_dirs(backend: LocalSessionBackend) -> list[Path]:
    return sorted((backend.run_root / ".pool").glob("pool-*"))


def test_the_pool_fills_to_its_size(backend: LocalSessionBackend) -> None:
    assert backend.pool_status().starting == backend.pool_status().ready == 0
    status = backend.refill_pool()
    assert status.starting + status.ready == 1
    wait_for("a ready pooled agent", lambda: backend.refill_pool().ready == 1, interval=0.5)
    assert len(pool_dirs(backend)) == 1  # refilling again and again starts no second agent
    assert backend.active_external_ids() == set()  # an unclaimed agent belongs to no session


def test_a_poolable_session_takes_the_warm_agent(
    backend: LocalSessionBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    handle = backend.start_session(WARM, idempotency_key="warm")
    obs = wait_observed(backend, handle, Observed.IDLE)
    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(f"\n[figure] pooled claim to idle: {elapsed * 1000:.0f} ms")
    assert handle.extra["pooled"] == "true"
    link = backend.run_root / "warm"
    assert link.is_symlink() and (link / CLAIM_FILE).read_text() == "warm"
    assert obs.connect_url is not None
    assert text(backend, handle, "spark.conf.get('spark.sql.shuffle.partitions')") == "'3'"  # set by /claim
    assert backend.start_session(WARM, idempotency_key="warm") == handle
    assert backend.active_external_ids() == {"warm"}
    assert backend.pool_status().ready == 0


def test_the_pool_refills_and_drains(backend: LocalSessionBackend) -> None:
    claimed = (backend.run_root / "warm").resolve()
    status = backend.refill_pool()
    assert (status.starting, status.ready) == (1, 0)
    fresh = [d for d in pool_dirs(backend) if d != claimed]
    assert len(fresh) == 1
    backend.drain_pool()  # while it starts: the cold session below then has the two cores to itself
    assert backend.pool_status().starting == backend.pool_status().ready == 0
    assert pool_dirs(backend) == [claimed]  # a claimed agent is the session's, never the pool's
    wait_for("the drained agent to be gone", lambda: not fresh[0].exists())


def test_a_spec_with_driver_memory_starts_cold(backend: LocalSessionBackend) -> None:
    assert not COLD.poolable()
    handle = backend.start_session(COLD, idempotency_key="cold")
    assert handle.extra["pooled"] == "false"
    run_dir = backend.run_root / "cold"
    assert run_dir.is_dir() and not run_dir.is_symlink()
    wait_observed(backend, handle, Observed.IDLE)
    assert text(backend, handle, "sc.getConf().get('spark.driver.memory')") == "'768m'"
    assert backend.active_external_ids() == {"warm", "cold"}


def test_sys_exit_ends_the_session(backend: LocalSessionBackend) -> None:
    handle = Handle("local", "cold", {"run_dir": str(backend.run_root / "cold")})
    statement_id = submit(backend, handle, "import sys\nprint('bye')\nsys.exit(0)")
    output = wait_statement(backend, handle, statement_id).output
    assert output is not None and (output["status"], output["ename"]) == ("error", "SystemExit")
    obs = wait_observed(backend, handle, Observed.SUCCEEDED, Observed.FAILED)
    assert (obs.state, obs.native_state, obs.exit_code) == (Observed.SUCCEEDED, "succeeded", 0)
    assert_nothing_left(backend.run_root / "cold")
    assert backend.active_external_ids() == {"warm"}


def test_cancel_of_a_pooled_session_leaves_no_process(backend: LocalSessionBackend) -> None:
    handle = Handle("local", "warm", {"run_dir": str(backend.run_root / "warm")})
    running = submit(backend, handle, "while True: pass")
    wait_statement(backend, handle, running, StatementState.RUNNING)
    backend.cancel(handle, grace=GRACE)
    obs = backend.observe(handle)
    assert obs is not None and obs.state is Observed.CANCELLED
    assert_nothing_left(backend.run_root / "warm")
    assert backend.active_external_ids() == set()
    assert "ready in" in (backend.fetch_logs(handle) or "")  # the log is still there, through the link
