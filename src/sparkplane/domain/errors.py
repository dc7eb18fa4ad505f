"""Errors a person can act on, raised by services and mapped to HTTP statuses in one place (api/errors.py).

SparkplaneError
├── InvalidInput        400  the request is wrong; the message says what to change
├── Unauthenticated     401  no or bad credentials
├── Forbidden           403  authenticated, but not allowed (admin-only actions, code in a session not yours)
├── NotFound            404  absent, or owned by someone else (never says which)
├── Conflict            409  the resource's state does not allow it now
├── Unsupported         422  the backend lacks the capability
├── PayloadTooLarge     413  body or upload over the configured limit
└── Unavailable         503  a dependency (database, broker) is unreachable right now
"""

from __future__ import annotations


class SparkplaneError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(SparkplaneError):
    status = 400


class Unauthenticated(SparkplaneError):
    status = 401


class Forbidden(SparkplaneError):
    status = 403


class NotFound(SparkplaneError):
    status = 404


class Conflict(SparkplaneError):
    status = 409


class PayloadTooLarge(SparkplaneError):
    status = 413


class Unsupported(SparkplaneError):
    status = 422


class Unavailable(SparkplaneError):
    status = 503
