"""Fault injection (issue 13): the feedback server killed mid-load loses no acknowledged
judgment. A real ``rlfoundry feedback serve`` on a SQLite file is driven by a few
annotators, killed with SIGKILL while they submit, and restarted on the same database;
they carry on. Every judgment whose POST got a 201 must then be in the database exactly
once, with the label that was sent."""

import os
import signal
import sqlite3
import threading
import time

from needs import need
from test_feedback_load import load_bench

httpx = need("httpx", "feedback")
need("uvicorn", "feedback")

ANNOTATORS = 6
KILL_AFTER = 40  # acknowledged judgments before the kill
MORE_AFTER = 30  # and after the restart


class Load:
    """The annotators' shared view: where the server is, what it acknowledged."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.up = threading.Event()
        self.up.set()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked: dict[int, tuple[int, int, str]] = {}  # jid -> (annotator, assignment, choice)
        self.errors = 0
        self.statuses: dict[int, int] = {}

    def ack(self, jid: int, k: int, aid: int, choice: str) -> None:
        with self.lock:
            assert jid not in self.acked, f"judgment id {jid} acknowledged twice"
            self.acked[jid] = (k, aid, choice)


def annotator(k: int, token: str, load: Load) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    n = 0
    while not load.stop.is_set():
        load.up.wait()
        try:
            with httpx.Client(base_url=load.url, headers=headers, timeout=30) as client:
                while not load.stop.is_set():
                    task = client.post("/api/projects/1/next").json()
                    if task["done"]:
                        return
                    aid, n = task["assignment_id"], n + 1
                    choice = ("A", "B", "tie")[(k + n) % 3]
                    r = client.post(f"/api/assignments/{aid}/judgment", json={"choice": choice})
                    with load.lock:
                        load.statuses[r.status_code] = load.statuses.get(r.status_code, 0) + 1
                    if r.status_code == 201:
                        load.ack(r.json()["id"], k, aid, choice)
        except httpx.HTTPError:  # the server is gone: wait for it to come back
            with load.lock:
                load.errors += 1
            time.sleep(0.05)


def wait_for(cond, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, "the annotators stalled"
        time.sleep(0.01)


def test_server_killed_mid_load_loses_no_acknowledged_judgment(tmp_path):
    bench = load_bench()
    db = tmp_path / "kill.db"
    tokens = bench.setup_db(db, annotators=ANNOTATORS, items=400, gold=0, overlap=2, gold_every=0)
    url = f"sqlite:///{db}"
    port = bench.free_port()
    proc = bench.start_server(url, port, tmp_path / "server.log")
    load = Load(f"http://{bench.HOST}:{port}")
    threads = [
        threading.Thread(target=annotator, args=(k, t, load), daemon=True)
        for k, t in enumerate(tokens)
    ]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(load.acked) >= KILL_AFTER)
        load.up.clear()
        os.kill(proc.pid, signal.SIGKILL)  # mid-load: six annotators are submitting
        proc.wait()
        proc.log.close()
        acked_at_kill = len(load.acked)
        port = bench.free_port()
        proc = bench.start_server(url, port, tmp_path / "server.log")
        load.url = f"http://{bench.HOST}:{port}"
        load.up.set()
        wait_for(lambda: len(load.acked) >= acked_at_kill + MORE_AFTER)
        load.stop.set()
        for t in threads:
            t.join(60)
        # what each annotator's own list says, from the restarted server
        seen = {}
        for k, token in enumerate(tokens):
            r = httpx.get(f"{load.url}/api/judgments", headers={"Authorization": f"Bearer {token}"})
            seen.update({j["id"]: (k, j["assignment_id"], j["choice"]) for j in r.json()})
    finally:
        bench.stop_server(proc)

    assert load.errors >= 1, "the kill did not interrupt the load"
    assert set(load.statuses) == {201}, load.statuses  # no 409 or 5xx after the restart
    con = sqlite3.connect(db)
    q = con.execute
    assert q("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = {
        jid: (name, aid)
        for jid, name, aid in q(
            "SELECT j.id, a.name, j.assignment_id FROM judgments j "
            "JOIN annotators a ON a.id = j.annotator_id"
        )
    }
    for jid, (k, aid, choice) in load.acked.items():
        assert jid in rows, f"acknowledged judgment {jid} lost"
        assert rows[jid] == (f"a{k:02d}", aid)
        assert seen[jid] == (k, aid, choice)
    for (n,) in q("SELECT count(*) FROM judgments GROUP BY assignment_id"):
        assert n == 1
    for (n,) in q("SELECT count(*) FROM judgments GROUP BY item_id, annotator_id"):
        assert n == 1
    # committed but never acknowledged (the answer died with the server): at most one
    # per annotator, and still that annotator's own
    unacked = set(rows) - set(load.acked)
    assert len(unacked) <= ANNOTATORS
    for jid in unacked:
        assert rows[jid][0] == f"a{seen[jid][0]:02d}"
    # the per-item counter survived the crash with the rows it counts
    drift = q(
        "SELECT count(*) FROM items i WHERE n_assigned != "
        "(SELECT count(*) FROM assignments a WHERE a.item_id = i.id)"
    ).fetchone()[0]
    assert drift == 0
    con.close()
