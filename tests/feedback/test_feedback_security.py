"""Security: tokens required, annotators isolated, text escaped, imports atomic, loopback."""

import re

import pytest
from fastapi.testclient import TestClient
from fb_helpers import bearer, load, write_jsonl
from sqlalchemy import func, select

from rlfoundry.errors import RLFoundryError
from rlfoundry.feedback.accounts import add_annotator, add_members
from rlfoundry.feedback.app import create_app
from rlfoundry.feedback.db import Annotator, Item, Judgment, Project, read_session
from rlfoundry.feedback.projects import import_items, parse_jsonl

XSS_PROMPT = "Say hi <script>alert('p')</script>"
XSS_RESPONSE = '<img src=x onerror="alert(1)"><b>bold</b>'


@pytest.fixture
def setup(engine, tmp_path):
    rows = [
        {"id": "x1", "prompt": XSS_PROMPT, "responses": [XSS_RESPONSE, "</div><script>1</script>"]},
        {"id": "x2", "prompt": "plain", "responses": ["a", "b"]},
    ]
    load(engine, tmp_path, "p", "compare", rows, overlap=2, gold_every=0)
    return {n: add_annotator(engine, n, admin=(n == "boss")) for n in ("ann", "bob", "boss")}


def judge(client, token, choice="A"):
    task = client.post("/api/projects/1/next", headers=bearer(token)).json()
    r = client.post(
        f"/api/assignments/{task['assignment_id']}/judgment",
        headers=bearer(token),
        json={"choice": choice},
    )
    assert r.status_code == 201, r.text
    return task, r.json()["id"]


API_ROUTES = [
    ("GET", "/api/me"),
    ("GET", "/api/projects"),
    ("POST", "/api/projects/1/next"),
    ("POST", "/api/assignments/1/judgment"),
    ("GET", "/api/judgments"),
    ("GET", "/api/judgments/1"),
    ("PUT", "/api/judgments/1"),
    ("GET", "/api/stats"),
    ("GET", "/api/judgments/1/history"),
    ("POST", "/api/assignments/1/skip"),
    ("POST", "/api/assignments/1/flag"),
    ("GET", "/api/review/1"),
    ("POST", "/api/review/items/1"),
]


def test_api_refuses_requests_without_a_valid_token(setup, engine):
    # 32 wrong tokens from one address: the failed-token limit (429, tested in
    # test_feedback_hardening.py) is turned off to see every answer is 401.
    client = TestClient(create_app(engine, login_limit=0))
    judge(client, setup["ann"])  # something to steal
    for method, url in API_ROUTES:
        for auth in (None, "Bearer", "Bearer not-a-token", "Basic abc", f"Bearer {setup['ann']}x"):
            headers = {"Authorization": auth} if auth else {}
            for body in ({"choice": "A"}, ["not", "a", "dict"]):  # 401 before body validation
                r = client.request(method, url, headers=headers, json=body)
                assert r.status_code == 401, (method, url, auth, r.text)
                assert r.headers["www-authenticate"] == "Bearer"
    with read_session(engine) as s:
        assert s.scalar(select(func.count(Judgment.id))) == 1


def test_pages_redirect_to_login_and_bad_tokens_do_not_log_in(client, setup, engine):
    pages = ("/", "/p/1", "/admin", "/admin/p/1", "/admin/people", "/review", "/review/p/1")
    for url in (*pages, "/review/i/1", "/mine", "/mine/1"):
        r = client.get(url, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login"
    for url in ("/p/1/mark", "/review/i/1", "/mine/1", "/admin/projects", "/admin/people"):
        r = client.post(url, data={"assignment_id": "1", "action": "skip"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login", url
    r = client.post(
        "/p/1/submit", data={"assignment_id": "1", "choice": "A"}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/login"
    r = client.post("/login", data={"token": "wrong"}, follow_redirects=False)
    assert r.status_code == 401 and "rlf_session" not in r.cookies
    r = client.post(  # login CSRF: a cross-site form logging the victim in as someone else
        "/login", data={"token": setup["ann"]}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert r.status_code == 403 and "rlf_session" not in r.cookies
    client.cookies.set("rlf_session", "forged")
    assert client.get("/", follow_redirects=False).status_code == 303
    with read_session(engine) as s:
        assert s.scalar(select(func.count(Judgment.id))) == 0


def test_tokens_are_stored_hashed(engine, setup):
    with read_session(engine) as s:
        hashes = list(s.scalars(select(Annotator.token_hash)))
    assert len(hashes) == 3
    assert not set(hashes) & set(setup.values())
    assert all(re.fullmatch("[0-9a-f]{64}", h) for h in hashes)


def test_annotators_cannot_read_or_change_each_others_judgments(client, setup):
    ann, bob = setup["ann"], setup["bob"]
    _, j_ann = judge(client, ann, "A")
    # bob holds an open assignment of his own; ann cannot judge it either
    task_bob = client.post("/api/projects/1/next", headers=bearer(bob)).json()
    r = client.post(
        f"/api/assignments/{task_bob['assignment_id']}/judgment",
        headers=bearer(ann),
        json={"choice": "B"},
    )
    assert r.status_code == 404
    before = client.get(f"/api/judgments/{j_ann}", headers=bearer(ann)).json()
    assert client.get(f"/api/judgments/{j_ann}", headers=bearer(bob)).status_code == 404
    r = client.put(f"/api/judgments/{j_ann}", headers=bearer(bob), json={"choice": "B"})
    assert r.status_code == 404
    assert client.get("/api/judgments", headers=bearer(bob)).json() == []
    assert client.get(f"/api/judgments/{j_ann}", headers=bearer(ann)).json() == before
    # ann may change her own, and bob's assignment is untouched and still his to judge
    r = client.put(f"/api/judgments/{j_ann}", headers=bearer(ann), json={"choice": "tie"})
    assert r.status_code == 200 and r.json()["choice"] == "tie"
    r = client.post(
        f"/api/assignments/{task_bob['assignment_id']}/judgment",
        headers=bearer(bob),
        json={"choice": "B"},
    )
    assert r.status_code == 201
    # a second submission of the same assignment is a conflict, not a second row
    r = client.post(
        f"/api/assignments/{task_bob['assignment_id']}/judgment",
        headers=bearer(bob),
        json={"choice": "A"},
    )
    assert r.status_code == 409
    assert client.get("/api/stats", headers=bearer(bob)).status_code == 403
    assert client.get("/api/stats", headers=bearer(setup["boss"])).status_code == 200


def login(client, token):
    r = client.post("/login", data={"token": token}, follow_redirects=False)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text).group(1)
    return csrf


def test_cookie_writes_need_the_csrf_token(client, setup):
    csrf = login(client, setup["ann"])
    page = client.get("/p/1").text
    aid = re.search(r'name="assignment_id" value="(\d+)"', page).group(1)
    form = {"assignment_id": aid, "choice": "A"}
    assert client.post("/p/1/submit", data=form).status_code == 403
    assert client.post("/p/1/submit", data={**form, "csrf": "nope"}).status_code == 403
    assert client.post("/api/projects/1/next").status_code == 403  # cookie + no header
    r = client.post("/p/1/submit", data={**form, "csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert len(client.get("/api/judgments").json()) == 1  # GET with the cookie is fine


def test_html_in_prompts_and_responses_is_escaped(client, setup, engine, tmp_path):
    rows = [
        {"id": "x", "prompt": XSS_PROMPT, "responses": [XSS_RESPONSE, "</div><script>1</script>"]}
    ]
    load(engine, tmp_path, "xss", "compare", rows, overlap=1, gold_every=0)
    add_members(engine, "xss", ["ann"])  # created after ann: no members yet
    login(client, setup["ann"])
    html = client.get("/p/2").text
    assert "<script>alert" not in html and "<img src=x" not in html and "<b>bold" not in html
    # markdown-it (html=False) escapes raw HTML as text, quotes left as they are
    assert "&lt;script&gt;alert('p')&lt;/script&gt;" in html
    assert '&lt;img src=x onerror="alert(1)"&gt;' in html
    assert "&lt;/div&gt;&lt;script&gt;1&lt;/script&gt;" in html
    # the only scripts are ours, and the CSP only runs scripts with this response's nonce
    csp = client.get("/p/2").headers["content-security-policy"]
    assert "script-src 'nonce-" in csp and "unsafe-inline" not in csp
    assert all("nonce=" in tag for tag in re.findall(r"<script[^>]*>", html))
    # the JSON API returns the text as data, never as markup
    task = client.post(
        "/api/projects/2/next", headers={"X-CSRF-Token": login(client, setup["ann"])}
    ).json()
    assert task["prompt"] == XSS_PROMPT


def test_malformed_import_lines_are_reported_and_nothing_is_committed(engine, tmp_path):
    src = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"id": 1, "prompt": "ok", "responses": ["a", "b"]},
            "{not json",
            {"id": 3, "prompt": "", "responses": ["a", "b"]},
            {"id": 1, "prompt": "dup", "responses": ["a", "b"]},
            {"id": 5, "prompt": "three", "responses": ["a", "b", "c"]},
            {"id": 6, "prompt": "ok", "responses": ["a", "b"], "gold": 7},
            [1, 2],
        ],
    )
    with pytest.raises(RLFoundryError) as err:
        parse_jsonl(src, "compare")
    msg = str(err.value)
    for n in (2, 3, 4, 5, 6, 7):
        assert f"line {n}:" in msg
    assert "line 1:" not in msg and "nothing was imported" in msg
    # through the CLI: the error is printed, and neither project nor items are created
    from rlfoundry.cli.main import main

    db = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["feedback", "import", str(src), "--db", db]) == 2
    from rlfoundry.feedback.db import make_engine

    eng = make_engine(db)
    with read_session(eng) as s:
        assert s.scalar(select(func.count(Item.id))) == 0
        assert s.scalar(select(func.count(Project.id))) == 0
    eng.dispose()


def test_import_into_existing_project_is_all_or_nothing(engine, tmp_path):
    load(engine, tmp_path, "p", "compare", [{"id": "a", "prompt": "p", "responses": ["x", "y"]}])
    src = write_jsonl(
        tmp_path / "more.jsonl",
        [
            {"id": "b", "prompt": "p", "responses": ["x", "y"]},
            {"id": "a", "prompt": "p", "responses": ["x", "y"]},
        ],
    )
    items = parse_jsonl(src, "compare")  # valid on its own
    with pytest.raises(RLFoundryError, match="line 2: id 'a' is already in project 'p'"):
        import_items(engine, "p", items, src)
    with read_session(engine) as s:
        assert list(s.scalars(select(Item.external_id))) == ["a"]  # 'b' was not committed


def test_serve_binds_to_loopback_unless_told_otherwise(monkeypatch, tmp_path):
    import uvicorn

    from rlfoundry.cli.main import main

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    db = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["feedback", "serve", "--db", db]) == 0
    assert calls[-1]["host"] == "127.0.0.1" and calls[-1]["port"] == 8000
    assert main(["feedback", "serve", "--db", db, "--host", "0.0.0.0", "--port", "9"]) == 0
    assert calls[-1]["host"] == "0.0.0.0"


def test_admin_page_shows_agreement_to_admins_only(client, setup, engine, tmp_path):
    one = [{"id": "o", "prompt": "one", "responses": ["a", "b"]}]
    load(engine, tmp_path, "one", "compare", one, overlap=2, gold_every=0)
    add_members(engine, "one", ["ann", "bob"])
    for name in ("ann", "bob"):  # both judge the only item: one shared unit
        task = client.post("/api/projects/2/next", headers=bearer(setup[name])).json()
        r = client.post(
            f"/api/assignments/{task['assignment_id']}/judgment",
            headers=bearer(setup[name]),
            json={"choice": "tie"},
        )
        assert r.status_code == 201
    login(client, setup["bob"])
    assert client.get("/admin").status_code == 403
    client.cookies.clear()
    login(client, setup["boss"])
    html = client.get("/admin").text
    assert "1 / 1 items complete, 2 judgments" in html
    assert "Percent agreement <b>1.000</b>" in html
    assert "Cohen's kappa per pair" in html and "<td>ann / bob</td>" in html
    assert "built-in method" not in html
