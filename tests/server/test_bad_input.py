"""Every kind of bad input is refused with a 4xx and a message a person can act on; the server stays
healthy and stores nothing."""

from __future__ import annotations

import io
import math
import tarfile

import httpx
import pytest
from labhelpers import METHOD_FILES, counts, make_tar, new_agent

from aarlab.server.client import LabClient, LabError


@pytest.fixture
def check_refused(lab):
    """Run a request that must fail; check status, message, health and that nothing was stored."""

    def run(call, status: int | tuple[int, ...], message: str):
        before = counts(lab.store)
        with pytest.raises(LabError) as exc:
            call()
        statuses = status if isinstance(status, tuple) else (status,)
        assert exc.value.status in statuses, exc.value
        assert message.lower() in exc.value.message.lower(), exc.value.message
        assert LabClient(lab.url).health().status == "ok"
        assert counts(lab.store) == before
        return exc.value

    return run


def n(lab) -> int:
    return lab.task.n_test


@pytest.mark.parametrize("predictions, message", [
    (lambda k: [0] * (k - 1), "predictions for"),
    (lambda k: [0] * (k + 1), "predictions for"),
    (lambda k: [math.nan] + [0] * (k - 1), "item 0 is nan"),
    (lambda k: [0, "1"] + [0] * (k - 2), 'item 1 is "1"'),
    (lambda k: [0, 0, 1.0] + [0] * (k - 3), "item 2 is 1.0"),
    (lambda k: [True] + [0] * (k - 1), "item 0 is True"),
    (lambda k: [[0]] + [0] * (k - 1), "item 0 is [0]"),
    (lambda k: [0] * (k - 1) + [2], "outside the label space 0..1"),
    (lambda k: [-1] + [0] * (k - 1), "outside the label space"),
    (lambda k: [2**70] + [0] * (k - 1), "outside the label space"),
    (lambda k: [], "empty"),
])
def test_bad_predictions_are_refused(lab, agent, check_refused, predictions, message):
    check_refused(lambda: agent.submit(lab.task_name, predictions(n(lab))), 400, message)


def test_predictions_not_a_list_or_unknown_task(lab, agent, check_refused):
    check_refused(lambda: agent._post("/api/eval/submissions", {"task": lab.task_name, "predictions": {"a": 1}}),
                  422, "predictions")
    check_refused(lambda: agent.submit("no-such-task", [0] * n(lab)), 404, "unknown task 'no-such-task'")
    check_refused(lambda: agent.budget("no-such-task"), 404, "unknown task")


def test_malformed_json_and_missing_fields(lab, agent, check_refused):
    for raw, message in [(b'{"task": "synthetic", "predictions": [0, 1,', "malformed JSON"),
                         (b"not json at all", "malformed JSON"), (b"", "body")]:
        check_refused(lambda raw=raw: agent._request("POST", "/api/eval/submissions", content=raw,
                                                       headers={"Content-Type": "application/json"}), 422, message)
    check_refused(lambda: agent._post("/api/eval/submissions", {"predictions": [0]}), 422, "task: Field required")
    check_refused(lambda: agent._post("/api/forum/posts", {"kind": "rumour", "title": "t"}), 422, "kind")


def test_hundred_megabyte_body_is_refused_before_it_is_read(lab, agent):
    before = counts(lab.store)
    body = b'{"task": "synthetic", "predictions": [' + b"0," * (50 * 1024 * 1024) + b"0]}"
    try:
        response = httpx.post(f"{lab.url}/api/eval/submissions", content=body, timeout=60,
                              headers={"Authorization": f"Bearer {agent.token}", "Content-Type": "application/json"})
        assert response.status_code == 413 and "limit" in response.json()["detail"]
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        pass  # the server answered 413 and closed the connection while the client was still sending
    assert LabClient(lab.url).health().status == "ok"
    assert counts(lab.store) == before


def test_streamed_body_without_length_is_cut_at_the_limit(lab, agent):
    def chunks():
        yield b'{"task": "synthetic", "predictions": ['
        for _ in range(30):
            yield b"0," * (512 * 1024)
        yield b"0]}"

    before = counts(lab.store)
    try:
        response = httpx.post(f"{lab.url}/api/eval/submissions", content=chunks(), timeout=60,
                              headers={"Authorization": f"Bearer {agent.token}", "Content-Type": "application/json"})
        assert response.status_code == 413, response.text
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        pass
    assert LabClient(lab.url).health().status == "ok" and counts(lab.store) == before


def tar_with(member: tarfile.TarInfo, data: bytes = b"x") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        if member.isfile():
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
        else:
            tar.addfile(member)
    return buf.getvalue()


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


@pytest.mark.parametrize("tar, message", [
    (lambda: tar_with(tarfile.TarInfo("../../etc/cron.d/evil")), "path traversal"),
    (lambda: tar_with(tarfile.TarInfo("ok/../../escape.py")), "path traversal"),
    (lambda: tar_with(tarfile.TarInfo("/etc/passwd")), "absolute path"),
    (lambda: tar_with(_symlink("labels.jsonl", "/task/private/test_labels.jsonl")), "is a link"),
    (lambda: b"this is not a tar archive" * 40, "not a readable tar"),
    (lambda: b"", "empty"),
])
def test_bad_snapshots_are_refused(lab, agent, check_refused, tar, message):
    check_refused(lambda: agent.publish_snapshot(tar(), "bad"), 400, message)


def test_oversize_snapshots_are_refused(tmp_path):
    from aarlab.server.testing import running_lab

    with running_lab(tmp_path, max_snapshot_mb=1, max_snapshot_files=10) as small:
        agent = new_agent(small)
        before = counts(small.store)
        for tar, message in [(make_tar({"big.bin": b"\0" * 1_100_000}), "cap of 1 MB"),
                             (make_tar({f"f{i}.py": "x" for i in range(11)}), "more than 10 files")]:
            with pytest.raises(LabError) as exc:
                agent.publish_snapshot(tar, "too big")
            assert exc.value.status == 400 and message in exc.value.message
        assert counts(small.store) == before
        assert agent.publish_snapshot(make_tar({f"f{i}.py": "x" for i in range(10)}), "fits").n_files == 10


def test_spoofed_author_is_refused(lab, agent, check_refused):
    body = {"kind": "insight", "title": "spoof", "body": "b", "author": "admin"}
    check_refused(lambda: agent._post("/api/forum/posts", body), 422, "the author is always the owner of the token")
    body = {"kind": "insight", "title": "spoof", "body": "b", "agent_id": 1}
    check_refused(lambda: agent._post("/api/forum/posts", body), 422, "agent_id")


def test_unknown_references_are_refused(lab, agent, admin, check_refused):
    check_refused(lambda: agent.reply(999_999, "hello"), 404, "no post 999999")
    check_refused(lambda: agent.vote(999_999, 1), 404, "no post")
    check_refused(lambda: agent._post("/api/forum/posts/1/votes", {"value": 5}), 422, "value")
    check_refused(lambda: agent.submit(lab.task_name, [0] * n(lab), snapshot_id="a" * 64), 400, "unknown snapshot")
    check_refused(lambda: agent.publish_snapshot(make_tar(METHOD_FILES), "m", parent="b" * 64), 400, "unknown snapshot")
    check_refused(lambda: agent.snapshot_info("not-a-hash"), 404, "no snapshot")
    check_refused(lambda: agent.snapshot_info("../../etc"), 404, "no route")
    check_refused(lambda: admin.register_task("/no/such/dir"), 400, "does not exist")
    check_refused(lambda: admin.add_flag("d", "severe", "s", agent="nobody"), 404, "unknown agent")
    check_refused(lambda: admin.add_flag("d", "catastrophic", "s"), 422, "severity")
    check_refused(lambda: admin.resolve_flag(999_999, "clear"), 404, "no flag")
    check_refused(lambda: admin.record_verification(999_999, "done", verified_pgr=0.1), 404, "no post")
    check_refused(lambda: admin.create_agent("bad name!"), 422, "name")
    check_refused(lambda: agent.leaderboard(sort="random"), 400, "unknown sort")
    check_refused(lambda: agent.posts(limit=100_000), 422, "limit")


def test_duplicate_agent_name_is_409(lab, admin, check_refused):
    admin.create_agent("only-once")
    check_refused(lambda: admin.create_agent("only-once"), 409, "already exists")


def test_record_verification_checks_its_numbers(lab, agent, admin, check_refused):
    snap = agent.publish_snapshot(make_tar(METHOD_FILES), "m")
    post = agent.post("result", "r", "b", snapshot_id=snap.id, entry_point="method.main",
                      metrics={"pgr": 0.3, "pgr_se": 0.1, "seeds": 3})
    check_refused(lambda: admin.record_verification(post.id, "done"), 400, "verified_pgr")
    check_refused(lambda: admin.record_verification(post.id, "failed"), 400, "reason")
    plain = agent.post("insight", "i", "b")
    check_refused(lambda: admin.record_verification(plain.id, "done", verified_pgr=0.2), 400, "only result posts")
