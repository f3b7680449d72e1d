"""Issue 13, feedback server: body limit, id ranges, headers on every response, token
revocation / rotation / disabling, per-project membership, the failed-token limit,
overlong reasons, and opening a database made by the previous schema."""

import asyncio
import json
import re
import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from fb_helpers import bearer, load
from sqlalchemy import func, select

from rlfoundry.cli.main import main
from rlfoundry.feedback.accounts import add_annotator, list_annotators
from rlfoundry.feedback.app import ID_MAX, create_app
from rlfoundry.feedback.db import Judgment, make_engine, read_session
from rlfoundry.feedback.guards import BodyLimit, FailureLimiter
from rlfoundry.feedback.labels import MAX_REASON
from rlfoundry.feedback.reports import project_stats

ROWS = [{"id": f"q{k}", "prompt": f"Q{k}?", "responses": [f"{k}a", f"{k}b"]} for k in range(4)]
SECURITY_HEADERS = {
    "content-security-policy",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "cache-control",
}


@pytest.fixture
def tokens(engine, tmp_path):
    load(engine, tmp_path, "p", "compare", ROWS, overlap=2, gold_every=0)
    return {n: add_annotator(engine, n) for n in ("ann", "bob")}


def has_security_headers(r) -> bool:
    return set(r.headers) >= SECURITY_HEADERS and r.headers["x-content-type-options"] == "nosniff"


def judge(client, token, project=1, **body):
    task = client.post(f"/api/projects/{project}/next", headers=bearer(token)).json()
    r = client.post(
        f"/api/assignments/{task['assignment_id']}/judgment",
        headers=bearer(token),
        json={"choice": "A", **body},
    )
    return task, r


def n_judgments(engine) -> int:
    with read_session(engine) as s:
        return s.scalar(select(func.count(Judgment.id)))


# ---------------------------------------------------------------- 1. body limit


def test_declared_oversized_body_is_refused_before_auth_and_parsing(engine, tokens):
    client = TestClient(create_app(engine, max_body_bytes=1000))
    big = b"x" * 1001  # not even JSON: it must never be parsed
    for headers in ({}, bearer("wrong"), bearer(tokens["ann"])):
        r = client.post("/api/assignments/1/judgment", content=big, headers=headers)
        assert r.status_code == 413, r.text
        assert "limit of 1000 bytes" in r.json()["detail"]
        assert has_security_headers(r)
    r = client.post("/login", content=big, headers={"content-type": "text/plain"})
    assert r.status_code == 413
    # at the limit: parsed and answered as usual
    ok = b'{"choice": "A"}'.ljust(1000)
    assert client.post("/api/assignments/1/judgment", content=ok).status_code == 401
    # no 401 counted against the client for the refused bodies: the token was never read
    assert client.app.state.login_limiter.retry_after("testclient") is None


def test_chunked_oversized_body_is_refused_while_it_streams(engine, tokens):
    client = TestClient(create_app(engine, max_body_bytes=1000))
    sent = []

    def chunks():  # no Content-Length: httpx sends it chunked
        for _ in range(100):
            sent.append(1)
            yield b"y" * 100

    r = client.post(
        "/api/assignments/1/judgment",
        content=chunks(),
        headers={**bearer(tokens["ann"]), "content-type": "application/json"},
    )
    assert r.status_code == 413 and has_security_headers(r)
    assert n_judgments(engine) == 0


def test_body_limit_hands_the_app_at_most_the_limit():
    """Pure ASGI: the app reading a 10-chunk body sees no byte past the limit."""
    seen, sent = [], []

    async def app(scope, receive, send):
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                break
            seen.append(len(msg["body"]))
            if not msg["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"app"})

    async def receive():
        return {"type": "http.request", "body": b"z" * 300, "more_body": True}

    async def send(msg):
        sent.append(msg)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": []}
    asyncio.run(BodyLimit(app, max_bytes=1000)(scope, receive, send))
    assert sum(seen) <= 1000 + 300 and sum(seen) == 900  # the 4th chunk is withheld
    assert [m.get("status") for m in sent if m["type"] == "http.response.start"] == [413]
    assert b"app" not in b"".join(m.get("body", b"") for m in sent)


def test_serve_passes_the_limits_to_the_app(monkeypatch, tmp_path):
    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app))
    db = f"sqlite:///{tmp_path / 's.db'}"
    args = ["feedback", "serve", "--db", db, "--max-body-size", "2KiB", "--login-limit", "3"]
    assert main(args) == 0
    client = TestClient(seen["app"])
    assert client.post("/login", content=b"t" * 2049).status_code == 413
    assert client.post("/login", data={"token": "x" * 2000}).status_code == 401
    assert seen["app"].state.login_limiter.limit == 3
    assert main(["feedback", "serve", "--db", db, "--max-body-size", "0"]) == 0
    big = b"token=" + b"t" * 2_000_000
    r = TestClient(seen["app"]).post("/login", content=big, headers={"content-type": "x"})
    assert r.status_code == 401  # limit off


# ---------------------------------------------------------------- 2. ids and headers


@pytest.mark.parametrize("bad", [str(2**63), "99999999999999999999999", "0", "-1", "1e3"])
def test_ids_out_of_range_are_422_with_headers_never_500(engine, tokens, bad):
    client = TestClient(create_app(engine), raise_server_exceptions=False)
    auth = bearer(tokens["ann"])
    for method, url in [
        ("GET", f"/api/judgments/{bad}"),
        ("PUT", f"/api/judgments/{bad}"),
        ("POST", f"/api/projects/{bad}/next"),
        ("POST", f"/api/assignments/{bad}/judgment"),
    ]:
        r = client.request(method, url, headers=auth, json={"choice": "A"})
        assert r.status_code == 422, (method, url, r.status_code, r.text)
        assert has_security_headers(r)
    client.post("/login", data={"token": tokens["ann"]})
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text).group(1)
    for url in (f"/p/{bad}", f"/p/{bad}/submit"):
        r = client.request("POST" if "submit" in url else "GET", url, data={"csrf": csrf})
        assert r.status_code == 422 and has_security_headers(r), (url, r.text)
    r = client.post("/p/1/submit", data={"csrf": csrf, "assignment_id": bad, "choice": "A"})
    assert r.status_code == 422 and has_security_headers(r)


def test_the_largest_id_is_simply_not_found(client, tokens):
    auth = bearer(tokens["ann"])
    assert client.get(f"/api/judgments/{ID_MAX}", headers=auth).status_code == 404
    assert client.post(f"/api/projects/{ID_MAX}/next", headers=auth).status_code == 404
    r = client.post(f"/api/assignments/{ID_MAX}/judgment", headers=auth, json={"choice": "A"})
    assert r.status_code == 404


def test_every_response_carries_the_security_headers(engine, tokens):
    app = create_app(engine, max_body_bytes=100)

    @app.get("/boom")
    def boom():
        raise RuntimeError("a bug")

    client = TestClient(app, raise_server_exceptions=False)
    answers = [
        client.get("/healthz"),
        client.get("/login"),
        client.get("/", follow_redirects=False),  # 303
        client.get("/nope"),  # 404
        client.delete("/api/me"),  # 405
        client.get("/api/me"),  # 401
        client.post("/api/assignments/1/judgment", content=b"x" * 101),  # 413
        client.get("/api/judgments/0", headers=bearer(tokens["ann"])),  # 422
        client.get("/boom"),  # 500
    ]
    assert [r.status_code for r in answers] == [200, 200, 303, 404, 405, 401, 413, 422, 500]
    for r in answers:
        assert has_security_headers(r), (r.status_code, dict(r.headers))
    assert "RuntimeError" not in answers[-1].text
    csp = answers[1].headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    assert f'nonce="{nonce}"' in answers[1].text  # the page's own style runs under the CSP


# ---------------------------------------------------------------- 3. tokens, disabling


def cli(capsys, *argv):
    code = main(["feedback", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_rotate_revoke_and_disable_take_effect_at_once(engine, tokens, capsys, tmp_path):
    db = str(engine.url)
    client = TestClient(create_app(engine))  # one running app throughout
    _, r = judge(client, tokens["ann"])
    assert r.status_code == 201
    browser = TestClient(create_app(engine))
    assert browser.post("/login", data={"token": tokens["ann"]}).status_code == 200

    code, out, _ = cli(capsys, "rotate-token", "ann", "--db", db)
    new = out.strip().splitlines()[-1]
    assert code == 0 and "shown once" in out and new != tokens["ann"]
    assert client.get("/api/me", headers=bearer(tokens["ann"])).status_code == 401
    assert browser.get("/", follow_redirects=False).status_code == 303  # session ended
    assert client.get("/api/me", headers=bearer(new)).json()["name"] == "ann"

    assert cli(capsys, "revoke-token", "ann", "--db", db)[0] == 0
    assert client.get("/api/me", headers=bearer(new)).status_code == 401
    assert "ann: token revoked" in cli(capsys, "annotators", "--db", db)[1]
    newer = cli(capsys, "rotate-token", "ann", "--db", db)[1].strip().splitlines()[-1]
    assert client.get("/api/me", headers=bearer(newer)).status_code == 200

    # bob holds an open assignment when he is disabled: it goes back to the pool
    task = client.post("/api/projects/1/next", headers=bearer(tokens["bob"])).json()
    assert browser.post("/login", data={"token": tokens["bob"]}).status_code == 200
    code, out, _ = cli(capsys, "disable-annotator", "bob", "--db", db)
    assert code == 0 and "1 open assignment(s) returned" in out
    for r in (
        client.get("/api/me", headers=bearer(tokens["bob"])),
        client.post(
            f"/api/assignments/{task['assignment_id']}/judgment",
            headers=bearer(tokens["bob"]),
            json={"choice": "B"},
        ),
    ):
        assert r.status_code == 401
    assert browser.get("/", follow_redirects=False).status_code == 303
    assert browser.post("/login", data={"token": tokens["bob"]}).status_code == 401
    assert n_judgments(engine) == 1  # ann's judgment stays through all of it
    assert cli(capsys, "enable-annotator", "bob", "--db", db)[0] == 0
    assert client.get("/api/me", headers=bearer(tokens["bob"])).status_code == 200
    code, _, err = cli(capsys, "disable-annotator", "nobody", "--db", db)
    assert code == 2 and "No annotator named 'nobody'" in err


def test_a_disabled_annotators_judgments_stay_in_stats_and_export(engine, tokens, capsys):
    client = TestClient(create_app(engine))
    for name in ("ann", "bob"):
        assert judge(client, tokens[name])[1].status_code == 201
    assert cli(capsys, "disable-annotator", "bob", "--db", str(engine.url))[0] == 0
    stats = project_stats(engine, "p")
    assert stats["judgments"] == 2 and stats["annotators"]["bob"]["done"] == 1


# ---------------------------------------------------------------- 3. membership


def test_annotators_see_and_get_work_only_from_their_projects(engine, tmp_path, capsys):
    db = str(engine.url)
    load(engine, tmp_path, "open", "compare", ROWS, overlap=2, gold_every=0)
    load(engine, tmp_path, "secret", "compare", ROWS, overlap=2, gold_every=0)
    out = cli(capsys, "add-annotator", "ann", "--project", "open", "--db", db)[1]
    assert "member of open;" in out
    ann = out.strip().splitlines()[-1]
    out = cli(capsys, "add-annotator", "old", "--db", db)[1]  # no --project: every project now
    assert "member of open, secret;" in out
    client = TestClient(create_app(engine))
    auth = bearer(ann)

    assert [p["name"] for p in client.get("/api/projects", headers=auth).json()] == ["open"]
    assert client.post("/api/projects/2/next", headers=auth).status_code == 404
    assert client.post("/api/projects/1/next", headers=auth).status_code == 200
    client.post("/login", data={"token": ann})
    home = client.get("/").text
    assert "/p/1" in home and "/p/2" not in home and "secret" not in home
    assert client.get("/p/2").status_code == 404
    client.cookies.clear()

    # a later project has no members until add-member
    load(engine, tmp_path, "later", "compare", ROWS, overlap=2, gold_every=0)
    assert client.post("/api/projects/3/next", headers=auth).status_code == 404
    assert cli(capsys, "add-member", "later", "ann", "--db", db)[0] == 0
    task = client.post("/api/projects/3/next", headers=auth).json()
    assert task["project"] == "later"

    # removed while holding an assignment: it is refused and returned to the pool
    code, out, _ = cli(capsys, "remove-member", "later", "ann", "--db", db)
    assert code == 0 and "removed ann" in out
    r = client.post(
        f"/api/assignments/{task['assignment_id']}/judgment", headers=auth, json={"choice": "A"}
    )
    assert r.status_code == 404
    assert client.post("/api/projects/3/next", headers=auth).status_code == 404
    with read_session(engine) as s:
        from rlfoundry.feedback.db import Item

        assert s.scalar(select(func.sum(Item.n_assigned)).where(Item.project_id == 3)) == 0
    code, _, err = cli(capsys, "add-member", "nope", "ann", "--db", db)
    assert code == 2 and "No project named 'nope'" in err
    listed = json.loads(cli(capsys, "annotators", "--json", "--db", db)[1])
    assert {r["name"]: r["projects"] for r in listed} == {
        "ann": ["open"],
        "old": ["open", "secret"],
    }


def test_judgments_stay_but_cannot_be_changed_after_leaving_a_project(engine, tokens, capsys):
    client = TestClient(create_app(engine))
    _, r = judge(client, tokens["ann"])
    jid = r.json()["id"]
    assert cli(capsys, "remove-member", "p", "ann", "--db", str(engine.url))[0] == 0
    assert client.get(f"/api/judgments/{jid}", headers=bearer(tokens["ann"])).status_code == 200
    r = client.put(f"/api/judgments/{jid}", headers=bearer(tokens["ann"]), json={"choice": "B"})
    assert r.status_code == 404
    assert n_judgments(engine) == 1


# ---------------------------------------------------------------- 3. failed-token limit


def test_failed_logins_are_limited_per_client_with_retry_after(engine, tokens):
    app = create_app(engine, login_limit=3)
    client = TestClient(app)
    for _ in range(3):
        assert client.post("/login", data={"token": "guess"}).status_code == 401
    r = client.post("/login", data={"token": "guess"})
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
    assert "try again in" in r.text and has_security_headers(r)
    # while limited even a valid token is refused, so the answer tells a guesser nothing
    assert client.post("/login", data={"token": tokens["ann"]}).status_code == 429
    r = client.get("/api/me", headers=bearer(tokens["ann"]))
    assert r.status_code == 429 and "retry-after" in r.headers
    # another address is not affected, and Bearer guesses count the same way
    other = TestClient(app, client=("10.0.0.9", 4000))
    assert other.get("/api/me", headers=bearer(tokens["bob"])).status_code == 200
    for _ in range(3):
        assert other.get("/api/me", headers=bearer("guess")).status_code == 401
    assert other.get("/api/me", headers=bearer(tokens["bob"])).status_code == 429
    # requests without a token are not attempts
    assert TestClient(app, client=("10.0.0.10", 1)).get("/api/me").status_code == 401


def test_failure_limiter_window_slides():
    now = [0.0]
    lim = FailureLimiter(limit=2, window=60, clock=lambda: now[0], max_clients=3)
    lim.fail("a")
    now[0] = 30
    assert lim.retry_after("a") is None
    lim.fail("a")
    assert lim.retry_after("a") == 30  # the first failure leaves the window at t=60
    now[0] = 60.5
    assert lim.retry_after("a") is None
    for key in "bcde":  # the table stays bounded
        lim.fail(key)
    assert len(lim._fails) <= 3
    assert FailureLimiter(limit=0).retry_after("a") is None


# ---------------------------------------------------------------- 4. reason length


def test_an_overlong_reason_is_refused_naming_the_limit(engine, tokens):
    client = TestClient(create_app(engine))
    _, r = judge(client, tokens["ann"], reason="r" * (MAX_REASON + 1))
    assert r.status_code == 422 and f"the limit is {MAX_REASON}" in r.json()["detail"]
    assert n_judgments(engine) == 0
    task, r = judge(client, tokens["ann"], reason="r" * MAX_REASON)
    assert r.status_code == 201
    jid = r.json()["id"]
    r = client.put(
        f"/api/judgments/{jid}",
        headers=bearer(tokens["ann"]),
        json={"choice": "B", "reason": "é" * (MAX_REASON + 1)},
    )
    assert r.status_code == 422 and str(MAX_REASON) in r.json()["detail"]
    got = client.get(f"/api/judgments/{jid}", headers=bearer(tokens["ann"])).json()
    assert got["choice"] == "A" and len(got["reason"]) == MAX_REASON  # unchanged
    # the form: the page says why, with the limit, and the textarea carries it too
    client.post("/login", data={"token": tokens["bob"]})
    page = client.get("/p/1").text
    assert f'maxlength="{MAX_REASON}"' in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    aid = re.search(r'name="assignment_id" value="(\d+)"', page).group(1)
    r = client.post(
        "/p/1/submit",
        data={"csrf": csrf, "assignment_id": aid, "choice": "A", "reason": "x" * 6000},
    )
    assert r.status_code == 422 and f"the limit is {MAX_REASON}" in r.text
    assert n_judgments(engine) == 1


# ---------------------------------------------------------------- schema migration


def test_a_database_made_by_the_previous_schema_opens_and_keeps_working(tmp_path, capsys):
    path = tmp_path / "v1.db"
    con = sqlite3.connect(path)
    con.executescript((Path(__file__).parent / "data" / "feedback_v1.sql").read_text())
    con.close()
    engine = make_engine(f"sqlite:///{path}")
    client = TestClient(create_app(engine))
    ann = bearer("ann-token-v1")
    # everyone keeps the projects they saw before memberships existed
    assert [p["name"] for p in client.get("/api/projects", headers=ann).json()] == [
        "alpha",
        "beta",
    ]
    old = client.get("/api/judgments", headers=ann).json()
    assert [(j["project"], j["choice"], j["reason"]) for j in old] == [("alpha", "A", "old reason")]
    # the new tables and columns: the old judgment is its own first revision, nobody is
    # a reviewer, the admin may open the review queue, the old item renders
    hist = client.get(f"/api/judgments/{old[0]['id']}/history", headers=ann).json()
    assert [(h["version"], h["choice"], h["reason"]) for h in hist] == [(1, "A", "old reason")]
    assert client.get("/api/me", headers=ann).json()["is_reviewer"] is False
    assert client.get("/api/review/1", headers=bearer("boss-token-v1")).status_code == 200
    task = client.post("/api/projects/1/next", headers=ann).json()  # her open assignment
    r = client.post(
        f"/api/assignments/{task['assignment_id']}/judgment", headers=ann, json={"choice": "B"}
    )
    assert r.status_code == 201
    db = f"sqlite:///{path}"
    assert cli(capsys, "disable-annotator", "boss", "--db", db)[0] == 0
    assert client.get("/api/me", headers=bearer("boss-token-v1")).status_code == 401
    engine.dispose()
    # opening it again changes nothing (idempotent), and a new project has no members
    engine = make_engine(db)
    load(engine, tmp_path, "gamma", "compare", ROWS, overlap=1, gold_every=0)
    rows = {r["name"]: r for r in list_annotators(engine)}
    assert rows["ann"]["projects"] == ["alpha", "beta"] and rows["ann"]["judgments"] == 2
    assert rows["boss"]["status"] == "disabled"
    engine.dispose()
