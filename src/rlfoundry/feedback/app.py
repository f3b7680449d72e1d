"""The annotation web app: HTML pages for people, a JSON API for scripts.

Authentication: ``POST /login`` with an annotator token opens a server-side session
whose key travels in an HttpOnly, SameSite=Strict cookie; scripts send
``Authorization: Bearer TOKEN`` instead. Cookie-authenticated writes must also carry
the session's CSRF token (hidden ``csrf`` form field or ``X-CSRF-Token`` header);
SameSite=Strict alone already keeps the cookie off cross-site requests, the token is
the second lock. Every response has a strict Content-Security-Policy whose nonce is
the only way to run a script, so even an escaping bug would not execute injected JS.

Roles: annotators work in the projects they are members of; reviewers also adjudicate
there (``review_routes``); admins do everything, everywhere (``admin_routes``). Every
route authenticates through ``web`` (``page_user`` / ``Api``) and checks its role
with ``web.require``; a caller without the role gets 403.

An annotator only ever sees their own judgments and the projects they are a member
of; another annotator's assignment or judgment id, or a project one is not a member
of, answers 404, the same as one that does not exist. Ids outside 1..2**63-1 answer 422.

In front of all of it (:mod:`rlfoundry.feedback.guards`): request bodies over
``max_body_bytes`` get 413 before anything is parsed or authenticated, every response
(errors included) carries the security headers, and a client that presents
``login_limit`` wrong tokens within a minute gets 429 with ``Retry-After``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from rlfoundry.feedback import accounts
from rlfoundry.feedback.accounts import Who, member_project, member_projects
from rlfoundry.feedback.admin_routes import add_admin_routes
from rlfoundry.feedback.assign import next_assignment
from rlfoundry.feedback.db import make_engine
from rlfoundry.feedback.guards import (
    DEFAULT_LOGIN_LIMIT,
    DEFAULT_MAX_BODY,
    LOGIN_WINDOW,
    BodyLimit,
    FailureLimiter,
    SecurityHeaders,
)
from rlfoundry.feedback.judgments import (
    Conflict,
    NotFound,
    judgment_history,
    judgment_page,
    mark,
    own_judgment,
    own_judgments,
    submit,
    update_judgment,
    version_counts,
)
from rlfoundry.feedback.labels import LabelError
from rlfoundry.feedback.review_routes import add_review_routes
from rlfoundry.feedback.tasks import progress, task_view
from rlfoundry.feedback.templates import environment
from rlfoundry.feedback.web import (
    COOKIE,
    CSRF_HEADER,
    ID_MAX,
    Api,
    Forbidden,
    Id,
    LoginRequired,
    Payload,
    check_csrf,
    client_key,
    form_csrf,
    form_id,
    form_payload,
    page_user,
    render,
)

__all__ = ["COOKIE", "CSRF_HEADER", "ID_MAX", "create_app", "form_payload"]


def create_app(
    db: str | Engine | None = None,
    *,
    secure_cookies: bool = False,
    max_body_bytes: int | None = DEFAULT_MAX_BODY,
    login_limit: int = DEFAULT_LOGIN_LIMIT,
) -> FastAPI:
    """The app over database ``db`` (SQLAlchemy URL, engine, or $RLFOUNDRY_FEEDBACK_DB).

    ``max_body_bytes``: larger request bodies get 413 (``None``: no limit).
    ``login_limit``: wrong tokens a client may present per minute before 429 (0: off).
    """
    engine = db if isinstance(db, Engine) else make_engine(db)
    app = FastAPI(title="rlfoundry feedback", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine
    app.state.templates = environment()
    app.state.login_limiter = FailureLimiter(login_limit, LOGIN_WINDOW)
    # Added last = outermost: headers go on the body limit's 413 as well.
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(LoginRequired)
    async def _to_login(request: Request, exc: LoginRequired):
        return RedirectResponse("/login", status_code=303)

    for exc_type, status in ((NotFound, 404), (Conflict, 409), (LabelError, 422)):

        async def _handler(request: Request, exc: Exception, status: int = status):
            return JSONResponse({"detail": str(exc)}, status_code=status)

        app.exception_handler(exc_type)(_handler)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden):
        return render(
            request, "message.html", 403, who=exc.who, title=exc.title, message=exc.message
        )

    # ------------------------------------------------------------------ pages

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request):
        return render(request, "login.html", who=None, error=None)

    @app.post("/login")
    async def login(request: Request):
        # Login CSRF (logging a victim into the attacker's account) needs no cookie, so
        # SameSite does not stop it; browsers label cross-site form posts, refuse those.
        if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            raise HTTPException(403, "Log in from the app's own login page.")
        form = await request.form()
        limiter: FailureLimiter = app.state.login_limiter
        if wait := limiter.retry_after(client_key(request)):
            msg = f"Too many wrong tokens from your address; try again in {wait} s."
            return render(
                request, "login.html", 429, {"Retry-After": str(wait)}, who=None, error=msg
            )
        token = str(form.get("token", "")).strip()
        result = await run_in_threadpool(accounts.login, engine, token)
        if result is None:
            if token:
                limiter.fail(client_key(request))
            return render(request, "login.html", 401, who=None, error="That token is not valid.")
        key, _ = result
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE,
            key,
            max_age=int(accounts.SESSION_TTL.total_seconds()),
            httponly=True,
            samesite="strict",
            secure=secure_cookies,
            path="/",
        )
        return response

    @app.post("/logout")
    async def logout(request: Request):
        who = await page_user(request)
        form = await request.form()
        check_csrf(who, form.get("csrf"))
        await run_in_threadpool(accounts.logout, engine, request.cookies.get(COOKIE, ""))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    def _projects(who: Who) -> list[dict[str, Any]]:
        return [
            {
                "id": p.id,
                "name": p.name,
                "kind": p.kind,
                "progress": progress(engine, p.id, who.id, project_wide=True),
            }
            for p in member_projects(engine, who)
        ]

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request):
        who = await page_user(request)
        projects = await run_in_threadpool(_projects, who)
        return render(request, "home.html", who=who, projects=projects)

    def _task_context(project_id: int, who: Who) -> dict[str, Any] | None:
        project = member_project(engine, who, project_id)
        if project is None:
            return None
        a = next_assignment(engine, project_id, who.id, project=project)
        view = task_view(engine, project, who.id, None if a is None else a.id)
        return {"project": project, **view}

    async def _show_task(request: Request, who: Who, project_id: int, error: str | None = None):
        ctx = await run_in_threadpool(_task_context, project_id, who)
        if ctx is None:
            return render(
                request, "message.html", 404, who=who, title="No such project", message=""
            )
        if "assignment_id" not in ctx:
            return render(request, "done.html", who=who, **ctx)
        return render(request, "task.html", 422 if error else 200, who=who, error=error, **ctx)

    @app.get("/p/{project_id}", response_class=HTMLResponse)
    async def task_page(request: Request, project_id: Id):
        who = await page_user(request)
        return await _show_task(request, who, project_id)

    @app.post("/p/{project_id}/submit")
    async def task_submit(request: Request, project_id: Id):
        who = await page_user(request)
        form = await form_csrf(request, who)
        assignment_id = form_id(form, "assignment_id")
        project = await run_in_threadpool(member_project, engine, who, project_id)
        if project is None:
            raise HTTPException(404, "No such project.")
        kind = project.kind
        try:
            payload = form_payload(kind, form)
            await run_in_threadpool(submit, engine, who, assignment_id, payload)
        except LabelError as err:
            return await _show_task(request, who, project_id, error=str(err))
        except (NotFound, Conflict):
            pass  # stale tab or double submit: just show what is next
        return RedirectResponse(f"/p/{project_id}", status_code=303)

    @app.post("/p/{project_id}/mark")
    async def task_mark(request: Request, project_id: Id):
        """The task page's Skip and Flag buttons (the reason box is the reason)."""
        who = await page_user(request)
        form = await form_csrf(request, who)
        assignment_id = form_id(form, "assignment_id")
        if await run_in_threadpool(member_project, engine, who, project_id) is None:
            raise HTTPException(404, "No such project.")
        action = str(form.get("action", ""))
        try:
            await run_in_threadpool(mark, engine, who, assignment_id, action, form.get("reason"))
        except LabelError as err:
            return await _show_task(request, who, project_id, error=str(err))
        except (NotFound, Conflict):
            pass
        return RedirectResponse(f"/p/{project_id}", status_code=303)

    @app.get("/mine", response_class=HTMLResponse)
    async def mine_page(request: Request):
        """One's own judgments, with how many versions each has."""
        who = await page_user(request)
        rows = await run_in_threadpool(own_judgments, engine, who)
        counts = await run_in_threadpool(version_counts, engine, who)
        rows = [{**r, "versions": counts.get(r["id"], 1)} for r in reversed(rows)]
        return render(request, "mine.html", who=who, judgments=rows)

    async def _show_judgment(request: Request, who: Who, judgment_id: int, error=None):
        ctx = await run_in_threadpool(judgment_page, engine, who, judgment_id)
        return render(request, "judgment.html", 422 if error else 200, who=who, error=error, **ctx)

    @app.get("/mine/{judgment_id}", response_class=HTMLResponse)
    async def judgment_view(request: Request, judgment_id: Id):
        who = await page_user(request)
        return await _show_judgment(request, who, judgment_id)

    @app.post("/mine/{judgment_id}")
    async def judgment_edit(request: Request, judgment_id: Id):
        """An edit appends a version (the history keeps every one)."""
        who = await page_user(request)
        form = await form_csrf(request, who)
        kind = (await run_in_threadpool(own_judgment, engine, who, judgment_id))["kind"]
        try:
            payload = form_payload(kind, form)
            await run_in_threadpool(update_judgment, engine, who, judgment_id, payload)
        except LabelError as err:
            return await _show_judgment(request, who, judgment_id, error=str(err))
        return RedirectResponse(f"/mine/{judgment_id}", status_code=303)

    add_admin_routes(app)
    add_review_routes(app)

    # ------------------------------------------------------------------ JSON API

    @app.get("/api/me")
    def api_me(who: Api) -> dict[str, Any]:
        return {"name": who.name, "is_admin": who.is_admin, "is_reviewer": who.is_reviewer}

    @app.get("/api/projects")
    def api_projects(who: Api) -> list[dict[str, Any]]:
        return _projects(who)

    @app.post("/api/projects/{project_id}/next")
    def api_next(who: Api, project_id: Id) -> dict[str, Any]:
        ctx = _task_context(project_id, who)
        if ctx is None:
            raise HTTPException(404, "No such project.")
        project = ctx.pop("project")
        ctx.update(
            project=project.name, guidelines=project.guidelines, done="assignment_id" not in ctx
        )
        return ctx

    @app.post("/api/assignments/{assignment_id}/judgment", status_code=201)
    def api_submit(who: Api, assignment_id: Id, payload: Payload) -> dict[str, Any]:
        j = submit(engine, who, assignment_id, payload)
        return {"id": j.id, "assignment_id": j.assignment_id}

    @app.get("/api/judgments")
    def api_judgments(who: Api) -> list[dict[str, Any]]:
        return own_judgments(engine, who)

    @app.get("/api/judgments/{judgment_id}")
    def api_judgment(who: Api, judgment_id: Id) -> dict[str, Any]:
        return own_judgment(engine, who, judgment_id)

    @app.put("/api/judgments/{judgment_id}")
    def api_update(who: Api, judgment_id: Id, payload: Payload) -> dict[str, Any]:
        return update_judgment(engine, who, judgment_id, payload)

    @app.get("/api/judgments/{judgment_id}/history")
    def api_history(who: Api, judgment_id: Id) -> list[dict[str, Any]]:
        return judgment_history(engine, who, judgment_id)

    @app.post("/api/assignments/{assignment_id}/skip")
    def api_skip(who: Api, assignment_id: Id, payload: Payload) -> dict[str, Any]:
        mark(engine, who, assignment_id, "skip", payload.get("reason"))
        return {"skipped": assignment_id}

    @app.post("/api/assignments/{assignment_id}/flag")
    def api_flag(who: Api, assignment_id: Id, payload: Payload) -> dict[str, Any]:
        mark(engine, who, assignment_id, "flag", payload.get("reason"))
        return {"flagged": assignment_id}

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    return app
