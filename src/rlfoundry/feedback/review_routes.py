"""The reviewer's pages and API: the review queue of a project and the adjudication of
one item (``review`` does the work). Every route needs a logged-in reviewer or admin;
a reviewer sees only the projects they are a member of, anything else answers 404.

    GET  /review                        projects to review, with their queue sizes
    GET  /review/p/{project}?below=0.8  items with agreement below 0.8, and flagged ones
    GET  /review/i/{item}               votes, reasons, flags; the decision form
    POST /review/i/{item}               store the decision (form, with the CSRF token)
    GET  /api/review/{project}?below=   the queue as JSON
    POST /api/review/items/{item}       {"choice"|"ranking"|"ratings"|..., "note"} or {"discard": true}
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from rlfoundry.feedback.labels import LabelError
from rlfoundry.feedback.review import decide, review_queue, review_view, reviewable_projects
from rlfoundry.feedback.web import (
    Api,
    Id,
    Payload,
    api_require,
    form_csrf,
    form_payload,
    page_user,
    render,
    require,
)

Below = Annotated[float, Query(ge=0.0, le=1.0)]


def add_review_routes(app: FastAPI) -> None:
    engine = app.state.engine

    def _overview(who: Any, below: float) -> list[dict[str, Any]]:
        out = []
        for p in reviewable_projects(engine, who):
            _, queue, n_reviewed = review_queue(engine, who, p.id, below)
            out.append({"project": p, "queue": len(queue), "reviewed": n_reviewed})
        return out

    @app.get("/review")
    async def review_home(request: Request, below: Below = 1.0):
        who = require(await page_user(request), "reviewer")
        rows = await run_in_threadpool(_overview, who, below)
        return render(request, "review_home.html", who=who, rows=rows, below=below)

    @app.get("/review/p/{project_id}")
    async def review_project(request: Request, project_id: Id, below: Below = 1.0):
        who = require(await page_user(request), "reviewer")
        project, queue, n_reviewed = await run_in_threadpool(
            review_queue, engine, who, project_id, below
        )
        return render(
            request,
            "review_queue.html",
            who=who,
            project=project,
            queue=queue,
            reviewed=n_reviewed,
            below=below,
        )

    async def _show_item(request: Request, who: Any, item_id: int, below: float, error=None):
        view = await run_in_threadpool(review_view, engine, who, item_id)
        return render(
            request,
            "review_item.html",
            422 if error else 200,
            who=who,
            below=below,
            error=error,
            **view,
        )

    @app.get("/review/i/{item_id}")
    async def review_item(request: Request, item_id: Id, below: Below = 1.0):
        who = require(await page_user(request), "reviewer")
        return await _show_item(request, who, item_id, below)

    @app.post("/review/i/{item_id}")
    async def review_decide(request: Request, item_id: Id, below: Below = 1.0):
        who = require(await page_user(request), "reviewer")
        form = await form_csrf(request, who)
        view = await run_in_threadpool(review_view, engine, who, item_id)  # 404 if not theirs
        project = view["project"]
        try:
            payload = {"discard": form.get("discard"), "note": form.get("note", "")}
            if not payload["discard"]:
                payload.update(form_payload(project.kind, form))
            await run_in_threadpool(decide, engine, who, item_id, payload)
        except LabelError as err:
            return await _show_item(request, who, item_id, below, error=str(err))
        return RedirectResponse(f"/review/p/{project.id}?below={below}", status_code=303)

    @app.get("/api/review/{project_id}")
    def api_queue(who: Api, project_id: Id, below: Below = 1.0) -> dict[str, Any]:
        api_require(who, "reviewer")
        project, queue, n_reviewed = review_queue(engine, who, project_id, below)
        return {"project": project.name, "below": below, "reviewed": n_reviewed, "queue": queue}

    @app.post("/api/review/items/{item_id}", status_code=201)
    def api_decide(who: Api, item_id: Id, payload: Payload) -> dict[str, Any]:
        api_require(who, "reviewer")
        return {"review_id": decide(engine, who, item_id, payload)}
