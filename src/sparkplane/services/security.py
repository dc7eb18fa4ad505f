"""Passwords (argon2) and API tokens (random, stored as sha256), with short caches for both.

argon2 is slow on purpose (~tens of ms). Livy clients send HTTP Basic on every request, so a verified
(username, password) pair is remembered for a minute against its password hash, keyed by a keyed hash that
never leaves the process. A caller checked in the last few seconds (a token, or a Basic pair) is answered
from `RecentCredentials` without the database at all.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from sparkplane.services.principal import Principal

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

    def digest(self, username: str, password: str) -> str:
        """The pair's keyed hash: the same pair gives the same digest in this process, and nothing outside it."""
        return hmac.new(self._key, f"{username}\x00{password}".encode(), hashlib.sha256).hexdigest()

    def get(self, username: str, password: str, password_hash: str) -> bool:
        """True when this exact pair was verified recently against this very password hash."""
        with self._lock:
            entry = self._entries.get(self.digest(username, password))
        return entry is not None and entry[1] == password_hash and entry[2] > time.monotonic()

    def put(self, username: str, password: str, user_id: int, password_hash: str) -> None:
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[self.digest(username, password)] = (user_id, password_hash, time.monotonic() + self._ttl)


class RecentCredentials:
    """Callers checked in the last few seconds, so a client polling its session costs no query per request:
    API tokens by their sha256, Basic pairs by their keyed hash (`basic_key`). The price: in another process
    (a second api worker, the CLI), a revoke, a new password or a disabled user takes up to `ttl_seconds` to
    bite; in this process it bites at once (`forget*`)."""

    def __init__(self, ttl_seconds: float = 5.0, max_entries: int = 10_000) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()
        self._forgets = 0  # a put reading the database before a forget must not undo it

    def generation(self) -> int:
        """Take this before reading the token from the database; give it back to `put`."""
        return self._forgets

    def get(self, key: str) -> Principal | None:
        entry = self._entries.get(key)  # a dict read is atomic; the lock guards writers only
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def put(self, key: str, principal: Principal, generation: int) -> None:
        if self._ttl <= 0:
            return
        with self._lock:
            if generation != self._forgets:  # a revoke or a user change happened meanwhile: the read may be old
                return
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[key] = (principal, time.monotonic() + self._ttl)

    def forget(self, token_sha256: str) -> None:
        with self._lock:
            self._entries.pop(token_sha256, None)
            self._forgets += 1

    def forget_user(self, user_id: int) -> None:
        with self._lock:
            for key in [k for k, (p, _) in self._entries.items() if p.user_id == user_id]:
                del self._entries[key]
            self._forgets += 1
