"""The web UI's pages under /ui. Each is a thin shell (see api/web_render.py); a browser without a live
web login is sent to /ui/login (303) and comes back here after logging in. Only the cookie opens a page:
a page's script needs the login's CSRF token, which Basic or Bearer callers do not have."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from sparkplane.api import web_render
from sparkplane.api.deps import CtxDep, web_login
from sparkplane.domain.errors import Unauthenticated
from sparkplane.services import notebooks
from sparkplane.services.context import Context
from sparkplane.services.web_logins import LoginSession

router = APIRouter(prefix="/ui", tags=["web"], include_in_schema=False)


def _session(request: Request, ctx: Context) -> LoginSession:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    try:
        session = web_login(request, ctx)
    except Unauthenticated as exc:
        raise web_render.LoginRequired(target) from exc
    if session is None:
        raise web_render.LoginRequired(target)
    return session


def _page(request: Request, ctx: Context, template: str, page: str, **values: int) -> HTMLResponse:
    return web_render.render(template, session=_session(request, ctx), page=page, **values)


# The pages that need nothing but a login: path -> (template, the nav entry it lights up)
SIMPLE_PAGES = {
    "/": ("welcome.html", "welcome"),
    "/clusters": ("clusters.html", "clusters"),
    "/workspace": ("workspace.html", "workspace"),
    "/sql": ("sql.html", "sql"),
    "/batches": ("batches.html", "batches"),
    "/account": ("account.html", "account"),
}


def _simple_page(template: str, page: str) -> Callable[[Request, Context], HTMLResponse]:
    def show(request: Request, ctx: CtxDep) -> HTMLResponse:
        return _page(request, ctx, template, page)

    return show


for _path, (_template, _name) in SIMPLE_PAGES.items():
    router.add_api_route(_path, _simple_page(_template, _name), methods=["GET"], name=f"page_{_name}")


@router.get("/clusters/{cluster_id}")
def cluster(cluster_id: int, request: Request, ctx: CtxDep) -> HTMLResponse:
    return _page(request, ctx, "cluster.html", "clusters", cluster_id=cluster_id)


@router.get("/notebooks/{notebook_id}")
def notebook(notebook_id: int, request: Request, ctx: CtxDep) -> HTMLResponse:
    """404 for a notebook the user cannot see, as the API answers: the page never shows someone else's."""
    session = _session(request, ctx)
    if not notebooks.visible(ctx, session.principal, notebook_id):
        message = f"Notebook {notebook_id} not found. It may have been deleted, or it is not yours."
        return web_render.render(
            "not_found.html", status=404, session=session, page="workspace", message=message, back="/ui/workspace"
        )
    return web_render.render("notebook.html", session=session, page="workspace", notebook_id=notebook_id)


@router.get("/batches/{batch_id}")
def batch(batch_id: int, request: Request, ctx: CtxDep) -> HTMLResponse:
    return _page(request, ctx, "batch.html", "batches", batch_id=batch_id)


@router.get("/admin")
def admin(request: Request, ctx: CtxDep) -> HTMLResponse:
    session = _session(request, ctx)
    if not session.principal.is_admin:
        return web_render.render("forbidden.html", status=403, session=session, page="admin")
    return web_render.render("admin.html", session=session, page="admin")
