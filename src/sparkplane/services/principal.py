from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: every service call that reads or writes users' things takes one."""

    user_id: int
    username: str
    is_admin: bool

    @property
    def owner_filter(self) -> int | None:
        """The owner to restrict queries to; None for admins, who see everything."""
        return None if self.is_admin else self.user_id
