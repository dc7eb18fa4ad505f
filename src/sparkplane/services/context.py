"""Everything a use case needs, built once per process from the settings and passed in (no globals)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sparkplane.backends.base import ComputeBackend, SessionBackend
from sparkplane.backends.clusters import ClusterProvider
from sparkplane.db.base import make_engine
from sparkplane.db.uow import Database
from sparkplane.domain.clock import Clock, SystemClock
from sparkplane.domain.errors import InvalidInput, Unsupported
from sparkplane.services.encryption import Cipher, cipher_for
from sparkplane.services.security import RecentCredentials
from sparkplane.settings import Settings
from sparkplane.storage.blob import BlobStore, open_blob_store


class Dispatcher(Protocol):
    """Publishes a task to the queue. Returns False (never raises) when the broker cannot take it now."""

    def publish(self, task: str, entity_id: int) -> bool: ...

    def warm(self) -> None:
        """Pay now, as the process starts, what the first publish would (a connection to the broker)."""


class NullDispatcher:
    """Publishes nothing: the outbox keeps every entry until a real dispatcher relays it."""

    def publish(self, task: str, entity_id: int) -> bool:
        return False

    def warm(self) -> None:
        pass


class Backends:
    def __init__(
        self,
        factories: dict[str, Callable[[], ComputeBackend]],
        sessions: dict[str, Callable[[], SessionBackend]] | None = None,
        clusters: dict[str, Callable[[], ClusterProvider]] | None = None,
    ) -> None:
        self._factories = factories
        self._session_factories = sessions or {}
        self._cluster_factories = clusters or {}
        self._built: dict[str, ComputeBackend] = {}
        self._built_sessions: dict[str, SessionBackend] = {}
        self._built_clusters: dict[str, ClusterProvider] = {}
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

    def cluster(self, name: str) -> ClusterProvider:
        """The provider of cluster machines under this name; InvalidInput when it is not enabled."""
        with self._lock:
            if name not in self._built_clusters:
                if name not in self._cluster_factories:
                    enabled = ", ".join(sorted(self._cluster_factories)) or "none"
                    raise InvalidInput(f"cluster provider '{name}' is not enabled; enabled: {enabled}")
                self._built_clusters[name] = self._cluster_factories[name]()
            return self._built_clusters[name]

    def cluster_names(self) -> list[str]:
        return sorted(self._cluster_factories)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def close(self) -> None:
        for backend in [*self._built.values(), *self._built_sessions.values()]:
            backend.close()
        for provider in self._built_clusters.values():
            provider.close()


@dataclass
class Context:
    settings: Settings
    db: Database
    backends: Backends
    blobs: BlobStore
    cipher: Cipher  # users' credentials, at rest
    dispatcher: Dispatcher = field(default_factory=NullDispatcher)
    clock: Clock = field(default_factory=SystemClock)
    recent_credentials: RecentCredentials = field(default_factory=RecentCredentials)

    def close(self) -> None:
        self.backends.close()
        self.db.dispose()


def default_backends(settings: Settings) -> Backends:
    def local() -> ComputeBackend:
        from sparkplane.backends.local import LocalBackend

        return LocalBackend(
            settings.run_root(),
            spark_home=_spark_home(),
            master=settings.spark_master,
            spark_submit=settings.spark_submit,
        )

    # Each role is its own process: the fake they share keeps its runs in files under the data folder.
    def fake() -> ComputeBackend:
        from sparkplane.backends.fake_shared import SharedFakeBackend

        return SharedFakeBackend(settings.data_dir / "fake-runs" / "batches")

    def local_sessions() -> SessionBackend:
        from sparkplane.backends.local import LocalSessionBackend

        return LocalSessionBackend(
            settings.session_run_root(),
            spark_home=_spark_home(),
            master=settings.spark_master,
            pool_size=settings.pool_size,
            orphan_after=settings.agent_orphan_after_seconds,
        )

    def fake_sessions() -> SessionBackend:
        from sparkplane.backends.fake_shared import SharedFakeSessionBackend

        return SharedFakeSessionBackend(settings.data_dir / "fake-runs" / "sessions")

    def local_clusters() -> ClusterProvider:
        from sparkplane.backends.local.cluster import LocalClusterProvider

        return LocalClusterProvider(
            settings.cluster_run_root(), spark_home=_spark_home(), memory_mb=settings.local_cluster_memory_mb
        )

    def ec2_clusters() -> ClusterProvider:
        from sparkplane.services.cluster_providers import ec2_provider

        return ec2_provider(settings)

    def fake_clusters() -> ClusterProvider:
        from sparkplane.backends.fake_cluster import FakeClusterProvider

        return FakeClusterProvider()

    return Backends(
        {"local": local, "fake": fake},
        sessions={"local": local_sessions, "fake": fake_sessions},
        clusters={"local": local_clusters, "ec2": ec2_clusters, "fake": fake_clusters},
    )


def _spark_home() -> Path:
    import os

    return Path(os.environ.get("SPARK_HOME") or _pyspark_home())


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
        recent_credentials=RecentCredentials(settings.token_cache_seconds),
    )
