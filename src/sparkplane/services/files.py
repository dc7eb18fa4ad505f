"""Uploaded application files, and the rule for what a batch may read.

A batch's file (and its jars, pyFiles, files, archives) may be: a URI returned by an upload of the caller's
own; a relative path inside the blob storage (outside other users' upload folders); or a remote URI the
backend reads itself (s3://, gs://, abfss://, hdfs://, https://…). Never a path of the control plane's
machine: file:// outside the blob storage, bare absolute paths, Spark's local: scheme, '..' escapes.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urlparse

from sparkplane.db.models import StoredFile
from sparkplane.domain.errors import InvalidInput, PayloadTooLarge
from sparkplane.services.context import Context
from sparkplane.services.principal import Principal
from sparkplane.storage.blob import BlobError, BlobTooLarge, normalize_key

REMOTE_SCHEMES = frozenset({"s3", "s3a", "gs", "abfs", "abfss", "wasbs", "hdfs", "http", "https"})
UPLOADS = "uploads"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class FileInfo:
    uri: str
    filename: str
    size: int
    sha256: str


def upload(ctx: Context, principal: Principal, filename: str | None, stream: BinaryIO) -> FileInfo:
    name = _SAFE_NAME.sub("_", (filename or "").rsplit("/", 1)[-1]).strip("._")
    if not name:
        raise InvalidInput("the upload needs a file name, such as app.py or job.jar")
    key = f"{UPLOADS}/{principal.user_id}/{uuid.uuid4().hex}/{name}"
    try:
        size, sha256 = ctx.blobs.put_stream(key, stream, max_bytes=ctx.settings.max_upload_bytes)
    except BlobTooLarge as exc:
        raise PayloadTooLarge(f"{exc}; ask an admin to raise SPARKPLANE_MAX_UPLOAD_BYTES") from exc
    if size == 0:
        ctx.blobs.delete(key)
        raise InvalidInput(f"'{name}' is empty")
    uri = ctx.blobs.uri(key)
    try:
        with ctx.db.uow() as uow:
            uow.files.add(
                StoredFile(
                    owner_id=principal.user_id,
                    filename=name,
                    key=key,
                    uri=uri,
                    size=size,
                    sha256=sha256,
                    created_at=ctx.clock.now(),
                )
            )
    except BaseException:
        ctx.blobs.delete(key)  # nothing half-written: no blob without its row
        raise
    return FileInfo(uri=uri, filename=name, size=size, sha256=sha256)


def resolve(ctx: Context, principal: Principal, field: str, ref: str) -> str:
    """The URI the backend should read for a user's file reference, or InvalidInput/NotFound saying why not."""
    ref = ref.strip()
    if not ref:
        raise InvalidInput(f"{field} is empty")
    scheme = urlparse(ref).scheme.lower()
    if scheme in REMOTE_SCHEMES:
        return ref
    if scheme == "local" or ref.startswith("/") or scheme == "file":
        key = ctx.blobs.key_for_uri(ref if scheme == "file" else "file://" + ref)
        if key is None:
            raise InvalidInput(
                f"{field} '{ref}' is outside the blob storage; upload it first (POST /api/v1/files or "
                "`sparkplane batches submit`), or give a path inside the blob storage or a remote URI"
            )
    elif scheme:
        raise InvalidInput(
            f"{field} '{ref}' uses the scheme '{scheme}:', which batches cannot read; "
            f"use one of {', '.join(sorted(REMOTE_SCHEMES))} or an uploaded file"
        )
    else:
        try:
            key = normalize_key(ref)
        except BlobError as exc:
            raise InvalidInput(f"{field}: {exc}") from exc
    _check_owner(principal, field, ref, key)
    try:
        if not ctx.blobs.exists(key):
            raise InvalidInput(f"{field} '{ref}' does not exist in the blob storage")
        return ctx.blobs.uri(key)
    except BlobError as exc:  # e.g. a symlink inside the store that points out of it
        raise InvalidInput(f"{field}: {exc}") from exc


def _check_owner(principal: Principal, field: str, ref: str, key: str) -> None:
    parts = key.split("/")
    if parts[0] == UPLOADS and not principal.is_admin and (len(parts) < 2 or parts[1] != str(principal.user_id)):
        # Another user's upload gets the same answer as a missing file, so existence does not leak.
        raise InvalidInput(f"{field} '{ref}' does not exist in the blob storage")
