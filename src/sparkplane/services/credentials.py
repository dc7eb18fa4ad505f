"""Users' own credentials: create, list, show, delete; and at launch, the Spark confs of those a run asks for.

Every lookup is by the caller's own user id, admins included: a credential serves only its owner's sessions and
batches, and another user's name answers 404 exactly like a name that does not exist. All fields are stored
encrypted (services/encryption.py) in an envelope that names their owner, name and kind, so a ciphertext copied
onto another row does not open there. They leave the database only at launch, decrypted into a `SecretConf`
for the backend. No response, log line or error message carries a secret field's value.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sparkplane.db.models import Credential
from sparkplane.db.uow import UnitOfWork
from sparkplane.domain import credentials as kinds
from sparkplane.domain.errors import Conflict, InvalidInput, NotFound
from sparkplane.domain.specs import SecretConf
from sparkplane.services.context import Context
from sparkplane.services.encryption import OLD_KEYS_VARIABLE, Cipher, DecryptionFailed
from sparkplane.services.principal import Principal

log = logging.getLogger(__name__)
_ENVELOPE_VERSION = 1
_REENCRYPT_PAGE = 100  # rows per transaction: short locks, steady progress


@dataclass(frozen=True, slots=True)
class CredentialView:
    """What anyone may see of a credential: never a secret field."""

    name: str
    kind: str
    created_at: dt.datetime
    details: Mapping[str, str]  # the kind's public fields (endpoint, region, bucket)


class UnusableCredential(Exception):
    """A run's credential cannot be used at launch (deleted since, or not decryptable): the run fails with this."""


def _view(row: Credential) -> CredentialView:
    return CredentialView(row.name, row.kind, row.created_at, dict(row.details))


def _not_found(name: str) -> NotFound:
    return NotFound(f"Credential '{name[:80]}' not found.")


def _owned(uow: UnitOfWork, principal: Principal, name: str) -> Credential:
    row = uow.credentials.named(principal.user_id, name)
    if row is None:
        raise _not_found(name)
    return row


def create(ctx: Context, principal: Principal, name: str, kind: str, fields: Mapping[str, object]) -> CredentialView:
    kinds.check_name(name)
    credential_kind = kinds.kind_named(kind)
    values = credential_kind.validate(fields)
    ciphertext = _seal(ctx.cipher, principal.user_id, name, kind, values)
    with ctx.db.uow() as uow:
        if uow.credentials.named(principal.user_id, name) is not None:
            raise Conflict(f"you already have a credential named '{name}'; delete it first to replace it")
        row = uow.credentials.add(
            Credential(
                owner_id=principal.user_id,
                name=name,
                kind=kind,
                ciphertext=ciphertext,
                details=credential_kind.public(values),
                created_at=ctx.clock.now(),
            )
        )
        view = _view(row)
    log.info("user %s stored the %s credential %r", principal.user_id, kind, name)
    return view


def list_mine(ctx: Context, principal: Principal) -> list[CredentialView]:
    with ctx.db.uow() as uow:
        return [_view(row) for row in uow.credentials.list_for(principal.user_id)]


def get(ctx: Context, principal: Principal, name: str) -> CredentialView:
    with ctx.db.uow() as uow:
        return _view(_owned(uow, principal, name))


def delete(ctx: Context, principal: Principal, name: str) -> CredentialView:
    """Runs already started keep what they were given; runs not launched yet fail at launch."""
    with ctx.db.uow() as uow:
        row = _owned(uow, principal, name)
        view = _view(row)
        uow.credentials.delete(row)
    log.info("user %s deleted the credential %r", principal.user_id, name)
    return view


def check_requested(ctx: Context, principal: Principal, names: Sequence[str]) -> list[str]:
    """At create time: the names a run asks for, each the caller's own (else 404 naming it), none overlapping."""
    wanted = kinds.check_requested(names)
    if not wanted:
        return []
    with ctx.db.uow() as uow:
        rows = uow.credentials.named_many(principal.user_id, wanted)
    for name in wanted:
        if name not in rows:
            raise _not_found(name)
    scopes: dict[str, str] = {}
    for name in wanted:
        row = rows[name]
        scope = kinds.kind_named(row.kind).scope(row.details)
        if scope in scopes:
            raise InvalidInput(
                f"credentials '{scopes[scope]}' and '{name}' would both configure {scope}; ask for only one of them"
            )
        scopes[scope] = name
    return wanted


def secret_conf(ctx: Context, owner_id: int, names: Sequence[str]) -> SecretConf:
    """At launch: the decrypted Spark confs of a run's credentials, looked up as its owner's own."""
    if not names:
        return SecretConf()
    with ctx.db.uow() as uow:
        rows = uow.credentials.named_many(owner_id, names)
    conf: dict[str, str] = {}
    owners: dict[str, str] = {}  # conf key -> credential that set it
    for name in names:
        row = rows.get(name)
        if row is None:
            raise UnusableCredential(f"credential '{name}' was deleted after this run was created")
        kind = kinds.KINDS.get(row.kind)
        if kind is None:
            raise UnusableCredential(f"credential '{name}' is of kind '{row.kind}', which this sparkplane cannot use")
        for key, value in kind.spark_conf(_opened(ctx.cipher, row)).items():
            if key in owners:
                # Possible only when a credential was replaced by one with another scope after the run was made.
                raise UnusableCredential(f"credentials '{owners[key]}' and '{name}' both set {key}")
            owners[key] = name
            conf[key] = value
    return SecretConf(conf)


def reencrypt_all(ctx: Context) -> int:
    """Encrypt every stored credential again with the current key, so that the old keys can be dropped."""
    done, last_id = 0, 0
    while True:
        with ctx.db.uow() as uow:
            rows = uow.credentials.page_after(last_id, _REENCRYPT_PAGE)
            for row in rows:
                try:
                    row.ciphertext = ctx.cipher.reseal(row.ciphertext)
                except DecryptionFailed as exc:
                    raise ValueError(
                        f"credential {row.id} ('{row.name}' of user {row.owner_id}) opens with no configured key; "
                        f"put the key it was encrypted with into {OLD_KEYS_VARIABLE}"
                    ) from exc
            done += len(rows)
            last_id = rows[-1].id if rows else last_id
        if not rows:
            return done


def _seal(cipher: Cipher, owner_id: int, name: str, kind: str, values: Mapping[str, str]) -> str:
    envelope = {"v": _ENVELOPE_VERSION, "owner": owner_id, "name": name, "kind": kind, "fields": dict(values)}
    return cipher.seal(json.dumps(envelope, separators=(",", ":")).encode())


def _opened(cipher: Cipher, row: Credential) -> dict[str, str]:
    try:
        envelope: dict[str, Any] = json.loads(cipher.open(row.ciphertext))
    except DecryptionFailed as exc:
        raise UnusableCredential(
            f"credential '{row.name}' cannot be decrypted with the configured keys (if SPARKPLANE_ENCRYPTION_KEY "
            f"changed, put the previous key into {OLD_KEYS_VARIABLE})"
        ) from exc
    if (envelope.get("owner"), envelope.get("name"), envelope.get("kind")) != (row.owner_id, row.name, row.kind):
        raise UnusableCredential(f"credential '{row.name}' does not belong to its row; store it again")
    return {str(key): str(value) for key, value in envelope["fields"].items()}
