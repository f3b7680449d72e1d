"""The web admin: projects, JSONL uploads, people and tokens, progress; admins only,
CSRF on every form."""

from __future__ import annotations

import json
import re

import pytest
from fb_helpers import bearer, judge, web_login

from rlfoundry.feedback.accounts import add_annotator, list_annotators
from rlfoundry.feedback.projects import get_project

ITEMS = "".join(
    json.dumps({"id": f"i{k}", "prompt": f"q{k}", "responses": [f"a{k}", f"b{k}"]}) + "\n"
    for k in range(3)
)


@pytest.fixture
def admin(client, engine):
    add_annotator(engine, "boss", admin=True)
    return web_login(client, add_annotator(engine, "boss2", admin=True))


def test_admin_creates_project_imports_and_adds_people(client, engine, admin):
    r = client.post(
        "/admin/projects",
        data={
            "csrf": admin,
            "name": "demo",
            "kind": "compare",
            "overlap": "2",
            "gold_every": "0",
            "guidelines": "Be **fair**.",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/admin/p/1"
    assert get_project(engine, "demo").overlap == 2
    # a bad file: one sentence per bad line, nothing imported
    bad = ITEMS + '{"id": "x", "prompt": "", "responses": ["a", "b"]}\n'
    files = {"file": ("items.jsonl", bad.encode(), "application/jsonl")}
    r = client.post("/admin/p/1/import", data={"csrf": admin}, files=files)
    assert r.status_code == 422 and "line 4" in r.text and "nothing was imported" in r.text
    files = {"file": ("items.jsonl", ITEMS.encode(), "application/jsonl")}
    r = client.post("/admin/p/1/import", data={"csrf": admin}, files=files)
    assert r.status_code == 200 and "Imported 3 items (0 gold) from items.jsonl." in r.text
    r = client.post("/admin/p/1/import", data={"csrf": admin}, files=files)
    assert r.status_code == 422 and "already in project" in r.text
    # people: an annotator of demo, a reviewer; the token is shown once and logs in
    r = client.post(
        "/admin/people", data={"csrf": admin, "name": "ann", "role": "annotator", "project": "demo"}
    )
    assert r.status_code == 201
    token = re.search(r'id="token">([^<]+)<', r.text).group(1)
    assert client.get("/api/me", headers=bearer(token)).json()["name"] == "ann"
    r = client.post("/admin/people", data={"csrf": admin, "name": "rev", "role": "reviewer"})
    rev = re.search(r'id="token">([^<]+)<', r.text).group(1)
    assert client.get("/api/me", headers=bearer(rev)).json()["is_reviewer"] is True
    r = client.post("/admin/people", data={"csrf": admin, "name": "ann", "role": "annotator"})
    assert r.status_code == 422 and "already exists" in r.text
    people = {p["name"]: p for p in list_annotators(engine)}
    assert people["ann"]["projects"] == ["demo"] and people["rev"]["projects"] == []
    # add the reviewer as a member; rotate ann's token
    r = client.post("/admin/p/1/members", data={"csrf": admin, "name": ["rev"]})
    assert "Added rev." in r.text
    r = client.post("/admin/people/rotate", data={"csrf": admin, "name": "ann"})
    new = re.search(r'id="token">([^<]+)<', r.text).group(1)
    assert client.get("/api/me", headers=bearer(token)).status_code == 401
    judge(client, new, 1, choice="A")
    # progress and agreement on the project page
    html = client.get("/admin/p/1").text
    assert "0 / 3 items complete, 1 judgments" in html and "0 skipped, 0 flagged" in html


def test_admin_routes_need_an_admin_and_the_csrf_token(client, engine, admin):
    posts = [
        ("/admin/projects", {"name": "x", "kind": "compare"}),
        ("/admin/people", {"name": "y", "role": "admin"}),
        ("/admin/people/rotate", {"name": "boss"}),
        ("/admin/p/1/members", {"name": ["boss"]}),
        ("/admin/p/1/import", {}),
    ]
    client.post("/admin/projects", data={"csrf": admin, "name": "p", "kind": "rate"})
    for url, data in posts:  # logged-in admin without the CSRF field
        assert client.post(url, data=data).status_code == 403, url
    assert {p["name"] for p in list_annotators(engine)} == {"boss", "boss2"}
    client.cookies.clear()
    for url, _ in posts:  # nobody: to the login page
        assert client.post(url, follow_redirects=False).headers["location"] == "/login"
    for url in ("/admin", "/admin/people", "/admin/p/1"):
        assert client.get(url, follow_redirects=False).headers["location"] == "/login"
    # an annotator and a reviewer: 403 on every admin page and post
    for role in ("annotator", "reviewer"):
        client.cookies.clear()
        csrf = web_login(client, add_annotator(engine, role, reviewer=role == "reviewer"))
        for url in ("/admin", "/admin/people", "/admin/p/1"):
            assert client.get(url).status_code == 403, url
        for url, data in posts:
            assert client.post(url, data={**data, "csrf": csrf}).status_code == 403, url
    assert {p["name"] for p in list_annotators(engine)} == {
        "boss",
        "boss2",
        "annotator",
        "reviewer",
    }


def test_names_and_guidelines_are_escaped_on_admin_pages(client, engine, admin):
    evil = "<script>alert(1)</script>"
    client.post("/admin/projects", data={"csrf": admin, "name": evil, "kind": "compare"})
    client.post("/admin/people", data={"csrf": admin, "name": evil + "x", "role": "annotator"})
    for url in ("/admin", "/admin/people", "/admin/p/1"):
        html = client.get(url).text
        assert evil not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html, url
