"""Rendering the web UI's pages: Jinja2 templates from sparkplane/web, strict security headers, and the
redirect to the login page for a browser that has no live login.

Pages are thin shells: they carry the signed-in user's name, the CSRF token (in a <meta> tag) and the ids
the page is about; the browser's JavaScript fetches everything else from the JSON API with the cookie.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from sparkplane import __version__
from sparkplane.services.web_logins import LoginSession

# No inline script or style anywhere, so a value that slipped into the markup still could not run. Images
# may be data: URIs (plots a statement returned as image/png).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def web_dir() -> Path:
    return Path(str(resources.files("sparkplane.web")))


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(web_dir() / "templates"),
        autoescape=True,  # every {{ value }} is HTML-escaped; nothing in the templates marks data as safe
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


class LoginRequired(Exception):
    """A page asked for without a live web login: the browser is sent to the login page."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def login_redirect(request: Request, exc: LoginRequired) -> RedirectResponse:
    return RedirectResponse(f"/ui/login?next={quote(exc.path, safe='/')}", status_code=303)


def safe_next(value: str | None) -> str:
    """Where to go after login: a path of our own UI only, never another site (no open redirect)."""
    if value and value.startswith("/ui/") and not value.startswith("/ui//") and "\\" not in value:
        return value
    return "/ui/"


def render(
    template: str,
    *,
    status: int = 200,
    session: LoginSession | None = None,
    page: str = "",
    **values: Any,
) -> HTMLResponse:
    context = {
        "version": __version__,
        "page": page,
        "user": session.principal if session else None,
        "csrf_token": session.csrf_token if session else "",
        **values,
    }
    html = _environment().get_template(template).render(context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
