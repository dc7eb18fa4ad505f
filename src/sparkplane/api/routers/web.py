"""The web UI's front door: the login page, logging in and out, its static files, and `/` for browsers.

Logging in is a JSON call from the login page's script, so its errors are the API's JSON messages. The
login call itself is protected from cross-site forgery ("login CSRF": a hostile page logging the victim in
as the attacker) with a double-submit cookie: GET /ui/login sets `sparkplane_login_csrf` (HttpOnly,
SameSite=Strict, path /ui/login) and puts the same value in the page; POST /ui/login must send it back as
`X-CSRF-Token`. A foreign page can neither read the value nor make the browser attach the Strict cookie.
This was chosen over checking `Origin` because it needs no knowledge of the public URL (proxies rewrite
Host) and does not depend on every browser and proxy sending Origin.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from sparkplane.api import web_render
from sparkplane.api.deps import CtxDep, PrincipalDep, web_login
from sparkplane.api.errors import NATIVE_ERRORS
from sparkplane.domain.errors import Forbidden, NotFound, Unauthenticated
from sparkplane.services import web_logins

router = APIRouter(tags=["web"], responses=NATIVE_ERRORS)
LOGIN_CSRF_COOKIE = "sparkplane_login_csrf"
_STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml", ".png": "image/png"}


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)
    next: str | None = Field(None, max_length=2048, description="A /ui/ path to go to after the login")


class LoginDone(BaseModel):
    username: str
    next: str = Field(description="Where the login page sends the browser now")


@router.get("/", include_in_schema=False, response_model=None)
def root(request: Request) -> Response:
    """A browser gets the UI; anything else gets a map of the service."""
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse("/ui/", status_code=303)
    return JSONResponse({"name": "sparkplane", "api": "/api/v1", "livy": "/livy", "ui": "/ui/", "docs": "/docs"})


@router.get("/ui/login", include_in_schema=False, response_model=None)
def login_page(request: Request, ctx: CtxDep, next: str | None = None) -> Response:
    try:
        if web_login(request, ctx) is not None:
            return RedirectResponse(web_render.safe_next(next), status_code=303)
    except Unauthenticated:
        pass  # an ended login: show the form
    token = secrets.token_urlsafe(32)
    response = web_render.render("login.html", page="login", login_csrf=token, next=web_render.safe_next(next))
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        path="/ui/login",
        httponly=True,
        samesite="strict",
        secure=ctx.settings.web_cookie_secure,
    )
    return response


@router.post("/ui/login", response_model=LoginDone)
def log_in(body: LoginRequest, request: Request, ctx: CtxDep, response: Response) -> LoginDone:
    """Start a web login: sets the HttpOnly `sparkplane_session` cookie. Needs the login page's CSRF token."""
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    sent = request.headers.get(web_logins.CSRF_HEADER, "")
    if not expected or not sent or not hmac.compare_digest(expected.encode(), sent.encode()):
        raise Forbidden("the login form expired or did not come from this site; reload the login page")
    login = web_logins.log_in(ctx, body.username, body.password)
    previous = request.cookies.get(web_logins.COOKIE)
    if previous:
        web_logins.log_out(ctx, previous)  # this browser's earlier login, replaced by the new cookie
    response.set_cookie(
        web_logins.COOKIE,
        login.cookie_value,
        max_age=login.max_age_seconds,
        path="/",
        httponly=True,
        samesite="lax",
        secure=ctx.settings.web_cookie_secure,
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/ui/login")
    return LoginDone(username=login.session.principal.username, next=web_render.safe_next(body.next))


@router.post("/ui/logout", status_code=204)
def log_out(request: Request, ctx: CtxDep, _: PrincipalDep) -> Response:
    """End this browser's web login (the CSRF header is checked like any change made with the cookie)."""
    cookie = request.cookies.get(web_logins.COOKIE)
    if cookie and not request.headers.get("authorization"):
        web_logins.log_out(ctx, cookie)
    response = Response(status_code=204)
    response.delete_cookie(web_logins.COOKIE, path="/", httponly=True, samesite="lax")
    return response


@router.get("/ui/static/{path:path}", include_in_schema=False)
def static(path: str) -> FileResponse:
    """The UI's own CSS and JavaScript (no login: the login page needs them too)."""
    root = (web_render.web_dir() / "static").resolve()
    target = (root / path).resolve()
    suffix = target.suffix.lower()
    if not target.is_relative_to(root) or suffix not in _STATIC_TYPES or not target.is_file():
        raise NotFound(f"no static file '{path}'")
    # no-cache: the browser revalidates (a cheap 304 by ETag), so an upgraded server's files take effect
    headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    return FileResponse(target, media_type=_STATIC_TYPES[suffix], headers=headers)
