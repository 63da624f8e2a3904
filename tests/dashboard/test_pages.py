"""The dashboard's pages over real HTTP (no browser): access control, content, pagination, live events."""

from __future__ import annotations

import json
import re
import threading
import time

import httpx
import pytest
from dashboard_testdata import VIEWER_TOKEN

PAGES = ["/", "/leaderboard", "/plots", "/forum", "/agents/alice", "/snapshots", "/flags", "/_partials/leaderboard"]


@pytest.fixture(scope="module")
def viewer(populated):
    with httpx.Client(base_url=populated.lab.url, headers={"Authorization": f"Bearer {VIEWER_TOKEN}"},
                      timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def admin(populated):
    with httpx.Client(base_url=populated.lab.url, headers={"Authorization": f"Bearer {populated.lab.admin_token}"},
                      timeout=30) as client:
        yield client


def test_every_page_without_a_token_is_a_401_page(populated):
    for path in PAGES + [f"/forum/posts/{populated.post_ids['alice']}", f"/snapshots/{populated.snapshot_ids['alice']}"]:
        response = httpx.get(populated.lab.url + path)
        assert response.status_code == 401, path
        assert "a token is needed" in response.text
    assert httpx.get(populated.lab.url + "/?token=not-the-token").status_code == 401
    assert httpx.get(populated.lab.url + "/?token=not-the-token").text.count("not valid") == 1


def test_agent_tokens_do_not_open_the_dashboard(populated):
    response = httpx.get(populated.lab.url + "/", headers={"Authorization": f"Bearer {populated.agents['alice']}"})
    assert response.status_code == 401


def test_token_in_the_url_becomes_a_cookie_and_leaves_the_address(populated):
    with httpx.Client(base_url=populated.lab.url) as client:
        response = client.get(f"/leaderboard?sort=claimed&token={VIEWER_TOKEN}")
        assert response.status_code == 303
        assert response.headers["location"] == "/leaderboard?sort=claimed"
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=" in cookie
        assert VIEWER_TOKEN not in cookie  # a signed session, never the token
        assert client.get("/leaderboard?sort=claimed").status_code == 200
        assert client.get("/logout").status_code == 303
        client.cookies.clear()
        assert client.get("/").status_code == 401


def test_every_page_renders_for_the_viewer(viewer, populated):
    for path in PAGES + [f"/forum/posts/{populated.post_ids['alice']}", "/agents/bob?page=1", "/plots/spend.svg",
                         f"/snapshots/{populated.snapshot_ids['alice']}?file=method.py&against=parent"]:
        response = viewer.get(path)
        assert response.status_code == 200, (path, response.text[:500])


def test_unknown_things_are_404_pages(viewer):
    for path in ["/forum/posts/99999", "/agents/nobody", "/snapshots/" + "0" * 64, "/plots/nothing.svg"]:
        assert viewer.get(path).status_code == 404, path


def _leaderboard_rows(html: str) -> list[str]:
    return re.findall(r'<tr class="lb-row[^"]*" data-post="\d+">(.*?)</tr>', html, re.S)


def test_leaderboard_ranks_by_verified_pgr_and_quarantines_severe_flags(viewer, populated):
    html = viewer.get("/leaderboard").text
    rows = _leaderboard_rows(html)
    assert len(rows) == 3
    assert "carol" in rows[0] and "0.410 ± 0.040" in rows[0]
    assert "alice" in rows[1] and "0.180 ± 0.020" in rows[1]
    assert "bob" in rows[2] and "quarantined" in rows[2] and "heldout_gap" in rows[2]
    assert "0.737 ± 0.036" in html or "weak" in html  # fixed baselines are shown
    by_claim = _leaderboard_rows(viewer.get("/_partials/leaderboard?sort=claimed&dir=desc").text)
    assert "carol" in by_claim[0] and "alice" in by_claim[1]
    ascending = _leaderboard_rows(viewer.get("/_partials/leaderboard?sort=claimed&dir=asc").text)
    assert "alice" in ascending[0]


def test_leaderboard_matches_the_servers_own_numbers(viewer, populated):
    board = populated.lab.client().leaderboard()
    html = viewer.get("/leaderboard").text
    for entry in board.entries:
        row = re.search(rf'data-post="{entry.post_id}">(.*?)</tr>', html, re.S).group(1)
        assert ("quarantined" in row) == entry.quarantined
        if entry.verified_pgr is not None:
            assert f"{entry.verified_pgr:.3f}" in row
        if entry.private_pgr is not None:
            assert f"{entry.private_pgr:.3f}" in row


def test_overview_shows_agents_directions_states_and_budgets(viewer):
    html = viewer.get("/").text
    for text in ("alice", "bob", "carol", "Bootstrapping", "Bob&#39;s direction", "failed", "sandbox died: exit 137",
                 "of $20.00", "1.00 h", "dash-test"):
        assert text in html, text


def test_agent_timeline_is_paginated_and_follows_new_records(viewer, populated):
    first = viewer.get("/agents/carol?page=1").text
    assert first.count('class="entry ') == 40
    assert 'id="rec-0"' in first and 'id="rec-39"' in first
    assert "page 1 of 3" in first
    last = viewer.get("/agents/carol").text  # 81 records: the latest page holds the last one
    assert "page 3 of 3" in last and 'id="rec-80"' in last and 'hx-get="/_partials/agents/carol/tail?after=81"' in last
    assert viewer.get("/_partials/agents/carol/tail?after=81").text.count('class="entry ') == 0
    path = populated.run_dir / "transcripts" / "carol.jsonl"
    with open(path, "a") as fh:
        fh.write(json.dumps({"type": "stop", "time": time.time(), "agent": "carol", "reason": "budget", "step": 80}) + "\n")
    tail = viewer.get("/_partials/agents/carol/tail?after=81").text
    assert 'id="rec-81"' in tail and "budget" in tail and "tail?after=82" in tail


def test_agent_page_shows_its_background_jobs(viewer, populated):
    from aarlab.rundir import job_table_path
    from aarlab.sandbox import JobInfo

    now = time.time()
    jobs = [JobInfo(name="sweep-lr", command="python sweep.py --lr 3e-4", state="running", slot=1, gpus=[0],
                    started_at=now - 95, seen_at=now - 5, log=".jobs/sweep-lr.log"),
            JobInfo(name="seed-2", command="python -m m --seed 2", state="exited", slot=0, started_at=now - 300,
                    ended_at=now - 200, exit_code=0, log=".jobs/seed-2.log")]
    path = job_table_path(populated.run_dir, "alice")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"session": 1, "slots": 2, "jobs": [j.model_dump(mode="json") for j in jobs]}))
    try:
        html = viewer.get("/agents/alice").text
        rows = re.findall(r'<tr class="job-row job-([a-z-]+)" title="([^"]*)"><td class="mono">([^<]+)</td>', html)
        # newest first; with no session holding the run, a job the table calls running died with its harness
        from aarlab.dashboard._data import run_health

        state = "lost" if run_health(populated.run_dir).process_gone else "running"
        assert [r[2] for r in rows] == ["sweep-lr", "seed-2"] and rows[0][0] == state
        assert rows[0][1] == "python sweep.py --lr 3e-4" and "GPU 0" in html and "exited (0)" in html
        assert "none" in viewer.get("/agents/bob").text.split("Background jobs")[1].split("</table>")[0]
    finally:
        path.unlink()


def test_a_torn_transcript_line_is_left_out(viewer):
    html = viewer.get("/agents/bob?page=2").text
    assert "step 99" not in html.lower()
    assert "page 2 of 2" in html


def test_snapshot_file_view_and_diff_against_its_parent(viewer, populated):
    snap = populated.snapshot_ids["carol"]
    html = viewer.get(f"/snapshots/{snap}?file=method.py").text
    assert "LR = 0.05" in html and "WARMUP = 3" in html
    diff = viewer.get(f"/snapshots/{snap}?against=parent").text
    assert "+LR = 0.05" in diff and "-LR = 0.1" in diff and "notes/log.txt (added)" in diff
    other = viewer.get(f"/snapshots/{snap}?against={populated.snapshot_ids['alice']}").text
    assert "+WARMUP = 3" in other and "-WARMUP = 1" in other
    assert "no file" in viewer.get(f"/snapshots/{snap}?file=missing.py").text


def test_forum_filters_search_and_post_page(viewer, populated):
    assert viewer.get("/forum?kind=insight").text.count('class="post"') == 3
    assert viewer.get("/forum?tag=self-training").text.count('class="post"') == 3
    found = viewer.get("/forum?q=thresholds").text
    assert found.count('class="post"') == 3 and "Observation from" in found
    post = viewer.get(f"/forum/posts/{populated.post_ids['alice']}").text
    assert "<h2>Method</h2>" in post and "<strong>warmup 1</strong>" in post  # markdown rendered
    assert "0.180 ± 0.020" in post and "did you try a lower threshold" in post and "python -m method" in post


def test_post_bodies_cannot_inject_html(viewer, populated):
    client = populated.lab.client(populated.agents["alice"])
    post = client.post("question", "<img src=x onerror=alert(1)>", "<script>alert(1)</script> **bold**")
    html = viewer.get(f"/forum/posts/{post.id}").text
    assert "<script>alert(1)</script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in html


def test_flag_resolution_needs_the_admin_token(viewer, admin, populated):
    flag_id = populated.flag_ids["severe"]
    assert viewer.post(f"/flags/{flag_id}/resolve", data={"action": "clear"}).status_code == 403
    assert httpx.post(populated.lab.url + f"/flags/{flag_id}/resolve", data={"action": "clear"}).status_code == 401
    assert "read-only" in viewer.get("/flags").text
    assert admin.post(f"/flags/{flag_id}/resolve", data={"action": "explode"}).status_code == 400
    assert admin.post("/flags/99999/resolve", data={"action": "clear"}).status_code == 404
    foreign = admin.post(f"/flags/{flag_id}/resolve", data={"action": "confirm"}, headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403
    assert [f.status for f in populated.lab.client().flags() if f.id == flag_id] == ["open"]
    done = admin.post(f"/flags/{flag_id}/resolve", data={"action": "confirm", "note": "checked"},
                      headers={"HX-Request": "true"})
    assert done.status_code == 200 and 'data-status="confirmed"' in done.text
    flag = [f for f in populated.lab.client().flags() if f.id == flag_id][0]
    assert flag.status == "confirmed" and flag.note == "checked"


def test_live_stream_announces_new_submissions(populated):
    events: list[str] = []
    ready = threading.Event()

    def listen():
        with httpx.Client(base_url=populated.lab.url, timeout=20) as client, client.stream(
                "GET", "/live", headers={"Authorization": f"Bearer {VIEWER_TOKEN}"}) as response:
            assert response.status_code == 200
            ready.set()
            for line in response.iter_lines():
                if line.startswith("data:"):
                    events.append(json.loads(line[5:])["kind"])
                    if "submission" in events:
                        return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert ready.wait(10)
    time.sleep(0.3)
    client = populated.lab.client(populated.agents["carol"])
    client.post("hypothesis", "a live hypothesis", "body")
    from dashboard_testdata import predictions_with_accuracy, task_labels

    client.submit(populated.lab.task_name, predictions_with_accuracy(task_labels(populated.lab.task_dir), 0.8, 3))
    thread.join(15)
    assert "post" in events and "submission" in events


def test_the_session_cookie_is_signed_expires_and_cannot_be_forged(populated):
    import hashlib

    url = populated.lab.url
    dash = populated.lab.app.state.dashboard
    session = httpx.get(f"{url}/?token={VIEWER_TOKEN}").cookies["aarlab_dashboard"]
    role, expires, _ = session.split(".")
    assert role == "viewer" and 0 < int(expires) - time.time() <= dash.session_max_age_s
    assert httpx.get(url + "/", cookies={"aarlab_dashboard": session}).status_code == 200
    forged = [
        hashlib.sha256(VIEWER_TOKEN.encode()).hexdigest(),  # the old fixed cookie: the token's hash
        hashlib.sha256(populated.lab.admin_token.encode()).hexdigest(),
        session.replace("viewer.", "admin.", 1),  # a viewer session promoted by hand
        f"viewer.{int(expires) + 10**6}.{session.rsplit('.', 1)[1]}",  # its expiry pushed back
        "viewer.99999999999.00", "", "...",
    ]
    for cookie in forged:
        assert httpx.get(url + "/", cookies={"aarlab_dashboard": cookie}).status_code == 401, cookie
    past = int(time.time()) - 1
    expired = f"viewer.{past}.{dash._session_mac('viewer', past, dash._tokens()['viewer'])}"
    assert httpx.get(url + "/", cookies={"aarlab_dashboard": expired}).status_code == 401
    secret = populated.lab.run_dir / "session_secret"
    assert secret.is_file() and secret.stat().st_mode & 0o077 == 0


def test_pages_send_security_headers(viewer):
    for path in ["/", "/leaderboard", "/forum", "/_static/htmx.min.js"]:
        headers = viewer.get(path).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp, path
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "no-referrer", path
    html = viewer.get("/").text
    assert "<script>" not in html and " onclick=" not in html  # nothing inline that the policy would block
