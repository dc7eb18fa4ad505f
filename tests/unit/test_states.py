"""The state machines as data: complete, Livy's names, decisions table-driven."""

from __future__ import annotations

import itertools

import pytest

from sparkplane.domain import states as s

MACHINES = [
    (s.BatchState, s.BATCH_TERMINAL, s.BATCH_TRANSITIONS),
    (s.SessionState, s.SESSION_TERMINAL, s.SESSION_TRANSITIONS),
    (s.StatementState, s.STATEMENT_TERMINAL, s.STATEMENT_TRANSITIONS),
    (s.ClusterState, s.CLUSTER_TERMINAL, s.CLUSTER_TRANSITIONS),
]


@pytest.mark.parametrize(("enum", "terminal", "table"), MACHINES)
def test_every_state_is_terminal_or_has_an_exit(enum, terminal, table) -> None:  # type: ignore[no-untyped-def]
    assert set(table) == set(enum), "every state has a row in the transition table"
    for state in enum:
        if state in terminal:
            assert all(t not in table[state] for t in enum if state != s.ClusterState.TERMINATED)
        else:
            assert table[state], f"{state} has no way out"


def test_livy_names_exactly() -> None:
    # livy-contract.md §1.5: clients reject any other spelling.
    assert {x.value for x in s.BatchState} <= {
        "not_started",
        "starting",
        "recovering",
        "idle",
        "running",
        "busy",
        "shutting_down",
        "error",
        "dead",
        "killed",
        "success",
    }
    assert {x.value for x in s.StatementState} == {"waiting", "running", "available", "cancelling", "cancelled"}


@pytest.mark.parametrize(
    ("current", "observed", "expected"),
    [
        (s.BatchState.NOT_STARTED, s.Observed.RUNNING, s.BatchState.RUNNING),
        (s.BatchState.STARTING, s.Observed.QUEUED, None),
        (s.BatchState.STARTING, s.Observed.STARTING, None),
        (s.BatchState.STARTING, s.Observed.RUNNING, s.BatchState.RUNNING),
        (s.BatchState.RUNNING, s.Observed.RUNNING, None),
        (s.BatchState.RUNNING, s.Observed.SUCCEEDED, s.BatchState.SUCCESS),
        (s.BatchState.RUNNING, s.Observed.FAILED, s.BatchState.DEAD),
        (s.BatchState.RUNNING, s.Observed.CANCELLED, s.BatchState.KILLED),
        (s.BatchState.RUNNING, s.Observed.STARTING, None),  # never backwards
        (s.BatchState.SUCCESS, s.Observed.FAILED, None),  # final is final
    ],
)
def test_next_batch_state(current: s.BatchState, observed: s.Observed, expected: s.BatchState | None) -> None:
    assert s.next_batch_state(current, observed) == expected


def test_unknown_never_moves_anything() -> None:
    for state in s.BatchState:
        assert s.next_batch_state(state, s.Observed.UNKNOWN) is None


def test_decisions_only_follow_the_table() -> None:
    for current, observed in itertools.product(s.BatchState, s.Observed):
        target = s.next_batch_state(current, observed)
        assert target is None or target in s.BATCH_TRANSITIONS[current]


@pytest.mark.parametrize(
    ("current", "observed", "stop", "expected"),
    [
        (s.SessionState.NOT_STARTED, s.Observed.STARTING, False, s.SessionState.STARTING),
        (s.SessionState.STARTING, s.Observed.STARTING, False, None),
        (s.SessionState.STARTING, s.Observed.IDLE, False, s.SessionState.IDLE),
        (s.SessionState.IDLE, s.Observed.BUSY, False, s.SessionState.BUSY),
        (s.SessionState.BUSY, s.Observed.IDLE, False, s.SessionState.IDLE),
        (s.SessionState.RECOVERING, s.Observed.IDLE, False, s.SessionState.IDLE),
        (s.SessionState.STARTING, s.Observed.FAILED, False, s.SessionState.ERROR),
        (s.SessionState.IDLE, s.Observed.FAILED, False, s.SessionState.DEAD),
        (s.SessionState.IDLE, s.Observed.SUCCEEDED, False, s.SessionState.SUCCESS),
        (s.SessionState.SHUTTING_DOWN, s.Observed.CANCELLED, True, s.SessionState.DEAD),
        (s.SessionState.SHUTTING_DOWN, s.Observed.IDLE, True, None),  # still going down: wait
        (s.SessionState.IDLE, s.Observed.UNKNOWN, False, None),
        (s.SessionState.DEAD, s.Observed.IDLE, False, None),
    ],
)
def test_next_session_state(
    current: s.SessionState, observed: s.Observed, stop: bool, expected: s.SessionState | None
) -> None:
    assert s.next_session_state(current, observed, stop_requested=stop) == expected


def test_session_decisions_only_follow_the_table() -> None:
    for current, observed, stop in itertools.product(s.SessionState, s.Observed, (False, True)):
        target = s.next_session_state(current, observed, stop_requested=stop)
        assert target is None or target in s.SESSION_TRANSITIONS[current]
