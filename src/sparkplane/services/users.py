"""Users, roles and API tokens."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from sparkplane.db.models import ApiToken, User
from sparkplane.db.uow import UnitOfWork
from sparkplane.domain.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from sparkplane.services import security
from sparkplane.services.context import Context
from sparkplane.services.principal import Principal

ROLES = ("admin", "user")
_USERNAME = re.compile(r"^[a-z][a-z0-9_.-]{1,63}$")
MIN_PASSWORD = 8
_verified = security.VerifiedCredentials()


@dataclass(frozen=True, slots=True)
class UserInfo:
    id: int
    username: str
    role: str
    is_active: bool


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    name: str
    prefix: str
    user_id: int
    created_at: str
    last_used_at: str | None
    revoked: bool


@dataclass(frozen=True, slots=True)
class NewToken:
    info: TokenInfo
    token: str


def _user_info(user: User) -> UserInfo:
    return UserInfo(user.id, user.username, user.role, user.is_active)


def _token_info(token: ApiToken) -> TokenInfo:
    return TokenInfo(
        token.id,
        token.name,
        token.prefix,
        token.user_id,
        token.created_at.isoformat(),
        token.last_used_at.isoformat() if token.last_used_at else None,
        token.revoked_at is not None,
    )


def owner_name(uow: UnitOfWork, owner_id: int, principal: Principal | None) -> str:
    """The name of a row's owner, as views show it: the caller's own name needs no query; "?" for a user
    that is gone. `principal` None is sparkplane itself (cleanup, timeouts), which always looks it up."""
    if principal is not None and owner_id == principal.user_id:
        return principal.username
    owner = uow.users.get(owner_id)
    return owner.username if owner else "?"


def _principal(user: User) -> Principal:
    return Principal(user.id, user.username, user.role == "admin")


def _require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("only an admin can manage users")


def _check_new_user(username: str, password: str, role: str) -> None:
    if not _USERNAME.match(username):
        raise InvalidInput(
            "username must be 2 to 64 characters: lower-case letters, digits, '_', '.', '-', starting with a letter"
        )
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password must have at least {MIN_PASSWORD} characters")
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}, not '{role}'")


def create_user(
    ctx: Context, principal: Principal | None, username: str, password: str, role: str = "user"
) -> UserInfo:
    """Create a user; `principal` None means the operator at the command line, who needs no login."""
    if principal is not None:
        _require_admin(principal)
    _check_new_user(username, password, role)
    password_hash = security.hash_password(password)
    with ctx.db.uow() as uow:
        if uow.users.by_username(username) is not None:
            raise Conflict(f"user '{username}' already exists")
        user = uow.users.add(
            User(username=username, password_hash=password_hash, role=role, is_active=True, created_at=ctx.clock.now())
        )
        return _user_info(user)


def ensure_admin(ctx: Context) -> str | None:
    """Create the first admin if there is no user yet; returns the generated password to print once, if any."""
    with ctx.db.uow() as uow:
        if uow.users.count() > 0:
            return None
    configured = ctx.settings.admin_password
    password = configured.get_secret_value() if configured else security.generate_password()
    try:
        create_user(ctx, None, "admin", password, "admin")
    except Conflict:  # another process created it between the count and the insert
        return None
    return None if configured else password


def list_users(ctx: Context, principal: Principal) -> list[UserInfo]:
    _require_admin(principal)
    with ctx.db.uow() as uow:
        return [_user_info(u) for u in uow.users.list()]


def update_user(
    ctx: Context,
    principal: Principal,
    user_id: int,
    *,
    role: str | None = None,
    is_active: bool | None = None,
    password: str | None = None,
) -> UserInfo:
    if principal.user_id != user_id or role is not None or is_active is not None:
        _require_admin(principal)
    if role is not None and role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}, not '{role}'")
    if password is not None and len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password must have at least {MIN_PASSWORD} characters")
    with ctx.db.uow() as uow:
        user = uow.users.get(user_id)
        if user is None:
            raise NotFound(f"user {user_id} not found")
        if role is not None:
            user.role = role
        if is_active is not None:
            if user.id == principal.user_id and not is_active:
                raise InvalidInput("you cannot disable your own account")
            user.is_active = is_active
        if password is not None:
            user.password_hash = security.hash_password(password)
        info = _user_info(user)
    ctx.recent_credentials.forget_user(user_id)
    return info


def recent_basic(ctx: Context, key: str) -> Principal | None:
    """The principal of a Basic pair (its `basic_key`) if this process checked it within the last few seconds:
    no database needed."""
    return ctx.recent_credentials.get(key)


def basic_key(username: str, password: str) -> str:
    """What stands for a Basic pair among the recent credentials (apart from the tokens' hex digests)."""
    return "basic:" + _verified.digest(username, password)


def authenticate_basic(ctx: Context, username: str, password: str) -> Principal:
    # A read alone, outside a transaction: Livy clients send Basic on every request, and on SQLite a
    # transaction takes the write lock. The slow hash runs after the connection is back in the pool.
    generation = ctx.recent_credentials.generation()
    with ctx.db.autocommit() as uow:
        user = uow.users.by_username(username)
        found = None if user is None or not user.is_active else (_principal(user), user.password_hash)
    if found is None:
        security.verify_password(_dummy_hash(), password)  # same cost for unknown users: no user enumeration
        raise Unauthenticated("wrong username or password")
    principal, password_hash = found
    if not _verified.get(username, password, password_hash):
        if not security.verify_password(password_hash, password):
            raise Unauthenticated("wrong username or password")
        _verified.put(username, password, principal.user_id, password_hash)
    ctx.recent_credentials.put(basic_key(username, password), principal, generation)
    return principal


def recent_token(ctx: Context, token: str) -> Principal | None:
    """The token's principal if this process checked it within the last few seconds: no database needed."""
    return ctx.recent_credentials.get(security.token_hash(token))


def authenticate_token(ctx: Context, token: str) -> Principal:
    digest, generation = security.token_hash(token), ctx.recent_credentials.generation()
    with ctx.db.autocommit() as uow:
        found = uow.tokens.with_user_by_hash(digest)
        if found is None or found[0].revoked_at is not None:
            raise Unauthenticated("the API token is unknown or revoked; create one with `sparkplane tokens create`")
        row, user = found
        if not user.is_active:
            raise Unauthenticated("the API token's user is disabled")
        now = ctx.clock.now()
        # Only write last_used_at once a minute: a write per request would serialise every reader on SQLite.
        if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
            uow.tokens.touch(row.id, now)
        principal = _principal(user)
    ctx.recent_credentials.put(digest, principal, generation)
    return principal


def create_token(ctx: Context, principal: Principal, name: str) -> NewToken:
    name = name.strip()
    if not name or len(name) > 128:
        raise InvalidInput("a token needs a name of 1 to 128 characters")
    token = security.new_token()
    with ctx.db.uow() as uow:
        row = uow.tokens.add(
            ApiToken(
                user_id=principal.user_id,
                name=name,
                token_hash=security.token_hash(token),
                prefix=token[:10],
                created_at=ctx.clock.now(),
            )
        )
        return NewToken(_token_info(row), token)


def list_tokens(ctx: Context, principal: Principal, *, all_users: bool = False) -> list[TokenInfo]:
    if all_users:
        _require_admin(principal)
    with ctx.db.uow() as uow:
        return [_token_info(t) for t in uow.tokens.list_for(None if all_users else principal.user_id)]


def revoke_token(ctx: Context, principal: Principal, token_id: int) -> TokenInfo:
    with ctx.db.uow() as uow:
        row = uow.tokens.get(token_id)
        if row is None or (row.user_id != principal.user_id and not principal.is_admin):
            raise NotFound(f"token {token_id} not found")
        if row.revoked_at is None:
            row.revoked_at = ctx.clock.now()
        info, digest = _token_info(row), row.token_hash
    ctx.recent_credentials.forget(digest)
    return info


@functools.cache
def _dummy_hash() -> str:
    return security.hash_password("not-a-real-password")
