"""The cipher that keeps users' credentials encrypted at rest: Fernet (AES-128-CBC with HMAC-SHA256).

Fernet authenticates what it encrypts, so a changed or truncated value fails to decrypt instead of turning into
another secret. Several keys make rotation possible (MultiFernet): the first encrypts, every one decrypts, and
`reseal` moves a value to the first. The key is SPARKPLANE_ENCRYPTION_KEY; embedded mode, when it is unset,
generates one once into the data folder (0600) and reuses it, so that every role of `sparkplane up` shares it.
Production refuses to start without one (settings.py): a generated key would live on one machine only.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from sparkplane.settings import Settings

KEY_VARIABLE = "SPARKPLANE_ENCRYPTION_KEY"
OLD_KEYS_VARIABLE = "SPARKPLANE_ENCRYPTION_OLD_KEYS"


class DecryptionFailed(Exception):
    """None of the configured keys opens the value: the key changed, or the value was altered."""


class Cipher:
    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("a cipher needs at least one key")
        self._fernet = MultiFernet([Fernet(key) for key in keys])
        self._count = len(keys)

    def seal(self, plaintext: bytes) -> str:
        return self._fernet.encrypt(plaintext).decode("ascii")

    def open(self, token: str) -> bytes:
        try:
            return self._fernet.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError) as exc:
            raise DecryptionFailed("no configured encryption key opens this value") from exc

    def reseal(self, token: str) -> str:
        """The same plaintext, encrypted with the current key (the first)."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeEncodeError) as exc:
            raise DecryptionFailed("no configured encryption key opens this value") from exc

    def __repr__(self) -> str:
        return f"Cipher(keys={self._count})"


def cipher_for(settings: Settings) -> Cipher:
    """The settings' cipher: their key (or embedded mode's generated one) first, then the old keys."""
    if settings.encryption_key is not None:
        primary = parse_key(settings.encryption_key.get_secret_value(), KEY_VARIABLE)
    elif settings.environment == "production":
        raise ValueError(f"SPARKPLANE_ENVIRONMENT=production needs {KEY_VARIABLE}")
    else:
        primary = generated_key(settings.generated_key_file())
    old = settings.encryption_old_keys.get_secret_value() if settings.encryption_old_keys else ""
    older = [parse_key(part, OLD_KEYS_VARIABLE) for part in old.split(",") if part.strip()]
    return Cipher([primary, *older])


def new_key() -> str:
    return Fernet.generate_key().decode("ascii")


def parse_key(text: str, variable: str) -> bytes:
    """A Fernet key from its text; the error names the variable, never the value."""
    key = text.strip().encode("ascii", errors="replace")
    try:
        valid = len(base64.urlsafe_b64decode(key)) == 32
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        raise ValueError(
            f"{variable} is not a Fernet key (32 random bytes in url-safe base64, 44 characters); make one with: "
            'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
        )
    return key


def generated_key(path: Path) -> bytes:
    """Embedded mode's key: read from `path`, or generated into it once (mode 0600) when it does not exist.

    Roles started at the same moment may race to generate it: each writes a private temporary file and links
    it into place, which fails when the key exists, so every role ends up with the one that won.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, (new_key() + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return parse_key(path.read_text(), str(path))
