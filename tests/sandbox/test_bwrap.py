"""What an agent can do in a bwrap sandbox: its workspace, /task, python and aarlab, limits that report."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from aarlab.sandbox import SandboxError, create, default_backend

pytestmark = pytest.mark.usefixtures("bwrap_required")


def test_bwrap_is_the_default_backend_where_it_works():
    assert default_backend() == "bwrap"


def test_commands_run_in_the_workspace_as_an_unprivileged_user(bwrap_box, layout):
    result = bwrap_box.exec("pwd; id -u; echo hello > out.txt; hostname")
    assert result.exit_code == 0, result
    # not root: uid 1000 in its own user namespace; as root: the sandbox's own unprivileged host uid
    expected_uid = bwrap_box.host_uid if os.geteuid() == 0 else 1000
    assert expected_uid != 0
    assert result.stdout.split() == ["/workspace", str(expected_uid), "sandbox"]
    assert (layout.alice / "out.txt").read_text() == "hello\n"
    assert bwrap_box.isolates is True


def test_task_public_files_are_read_only_at_task(bwrap_box):
    result = bwrap_box.exec("cat /task/task.json && touch /task/new")
    assert '"synthetic"' in result.stdout
    assert "Read-only file system" in result.stderr
    assert result.exit_code != 0


def test_aarlab_and_the_venv_import_read_only(bwrap_box):
    result = bwrap_box.exec(
        "python -c \"import aarlab, pydantic, numpy, sys; print(sys.prefix); "
        "from aarlab.sandbox import SandboxSpec; print('ok')\""
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "ok"


def test_list_argv_and_cwd_and_extra_env(bwrap_box, layout):
    (layout.alice / "sub").mkdir()
    result = bwrap_box.exec(["bash", "-c", "pwd; echo $GREETING"], cwd="sub", env={"GREETING": "hi there"})
    assert result.stdout == "/workspace/sub\nhi there\n"
    missing = bwrap_box.exec("true", cwd="nope")
    assert missing.exit_code == 1 and "no such directory" in missing.stderr
    with pytest.raises(SandboxError):
        bwrap_box.exec("true", cwd="../bob")


def test_exit_codes_and_stderr_come_back(bwrap_box):
    result = bwrap_box.exec("echo out; echo err >&2; exit 3")
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert result.duration_s > 0 and not result.timed_out and not result.truncated


def test_output_is_capped_with_a_note(layout, h):
    with create("bwrap", h.make_spec(layout, max_output_bytes=1000)) as sandbox:
        result = sandbox.exec("seq 1 100000")
        assert result.truncated
        assert len(result.stdout) < 1200
        assert result.stdout.startswith("1\n2\n3\n")
        assert result.stdout.rstrip().endswith("100000")
        assert "output truncated" in result.stdout


def test_private_tmp_is_fresh_for_each_command(bwrap_box):
    from aarlab.sandbox._bwrap_parts import python_paths

    bwrap_box.exec("echo x > /tmp/scratch")
    # Only the mount points of a Python or checkout that lives under /tmp itself (as in a CI clone) are there.
    expected = {p.parts[2] for p in python_paths() if len(p.parts) > 2 and p.parts[1] == "tmp"}
    assert set(bwrap_box.exec("ls /tmp").stdout.split()) == expected


def test_gpus_are_selected_through_cuda_visible_devices(layout, h, monkeypatch):
    with create("bwrap", h.make_spec(layout)) as sandbox:
        assert sandbox.exec("echo \"[$CUDA_VISIBLE_DEVICES]\"").stdout == "[]\n"
        assert "--dev-bind" not in sandbox.bwrap_argv()
    with create("bwrap", h.make_spec(layout, gpus=[1, 3])) as sandbox:
        assert sandbox.exec("echo $CUDA_VISIBLE_DEVICES").stdout == "1,3\n"
        # a GPU machine with four GPUs: exactly the chosen ones (and the control devices) are bound
        import os.path

        real_exists = os.path.exists
        monkeypatch.setattr(os.path, "exists", lambda p: str(p) in {
            "/dev/nvidia0", "/dev/nvidia1", "/dev/nvidia2", "/dev/nvidia3", "/dev/nvidiactl", "/dev/nvidia-uvm",
        } or real_exists(p))
        argv = sandbox.bwrap_argv()
        monkeypatch.undo()
        bound = [argv[i + 1] for i, a in enumerate(argv) if a == "--dev-bind"]
        assert bound == ["/dev/nvidia1", "/dev/nvidia3", "/dev/nvidiactl", "/dev/nvidia-uvm"]


def test_readonly_paths_are_visible_at_their_host_path(layout, h, tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "model.bin").write_text("w")
    with create("bwrap", h.make_spec(layout, readonly_paths=[weights])) as sandbox:
        result = sandbox.exec(f"cat {weights}/model.bin && touch {weights}/x")
        assert result.stdout == "w"
        assert "Read-only" in result.stderr


def test_exec_before_start_is_an_error(layout, h):
    sandbox = create("bwrap", h.make_spec(layout))
    with pytest.raises(SandboxError, match="not started"):
        sandbox.exec("true")


def test_stop_removes_the_sandboxs_cgroup(layout, h):
    sandbox = create("bwrap", h.make_spec(layout))
    sandbox.start()
    dirs = list(sandbox._cgroup.dirs) if sandbox._cgroup else []
    sandbox.stop()
    assert all(not d.exists() for d in dirs)


def test_exec_overhead_is_modest(bwrap_box):
    bwrap_box.exec("true")
    start = time.perf_counter()
    for _ in range(5):
        assert bwrap_box.exec("true").exit_code == 0
    per_call = (time.perf_counter() - start) / 5
    assert per_call < 1.0  # generous: a loaded 2-core CI box; benchmarks/sandbox.py measures it properly


@pytest.mark.slow
def test_a_known_method_runs_inside_bwrap_on_a_synthetic_task(tmp_path, h):
    from aarlab.sandbox import Mount, SandboxSpec
    from aarlab.w2s.synthetic import write_synthetic_task

    task = write_synthetic_task(tmp_path / "task", n_unlabel=60, n_test=40)
    workspace = tmp_path / "ws"
    spec = SandboxSpec(workspace=workspace, mounts=[Mount(host=task / "public", target=Path("/task"))],
                       memory_mb=4096, default_timeout_s=300)
    with create("bwrap", spec) as sandbox:
        result = sandbox.exec("python -m aarlab.w2s.methods.vanilla --data-dir /task --out /workspace/pred.json "
                              "--seed 0")
        assert result.exit_code == 0, result.stderr[-2000:]
        predictions = json.loads(sandbox.read_file("pred.json"))
        assert predictions


def test_host_model_weights_are_shared_read_only_but_not_hub_datasets(layout, h, tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    (hub / "models--Qwen--Qwen3-4B-Base" / "snapshots").mkdir(parents=True)
    (hub / "models--Qwen--Qwen3-4B-Base" / "snapshots" / "weights.bin").write_text("weights")
    (hub / "datasets--org--labels").mkdir()
    (hub / "datasets--org--labels" / "test.jsonl").write_text(h.PRIVATE_SECRET)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    with create("bwrap", h.make_spec(layout)) as sandbox:
        result = sandbox.exec('ls "$HF_HUB_CACHE"; cat "$HF_HUB_CACHE"/models--*/snapshots/weights.bin; '
                              f'cat {hub}/datasets--org--labels/test.jsonl; '
                              'touch "$HF_HUB_CACHE"/models--Qwen--Qwen3-4B-Base/x')
        assert result.stdout == "models--Qwen--Qwen3-4B-Base\nweights"
        assert h.PRIVATE_SECRET not in result.stdout + result.stderr
        assert "Read-only" in result.stderr
    with create("bwrap", h.make_spec(layout, share_model_cache=False)) as sandbox:
        assert sandbox.exec(f"ls {hub}").exit_code != 0


def test_a_command_starts_through_the_limits_shell_bwrap_and_the_uid_drop_only(bwrap_box, monkeypatch):
    # Every binary exec'd in front of the command costs 1-2 ms on every call (issue 13, "Speed"): the limits
    # shell is dash where installed, and bwrap itself enters the working directory (no `env --chdir`).
    import shutil

    from aarlab.sandbox import _bwrap

    started = []
    real_run_capped = _bwrap.run_capped

    def spy(argv, **kwargs):
        started.append(argv)
        return real_run_capped(argv, **kwargs)

    monkeypatch.setattr(_bwrap, "run_capped", spy)
    assert bwrap_box.exec(["true"]).exit_code == 0
    (argv,) = started
    assert Path(argv[0]).name == ("dash" if shutil.which("dash") else "bash")
    assert argv[3] == "aarlab-limits" and Path(argv[4]).name == "bwrap"
    inside = argv[argv.index("--", 5) + 1:]
    if os.geteuid() == 0:
        assert Path(inside[0]).name == "setpriv"
        inside = inside[inside.index("--") + 1:]
    assert inside == ["true"]


def test_a_list_command_sees_its_working_directory_in_pwd(bwrap_box, layout):
    (layout.alice / "sub").mkdir()
    result = bwrap_box.exec(["printenv", "PWD"], cwd="sub")
    assert (result.exit_code, result.stdout) == (0, "/workspace/sub\n"), result


def test_the_mount_list_is_built_once_and_again_when_the_model_cache_changes(layout, h, tmp_path, monkeypatch):
    from aarlab.sandbox import _bwrap

    hub = tmp_path / "hub"
    (hub / "models--org--first").mkdir(parents=True)
    an_hour_ago = time.time_ns() - 3600 * 10**9
    os.utime(hub, ns=(an_hour_ago, an_hour_ago))
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    scans = []
    real_scan = _bwrap.model_cache_paths

    def counting_scan():
        scans.append(1)
        return real_scan()

    monkeypatch.setattr(_bwrap, "model_cache_paths", counting_scan)
    with create("bwrap", h.make_spec(layout)) as sandbox:
        for _ in range(3):
            assert sandbox.exec('ls "$HF_HUB_CACHE"').stdout == "models--org--first\n"
        assert len(scans) == 1
        # a model downloaded meanwhile changes the cache directory: the next command sees it
        (hub / "models--org--second").mkdir()
        assert sandbox.exec('ls "$HF_HUB_CACHE"').stdout == "models--org--first\nmodels--org--second\n"
        assert len(scans) == 2


def test_the_sandboxs_etc_is_readable_by_its_user(bwrap_box):
    # /etc is built fresh on every command; a directory made 0700 by a bind would hide passwd, ld.so.cache, certs
    result = bwrap_box.exec("id -un && cat /etc/ld.so.cache /etc/ssl/openssl.cnf > /dev/null && ls /etc/ssl/certs | "
                            "head -1 | wc -l")
    assert (result.exit_code, result.stdout) == (0, "agent\n1\n"), result
