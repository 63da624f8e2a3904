"""The lab server's routes through the typed client, against a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import threading

import httpx
import pytest
from labhelpers import METHOD_FILES, counts, make_tar, new_agent

from aarlab.server._feedback import public_step
from aarlab.server.client import LabClient, LabError
from aarlab.w2s.scoring import score
from aarlab.w2s.taskdir import TaskDir


def labels_and_parts(task_dir):
    rows = TaskDir(task_dir).test_labels()
    return [r["label"] for r in rows], [r["part"] == "public" for r in rows]


def test_health_and_openapi(lab):
    health = LabClient(lab.url).health()
    assert health.status == "ok" and health.database == "sqlite" and health.schema_version >= 2
    spec = httpx.get(f"{lab.url}/api/openapi.json").json()
    for path in ("/api/eval/submissions", "/api/forum/posts", "/api/snapshots", "/api/leaderboard", "/api/events",
                 "/api/admin/verifications", "/api/admin/flags"):
        assert path in spec["paths"], path


def test_missing_or_wrong_token_is_401_and_wrong_role_is_403(lab, agent):
    with pytest.raises(LabError) as exc:
        LabClient(lab.url).tasks()
    assert exc.value.status == 401 and "missing bearer token" in exc.value.message
    with pytest.raises(LabError) as exc:
        LabClient(lab.url, "not-a-real-token").tasks()
    assert exc.value.status == 401 and "invalid token" in exc.value.message
    with pytest.raises(LabError) as exc:
        agent.create_agent("mallory")
    assert exc.value.status == 403 and "admin" in exc.value.message
    with pytest.raises(LabError) as exc:
        agent.submissions()
    assert exc.value.status == 403


def test_viewer_token_reads_but_cannot_write(lab, agent):
    viewer = LabClient(lab.url, lab.settings.viewer_token)
    agent.post("insight", "visible to viewers", "body")
    assert any(p.title == "visible to viewers" for p in viewer.posts())
    assert viewer.leaderboard().task == lab.task_name
    viewer.flags()
    for write in (lambda: viewer.post("insight", "t", "b"), lambda: viewer.submit(lab.task_name, [0]),
                  lambda: viewer.add_flag("x", "info", "s"), lambda: viewer.create_agent("v")):
        with pytest.raises(LabError) as exc:
            write()
        assert exc.value.status == 403 and "read-only" in exc.value.message


def test_agents_cannot_read_flags(lab, agent):
    with pytest.raises(LabError) as exc:
        agent.flags()
    assert exc.value.status == 403


def test_submission_scores_public_part_coarsely_and_keeps_full_scores_for_admin(lab, agent, admin):
    labels, public = labels_and_parts(lab.task_dir)
    weak = TaskDir(lab.task_dir).baseline_predictions()
    preds = [y if i % 3 else 1 - y for i, y in enumerate(labels)]
    result = agent.submit(lab.task_name, preds, method="flip-every-third")
    expected = score(preds, labels, weak["weak"], weak["ceiling"], mask=public)
    private = score(preds, labels, weak["weak"], weak["ceiling"], mask=[not p for p in public])
    # Coarse: within one reporting step (0.2 for 100 public examples) and PGR derived from that accuracy.
    assert result.step == public_step(100) == 0.2 and result.n_seeds == 1 and result.public_pgr_se == 0.0
    assert abs(result.public_accuracy - expected.transfer_acc) <= result.step + 1e-9 and result.improved
    assert result.public_pgr == round((result.public_accuracy - expected.weak_acc)
                                      / (expected.ceiling_acc - expected.weak_acc), 3)
    assert agent.submit(lab.task_name, preds).public_accuracy == result.public_accuracy  # deterministic
    assert result.remaining_run == lab.settings.submissions_per_run - 1
    assert result.remaining_hour == lab.settings.submissions_per_hour - 1
    assert len(result.hash) == 64
    record = next(r for r in admin.submissions() if r.id == result.id)
    assert record.predictions == preds and record.method == "flip-every-third"
    assert record.public_accuracy == pytest.approx(expected.transfer_acc)
    assert record.private_pgr == pytest.approx(private.pgr)
    budget = agent.budget(lab.task_name)
    assert budget.used_run == 2 and budget.remaining_hour == lab.settings.submissions_per_hour - 2
    mine = agent.my_submissions()
    assert [s.id for s in mine][0] == result.id and mine[0].public_pgr == result.public_pgr


def test_other_agents_submission_is_403(lab, agent):
    other = new_agent(lab)
    sub = other.submit(lab.task_name, [0] * lab.task.n_test)
    assert other.submission(sub.id).id == sub.id
    with pytest.raises(LabError) as exc:
        agent.submission(sub.id)
    assert exc.value.status == 403 and "another agent" in exc.value.message


def test_budget_is_enforced_per_hour_and_per_run(tmp_path):
    from aarlab.server.testing import running_lab

    with running_lab(tmp_path, submissions_per_hour=2, submissions_per_run=3) as small:
        alice = new_agent(small)
        preds = [0] * small.task.n_test
        assert alice.submit(small.task_name, preds).remaining_hour == 1
        assert alice.submit(small.task_name, preds).remaining_hour == 0
        before = counts(small.store)
        with pytest.raises(LabError) as exc:
            alice.submit(small.task_name, preds)
        assert exc.value.status == 429 and "hourly" in exc.value.message
        assert counts(small.store) == before
        budget = alice.budget(small.task_name)
        assert budget.remaining_hour == 0 and budget.remaining_run == 1 and budget.next_slot_at is not None
        # Another agent has its own budget.
        assert new_agent(small).submit(small.task_name, preds).remaining_run == 2


def test_heldout_scoring_is_admin_only_and_full_precision(lab, agent, admin):
    td = TaskDir(lab.task_dir, heldout=True)
    labels = [r["label"] for r in td.test_labels()]
    base = td.baseline_predictions()
    got = admin.score_heldout(lab.task_name, labels)
    assert got.transfer_acc == 1.0
    assert got.pgr == pytest.approx(score(labels, labels, base["weak"], base["ceiling"]).pgr)
    with pytest.raises(LabError) as exc:
        agent.score_heldout(lab.task_name, labels)
    assert exc.value.status == 403


def test_register_task_is_idempotent_and_lists_public_info(lab, admin, agent):
    again = admin.register_task(lab.task_dir)
    assert again.id == lab.task.id
    (task,) = agent.tasks()
    assert task.name == lab.task_name and task.label_space and task.fixed.ceiling_acc.mean > task.fixed.weak_acc.mean


def test_forum_posts_replies_votes_search_and_pagination(lab, agent):
    other = new_agent(lab)
    first = agent.post("hypothesis", "Confidence loss helps", "Auxiliary **confidence** loss on weak labels",
                       tags=["logconf", "Loss"])
    assert first.author == agent.name and first.agent_id is not None
    assert first.tags == ["logconf", "loss"]
    second = other.post("question", "Why does bootstrapping stall?", "bootstrapping via intermediate models")
    reply = other.reply(first.id, "I saw the same with 3 seeds")
    nested = agent.reply(reply.id, "thanks")  # a reply to a reply joins the thread
    assert reply.parent_id == first.id and nested.parent_id == first.id and reply.kind == "reply"
    third = new_agent(lab)
    assert other.vote(first.id, 1).score == 1
    assert third.vote(first.id, -1).score == 0
    assert other.vote(first.id, 0).score == -1
    thread = agent.get_post(first.id)
    assert [r.id for r in thread.replies] == [reply.id, nested.id] and thread.n_replies == 2 and thread.score == -1
    assert [p.id for p in agent.search("auxiliary")] == [first.id]
    assert {p.id for p in agent.search("confidence")} == {first.id, reply.id, nested.id}  # replies are "Re: <title>"
    assert [p.id for p in agent.search("bootstrapping intermediate")] == [second.id]
    assert agent.search("nothing-matches-this") == []
    assert [p.id for p in agent.posts(since_id=first.id)] == [second.id]
    assert [p.id for p in agent.posts(tag="logconf")] == [first.id]
    assert [p.id for p in agent.posts(kind="question", author=other.name)] == [second.id]
    page1, page2 = agent.posts(limit=1), agent.posts(limit=1, offset=1)
    assert page1[0].id == second.id and page2[0].id == first.id
    assert all(p.created > second.created for p in agent.posts(since=second.created))


def test_result_post_requires_snapshot_entry_point_and_seeds(lab, agent):
    snap = agent.publish_snapshot(make_tar(METHOD_FILES), "method")
    good = {"pgr": 0.4, "pgr_se": 0.05, "seeds": 3}
    before = counts(lab.store)
    cases = [
        (dict(metrics=good, entry_point="method.main"), "snapshot_id"),
        (dict(metrics=good, snapshot_id=snap.id), "entry_point"),
        (dict(snapshot_id=snap.id, entry_point="method.main"), "metrics"),
        (dict(metrics={"pgr": 0.4, "pgr_se": 0.05, "seeds": 2}, snapshot_id=snap.id, entry_point="method.main"),
         "at least 3 seeds"),
        (dict(metrics={"pgr": 0.4, "seeds": 3}, snapshot_id=snap.id, entry_point="method.main"), "pgr_se"),
        (dict(metrics=good, snapshot_id=snap.id, entry_point="method.missing"), "not in snapshot"),
        (dict(metrics=good, snapshot_id="f" * 64, entry_point="method.main"), "unknown snapshot"),
        (dict(metrics=good, snapshot_id=snap.id, entry_point="os; rm -rf /"), "entry_point"),
    ]
    for kwargs, message in cases:
        with pytest.raises(LabError) as exc:
            agent.post("result", "a result", "body", **kwargs)
        assert exc.value.status == 400 and message in exc.value.message, (kwargs, exc.value.message)
    assert counts(lab.store) == before
    post = agent.post("result", "a result", "body", snapshot_id=snap.id, entry_point="method.main", metrics=good)
    assert post.task == lab.task_name and post.metrics["seeds"] == 3
    assert agent.get_post(post.id).verification.status == "pending"


def test_snapshots_are_content_addressed_with_manifest_parent_and_diff(lab, agent):
    other = new_agent(lab)
    v1 = agent.publish_snapshot(make_tar(METHOD_FILES), "first")
    same = other.publish_snapshot(make_tar(METHOD_FILES, gz=True), "identical files")
    assert same.id == v1.id and same.author == v1.author  # immutable: the first upload stays
    files = dict(METHOD_FILES, **{"method/main.py": "print('v2')\n", "README.md": "notes\n"})
    del files["method/__init__.py"]
    v2 = agent.publish_snapshot(make_tar(files), "second", parent=v1.id)
    assert v2.parent == v1.id and {f.path for f in v2.files} == {"README.md", "method/main.py"}
    info = other.snapshot_info(v2.id)
    assert info.message == "second" and info.n_files == 2
    assert other.snapshot_file(v2.id, "method/main.py") == b"print('v2')\n"
    tar = other.fetch_snapshot(v2.id)
    import hashlib

    assert hashlib.sha256(tar).hexdigest() == v2.id
    d = other.diff(v1.id, v2.id)
    assert d.added == ["README.md"] and d.removed == ["method/__init__.py"] and d.changed == ["method/main.py"]
    assert "+print('v2')" in d.diff and "-import sys" in d.diff
    assert v2.id in [s.id for s in other.snapshots()]
    with pytest.raises(LabError) as exc:
        other.snapshot_info("0" * 64)
    assert exc.value.status == 404


def test_leaderboard_baselines_claims_verification_flags_and_quarantine(lab, agent, admin):
    viewer = LabClient(lab.url, lab.settings.viewer_token)
    labels, _ = labels_and_parts(lab.task_dir)
    other = new_agent(lab)
    rows = {}
    for client, pgr, name in ((agent, 0.5, "good"), (other, 0.9, "too good")):
        snap = client.publish_snapshot(make_tar(dict(METHOD_FILES, **{"method/name.txt": name})), name)
        client.submit(lab.task_name, labels, snapshot_id=snap.id)
        rows[name] = client.post("result", name, "b", snapshot_id=snap.id, entry_point="method.main",
                                 metrics={"pgr": pgr, "pgr_se": 0.05, "seeds": 3})
    pending = {p.post.id for p in admin.pending_verifications()}
    assert {rows["good"].id, rows["too good"].id} <= pending
    admin.record_verification(rows["good"].id, "running")
    admin.record_verification(rows["good"].id, "done", verified_pgr=0.45, se=0.03, seeds=3, per_seed=[0.4, 0.45, 0.5])
    failed = admin.record_verification(rows["too good"].id, "failed", reason="entry point crashed on seed 1")
    assert failed.reason == "entry point crashed on seed 1" and failed.finished is not None
    assert rows["good"].id not in {p.post.id for p in admin.pending_verifications()}

    board = viewer.leaderboard(lab.task_name)
    assert [b.name for b in board.baselines] == ["weak", "ceiling"] and board.baselines[1].pgr == 1.0
    top = board.entries[0]
    assert top.post_id == rows["good"].id and top.rank == 1 and top.verified_pgr == 0.45 and top.verified_pgr_se == 0.03
    assert top.gap == pytest.approx(0.05) and top.private_pgr is not None and top.public_pgr is not None
    assert next(e for e in board.entries if e.post_id == rows["too good"].id).verification_status == "failed"
    assert agent.leaderboard().entries[0].private_pgr is None  # agents never see private-part scores

    flag = admin.add_flag("probing", "severe", "near-duplicate submissions", evidence={"n": 40},
                          post_id=rows["good"].id, key="probe-1")
    assert admin.add_flag("probing", "severe", "same finding again", key="probe-1").id == flag.id
    board = viewer.leaderboard(lab.task_name)
    entry = next(e for e in board.entries if e.post_id == rows["good"].id)
    assert entry.quarantined and entry.rank is None and entry.flags[0].id == flag.id
    assert [f.id for f in admin.flags(status="open", detector="probing")] == [flag.id]
    cleared = admin.resolve_flag(flag.id, "clear", note="false positive")
    assert cleared.status == "cleared" and cleared.resolver == "admin"
    entry = next(e for e in viewer.leaderboard(lab.task_name).entries if e.post_id == rows["good"].id)
    assert not entry.quarantined and entry.rank == 1 and entry.flags == []
    assert admin.resolve_flag(flag.id, "confirm").status == "confirmed"
    assert next(e for e in viewer.leaderboard().entries if e.post_id == rows["good"].id).quarantined
    assert [e.post_id for e in viewer.leaderboard(sort="claimed").entries if not e.quarantined][0] == rows["too good"].id


def test_events_stream_new_posts_submissions_and_resumes(lab, agent):
    received = []
    done = threading.Event()

    def follow():  # from the first event on, so the test does not race the stream's connection
        for ev in agent.events(last_event_id=0, kinds=["post", "submission"], timeout=30):
            received.append(ev)
            if ev.kind == "submission" and ev.data["id"] == sub.id:
                done.set()
                return

    post = agent.post("insight", "events work", "b")
    sub = agent.submit(lab.task_name, [0] * lab.task.n_test)
    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    assert done.wait(30)
    mine = [e for e in received if (e.kind, e.data.get("id")) in {("post", post.id), ("submission", sub.id)}]
    assert [e.kind for e in mine] == ["post", "submission"] and [e.data["id"] for e in mine] == [post.id, sub.id]
    assert "public_pgr" not in mine[1].data and all(e.kind in ("post", "submission") for e in received)
    assert [e.id for e in received] == sorted(e.id for e in received)
    resumed = agent.events(last_event_id=mine[0].id - 1, kinds=["post"], timeout=20)
    assert next(resumed).id == mine[0].id
    with pytest.raises(LabError) as exc:
        next(agent.events(kinds=["nope"]))
    assert exc.value.status == 400
    with pytest.raises(LabError) as exc:
        next(agent.events(kinds=["flag"]))
    assert exc.value.status == 403


def test_viewers_follow_flag_events(lab, admin):
    viewer = LabClient(lab.url, lab.settings.viewer_token)
    flag = admin.add_flag("constant-predictions", "warning", "all predictions are class 0")
    stream = viewer.events(last_event_id=0, kinds=["flag"], timeout=20)
    seen = next(ev for ev in stream if ev.data.get("id") == flag.id)
    assert seen.kind == "flag" and seen.data["severity"] == "warning"


@pytest.mark.postgres
def test_the_lab_runs_end_to_end_on_postgres(tmp_path, pg_url):
    from aarlab.server.testing import running_lab

    with running_lab(tmp_path, db_url=pg_url) as lab:
        admin = lab.client()
        assert admin.health().database == "postgresql"
        alice = new_agent(lab)
        labels, _ = labels_and_parts(lab.task_dir)
        snap = alice.publish_snapshot(make_tar(METHOD_FILES), "v1")  # the tar goes into the database
        assert alice.fetch_snapshot(snap.id) == lab.store.get_blob(snap.id)
        sub = alice.submit(lab.task_name, labels, snapshot_id=snap.id)
        assert sub.public_accuracy == 1.0 and sub.remaining_run == lab.settings.submissions_per_run - 1
        post = alice.post("result", "Perfect labels", "we cheated on purpose", snapshot_id=snap.id,
                          entry_point="method.main", metrics={"pgr": 1.0, "pgr_se": 0.0, "seeds": 3}, tags=["probe"])
        assert [p.id for p in alice.search("cheated")] == [post.id]
        bob = new_agent(lab)
        assert bob.vote(post.id, 1).score == 1 and bob.vote(post.id, 1).score == 1
        admin.record_verification(post.id, "done", verified_pgr=0.2, se=0.05, seeds=3)
        admin.add_flag("labels", "severe", "perfect public score", post_id=post.id)
        (entry,) = admin.leaderboard().entries
        assert entry.quarantined and entry.verified_pgr == 0.2 and entry.private_pgr == pytest.approx(
            next(r for r in admin.submissions() if r.id == sub.id).private_pgr)


def test_a_result_shows_only_what_its_own_submission_earned(lab, admin):
    """Under the ladder an all-zeros submission was told (and the agents' board showed) the agent's best
    public PGR; a result now names its submission, and every board shows that submission's own values."""
    labels, _ = labels_and_parts(lab.task_dir)
    agent, other = new_agent(lab), new_agent(lab)
    snap = agent.publish_snapshot(make_tar(dict(METHOD_FILES, **{"method/zeros.txt": "zeros"})), "zeros")
    good = agent.submit(lab.task_name, labels, snapshot_id=snap.id)
    zeros = agent.submit(lab.task_name, [0] * len(labels), snapshot_id=snap.id)
    assert zeros.public_pgr < good.public_pgr and not zeros.improved
    metrics = {"pgr": zeros.public_pgr, "pgr_se": zeros.public_pgr_se, "seeds": 3}
    post = agent.post("result", "all zeros", "b", snapshot_id=snap.id, entry_point="method.main", metrics=metrics,
                      submission_id=zeros.id)
    assert post.submission_id == zeros.id
    # Naming the better submission of the same snapshot would be the author's choice; naming another agent's
    # submission is refused.
    with pytest.raises(LabError) as exc:
        other.post("result", "borrowed", "b", snapshot_id=snap.id, entry_point="method.main", metrics=metrics,
                   submission_id=good.id)
    assert exc.value.status == 403 and "another agent" in exc.value.message
    with pytest.raises(LabError) as exc:
        agent.post("insight", "not a result", "b", submission_id=good.id)
    assert exc.value.status == 400
    for reader in (agent, other):
        entry = next(e for e in reader.leaderboard(lab.task_name, sort="public").entries if e.post_id == post.id)
        assert entry.submission_id == zeros.id and entry.public_pgr == zeros.public_pgr
        assert entry.public_pgr_test_se == zeros.public_pgr_test_se and entry.private_pgr is None
    entry = next(e for e in admin.leaderboard(lab.task_name).entries if e.post_id == post.id)
    record = next(r for r in admin.submissions() if r.id == zeros.id)
    assert entry.public_pgr == pytest.approx(record.public_pgr) and entry.private_pgr == pytest.approx(record.private_pgr)
    assert entry.public_pgr_test_se is not None and entry.private_pgr_test_se is not None


def test_multi_seed_submission_scores_every_seed_and_keeps_them_for_admin(lab, admin):
    labels, public = labels_and_parts(lab.task_dir)
    agent = new_agent(lab)
    seeds = [[y if (i + s) % 4 else 1 - y for i, y in enumerate(labels)] for s in range(3)]
    reply = agent.submit(lab.task_name, seeds)
    assert reply.n_seeds == 3 and reply.step == public_step(sum(public))
    record = next(r for r in admin.submissions() if r.id == reply.id)
    assert record.n_seeds == 3 and record.seed_predictions == seeds and record.predictions == seeds[0]
    weak = TaskDir(lab.task_dir).baseline_predictions()
    per_seed = [score(run, labels, weak["weak"], weak["ceiling"], mask=public) for run in seeds]
    assert record.public_pgr == pytest.approx(sum(s.pgr for s in per_seed) / 3)
    assert abs(reply.public_accuracy - sum(s.transfer_acc for s in per_seed) / 3) <= reply.step
    too_many = [seeds[0]] * 11
    with pytest.raises(LabError) as exc:
        agent.submit(lab.task_name, too_many)
    assert exc.value.status == 422 and "seed_predictions" in exc.value.message
    with pytest.raises(LabError) as exc:
        agent._post("/api/eval/submissions", {"task": lab.task_name, "predictions": seeds[0], "seed_predictions": seeds})
    assert exc.value.status == 422 and "exactly one" in exc.value.message
    with pytest.raises(LabError) as exc:
        agent.submit(lab.task_name, [seeds[0], seeds[1][:-1]])
    assert exc.value.status == 400 and "predictions for" in exc.value.message


def test_one_predictions_validator_unwraps_files_and_the_api_takes_the_bare_list(lab, agent):
    """w2s.taskdir.validate_predictions is the one validator: a method's file may hold {"predictions": [...]},
    the API's ``predictions`` field is the bare list (a wrapped one is refused before it is scored)."""
    from aarlab.server._tasks import check_predictions
    from aarlab.w2s.taskdir import validate_predictions

    assert validate_predictions({"predictions": [0, 1, 1]}, 3, 2) == [0, 1, 1]
    assert check_predictions([0, 1, 1], 3, 2, 10).tolist() == [0, 1, 1]
    with pytest.raises(LabError) as exc:
        agent._post("/api/eval/submissions", {"task": lab.task_name, "predictions": {"predictions": [0] * lab.task.n_test}})
    assert exc.value.status == 422


def test_api_and_dashboard_share_one_leaderboard_with_ties_newest_first(lab, admin):
    """Two leaderboards used to disagree on ties (the API ranked the newest first, the dashboard the oldest)."""
    from aarlab.dashboard import _results

    labels, _ = labels_and_parts(lab.task_dir)
    posts = []
    for name in ("tie-old", "tie-new"):
        author = new_agent(lab)
        snap = author.publish_snapshot(make_tar(dict(METHOD_FILES, **{"method/tie.txt": name})), name)
        sub = author.submit(lab.task_name, labels, snapshot_id=snap.id)
        posts.append(author.post("result", name, "b", snapshot_id=snap.id, entry_point="method.main",
                                 metrics={"pgr": 0.3, "pgr_se": 0.05, "seeds": 3}, submission_id=sub.id))
        admin.record_verification(posts[-1].id, "done", verified_pgr=0.777, se=0.01, seeds=3)
    api = [e.post_id for e in admin.leaderboard(lab.task_name, sort="verified").entries if e.post_id in
           {p.id for p in posts}]
    dashboard = [r.post_id for r in _results.leaderboard(lab.store, lab.task.id, "verified") if r.post_id in
                 {p.id for p in posts}]
    assert api == dashboard == [posts[1].id, posts[0].id]
