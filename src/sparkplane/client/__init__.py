"""The Python SDK of sparkplane: HTTP only, so it runs anywhere a user has Python and the server's URL."""

from sparkplane.client.config import DEFAULT_URL, Resolved, load_profile, resolve, save_profile
from sparkplane.client.errors import (
    ApiError,
    ClientError,
    ConfigError,
    RequestFailed,
    ServerUnreachable,
    UnexpectedResponse,
    WaitTimeout,
)
from sparkplane.client.models import (
    ACTIVE_STATES,
    FINAL_STATES,
    Batch,
    BatchPage,
    Event,
    FileInfo,
    LogPage,
    Token,
    User,
)
from sparkplane.client.sdk import Client

__all__ = [
    "ACTIVE_STATES",
    "DEFAULT_URL",
    "FINAL_STATES",
    "ApiError",
    "Batch",
    "BatchPage",
    "Client",
    "ClientError",
    "ConfigError",
    "Event",
    "FileInfo",
    "LogPage",
    "RequestFailed",
    "Resolved",
    "ServerUnreachable",
    "Token",
    "UnexpectedResponse",
    "User",
    "WaitTimeout",
    "load_profile",
    "resolve",
    "save_profile",
]
