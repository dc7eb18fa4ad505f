"""ASGI middleware: a body-size limit (413 before the body is read) and HTTP metrics."""

from __future__ import annotations

import json
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sparkplane.services import metrics


class BodyLimit:
    """Refuses a request body over the limit: uploads get their own larger limit."""

    def __init__(self, app: ASGIApp, *, max_body: int, max_upload: int, max_notebook: int) -> None:
        self.app = app
        self.max_body = max_body
        self.max_upload = max_upload
        self.max_notebook = max_notebook

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        # The upload service enforces its own limit while streaming, so a partial file is never kept.
        limit = self.max_upload + 65_536 if path == "/api/v1/files" else self.max_body
        if path == "/api/v1/workspace/import":  # a notebook with its images is larger than a JSON body
            limit = self.max_notebook + 65_536
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(scope, send, limit)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(scope, send, limit)


class _TooLarge(Exception):
    pass


async def _too_large(scope: Scope, send: Send, limit: int) -> None:
    key = "msg" if scope["path"].startswith("/livy") else "detail"
    body = json.dumps({key: f"the request body is larger than the limit of {limit} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Metrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            route = _route_template(scope)
            metrics.HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
            metrics.HTTP_SECONDS.labels(scope["method"], route).observe(time.perf_counter() - started)


def _route_template(scope: Scope) -> str:
    # The matched route's template keeps label cardinality bounded (/livy/batches/{batch_id}, not each id).
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"
