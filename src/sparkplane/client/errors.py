"""What the SDK raises. Every error carries a message a person can act on; none wraps a raw httpx error.

ClientError
├── ApiError            the server answered with a 4xx/5xx; `status` and the server's own `message`
├── ServerUnreachable   no connection at all (refused, DNS, connect timeout); also a ConnectionError
├── RequestFailed       connected, but the exchange broke (read timeout, dropped connection)
├── UnexpectedResponse  a 2xx whose body is not what the API promises (wrong URL, proxy page, old server)
├── WaitTimeout         a wait (wait_batch, wait_session, wait_cluster, …) gave up; also a TimeoutError
└── ConfigError         a server URL or profile file that cannot work (no http://, unreadable, malformed)

The errors of sessions (SessionFailed, StatementError, StatementCancelled) and clusters (ClusterFailed) are
ClientErrors too, defined next to their routes in sessions.py and clusters.py.
"""

from __future__ import annotations


class ClientError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiError(ClientError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status})"


class ServerUnreachable(ClientError, ConnectionError):
    def __init__(self, url: str, reason: str = "") -> None:
        # `sparkplane up` is the one-line fix for the common case: the local control plane is not started.
        super().__init__(f"cannot reach sparkplane at {url}: is it running? (`sparkplane up`)")
        self.url = url
        self.reason = reason


class RequestFailed(ClientError):
    pass


class UnexpectedResponse(ClientError):
    pass


class WaitTimeout(ClientError, TimeoutError):
    pass


class ConfigError(ClientError):
    pass
