"""Web logins: what a browser's `sparkplane_session` cookie stands for.

A login is a random secret (the cookie's value, stored as sha256 like an API token), a CSRF token bound to
it (put into every page, sent back as `X-CSRF-Token` on every change), and an expiry that slides with use
(idle limit) but never past a hard limit from the moment of login. A disabled user's logins stop working
at once, because each request looks the user up again.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from dataclasses import dataclass

from sparkplane.db.models import WebLogin
from sparkplane.domain.errors import Forbidden, Unauthenticated
from sparkplane.services import security, users
from sparkplane.services.context import Context
from sparkplane.services.principal import Principal

COOKIE = "sparkplane_session"
CSRF_HEADER = "X-CSRF-Token"
# A touch (a write) at most this often per login: a write per request would serialise readers on SQLite.
_TOUCH_EVERY = dt.timedelta(seconds=60)
_EXPIRED = "your web login has expired or ended; log in again"


@dataclass(frozen=True, slots=True)
class LoginSession:
    login_id: int
    principal: Principal
    csrf_token: str


@dataclass(frozen=True, slots=True)
class NewLogin:
    session: LoginSession
    cookie_value: str
    max_age_seconds: int


def _expiry(ctx: Context, created_at: dt.datetime, now: dt.datetime) -> dt.datetime:
    idle = now + dt.timedelta(seconds=ctx.settings.web_login_idle_seconds)
    hard = created_at + dt.timedelta(seconds=ctx.settings.web_login_max_seconds)
    return min(idle, hard)


def log_in(ctx: Context, username: str, password: str) -> NewLogin:
    """Check the password (same cost and message for an unknown user) and start a login."""
    principal = users.authenticate_basic(ctx, username, password)
    secret = secrets.token_urlsafe(32)
    now = ctx.clock.now()
    with ctx.db.uow() as uow:
        row = uow.web_logins.add(
            WebLogin(
                user_id=principal.user_id,
                token_hash=security.token_hash(secret),
                csrf_token=secrets.token_urlsafe(32),
                created_at=now,
                last_seen_at=now,
                expires_at=_expiry(ctx, now, now),
            )
        )
        session = LoginSession(row.id, principal, row.csrf_token)
    return NewLogin(session, secret, int(ctx.settings.web_login_max_seconds))


def authenticate(ctx: Context, cookie_value: str) -> LoginSession:
    """The login a cookie stands for; Unauthenticated if it is unknown, expired, or its user is disabled."""
    now = ctx.clock.now()
    with ctx.db.uow() as uow:
        row = uow.web_logins.by_hash(security.token_hash(cookie_value))
        if row is None:
            raise Unauthenticated(_EXPIRED)
        if row.expires_at <= now:
            uow.web_logins.delete(row.id)
            raise Unauthenticated(_EXPIRED)
        user = uow.users.get(row.user_id)
        if user is None or not user.is_active:
            raise Unauthenticated("this account is disabled; ask an admin")
        if now - row.last_seen_at >= _TOUCH_EVERY:
            uow.web_logins.touch(row.id, now, _expiry(ctx, row.created_at, now))
        principal = Principal(user.id, user.username, user.role == "admin")
        return LoginSession(row.id, principal, row.csrf_token)


def check_csrf(session: LoginSession, sent: str | None) -> None:
    """A change made with a cookie must prove it comes from our own page, which alone can read the token."""
    if not sent:
        raise Forbidden(f"missing {CSRF_HEADER} header: a change made with a web login must send the page's CSRF token")
    if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
        raise Forbidden(f"wrong {CSRF_HEADER}: reload the page and try again")


def log_out(ctx: Context, cookie_value: str) -> None:
    """End the login the cookie stands for; an unknown or ended one is already logged out."""
    with ctx.db.uow() as uow:
        row = uow.web_logins.by_hash(security.token_hash(cookie_value))
        if row is not None:
            uow.web_logins.delete(row.id)


def end_other_logins(ctx: Context, user_id: int, *, keep: int | None = None) -> int:
    """After a password change or a disable: every other browser of that user must log in again."""
    with ctx.db.uow() as uow:
        return uow.web_logins.delete_for_user(user_id, keep=keep)


def delete_expired(ctx: Context) -> int:
    with ctx.db.uow() as uow:
        return uow.web_logins.delete_expired(ctx.clock.now())
