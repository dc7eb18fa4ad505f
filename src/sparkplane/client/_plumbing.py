"""What the route mixins (sessions.py, clusters.py) use of `Client`, declared once for the type checker.

`Client` (sdk.py) defines these; a mixin only calls them. Declaring them here, under TYPE_CHECKING, lets mypy
check every call a mixin makes without the mixin importing sdk.py (which imports the mixins).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    import httpx

    from sparkplane.client.models import LogPage


class Stateful(Protocol):
    """Anything `Client._poll` can wait on: a batch, a session, a statement, a cluster."""

    @property
    def state(self) -> str: ...
    @property
    def is_final(self) -> bool: ...


T = TypeVar("T")
S = TypeVar("S", bound=Stateful)
FileRef = str | os.PathLike[str]


class ClientPlumbing:
    """The base of the route mixins: Client's private plumbing, declared but not defined."""

    if TYPE_CHECKING:

        def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response: ...
        def _stage(self, ref: FileRef, uploaded: dict[str, str]) -> str: ...
        def _parse(self, response: httpx.Response, shape: type[T]) -> T: ...
        def _poll(
            self,
            read: Callable[[], S],
            done: Callable[[S], bool],
            *,
            delays: Iterator[float],
            timeout: float | None,
            what: str,
        ) -> S: ...
        def _follow(
            self, read: Callable[[], S], page: Callable[[int], LogPage], *, poll: float, offset: int
        ) -> Iterator[str]: ...
