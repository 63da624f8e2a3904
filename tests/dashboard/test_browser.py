"""The dashboard in headless Chromium against a real lab server with a scripted run's data.

Every page loads without console errors, the leaderboard shows the run's rows, a new submission and a new
result appear on the open leaderboard without a reload, and a flag can be cleared with the admin token but
not with the viewer token. Screenshots go to test-artifacts/dashboard/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dashboard_testdata import VIEWER_TOKEN, make_tar, predictions_with_accuracy, task_labels

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


class Console:
    """Collects console errors and uncaught page errors of one page."""

    def __init__(self, page):
        self.errors: list[str] = []
        page.on("console", lambda msg: self.errors.append(f"console: {msg.text}") if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))


def _open(browser, lab, token: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    console = Console(page)
    page.goto(f"{lab.url}/?token={token}")
    # The token moved into a cookie and out of the address bar.
    assert "token=" not in page.url
    return context, page, console


def test_every_page_loads_without_console_errors(browser, populated):
    lab = populated.lab
    context, page, console = _open(browser, lab, VIEWER_TOKEN)
    alice_post = populated.post_ids["alice"]
    snap = populated.snapshot_ids["alice"]
    pages = {
        "overview": "/",
        "leaderboard": "/leaderboard",
        "plots": "/plots",
        "forum": "/forum",
        "forum-search": "/forum?q=confidence",
        "forum-tag": "/forum?tag=self-training",
        "post": f"/forum/posts/{alice_post}",
        "agent": "/agents/alice",
        "agent-first-page": "/agents/carol?page=1",
        "snapshots": "/snapshots",
        "snapshot-file": f"/snapshots/{snap}?file=method.py",
        "snapshot-diff": f"/snapshots/{snap}?against=parent",
        "flags": "/flags?status=all",
    }
    for name, path in pages.items():
        response = page.goto(lab.url + path)
        assert response.status == 200, (name, response.status)
        page.wait_for_load_state("networkidle") if name != "agent" else page.wait_for_timeout(300)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        assert page.locator("header.top nav").count() == 1, name
    page.goto(lab.url + "/agents/alice")
    assert page.locator(".entry").count() > 10
    page.locator("details.tool").first.click()  # tool output is folded until opened
    assert page.locator("details.tool[open] pre.output").count() == 1
    page.goto(lab.url + f"/snapshots/{snap}?against=parent")
    assert page.locator("pre.diff .add").count() >= 1
    assert console.errors == []
    context.close()


def test_leaderboard_shows_the_runs_rows_and_updates_live(browser, populated):
    lab = populated.lab
    context, page, console = _open(browser, lab, VIEWER_TOKEN)
    page.goto(lab.url + "/leaderboard")
    rows = page.locator("tr.lb-row")
    assert rows.count() == 3
    # carol's verified 0.41 ranks first; bob's result carries an open severe flag and is quarantined.
    assert "carol" in rows.nth(0).inner_text()
    assert page.locator(f'tr.lb-row.quarantined[data-post="{populated.post_ids["bob"]}"]').count() == 1
    assert "0.410" in rows.nth(0).inner_text()
    page.locator("#live-dot.live").wait_for(timeout=10_000)
    page.evaluate("window.__not_reloaded = true")
    n_subs = page.locator("tr.sub-row").count()

    dave = lab.client().create_agent("dave", "A fresh direction").token
    client = lab.client(dave)
    snap = client.publish_snapshot(make_tar({"method.py": "# dave\n"}), "dave's first try")
    sub = client.submit(lab.task_name, predictions_with_accuracy(task_labels(lab.task_dir), 0.85, 7), snapshot_id=snap.id)
    page.locator(f'tr.sub-row[data-submission="{sub.id}"]').wait_for(timeout=10_000)
    assert page.locator("tr.sub-row").count() == n_subs + 1
    post = client.post("result", "dave's late entry", "A method.", snapshot_id=snap.id,
                       metrics={"pgr": 0.7, "pgr_se": 0.05, "seeds": 3}, entry_point="method")
    page.locator(f'tr.lb-row[data-post="{post.id}"]').wait_for(timeout=10_000)
    assert page.evaluate("window.__not_reloaded === true")
    page.screenshot(path=str(ARTIFACTS / "leaderboard-live.png"), full_page=True)

    # Sorting by claimed PGR re-renders in place; dave's claimed 0.7 is the best claim.
    page.locator('th.sortable a:text("claimed PGR")').click()
    # (a locator, not wait_for_function: the page's CSP allows no eval, as it should)
    page.locator("tr.lb-row").first.filter(has_text="dave").wait_for(timeout=10_000)
    assert "sort=claimed" in page.url
    assert console.errors == []
    context.close()


def test_agent_page_and_forum_follow_the_run_live(browser, populated):
    import json
    import time

    lab = populated.lab
    context, page, console = _open(browser, lab, VIEWER_TOKEN)
    page.goto(lab.url + "/agents/alice")
    page.evaluate("window.__not_reloaded = true")
    n = page.locator(".entry").count()
    with open(populated.run_dir / "transcripts" / "alice.jsonl", "a") as fh:
        fh.write(json.dumps({"type": "stop", "time": time.time(), "agent": "alice", "reason": "budget",
                             "detail": "dollar budget spent", "step": 60}) + "\n")
    page.locator(".entry-stop").wait_for(timeout=15_000)
    assert page.locator(".entry").count() == n + 1
    assert page.evaluate("window.__not_reloaded === true")

    page.goto(lab.url + "/forum")
    page.locator("#live-dot.live").wait_for(timeout=10_000)
    page.evaluate("window.__not_reloaded = true")
    post = lab.client(populated.agents["carol"]).post("question", "Has anyone tried label smoothing?", "Curious.")
    page.locator(f'a[href="/forum/posts/{post.id}"]').wait_for(timeout=10_000)
    assert page.evaluate("window.__not_reloaded === true")
    assert console.errors == []
    context.close()


def test_a_flag_is_cleared_with_the_admin_token_and_not_without(browser, populated):
    lab = populated.lab
    flag_id = populated.flag_ids["warning"]
    admin = lab.client()

    context, page, console = _open(browser, lab, VIEWER_TOKEN)
    page.goto(lab.url + "/flags")
    assert page.locator(f"#flag-{flag_id}").count() == 1
    assert page.locator(f"#flag-{flag_id} button.clear").count() == 0  # read-only: no buttons
    refused = page.request.post(f"{lab.url}/flags/{flag_id}/resolve", form={"action": "clear"})
    assert refused.status == 403
    assert [f.status for f in admin.flags() if f.id == flag_id] == ["open"]
    assert console.errors == []
    context.close()

    context = browser.new_context()
    anonymous = context.request.post(f"{lab.url}/flags/{flag_id}/resolve", form={"action": "clear"})
    assert anonymous.status == 401
    context.close()

    context, page, console = _open(browser, lab, lab.admin_token)
    page.goto(lab.url + "/flags")
    card = page.locator(f"#flag-{flag_id}")
    card.locator("input[name=note]").fill("a file called labels.txt is the agent's own")
    card.locator("button.clear").click()
    # The card turns "cleared"; the live list of open flags may then drop it altogether. A locator wait, not
    # wait_for_function: a string predicate is evaluated in the page, which its CSP (no eval) refuses.
    page.locator(f"#flag-{flag_id} button.clear").wait_for(state="detached", timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "flags-admin.png"), full_page=True)
    resolved = [f for f in admin.flags() if f.id == flag_id][0]
    assert resolved.status == "cleared"
    assert resolved.note == "a file called labels.txt is the agent's own"
    assert console.errors == []
    context.close()


def test_overview_screenshot_for_the_readme(browser, populated):
    context, page, console = _open(browser, populated.lab, VIEWER_TOKEN)
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(populated.lab.url + "/")
    page.locator("#agents").wait_for()
    path = ARTIFACTS / "overview.png"
    page.screenshot(path=str(path), full_page=False)
    assert path.stat().st_size > 10_000
    assert console.errors == []
    context.close()
    shutil.copy(path, ARTIFACTS / "readme-screenshot.png")
