"""Short versions of the load and scale benchmarks (bench/load.py, bench/scale.py): the same code, small.

They assert what the long runs must also hold, never a timing: zero errors, every final state right, every
tracked row observed in one sweep. The long runs: `scripts/bench load`, `scripts/bench scale`.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from bench.load import run_load
from bench.plane import fresh_database, production_plane
from bench.scale import BASELINE_ITEMS, ENDING, run_scale

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


def test_twenty_clients_create_poll_and_delete_with_no_error(tmp_path: Path) -> None:
    with production_plane(tmp_path) as plane:
        result = run_load(plane, clients=20, seconds=3, live_sessions=3)
        with httpx.Client(base_url=plane.url, headers=plane.auth, timeout=30) as http:
            sessions = http.get("/api/v1/sessions", params={"limit": 1000}).json()
            batches = http.get("/api/v1/batches", params={"limit": 1000}).json()
        logs = {p.name: p.read_text(errors="replace") for p in (tmp_path / "logs").glob("*.log")}
    assert result.errors == [], result.errors[:10]
    assert result.phases["baseline"].count("GET /healthz") > 0
    assert result.phases["session GET"].count("GET session") > 0
    assert len(result.paced_rates) == 3
    paced = [result.phases[f"session GET, paced at {r:.0f} req/s"] for r in result.paced_rates]
    assert all(phase.count("GET session") > 0 for phase in paced)
    mixed = result.phases["lifecycle"]
    created, deleted = mixed.count("create session"), mixed.count("delete session")
    assert created > 0 and deleted == created  # each client's round ends before the phase does
    session_states = [s["state"] for s in sessions["items"]]
    assert session_states.count("idle") == 3  # the GET loop's sessions
    assert session_states.count("dead") == deleted  # Livy: a deleted session ends dead
    assert len(session_states) == 3 + created
    batch_states = [b["state"] for b in batches["items"]]
    assert len(batch_states) == mixed.count("create batch") > 0
    assert batch_states.count("killed") == mixed.count("delete batch")
    assert batch_states.count("success") == len(batch_states) - mixed.count("delete batch")
    for name, text in logs.items():
        assert "Traceback" not in text, f"{name}:\n{text[-3000:]}"


def test_every_tracked_session_and_batch_is_observed_in_one_sweep(tmp_path: Path) -> None:
    items = 400
    with fresh_database() as database_url:
        result = run_scale(database_url, tmp_path, items)
    live = BASELINE_ITEMS + items
    ending = (BASELINE_ITEMS + items) // ENDING
    assert result.session_states == {"idle": live, "killed": ending}
    assert result.batch_states == {"running": live, "success": ending}
    assert result.ended_sessions == {"killed": items // ENDING}
    assert result.ended_batches == {"success": items // ENDING}
    # Every cycle observed every row live at its start: the first with the endings, then the quiet ones.
    for first, steady, restamp in (
        (result.sessions, result.steady_sessions, result.restamp_sessions),
        (result.batches, result.steady_batches, result.restamp_batches),
    ):
        assert first.seen == live + items // ENDING
        assert steady.seen == restamp.seen == live
