"""kombu's SQLAlchemy transport, polled faster: the embedded broker (a SQLite file, no broker process).

kombu's transport passes every transport option to `create_engine`, so its poll interval cannot be set
through options; this subclass sets it instead. 0.1 s keeps a warm session start prompt (the poll is
most of it) at the cost of ten small SELECTs a second on an idle machine.
"""

from __future__ import annotations

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport.sqlalchemy import Transport as _SqlTransport

ALIAS = "sparkplane-sql"


class Transport(_SqlTransport):
    polling_interval = 0.1


def register() -> None:
    TRANSPORT_ALIASES.setdefault(ALIAS, f"{__name__}:Transport")
