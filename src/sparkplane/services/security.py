"""Passwords (argon2) and API tokens (random, stored as sha256), with a short cache for Basic auth.

argon2 is slow on purpose (~tens of ms). Livy clients send HTTP Basic on every request, so a verified
(username, password) pair is remembered for a minute, keyed by a keyed hash that never leaves the process.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
TOKEN_PREFIX = "spk_"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def generate_password() -> str:
    return secrets.token_urlsafe(15)


class VerifiedCredentials:
    def __init__(self, ttl_seconds: float = 60.0, max_entries: int = 10_000) -> None:
        self._key = secrets.token_bytes(32)
        self._ttl = ttl_seconds
        self._max = max_entries
        self._entries: dict[str, tuple[int, str, float]] = {}
        self._lock = threading.Lock()

    def _digest(self, username: str, password: str) -> str:
        return hmac.new(self._key, f"{username}\x00{password}".encode(), hashlib.sha256).hexdigest()

    def get(self, username: str, password: str, password_hash: str) -> bool:
        """True when this exact pair was verified recently against this very password hash."""
        with self._lock:
            entry = self._entries.get(self._digest(username, password))
        return entry is not None and entry[1] == password_hash and entry[2] > time.monotonic()

    def put(self, username: str, password: str, user_id: int, password_hash: str) -> None:
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[self._digest(username, password)] = (user_id, password_hash, time.monotonic() + self._ttl)
