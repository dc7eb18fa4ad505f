"""A role builds at start what its first request would otherwise build (services/warmup.py)."""

from __future__ import annotations

import pytest

from sparkplane.backends.base import ComputeBackend, SessionBackend
from sparkplane.backends.fake import FakeBackend, FakeSessionBackend
from sparkplane.services import sessions
from sparkplane.services.context import Backends, Context
from sparkplane.services.principal import Principal
from sparkplane.services.sessions import SessionRequest
from sparkplane.services.warmup import warm_up
from tests.conftest import RecordingDispatcher

ALICE = Principal(2, "alice", False)


def _counted(ctx: Context, fake_backend: FakeBackend, fake_sessions: FakeSessionBackend) -> list[str]:
    built: list[str] = []

    def batch() -> ComputeBackend:
        built.append("batch")
        return fake_backend

    def session() -> SessionBackend:
        built.append("session")
        return fake_sessions

    ctx.backends = Backends({"fake": batch}, sessions={"fake": session})
    return built


@pytest.mark.parametrize("publishes", [True, False], ids=["api-or-watcher", "worker"])
def test_warm_up_builds_the_backends_once_before_the_first_request(
    ctx: Context,
    fake_backend: FakeBackend,
    fake_sessions: FakeSessionBackend,
    dispatcher: RecordingDispatcher,
    publishes: bool,
) -> None:
    built = _counted(ctx, fake_backend, fake_sessions)
    warm_up(ctx, publishes=publishes)
    assert built == ["batch", "session"]
    assert dispatcher.warmed == (1 if publishes else 0)  # a role that never publishes leaves the broker alone

    sessions.create(ctx, ALICE, SessionRequest(kind="pyspark"))
    assert built == ["batch", "session"]  # the first create found them built
    assert dispatcher.published  # and published through the dispatcher
