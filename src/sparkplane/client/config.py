"""Where the CLI (and SDK users who ask) find the server and the credentials.

Each value comes from the first place that has it: an explicit argument (`--url`, `--token`), then the
environment (`SPARKPLANE_URL`, `SPARKPLANE_TOKEN`), then the profile that `sparkplane login` wrote
(`$SPARKPLANE_CONFIG_DIR/profile.json`, else `~/.config/sparkplane/profile.json`), then the default URL.

The profile's token belongs to the profile's URL: it is never sent to another server that an argument or
the environment names, so pointing the CLI at a different host cannot leak the saved secret.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sparkplane.client.errors import ConfigError

DEFAULT_URL = "http://127.0.0.1:8998"
ENV_URL = "SPARKPLANE_URL"
ENV_TOKEN = "SPARKPLANE_TOKEN"
ENV_CONFIG_DIR = "SPARKPLANE_CONFIG_DIR"
PROFILE_NAME = "profile.json"


@dataclass(frozen=True, slots=True)
class Profile:
    url: str
    token: str


@dataclass(frozen=True, slots=True)
class Resolved:
    url: str
    token: str | None
    url_source: str  # "argument" | "environment" | "profile" | "default": for messages such as `login`'s
    token_source: str | None


def profile_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if directory := env.get(ENV_CONFIG_DIR):
        return Path(directory).expanduser() / PROFILE_NAME
    return Path.home() / ".config" / "sparkplane" / PROFILE_NAME


def load_profile(path: Path | None = None) -> Profile | None:
    """The saved profile, or None when there is none yet."""
    path = profile_path() if path is None else path
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON; run `sparkplane login` again") from exc
    if not (isinstance(data, dict) and isinstance(data.get("url"), str) and isinstance(data.get("token"), str)):
        raise ConfigError(f'{path} needs string fields "url" and "token"; run `sparkplane login` again')
    return Profile(url=data["url"], token=data["token"])


def save_profile(url: str, token: str, path: Path | None = None) -> Path:
    """Write the profile readable by its owner only, and return where it went."""
    path = profile_path() if path is None else path
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Created 0600 from the first byte and then renamed over the old file: the secret never sits in a
        # wider-mode file (an old 0644 profile is replaced, not rewritten) and a crash never leaves half a file.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"url": url, "token": token}, fh, indent=2)
            fh.write("\n")
        os.chmod(tmp, 0o600)  # O_CREAT leaves an existing leftover temp file's mode as it was
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from exc
    return path


def same_server(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def resolve(
    url: str | None = None,
    token: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    path: Path | None = None,
) -> Resolved:
    """The URL and token to use. Empty strings count as unset (an exported but empty variable)."""
    env = os.environ if env is None else env
    url_value, url_source = _first((url, "argument"), (env.get(ENV_URL), "environment"))
    token_value, token_source = _first((token, "argument"), (env.get(ENV_TOKEN), "environment"))
    if url_value is None or token_value is None:
        # Read only when needed, so a broken profile never gets in the way of explicit settings.
        profile = load_profile(profile_path(env) if path is None else path)
        if profile is not None and url_value is None:
            url_value, url_source = profile.url, "profile"
        if profile is not None and token_value is None and same_server(profile.url, url_value or DEFAULT_URL):
            token_value, token_source = profile.token, "profile"
    if url_value is None:
        url_value, url_source = DEFAULT_URL, "default"
    return Resolved(url=url_value, token=token_value, url_source=url_source or "default", token_source=token_source)


def _first(*candidates: tuple[str | None, str]) -> tuple[str | None, str | None]:
    for value, source in candidates:
        if value:
            return value, source
    return None, None
