"""The local backend: Spark batches as spark-submit processes, and sessions as agents, on this machine.

`LocalBackend` and `LocalSessionBackend` are loaded on first use rather than imported here. The supervisor
runs as `python -m sparkplane.backends.local.supervisor`, which imports this package first; an eager import of
`batch` (which imports `supervisor`) would load the supervisor module twice and make runpy warn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sparkplane.backends.local.batch import LocalBackend
    from sparkplane.backends.local.session import LocalSessionBackend

__all__ = ["LocalBackend", "LocalSessionBackend"]


def __getattr__(name: str) -> Any:
    if name == "LocalBackend":
        from sparkplane.backends.local.batch import LocalBackend

        return LocalBackend
    if name == "LocalSessionBackend":
        from sparkplane.backends.local.session import LocalSessionBackend

        return LocalSessionBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
