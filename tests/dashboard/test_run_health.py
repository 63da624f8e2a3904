"""What the dashboard must say loudly about a run: sandboxes that do not isolate, a run whose process is
gone while state.json still says running; and runs with several tasks."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from dashboard_testdata import VIEWER_TOKEN, hold_session_lock

from aarlab.dashboard import _runfiles as rf
from aarlab.dashboard import build_report

UNISOLATED = "Sandboxes are NOT isolated (process backend)"


@pytest.fixture(scope="module")
def viewer(populated):
    with httpx.Client(base_url=populated.lab.url, headers={"Authorization": f"Bearer {VIEWER_TOKEN}"},
                      timeout=30) as client:
        yield client


def _status_badge(html: str) -> str:
    match = re.search(r'<span class="badge status-[^"]*">([^<]*)</span>', html)
    assert match, "no status badge"
    return match.group(1)


def test_session_alive_follows_the_lock_and_never_creates_it(tmp_path):
    assert rf.session_alive(tmp_path) is False
    assert not (tmp_path / ".lock").exists()  # the dashboard never writes into a run
    handle = hold_session_lock(tmp_path)
    try:
        assert rf.session_alive(tmp_path) is True
        assert rf.lock_holder(tmp_path).startswith("pid ")
    finally:
        handle.close()
    assert rf.session_alive(tmp_path) is False  # the lock died with its "process"
    assert rf.session_alive(None) is None


def test_sandbox_backend_from_config_or_state():
    assert rf.sandbox_backend({"sandbox": {"backend": "process"}}) == "process"
    assert rf.sandbox_backend({"sandbox": {"backend": "bwrap"}}, {"sandbox_backend": "process"}) == "process"
    assert rf.sandbox_backend({"name": "x"}) == "bwrap"  # aarlab.config's default
    assert rf.sandbox_backend({}) is None
    assert rf.is_unisolated("process") and not rf.is_unisolated("bwrap") and not rf.is_unisolated(None)


def test_a_dead_run_shows_stopped_process_gone(viewer, populated):
    assert _status_badge(viewer.get("/").text) == "running"  # the fixture holds the lock, like a live session
    populated.lock.close()  # the session's process dies (kill -9 drops an flock the same way)
    try:
        html = viewer.get("/").text
        assert _status_badge(html) == "stopped (process gone)"
        assert 'id="process-gone-banner"' in html and "pid " in html
        assert ">running<" not in html  # nor are its agents running
        agent = viewer.get("/agents/alice").text
        assert 'id="process-gone-banner"' in agent and "stopped (process gone)" in agent
        partial = viewer.get("/_partials/overview").text
        assert _status_badge(partial) == "stopped (process gone)"
    finally:
        populated.lock = hold_session_lock(populated.run_dir)
    assert _status_badge(viewer.get("/").text) == "running"


def test_report_of_a_dead_run_says_so(populated, tmp_path):
    # No session holds the lock of a copy: the report sees what `aarlab report` sees after a crash.
    import shutil

    run = tmp_path / "run"
    shutil.copytree(populated.run_dir, run)
    files = build_report(run, tmp_path / "out")
    html, md = files.html.read_text(), files.markdown.read_text()
    assert "stopped (process gone)" in html and 'id="process-gone-banner"' in html
    assert "Status: **stopped (process gone)**" in md
    assert UNISOLATED not in html  # no sandbox section: the default bwrap backend


def test_process_backend_gets_a_red_banner_on_overview_agent_page_and_report(viewer, populated, tmp_path):
    config = Path(populated.run_dir) / "config.yaml"
    original = config.read_text()
    assert UNISOLATED not in viewer.get("/").text
    config.write_text(original + "sandbox:\n  backend: process\n  allow_unisolated: true\n")
    try:
        for path in ("/", "/_partials/overview", "/agents/alice", "/agents/bob?page=1"):
            html = viewer.get(path).text
            assert UNISOLATED in html and 'class="banner danger"' in html, path
        files = build_report(populated.run_dir, tmp_path / "report")
        assert UNISOLATED in files.html.read_text()
        assert "Sandboxes are NOT isolated (process backend)" in files.markdown.read_text()
    finally:
        config.write_text(original)
    assert UNISOLATED not in viewer.get("/").text


def test_several_tasks_each_get_their_leaderboard(viewer, populated, tmp_path):
    from aarlab.w2s.synthetic import write_synthetic_task

    lab = populated.lab
    second = lab.client().register_task(write_synthetic_task(tmp_path / "second", name="second"), name="second")
    client = lab.client(populated.agents["alice"])
    post = client.post("result", "alice on the second task", "Same method, second task.",
                       snapshot_id=populated.snapshot_ids["alice"], task="second",
                       metrics={"pgr": 0.33, "pgr_se": 0.02, "seeds": 3}, entry_point="method")

    first = viewer.get("/leaderboard").text
    assert 'id="task-tabs"' in first and f"/leaderboard?task={second.id}" in first
    assert first.count('class="lb-row') == 3 and "alice on the second task" not in first  # the run's own task
    other = viewer.get(f"/leaderboard?task={second.id}").text
    assert other.count('class="lb-row') == 1 and "alice on the second task" in other
    assert viewer.get("/leaderboard?task=second").text.count('class="lb-row') == 1  # by name too
    # The live fragment keeps the task it was opened on.
    assert f"/_partials/leaderboard?sort=verified&amp;dir=desc&amp;task={second.id}" in other
    assert viewer.get(f"/_partials/leaderboard?task={second.id}").text.count('class="lb-row') == 1

    overview = viewer.get("/").text
    assert "Top results · second" in overview and f"/leaderboard?task={second.id}" in overview
    assert f"/forum/posts/{post.id}" in overview
    files = build_report(populated.run_dir, tmp_path / "report")
    html = files.html.read_text()
    assert html.count('class="grid report-leaderboard"') == 2 and "alice on the second task" in html
    assert "### Task second" in files.markdown.read_text()
