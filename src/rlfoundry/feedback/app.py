"""The annotation web app: HTML pages for people, a JSON API for scripts.

Authentication: ``POST /login`` with an annotator token opens a server-side session
whose key travels in an HttpOnly, SameSite=Strict cookie; scripts send
``Authorization: Bearer TOKEN`` instead. Cookie-authenticated writes must also carry
the session's CSRF token (hidden ``csrf`` form field or ``X-CSRF-Token`` header);
SameSite=Strict alone already keeps the cookie off cross-site requests, the token is
the second lock. Every response has a strict Content-Security-Policy whose nonce is
the only way to run a script, so even an escaping bug would not execute injected JS.

An annotator only ever sees their own judgments and the projects they are a member
of; another annotator's assignment or judgment id, or a project one is not a member
of, answers 404, the same as one that does not exist. Ids outside 1..2**63-1 answer 422.

In front of all of it (:mod:`rlfoundry.feedback.guards`): request bodies over
``max_body_bytes`` get 413 before anything is parsed or authenticated, every response
(errors included) carries the security headers, and a client that presents
``login_limit`` wrong tokens within a minute gets 429 with ``Retry-After``.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from rlfoundry.feedback import accounts
from rlfoundry.feedback.accounts import Who, member_project, member_projects
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
    own_judgment,
    own_judgments,
    submit,
    update_judgment,
)
from rlfoundry.feedback.labels import LabelError
from rlfoundry.feedback.projects import list_projects
from rlfoundry.feedback.reports import project_stats
from rlfoundry.feedback.tasks import progress, task_view
from rlfoundry.feedback.templates import environment

COOKIE = "rlf_session"
CSRF_HEADER = "x-csrf-token"


ID_MAX = 2**63 - 1  # database integer keys are signed 64-bit


class LoginRequired(Exception):
    pass


def client_key(request: Request) -> str:
    """Who the failed-token limit counts against: the client's address (uvicorn takes it
    from X-Forwarded-For only of a trusted proxy: 127.0.0.1 or $FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else "unknown"


def too_many_attempts(wait: int) -> HTTPException:
    return HTTPException(
        429,
        f"Too many wrong tokens from your address; try again in {wait} s.",
        headers={"Retry-After": str(wait)},
    )


def authenticate(engine: Engine, request: Request) -> Who | None:
    """The caller, from a Bearer token or a session cookie; ``None`` if neither is valid.

    A presented token counts against the client's failed-attempt limit when wrong, and
    while the client is over the limit it is refused (429) without being checked, so the
    answer tells a guesser nothing.
    """
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        token = auth[7:].strip()
        limiter: FailureLimiter = request.app.state.login_limiter
        if token and (wait := limiter.retry_after(client_key(request))):
            raise too_many_attempts(wait)
        who = accounts.who_for_token(engine, token)
        if who is None and token:
            limiter.fail(client_key(request))
        return who
    key = request.cookies.get(COOKIE)
    return accounts.who_for_session(engine, key) if key else None


def check_csrf(who: Who, supplied: str | None) -> None:
    if who.csrf is None:  # Bearer: nothing the browser would attach on its own
        return
    if not supplied or not hmac.compare_digest(supplied, who.csrf):
        raise HTTPException(403, "Missing or wrong CSRF token; reload the page and try again.")


def api_user(request: Request) -> Who:
    """Dependency of every API route; runs before body validation, so 401 comes first."""
    who = authenticate(request.app.state.engine, request)
    if who is None:
        raise HTTPException(
            401,
            "A valid token is required: send 'Authorization: Bearer TOKEN' or log in.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if request.method not in ("GET", "HEAD"):
        check_csrf(who, request.headers.get(CSRF_HEADER))
    return who


Api = Annotated[Who, Depends(api_user)]
Payload = Annotated[dict[str, Any], Body()]
# Out-of-range ids are refused by validation (422) instead of overflowing the driver.
Id = Annotated[int, Path(ge=1, le=ID_MAX)]


def form_payload(kind: str, form: Any) -> dict[str, Any]:
    """HTML form fields -> the JSON payload ``labels.from_display`` takes."""
    payload: dict[str, Any] = {"reason": form.get("reason", ""), "active_ms": form.get("active_ms")}
    if kind == "compare":
        payload["choice"] = form.get("choice")
    elif kind == "rank":
        ranks = {k[5:]: form.get(k) for k in form if k.startswith("rank_")}
        try:
            values = {letter: int(v) for letter, v in ranks.items()}
        except (TypeError, ValueError):
            raise LabelError("Give every response a rank.") from None
        if sorted(values.values()) != list(range(1, len(values) + 1)):
            raise LabelError("Give every response a different rank, 1 being the best.")
        payload["ranking"] = sorted(values, key=values.__getitem__)
    elif kind == "rate":
        payload["ratings"] = {k[7:]: form.get(k) for k in form if k.startswith("rating_")}
    return payload


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
    templates = environment()
    app = FastAPI(title="rlfoundry feedback", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine
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

    def render(
        request: Request, name: str, status: int = 200, headers: Any = None, **ctx: Any
    ) -> HTMLResponse:
        html = templates.get_template(name).render(nonce=request.state.nonce, **ctx)
        return HTMLResponse(html, status_code=status, headers=headers)

    async def page_user(request: Request) -> Who:
        who = await run_in_threadpool(authenticate, engine, request)
        if who is None:
            raise LoginRequired
        return who

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
        form = await request.form()
        check_csrf(who, form.get("csrf"))
        try:
            assignment_id = int(str(form.get("assignment_id", "")))
        except ValueError:
            assignment_id = 0
        if not 1 <= assignment_id <= ID_MAX:
            raise HTTPException(422, f"assignment_id must be a whole number from 1 to {ID_MAX}.")
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

    def _all_stats() -> list[dict[str, Any]]:
        return [project_stats(engine, p.name) for p in list_projects(engine)]

    @app.get("/admin", response_class=HTMLResponse)
    async def admin_page(request: Request):
        who = await page_user(request)
        if not who.is_admin:
            return render(
                request,
                "message.html",
                403,
                who=who,
                title="Admins only",
                message="Ask for an admin token (rlfoundry feedback add-annotator NAME --admin).",
            )
        stats = await run_in_threadpool(_all_stats)
        return render(request, "admin.html", who=who, stats=stats)

    # ------------------------------------------------------------------ JSON API

    @app.get("/api/me")
    def api_me(who: Api) -> dict[str, Any]:
        return {"name": who.name, "is_admin": who.is_admin}

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

    @app.get("/api/stats")
    def api_stats(who: Api) -> list[dict[str, Any]]:
        if not who.is_admin:
            raise HTTPException(403, "Agreement statistics are for admin annotators.")
        return _all_stats()

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    return app
