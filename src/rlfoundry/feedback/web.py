"""What every route of the web app shares: who the caller is (token or session), the
CSRF check, role checks, and rendering a template with the response's CSP nonce.

The app (``app``), the admin pages (``admin_routes``) and the review pages
(``review_routes``) all authenticate through here, so a new route cannot forget to:
pages call :func:`page_user` (redirect to the login page) and then :func:`require`
for a role; writes check the CSRF token with :func:`form_csrf` / :func:`check_csrf`;
the JSON API depends on :data:`Api`.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Body, Depends, HTTPException, Path, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from rlfoundry.feedback import accounts
from rlfoundry.feedback.accounts import Who
from rlfoundry.feedback.guards import FailureLimiter
from rlfoundry.feedback.labels import LabelError

COOKIE = "rlf_session"
CSRF_HEADER = "x-csrf-token"
ID_MAX = 2**63 - 1  # database integer keys are signed 64-bit


class LoginRequired(Exception):
    pass


class Forbidden(Exception):
    """A logged-in caller without the role a page needs (the app answers a 403 page)."""

    def __init__(self, who: Who, title: str, message: str) -> None:
        super().__init__(title)
        self.who, self.title, self.message = who, title, message


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


def check_csrf(who: Who, supplied: Any) -> None:
    if who.csrf is None:  # Bearer: nothing the browser would attach on its own
        return
    if not isinstance(supplied, str) or not supplied or not hmac.compare_digest(supplied, who.csrf):
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


async def page_user(request: Request) -> Who:
    """The logged-in caller of an HTML page; not logged in: redirect to /login."""
    who = await run_in_threadpool(authenticate, request.app.state.engine, request)
    if who is None:
        raise LoginRequired
    return who


ROLES = {
    "admin": (
        "Admins only",
        "Ask for an admin token (rlfoundry feedback add-annotator NAME --admin).",
    ),
    "reviewer": (
        "Reviewers only",
        "Ask an admin for the reviewer role (add-annotator NAME --reviewer, or the admin page).",
    ),
}


def require(who: Who, role: str) -> Who:
    """``who`` if they hold ``role`` ("admin", or "reviewer", which admins also hold)."""
    ok = who.is_admin if role == "admin" else who.may_review
    if not ok:
        raise Forbidden(who, *ROLES[role])
    return who


def api_require(who: Who, role: str) -> Who:
    """:func:`require` for the JSON API: 403 with a sentence."""
    try:
        return require(who, role)
    except Forbidden as err:
        raise HTTPException(403, f"{err.title}: {err.message}") from None


async def form_csrf(request: Request, who: Who) -> Any:
    """The posted form (urlencoded or multipart), once its CSRF field is checked."""
    form = await request.form()
    check_csrf(who, form.get("csrf"))
    return form


def render(
    request: Request, name: str, status: int = 200, headers: Any = None, **ctx: Any
) -> HTMLResponse:
    templates = request.app.state.templates
    html = templates.get_template(name).render(nonce=request.state.nonce, **ctx)
    return HTMLResponse(html, status_code=status, headers=headers)


def form_id(form: Any, name: str) -> int:
    """A positive database id from a form field, or 422."""
    try:
        value = int(str(form.get(name, "")))
    except ValueError:
        value = 0
    if not 1 <= value <= ID_MAX:
        raise HTTPException(422, f"{name} must be a whole number from 1 to {ID_MAX}.")
    return value


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
    elif kind == "rewrite":
        payload.update(choice=form.get("choice"), rewrite=form.get("rewrite"))
    return payload
