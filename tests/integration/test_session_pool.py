"""The interactive watcher keeps a warm pool only for the backend new sessions go to."""

from __future__ import annotations

from sparkplane.backends.fake import FakeSessionBackend
from sparkplane.services import session_runs
from sparkplane.services.context import Backends, Context


class PooledSessions(FakeSessionBackend):
    def __init__(self) -> None:
        super().__init__()
        self.refills = 0

    def refill_pool(self) -> None:
        self.refills += 1


def test_only_the_configured_backends_pool_is_refilled(ctx: Context) -> None:
    fake, local = PooledSessions(), PooledSessions()
    ctx.backends = Backends({}, sessions={"fake": lambda: fake, "local": lambda: local})
    session_runs.watcher_pass(ctx)
    assert (fake.refills, local.refills) == (1, 0)  # SPARKPLANE_BACKEND=fake starts no local Spark driver
    ctx.settings.backend = "local"
    session_runs.watcher_pass(ctx)
    assert (fake.refills, local.refills) == (1, 1)
