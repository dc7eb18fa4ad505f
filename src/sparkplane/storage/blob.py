"""Blob stores. Keys are relative, '/'-separated paths; a key never escapes the store's root.

Only the local-folder store exists today (embedded mode, and any shared file system). Object stores
(`s3://`, `gs://`, `abfss://`) plug in behind the same protocol.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import tempfile
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import unquote, urlparse


class BlobError(Exception):
    pass


class BlobTooLarge(BlobError):
    pass


class BlobStore(Protocol):
    root_uri: str

    def put_stream(self, key: str, stream: BinaryIO, *, max_bytes: int) -> tuple[int, str]:
        """Store the stream under key; (size, sha256). Raises BlobTooLarge past max_bytes, leaving nothing."""
        ...

    def put_text(self, key: str, text: str) -> None: ...

    def read_text(self, key: str) -> str | None: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def uri(self, key: str) -> str: ...

    def key_for_uri(self, uri: str) -> str | None:
        """The key of a URI inside this store, or None when the URI points elsewhere."""
        ...


def normalize_key(key: str) -> str:
    """A safe relative key, or BlobError: no absolute paths, no '..', no empty parts."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise BlobError(f"'{key}' is not a relative path inside the blob storage")
    normal = posixpath.normpath(key)
    if normal == "." or normal.startswith("..") or normal != key.rstrip("/"):
        raise BlobError(f"'{key}' is not a relative path inside the blob storage")
    return normal


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.root_uri = self.root.as_uri()

    def path(self, key: str) -> Path:
        path = (self.root / normalize_key(key)).resolve()
        if not path.is_relative_to(self.root):  # a symlink inside the store that points out of it
            raise BlobError(f"'{key}' is not inside the blob storage")
        return path

    def put_stream(self, key: str, stream: BinaryIO, *, max_bytes: int) -> tuple[int, str]:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        # Write to a temporary file beside the target and rename: a failed or oversized upload leaves nothing.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(1 << 20):
                    size += len(chunk)
                    if size > max_bytes:
                        raise BlobTooLarge(f"the file is larger than the limit of {max_bytes} bytes")
                    digest.update(chunk)
                    out.write(chunk)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return size, digest.hexdigest()

    def put_text(self, key: str, text: str) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".write-")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, target)

    def read_text(self, key: str) -> str | None:
        try:
            return self.path(key).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def uri(self, key: str) -> str:
        return self.path(key).as_uri()

    def key_for_uri(self, uri: str) -> str | None:
        parsed = urlparse(uri)
        if parsed.scheme not in ("file", "") or (parsed.scheme == "file" and parsed.netloc not in ("", "localhost")):
            return None
        raw = Path(unquote(parsed.path))
        if not raw.is_absolute():
            return None
        # Resolve symlinks and '..' before the containment check, so /blob/../etc/passwd is refused.
        resolved = raw.resolve()
        if not resolved.is_relative_to(self.root):
            return None
        return resolved.relative_to(self.root).as_posix()


def open_blob_store(root_uri: str) -> BlobStore:
    parsed = urlparse(root_uri)
    if parsed.scheme in ("file", ""):
        return LocalBlobStore(Path(unquote(parsed.path)))
    raise BlobError(
        f"blob storage '{root_uri}' is not supported yet; use a local folder (file://) for SPARK_BLOB_STORAGE"
    )
