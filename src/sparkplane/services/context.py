"""Everything a use case needs, built once per process from the settings and passed in (no globals)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from sparkplane.backends.base import ComputeBackend, SessionBackend
from sparkplane.db.base import make_engine
from sparkplane.db.uow import Database
from sparkplane.domain.clock import Clock, SystemClock
from sparkplane.domain.errors import InvalidInput, Unsupported
from sparkplane.services.encryption import Cipher, cipher_for
from sparkplane.settings import Settings
from sparkplane.storage.blob import BlobStore, open_blob_store


class Dispatcher(Protocol):
    """Publishes a task to the queue. Returns False (never raises) when the broker cannot take it now."""

    def publish(self, task: str, entity_id: int) -> bool: ...


class NullDispatcher:
    """Publishes nothing: the outbox keeps every entry until a real dispatcher relays it."""

    def publish(self, task: str, entity_id: int) -> bool:
        return False


class Backends:
    def __init__(
        self,
        factories: dict[str, Callable[[], ComputeBackend]],
        sessions: dict[str, Callable[[], SessionBackend]] | None = None,
    ) -> None:
        self._factories = factories
        self._session_factories = sessions or {}
        self._built: dict[str, ComputeBackend] = {}
        self._built_sessions: dict[str, SessionBackend] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> ComputeBackend:
        with self._lock:  # worker threads share one context: build each backend once
            if name not in self._built:
                if name not in self._factories:
                    enabled = ", ".join(sorted(self._factories))
                    raise InvalidInput(f"backend '{name}' is not enabled; enabled: {enabled}")
                self._built[name] = self._factories[name]()
            return self._built[name]

    def session(self, name: str) -> SessionBackend:
        """The backend that runs interactive sessions under this name; Unsupported when it has none."""
        with self._lock:
            if name not in self._built_sessions:
                if name not in self._session_factories:
                    raise Unsupported(f"backend '{name}' does not run interactive sessions")
                self._built_sessions[name] = self._session_factories[name]()
            return self._built_sessions[name]

    def session_names(self) -> list[str]:
        return sorted(self._session_factories)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def close(self) -> None:
        for backend in [*self._built.values(), *self._built_sessions.values()]:
            backend.close()


@dataclass
class Context:
    settings: Settings
    db: Database
    backends: Backends
    blobs: BlobStore
    cipher: Cipher  # users' credentials, at rest
    dispatcher: Dispatcher = field(default_factory=NullDispatcher)
    clock: Clock = field(default_factory=SystemClock)

    def close(self) -> None:
        self.backends.close()
        self.db.dispose()


def default_backends(settings: Settings) -> Backends:
    def local() -> ComputeBackend:
        import os
        from pathlib import Path

        from sparkplane.backends.local import LocalBackend

        spark_home = os.environ.get("SPARK_HOME") or _pyspark_home()
        return LocalBackend(settings.run_root(), spark_home=Path(spark_home), master=settings.spark_master)

    def fake() -> ComputeBackend:
        from sparkplane.backends.fake import FakeBackend

        return FakeBackend(auto_advance=True)

    def local_sessions() -> SessionBackend:
        import os
        from pathlib import Path

        from sparkplane.backends.local import LocalSessionBackend

        spark_home = os.environ.get("SPARK_HOME") or _pyspark_home()
        return LocalSessionBackend(
            settings.session_run_root(),
            spark_home=Path(spark_home),
            master=settings.spark_master,
            pool_size=settings.pool_size,
            orphan_after=settings.agent_orphan_after_seconds,
        )

    def fake_sessions() -> SessionBackend:
        from sparkplane.backends.fake import FakeSessionBackend

        return FakeSessionBackend(auto_advance=True)

    return Backends({"local": local, "fake": fake}, sessions={"local": local_sessions, "fake": fake_sessions})


def _pyspark_home() -> str:
    import importlib.util
    import os

    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise RuntimeError("pyspark is not installed, and SPARK_HOME is not set")
    return os.path.dirname(spec.origin)


def build_context(
    settings: Settings,
    *,
    dispatcher: Dispatcher | None = None,
    backends: Backends | None = None,
    clock: Clock | None = None,
) -> Context:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Context(
        settings=settings,
        db=Database(make_engine(settings.sqlalchemy_url())),
        backends=backends or default_backends(settings),
        blobs=open_blob_store(settings.blob_root()),
        cipher=cipher_for(settings),
        dispatcher=dispatcher or NullDispatcher(),
        clock=clock or SystemClock(),
    )
