"""Every error is JSON with a message a person can act on. Livy's face answers `{"msg": …}` as Livy does;
the native face answers `{"detail": …}` as FastAPI does. Nothing here ever returns a stack trace.
NATIVE_ERRORS and LIVY_ERRORS document those shapes in /openapi.json for the routers that answer them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException

from sparkplane.domain.errors import SparkplaneError

log = logging.getLogger(__name__)


class NativeError(BaseModel):
    detail: str = Field(description="What went wrong, in words a person can act on")


class LivyError(BaseModel):
    msg: str = Field(description="What went wrong, in words a person can act on (Livy's ResponseMessage)")


def _documented(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    # Ranges rather than one entry per status: which 4xx a route can answer is in the description of the
    # domain errors (domain/errors.py). Declaring 4XX also stops FastAPI from documenting its own 422
    # validation body, which this API never sends: a request that fails validation gets a 400 like this one.
    return {
        "4XX": {
            "model": model,
            "description": "400 invalid request, 401 not signed in, 403 not allowed, 404 not found (or not "
            "yours), 409 not possible in the current state, 413 too large, 422 the backend cannot do it",
        },
        "5XX": {"model": model, "description": "500 internal error, 503 a dependency is unavailable right now"},
    }


NATIVE_ERRORS = _documented(NativeError)
LIVY_ERRORS = _documented(LivyError)


def error_response(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    key = "msg" if request.url.path.startswith("/livy") else "detail"
    return JSONResponse({key: message}, status_code=status, headers=headers)


def describe_validation(errors: Sequence[Any]) -> str:
    """Pydantic's errors as one sentence naming each field, e.g. 'Unrecognized field "foo"'."""
    parts = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
        where = ".".join(loc) or "body"
        if error.get("type") == "extra_forbidden":
            parts.append(f'Unrecognized field "{where}"')
        elif error.get("type") == "missing":
            parts.append(f'Missing required field "{where}"')
        elif error.get("type") == "json_invalid":
            parts.append("the body is not valid JSON")
        else:
            parts.append(f"{where}: {error.get('msg', 'invalid value')}")
    return "; ".join(parts) or "invalid request"


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method some route serves at this path, as a 405's Allow header must list (RFC 9110 §15.5.6)."""
    methods: set[str] = set()
    for route in iter_route_contexts(app.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= set(route.methods or ())
    return sorted(methods)


def _from_web_ui(request: Request) -> bool:
    return request.url.path.startswith("/ui/") or "sparkplane_session" in request.cookies


def install(app: FastAPI) -> None:
    @app.exception_handler(SparkplaneError)
    async def _domain(request: Request, exc: SparkplaneError) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Basic realm="sparkplane"'} if exc.status == 401 else None
        if headers and _from_web_ui(request):
            headers = None  # a Basic challenge would pop the browser's own password dialog over our login page
        return error_response(request, exc.status, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(request, 400, describe_validation(exc.errors()))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names the methods of the first route whose path matched; the resource has all of them.
            headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope["path"]))
        return error_response(request, exc.status_code, message, headers)

    @app.exception_handler(OperationalError)
    async def _db_down(request: Request, exc: OperationalError) -> JSONResponse:
        # The driver's own first line ("no such column …", "connection refused"), never the SQL wrapper's
        # text, which carries the statement's parameters.
        detail = (str(exc.orig).splitlines() or [""])[0][:300]
        log.warning("database unavailable: %s: %s", type(exc.orig).__name__, detail)
        return error_response(
            request, 503, "the database is unavailable right now; try again shortly", {"Retry-After": "5"}
        )

    @app.exception_handler(DBAPIError)
    async def _db_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if exc.connection_invalidated:
            return error_response(
                request, 503, "the database connection was lost; try again shortly", {"Retry-After": "5"}
            )
        log.exception("database error")
        return error_response(request, 500, "internal error while talking to the database; see the server log")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, 500, "internal error; see the server log")
