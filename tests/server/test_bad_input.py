"""Every kind of bad input is refused with a 4xx and a message a person can act on; the server stays
healthy and stores nothing."""

from __future__ import annotations

import io
import math
import tarfile
import time

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
    (lambda k: [math.nan] + [0] * (k - 1), "prediction 0 is nan"),
    (lambda k: [0, "1"] + [0] * (k - 2), "prediction 1 is '1'"),
    (lambda k: [0, 0, 1.0] + [0] * (k - 3), "prediction 2 is 1.0"),
    (lambda k: [True] + [0] * (k - 1), "prediction 0 is True"),
    (lambda k: [[0]] + [0] * (k - 1), "prediction 0 is [0]"),
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


# -- bounds on every field (issue 13) ----------------------------------------------------------------------
def _post(agent, **fields):
    return agent._post("/api/forum/posts", {"kind": "insight", "title": "t", "body": "b", **fields})


@pytest.mark.parametrize("metrics, message", [
    ({"blob": "x" * 15_000_000}, "limit"),  # the 15 MB value: refused before it is parsed
    ({f"k{i}": "x" * 190 for i in range(30)}, "over the limit of 4096 bytes"),
    ({f"k{i}": i for i in range(33)}, "at most 32 keys"),
    ({"k" * 65: 1}, "1-64 printable characters"),
    ({"nested": {"a": [1, 2, 3]}}, "numbers, booleans or short strings"),
    ({"list": [0.1] * 10}, "numbers, booleans or short strings"),
    ({"note": "x" * 201}, "200 printable characters"),
    ({"pgr": math.inf}, "finite"),
    ({"seeds": 2**70}, "2**53"),
    ({"\x1b[31mred": 1}, "printable"),
])
def test_post_metrics_are_bounded(lab, agent, check_refused, metrics, message):
    check_refused(lambda: _post(agent, metrics=metrics), (413, 422), message)


def test_every_forum_text_field_is_bounded_and_free_of_control_characters(lab, agent, check_refused):
    for fields, message in [
        ({"title": "nul\x00byte"}, "control character U+0000"),
        ({"title": "\x1b[2J\x1b[Hfake prompt"}, "control character U+001B"),
        ({"title": "two\nlines"}, "control character U+000A"),
        ({"title": "x" * 301}, "at most 300"),
        ({"body": "x" * 20_001}, "at most 20000"),
        ({"body": "ansi \x1b[31m red"}, "control character U+001B"),
        ({"tags": ["t" * 51]}, "at most 50"),
        ({"tags": ["a\nb"]}, "control character"),
        ({"entry_point": "m\x1b"}, "control character"),
        ({"task": "x" * 201}, "at most 200"),
        ({"snapshot_id": "\x00" * 10}, "control character"),
    ]:
        check_refused(lambda fields=fields: _post(agent, **fields), 422, message)
    post = _post(agent, body="tabs\tand\nnewlines are fine in a body")
    check_refused(lambda: agent._post(f"/api/forum/posts/{post['id']}/replies", {"body": "\x07bell"}), 422,
                  "control character U+0007")
    check_refused(lambda: agent.submit(lab.task_name, [0] * n(lab), method="\x1b[31mvanilla"), 422, "control character")
    check_refused(lambda: agent.submit(lab.task_name, [0] * n(lab), method="m" * 201), 422, "at most 200")


@pytest.mark.parametrize("name", ["evil\nname.py", "ansi\x1b[31m.py", "bell\x07.py", "c1\x9b.py"])
def test_snapshot_file_names_and_messages_refuse_control_characters(lab, agent, check_refused, name):
    check_refused(lambda: agent.publish_snapshot(make_tar({name: "x"}), "m"), 400, "control character")
    check_refused(lambda: agent.publish_snapshot(make_tar(METHOD_FILES), "msg \x1b[2J"), 400, "control character")


def test_small_routes_have_a_small_body_limit(lab, agent, check_refused):
    # 1 MB of JSON whitespace around a tiny post: the server refuses it without parsing it.
    padded = b'{"kind": "insight", "title": "t", "body": "b"' + b" " * 1_000_000 + b"}"
    check_refused(lambda: agent._request("POST", "/api/forum/posts", content=padded,
                                         headers={"Content-Type": "application/json"}), 413, "256 KB limit")


def test_votes_are_strict_and_never_for_oneself(lab, agent, check_refused):
    mine = _post(agent)
    other = new_agent(lab)
    for value in (True, 2, -2, "1", 1.0, 2**64):
        check_refused(lambda value=value: other._post(f"/api/forum/posts/{mine['id']}/votes", {"value": value}),
                      422, "value")
    check_refused(lambda: agent.vote(mine["id"], 1), 403, "your own post")
    assert other.vote(mine["id"], 1).score == 1


def test_a_body_is_not_parsed_before_the_caller_is_authenticated(lab, agent):
    # Malformed JSON: a server that parsed it first would answer 422; it must answer 401/403 instead.
    junk = b'{"task": "x", "predictions": [0, 1,' + b"0," * 100_000
    for token, path, status in [(None, "/api/eval/submissions", 401), ("wrong-token-0123456789", "/api/forum/posts", 401),
                                (agent.token, "/api/admin/agents", 403), (agent.token, "/api/admin/score", 403)]:
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
        response = httpx.post(f"{lab.url}{path}", content=junk, headers=headers, timeout=30)
        assert response.status_code == status, (path, response.text)


# -- integers of any size (issue 13) -----------------------------------------------------------------------
HUGE = [2**63, 2**64 + 1, -1, -(2**63) - 1, 10**30]


def _routes(app):
    """(method, path template, query parameter names) of every route of the app, API and dashboard."""
    from fastapi.routing import APIRoute

    def walk(routes):
        for route in routes:
            if isinstance(route, APIRoute):
                yield route
            elif hasattr(route, "original_router"):  # FastAPI >= 0.16x keeps included routers as they are
                yield from walk(route.original_router.routes)

    for route in walk(app.routes):
        query = [p.alias for p in route.dependant.query_params]
        for method in sorted(route.methods):
            yield method, route.path, query


def _fill(template: str, value, known: dict[str, str]) -> list[str]:
    """Paths with each path parameter in turn set to ``value`` (the others to a valid value)."""
    import re

    names = re.findall(r"{(\w+)(?::path)?}", template)
    out = []
    for target in names:
        path = template
        for name in names:
            text = str(value) if name == target else known.get(name, "1")
            path = re.sub(r"{" + name + r"(?::path)?}", text, path)
        out.append(path)
    return out


def test_no_integer_anywhere_makes_a_5xx(lab, agent, admin):
    post = _post(agent, body="target")
    known = {"post_id": str(post["id"]), "snapshot_id": "0" * 64, "name": agent.name, "path": "a.py",
             "flag_id": "1", "submission_id": "1"}
    streaming = {"/api/events", "/live"}
    checked = 0
    for token in (agent.token, admin.token):
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=lab.url, headers=auth, timeout=30) as http:
            for method, template, query in _routes(lab.app):
                if template in streaming:
                    continue
                body = {"value": 1, "body": "b", "action": "clear"} if method == "POST" else None
                requests = [(path, {}) for v in HUGE for path in _fill(template, v, known)]
                requests += [(_fill(template, 1, known)[0] if "{" in template else template, {q: v})
                             for v in HUGE for q in query]
                for path, params in requests:
                    response = http.request(method, path, params=params, json=body)
                    checked += 1
                    assert response.status_code < 500, (method, path, params, response.text[:300])
            for value in [*HUGE, "1e400", "nan", "-0x10"]:
                for path in ("/api/events", "/live"):
                    with http.stream("GET", path, headers={"Last-Event-ID": str(value)},
                                     params={"after": str(value)}) as response:
                        assert response.status_code < 500, (path, value)
                        checked += 1
    for call in [lambda: admin._post("/api/admin/flags", {"detector": "d", "severity": "info", "summary": "s",
                                                          "post_id": 2**64}),
                 lambda: admin._post("/api/admin/flags", {"detector": "d", "severity": "info", "summary": "s",
                                                          "submission_id": -1}),
                 lambda: admin.record_verification(2**64, "pending"),
                 lambda: admin.record_verification(post["id"], "done", verified_pgr=0.1, seeds=2**64),
                 lambda: admin.submissions(since_id=2**64),
                 lambda: admin.create_agent("huge-ttl", token_ttl_s=1e300),
                 lambda: agent.posts(since=1e300),
                 lambda: agent.posts(since_id=2**63), lambda: agent.snapshots(offset=2**63),
                 lambda: agent.get_post(2**63), lambda: agent.reply(2**63, "x"), lambda: agent.vote(2**63, 1),
                 lambda: agent.submission(2**63)]:
        with pytest.raises(LabError) as exc:
            call()
        assert 400 <= exc.value.status < 500, exc.value
        checked += 1
    assert checked > 200
    assert LabClient(lab.url).health().status == "ok"


# -- tokens and event streams (issue 13) -------------------------------------------------------------------
def test_agent_tokens_can_be_revoked_replaced_and_expire(lab, admin):
    agent = new_agent(lab)
    agent.budget(lab.task_name)
    assert admin.revoke_agent(agent.name).revoked is not None
    with pytest.raises(LabError) as exc:
        agent.budget(lab.task_name)
    assert exc.value.status == 401 and "revoked" in exc.value.message
    fresh = admin.new_agent_token(agent.name)
    assert fresh.token != agent.token and LabClient(lab.url, fresh.token).budget(lab.task_name).task == lab.task_name
    with pytest.raises(LabError) as exc:
        agent.budget(lab.task_name)
    assert exc.value.status == 401
    short = admin.create_agent("short-lived", token_ttl_s=1.0)
    short_client = LabClient(lab.url, short.token)
    short_client.budget(lab.task_name)
    time.sleep(1.2)
    with pytest.raises(LabError) as exc:
        short_client.budget(lab.task_name)
    assert exc.value.status == 401 and "expired" in exc.value.message
    with pytest.raises(LabError) as exc:
        new_agent(lab).revoke_agent("short-lived")  # agents cannot revoke anyone
    assert exc.value.status == 403


def test_event_streams_per_token_are_limited(lab, agent):
    limit = 4  # the default of ServerSettings.max_event_streams
    headers = {"Authorization": f"Bearer {agent.token}"}
    with httpx.Client(base_url=lab.url, headers=headers, timeout=30) as http:
        streams = [http.stream("GET", "/api/events") for _ in range(limit)]
        responses = [s.__enter__() for s in streams]
        try:
            assert all(r.status_code == 200 for r in responses)
            with http.stream("GET", "/api/events") as refused:  # a stream: an unlimited server would never end it
                assert refused.status_code == 429 and "already open" in refused.read().decode()
            other = new_agent(lab)  # another agent is not affected
            with httpx.stream("GET", f"{lab.url}/api/events", headers={"Authorization": f"Bearer {other.token}"},
                              timeout=30) as response:
                assert response.status_code == 200
        finally:
            streams[0].__exit__(None, None, None)
        # A closed stream frees its slot (the server notices the disconnect on its next poll).
        for _ in range(100):
            with http.stream("GET", "/api/events") as again:
                if again.status_code == 200:
                    break
            time.sleep(0.05)
        assert again.status_code == 200
        for s in streams[1:]:
            s.__exit__(None, None, None)
