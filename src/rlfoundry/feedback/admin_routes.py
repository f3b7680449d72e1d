"""The admin's pages: projects, item imports, people and tokens, progress and agreement.
Every route needs a logged-in admin (``web.require``) and every form post the session's
CSRF token; what the CLI does (``feedback create-project``, ``import``,
``add-annotator``, ``add-member``, ``rotate-token``) is done here by the same functions.

    GET  /admin                    every project's progress and agreement; new project form
    POST /admin/projects           create a project
    GET  /admin/p/{project}        one project: progress, members, import form
    POST /admin/p/{project}/import upload a JSONL file of items (all lines or none)
    POST /admin/p/{project}/members  make annotators members
    GET  /admin/people             annotators, reviewers and admins; new person form
    POST /admin/people             create one: the page shows its token once
    POST /admin/people/rotate      a new token for someone (the old one dies)
    GET  /api/stats                agreement statistics as JSON
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from rlfoundry.errors import RLFoundryError
from rlfoundry.feedback import accounts
from rlfoundry.feedback.db import KINDS
from rlfoundry.feedback.projects import (
    create_project,
    import_items,
    list_projects,
    parse_text,
    project_by_id,
)
from rlfoundry.feedback.reports import project_stats
from rlfoundry.feedback.review import review_counts
from rlfoundry.feedback.web import Api, Id, form_csrf, page_user, render, require

MAX_NAME = 200


def _int(form: Any, name: str, default: int) -> int:
    raw = str(form.get(name, "") or default).strip()
    try:
        return int(raw)
    except ValueError:
        raise RLFoundryError(f"{name} must be a whole number, got '{raw[:20]}'.") from None


def add_admin_routes(app: FastAPI) -> None:
    engine = app.state.engine

    def _all_stats() -> list[dict[str, Any]]:
        return [
            {**project_stats(engine, p.name), "id": p.id, **review_counts(engine, p.id)}
            for p in list_projects(engine)
        ]

    async def _admin(request: Request, who: Any, error: str | None = None, status: int = 200):
        stats = await run_in_threadpool(_all_stats)
        return render(
            request,
            "admin.html",
            422 if error else status,
            who=who,
            stats=stats,
            kinds=KINDS,
            error=error,
        )

    @app.get("/admin")
    async def admin_page(request: Request):
        who = require(await page_user(request), "admin")
        return await _admin(request, who)

    @app.post("/admin/projects")
    async def admin_create_project(request: Request):
        who = require(await page_user(request), "admin")
        form = await form_csrf(request, who)
        name = str(form.get("name", "")).strip()
        try:
            if not 0 < len(name) <= MAX_NAME:
                raise RLFoundryError(f"A project name must be 1-{MAX_NAME} characters.")
            pid = await run_in_threadpool(
                create_project,
                engine,
                name,
                str(form.get("kind", "")),
                overlap=_int(form, "overlap", 2),
                gold_every=_int(form, "gold_every", 0),
                guidelines=str(form.get("guidelines", "")),
            )
        except RLFoundryError as err:
            return await _admin(request, who, str(err))
        return RedirectResponse(f"/admin/p/{pid}", status_code=303)

    def _project_ctx(project_id: int) -> dict[str, Any]:
        project = project_by_id(engine, project_id)
        if project is None:
            raise HTTPException(404, "No such project.")
        people = accounts.list_annotators(engine)
        return {
            "project": project,
            "st": {**project_stats(engine, project.name), **review_counts(engine, project.id)},
            "members": [p for p in people if project.name in p["projects"]],
            "others": [p for p in people if project.name not in p["projects"]],
        }

    async def _project_page(request, who, project_id, error=None, notice=None):
        ctx = await run_in_threadpool(_project_ctx, project_id)
        status = 422 if error else 200
        return render(
            request, "admin_project.html", status, who=who, error=error, notice=notice, **ctx
        )

    @app.get("/admin/p/{project_id}")
    async def admin_project(request: Request, project_id: Id):
        who = require(await page_user(request), "admin")
        return await _project_page(request, who, project_id)

    @app.post("/admin/p/{project_id}/import")
    async def admin_import(request: Request, project_id: Id):
        who = require(await page_user(request), "admin")
        form = await form_csrf(request, who)
        project = await run_in_threadpool(project_by_id, engine, project_id)
        if project is None:
            raise HTTPException(404, "No such project.")
        upload = form.get("file")
        try:
            if upload is None or isinstance(upload, str):
                raise RLFoundryError("Choose a JSONL file to upload.")
            name = Path(upload.filename or "upload.jsonl").name
            try:
                text = (await upload.read()).decode("utf-8")
            except UnicodeDecodeError:
                raise RLFoundryError(f"'{name}' is not UTF-8 text; re-save it as UTF-8.") from None
            items = parse_text(text, project.kind, name)
            n = await run_in_threadpool(import_items, engine, project.name, items, Path(name))
        except RLFoundryError as err:
            return await _project_page(request, who, project_id, error=str(err))
        notice = f"Imported {n} items ({sum(it.is_gold for it in items)} gold) from {name}."
        return await _project_page(request, who, project_id, notice=notice)

    @app.post("/admin/p/{project_id}/members")
    async def admin_members(request: Request, project_id: Id):
        who = require(await page_user(request), "admin")
        form = await form_csrf(request, who)
        project = await run_in_threadpool(project_by_id, engine, project_id)
        if project is None:
            raise HTTPException(404, "No such project.")
        names = [str(n) for n in form.getlist("name")]
        try:
            added = await run_in_threadpool(accounts.add_members, engine, project.name, names)
        except RLFoundryError as err:
            return await _project_page(request, who, project_id, error=str(err))
        notice = f"Added {', '.join(added) or 'nobody'}."
        return await _project_page(request, who, project_id, notice=notice)

    async def _people(request, who, error=None, token=None, status=200):
        people = await run_in_threadpool(accounts.list_annotators, engine)
        projects = await run_in_threadpool(list_projects, engine)
        return render(
            request,
            "admin_people.html",
            422 if error else status,
            who=who,
            people=people,
            projects=projects,
            error=error,
            token=token,
        )

    @app.get("/admin/people")
    async def admin_people(request: Request):
        who = require(await page_user(request), "admin")
        return await _people(request, who)

    @app.post("/admin/people")
    async def admin_add_person(request: Request):
        who = require(await page_user(request), "admin")
        form = await form_csrf(request, who)
        name, role = str(form.get("name", "")).strip(), str(form.get("role", "annotator"))
        projects = [str(p) for p in form.getlist("project")]
        try:
            if role not in ("annotator", "reviewer", "admin"):
                raise RLFoundryError("Role must be annotator, reviewer or admin.")
            token = await run_in_threadpool(
                lambda: accounts.add_annotator(
                    engine,
                    name,
                    admin=role == "admin",
                    reviewer=role == "reviewer",
                    projects=projects,
                )
            )
        except RLFoundryError as err:
            return await _people(request, who, error=str(err))
        return await _people(request, who, token={"name": name, "token": token}, status=201)

    @app.post("/admin/people/rotate")
    async def admin_rotate(request: Request):
        who = require(await page_user(request), "admin")
        form = await form_csrf(request, who)
        name = str(form.get("name", ""))
        try:
            token = await run_in_threadpool(accounts.rotate_token, engine, name)
        except RLFoundryError as err:
            return await _people(request, who, error=str(err))
        return await _people(request, who, token={"name": name, "token": token})

    @app.get("/api/stats")
    def api_stats(who: Api) -> list[dict[str, Any]]:
        if not who.is_admin:
            raise HTTPException(403, "Agreement statistics are for admin annotators.")
        return _all_stats()
