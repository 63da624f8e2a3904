"""The escape suite: real bwrap, real processes. Each attempt must fail, leave the host as it was, and leave
the sandbox usable for the next command."""

from __future__ import annotations

import io
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from unittest import mock

import pytest

from aarlab.sandbox import SandboxError, create, snapshot_tar

pytestmark = pytest.mark.usefixtures("bwrap_required")


def test_private_labels_cannot_be_read_by_absolute_path(bwrap_box, layout, h):
    result = bwrap_box.exec(
        f"cat {layout.private_labels}; ls {layout.private_labels.parent}; ls {layout.run_dir}; "
        f"python -c \"print(open('{layout.private_labels}').read())\""
    )
    assert result.exit_code != 0
    assert h.PRIVATE_SECRET not in result.stdout + result.stderr
    assert "No such file or directory" in result.stderr
    h.assert_usable(bwrap_box)


def test_host_files_beside_bound_directories_are_invisible(bwrap_box, h):
    # aarlab's own package dir is bound; the repository around it (run dirs, configs) must not be
    import aarlab

    repo_root = Path(aarlab.__file__).resolve().parent.parent
    listed = set(bwrap_box.exec(f"ls -A {repo_root}").stdout.split())
    assert "aarlab" in listed
    assert listed <= {"aarlab", ".venv", "venv", "env"} | {p.name for p in map(Path, sys.path) if p.is_dir()}
    assert "pyproject.toml" not in listed
    result = bwrap_box.exec(f"cat /etc/shadow; ls -A /home; cat {Path.home() / '.bash_history'}")
    assert "/etc/shadow: No such file" in result.stderr
    assert result.stdout == ""
    h.assert_usable(bwrap_box)


def test_private_labels_cannot_be_read_through_proc_pid_root(bwrap_box, layout, h):
    harness_pid = os.getpid()
    result = bwrap_box.exec(
        f"cat /proc/{harness_pid}/root{layout.private_labels}; "
        f"for p in /proc/[0-9]*; do cat $p/root{layout.private_labels} 2>/dev/null; done; "
        "ls /proc | grep -E '^[0-9]+$' | wc -l"
    )
    assert h.PRIVATE_SECRET not in result.stdout + result.stderr
    # only the sandbox's own few processes exist in its PID namespace
    assert int(result.stdout.split()[-1]) < 10
    h.assert_usable(bwrap_box)


def test_planted_symlink_to_private_labels_leads_nowhere(bwrap_box, layout, h):
    planted = bwrap_box.exec(f"ln -s {layout.private_labels} labels.jsonl && cat labels.jsonl")
    assert planted.exit_code != 0
    assert h.PRIVATE_SECRET not in planted.stdout + planted.stderr
    # the harness reads the workspace from the host side, where the link WOULD resolve: it must refuse
    assert (layout.alice / "labels.jsonl").is_symlink()
    with pytest.raises(SandboxError, match="outside the workspace|symbolic link"):
        bwrap_box.read_file("labels.jsonl")
    assert "labels.jsonl" not in bwrap_box.list_files()
    with tarfile.open(fileobj=io.BytesIO(snapshot_tar(bwrap_box)), mode="r") as tar:
        assert tar.getnames() == []
    # a planted symlinked directory does not let the harness write outside either
    bwrap_box.exec(f"ln -s {layout.private_labels.parent} privdir")
    with pytest.raises(SandboxError):
        bwrap_box.write_file("privdir/evil.txt", "x")
    assert not (layout.private_labels.parent / "evil.txt").exists()
    h.assert_usable(bwrap_box)


def test_another_agents_workspace_is_invisible(bwrap_box, layout, h):
    result = bwrap_box.exec(
        f"cat {layout.bob}/notes.txt; ls {layout.bob.parent}; cat /workspace/../bob/notes.txt; ls /workspace/.."
    )
    assert h.BOB_SECRET not in result.stdout + result.stderr
    assert "bob" not in result.stdout
    with pytest.raises(SandboxError):
        bwrap_box.read_file("../bob/notes.txt")
    with pytest.raises(SandboxError):
        bwrap_box.read_file(str(layout.bob / "notes.txt"))
    h.assert_usable(bwrap_box)


def test_writes_outside_the_workspace_fail_and_leave_the_host_untouched(bwrap_box, layout, h):
    import aarlab

    package_dir = Path(aarlab.__file__).resolve().parent
    targets = ["/usr/evil", "/etc/evil", "/evil", "/task/evil", f"{package_dir}/evil.py", f"{sys.prefix}/evil"]
    script = "; ".join(f"touch {t} && echo WROTE {t}" for t in targets)
    result = bwrap_box.exec(script)
    assert "WROTE" not in result.stdout, result
    # a host path under /tmp lands in the sandbox's private /tmp, never on the host
    host_target = layout.private_labels.parent / "evil.txt"
    bwrap_box.exec(f"mkdir -p {host_target.parent} && echo pwned > {host_target}")
    for target in [*targets, host_target]:
        assert not Path(target).exists(), target
    assert not (layout.public / "evil").exists()
    assert layout.private_labels.read_text().count(h.PRIVATE_SECRET) == 1
    h.assert_usable(bwrap_box)


def test_tcp_to_a_listener_on_the_hosts_loopback_is_refused(bwrap_box, h):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    port = listener.getsockname()[1]
    try:
        result = bwrap_box.exec(
            "python - <<'EOF'\n"
            "import socket\n"
            "s = socket.socket(); s.settimeout(3)\n"
            "try:\n"
            f"    s.connect(('127.0.0.1', {port})); print('CONNECTED')\n"
            "except OSError as exc:\n"
            "    print('refused', exc)\n"
            "EOF"
        )
        assert "CONNECTED" not in result.stdout
        assert "refused" in result.stdout
        readable, _, _ = select.select([listener], [], [], 0.2)
        assert readable == [], "the host's listener saw a connection from the sandbox"
    finally:
        listener.close()
    h.assert_usable(bwrap_box)


def test_tcp_to_a_remote_address_has_no_route(bwrap_box, h):
    # Only the sandboxed process attempts this (in its own network namespace, which has no route); the host
    # itself never sends anything. 203.0.113.1 is TEST-NET-3, reserved for documentation.
    result = bwrap_box.exec(
        "python - <<'EOF'\n"
        "import socket\n"
        "for addr in [('203.0.113.1', 80), ('example.com', 443)]:\n"
        "    s = socket.socket(); s.settimeout(3)\n"
        "    try:\n"
        "        s.connect(addr); print('CONNECTED', addr)\n"
        "    except OSError as exc:\n"
        "        print('failed', addr, exc)\n"
        "EOF"
    )
    assert "CONNECTED" not in result.stdout
    assert result.stdout.count("failed") == 2
    assert "unreachable" in result.stdout.lower()
    ifaces = bwrap_box.exec("cat /proc/net/dev")
    assert [line.split(":")[0].strip() for line in ifaces.stdout.splitlines()[2:]] == ["lo"]
    h.assert_usable(bwrap_box)


def test_fork_bomb_is_bounded_by_the_process_limit(bwrap_box, h):
    marker = "aarlabforkbomb"
    result = bwrap_box.exec(f"{marker}() {{ {marker} | {marker} & }}; {marker}; sleep 30", timeout=4)
    assert result.exit_code != 0
    assert result.duration_s < 15
    assert h.host_processes_with(marker) == []
    if bwrap_box.limits_mode == "cgroup":
        assert bwrap_box._cgroup.pids() == set()
    h.assert_usable(bwrap_box)


def test_fork_bomb_is_bounded_without_a_cgroup(layout, h):
    # As root too: the command runs as the sandbox's own unprivileged host uid, which RLIMIT_NPROC does limit
    with mock.patch("aarlab.sandbox._bwrap.Cgroup.create", return_value=None):
        with create("bwrap", h.make_spec(layout, max_processes=32, allow_weak_limits=True)) as sandbox:
            marker = "aarlabforkbombrl"
            result = sandbox.exec(f"{marker}() {{ {marker} | {marker} & }}; {marker}; sleep 30", timeout=4)
            assert result.exit_code != 0
            assert h.host_processes_with(marker) == []
            h.assert_usable(sandbox)


def test_memory_past_the_limit_is_killed(bwrap_box, h):
    result = bwrap_box.exec("python -c \"b = bytearray(1500 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); "
                            "print('ALLOCATED')\"")
    assert result.exit_code != 0
    assert "ALLOCATED" not in result.stdout
    assert "MemoryError" in result.stderr or "out of memory" in result.stderr
    h.assert_usable(bwrap_box)


def test_memory_limit_holds_without_a_cgroup(layout, h):
    with mock.patch("aarlab.sandbox._bwrap.Cgroup.create", return_value=None):
        with create("bwrap", h.make_spec(layout, memory_mb=400, allow_weak_limits=True)) as sandbox:
            assert sandbox.limits_mode == "rlimit"
            result = sandbox.exec("python -c \"b = bytearray(1500 * 1024 * 1024); print('ALLOCATED')\"")
            assert result.exit_code != 0
            assert "ALLOCATED" not in result.stdout
            assert "MemoryError" in result.stderr
            h.assert_usable(sandbox)


def test_files_past_the_size_limit_are_cut(bwrap_box, layout, h):
    result = bwrap_box.exec("dd if=/dev/zero of=big.bin bs=1M count=64")
    assert result.exit_code != 0
    assert "file" in result.stderr.lower() and "limit" in result.stderr.lower()
    assert (layout.alice / "big.bin").stat().st_size <= 16 * 1024 * 1024
    # the private /tmp is a size-capped tmpfs: it fills up without touching the host's disk
    tmp = bwrap_box.exec("for i in 1 2 3 4 5 6; do dd if=/dev/zero of=/tmp/fill$i bs=1M count=15 || exit 1; done")
    assert tmp.exit_code != 0
    assert "No space left on device" in tmp.stderr
    bwrap_box.exec("rm -f big.bin")
    h.assert_usable(bwrap_box)


def test_background_process_does_not_survive_a_timeout(bwrap_box, layout, h):
    marker = "31.4159"
    result = bwrap_box.exec(f"(sleep {marker}; touch late.txt) & sleep 41.4159", timeout=1.5)
    assert result.timed_out and result.exit_code == 124
    assert "timed out" in result.stderr
    assert result.duration_s < 10
    assert h.host_processes_with(marker) == []
    assert not (layout.alice / "late.txt").exists()
    h.assert_usable(bwrap_box)


def test_background_process_does_not_survive_a_normal_exit(bwrap_box, h):
    marker = "32.7182"
    result = bwrap_box.exec(f"nohup sleep {marker} >/dev/null 2>&1 & setsid sleep 1{marker} & echo started")
    assert result.exit_code == 0 and result.stdout == "started\n"
    assert result.duration_s < 10
    assert h.host_processes_with(marker) == []
    h.assert_usable(bwrap_box)


def test_harness_environment_is_not_visible(layout, h, monkeypatch):
    secrets = {
        "ANTHROPIC_API_KEY": "sk-ant-secret-1a2b",
        "OPENAI_API_KEY": "sk-openai-secret-3c4d",
        "AARLAB_ADMIN_TOKEN": "admin-secret-5e6f",
    }
    for key, value in secrets.items():
        monkeypatch.setenv(key, value)
    with create("bwrap", h.make_spec(layout, env={"AARLAB_AGENT": "alice"})) as sandbox:
        result = sandbox.exec("env; cat /proc/[0-9]*/environ | tr '\\0' '\\n'")
        output = result.stdout + result.stderr
        for key, value in secrets.items():
            assert key not in output and value not in output
        assert "AARLAB_AGENT=alice" in output
        h.assert_usable(sandbox)


# ---------------------------------------------------------------- issue 13: privilege and limits on every machine


def _setid_files_owned_by_root(root: Path) -> list[str]:
    found = []
    for path in root.rglob("*"):
        info = path.lstat()
        if stat.S_ISREG(info.st_mode) and info.st_mode & (stat.S_ISUID | stat.S_ISGID) and info.st_uid == 0:
            found.append(str(path))
    return found


def test_setuid_copy_leaves_no_setid_root_file_on_the_host(bwrap_box, layout, h):
    result = bwrap_box.exec("cp /usr/bin/id myid && chmod 4755 myid && cp /usr/bin/id mygid && chmod 2755 mygid "
                            "&& mkdir -p sub && cp /usr/bin/id sub/deep && chmod 6755 sub/deep && echo made")
    assert "made" in result.stdout, result
    # as root the copies are the sandbox's unprivileged uid's: set-id to it at most, never to root
    assert _setid_files_owned_by_root(layout.alice) == []
    h.assert_usable(bwrap_box)
    bwrap_box.stop()
    # and nothing set-id outlives the sandbox (defence in depth): the copies are still there, without the bits
    left = [p for p in layout.alice.rglob("*") if p.lstat().st_mode & (stat.S_ISUID | stat.S_ISGID)]
    assert left == [] or os.geteuid() != 0, left
    assert (layout.alice / "myid").stat().st_mode & 0o777 == 0o755


def test_as_root_the_sandbox_runs_as_an_unprivileged_host_uid_that_owns_its_files(bwrap_box, layout, h):
    # The old mapping made the agent host uid 0: every file it created was root's, set-id ones included.
    if os.geteuid() != 0:
        pytest.skip("only a root harness maps the sandbox to a host uid of its own")
    result = bwrap_box.exec("id -u; grep CapEff /proc/self/status; cp /usr/bin/id myid && chmod 4755 myid; "
                            "mkdir -p made/here && touch made/here/f")
    uid, caps = result.stdout.split()[0], result.stdout.split()[-1]
    assert int(uid) == bwrap_box.host_uid and int(uid) >= 1000
    assert int(caps, 16) == 0
    for path in (layout.alice / "myid", layout.alice / "made" / "here" / "f", layout.alice / "made"):
        assert path.lstat().st_uid == bwrap_box.host_uid, path
    # what the harness writes for the agent is the agent's to change, not root's
    bwrap_box.write_file("notes/from_host.txt", "x")
    assert (layout.alice / "notes" / "from_host.txt").stat().st_uid == bwrap_box.host_uid
    assert bwrap_box.exec("echo more >> notes/from_host.txt").exit_code == 0
    h.assert_usable(bwrap_box)


def test_as_root_the_command_holds_no_capability_in_any_set(bwrap_box):
    # bwrap keeps CAP_SETUID, CAP_SETGID, CAP_SETPCAP and CAP_DAC_READ_SEARCH for the uid drop and to enter the
    # 0700 workspace; none of them may reach the agent's command, and it may never gain one (no_new_privs).
    if os.geteuid() != 0:
        pytest.skip("only a root harness drops capabilities with setpriv")
    status = bwrap_box.exec(["grep", "-E", "^(Cap|NoNewPrivs)", "/proc/self/status"], cwd=".").stdout
    fields = dict(line.split(":\t") for line in status.splitlines())
    assert {k: int(v, 16) for k, v in fields.items() if k.startswith("Cap")} == {
        "CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapBnd": 0, "CapAmb": 0}
    assert fields["NoNewPrivs"] == "1"


def test_workspace_is_not_traversable_by_other_users(bwrap_box, layout):
    assert stat.S_IMODE(layout.alice.stat().st_mode) == 0o700


def test_without_a_cgroup_the_sandbox_refuses_to_start_unless_weak_limits_are_allowed(layout, h):
    with mock.patch("aarlab.sandbox._bwrap.Cgroup.create", return_value=None):
        sandbox = create("bwrap", h.make_spec(layout))
        with pytest.raises(SandboxError, match="allow_weak_limits"):
            sandbox.start()
        with create("bwrap", h.make_spec(layout, allow_weak_limits=True)) as weak:
            assert weak.limits_mode == "rlimit"
            h.assert_usable(weak)


def test_tmpfs_without_a_cgroup_stays_within_the_memory_limit(layout, h):
    # /tmp and /dev/shm are outside RLIMIT_AS: without a cgroup they get at most half the memory limit together
    with mock.patch("aarlab.sandbox._bwrap.Cgroup.create", return_value=None):
        spec = h.make_spec(layout, memory_mb=128, tmp_mb=1024, allow_weak_limits=True)
        with create("bwrap", spec) as sandbox:
            result = sandbox.exec("for d in /tmp /dev/shm; do for i in $(seq 1 30); do "
                                  "dd if=/dev/zero of=$d/fill$i bs=1M count=10 2>/dev/null || break; done; done; "
                                  # only the fill files: a checkout under /tmp is bound read-only inside /tmp
                                  "du -smc /tmp/fill* /dev/shm/fill* 2>/dev/null | tail -n 1 | cut -f1")
            assert int(result.stdout.split()[-1]) <= 64, result
            h.assert_usable(sandbox)


CPU_BURNER = "import time\nwhile time.process_time() < {seconds}: pass\nprint('DONE')"


@pytest.mark.parametrize("cgroup", [True, False], ids=["cgroup", "no-cgroup"])
def test_cpu_time_is_limited_per_command_not_per_process(layout, h, cgroup):
    patch = mock.patch("aarlab.sandbox._bwrap.Cgroup.create", return_value=None) if not cgroup else None
    with patch or mock.patch.dict({}):
        spec = h.make_spec(layout, cpu_seconds=1, allow_weak_limits=True)
        with create("bwrap", spec) as sandbox:
            if cgroup and sandbox.limits_mode != "cgroup":
                pytest.skip("no cgroup on this machine")
            burner = CPU_BURNER.format(seconds=0.8)
            result = sandbox.exec(f"for i in 1 2 3; do python -c \"{burner}\" & done; wait", timeout=30)
            assert result.stdout.count("DONE") < 3, result
            assert result.exit_code == 152
            assert "[killed: CPU time limit of 1 s reached]" in result.stderr
            h.assert_usable(sandbox)


def test_a_process_past_its_cpu_time_is_reported_as_cpu_not_memory(bwrap_box, layout, h):
    with create("bwrap", h.make_spec(layout, cpu_seconds=1)) as sandbox:
        result = sandbox.exec(f"python -c \"{CPU_BURNER.format(seconds=5)}\"", timeout=30)
        assert result.exit_code == 152, result
        assert "CPU time limit of 1 s" in result.stderr
        assert "memory" not in result.stderr
        h.assert_usable(sandbox)


def test_mountinfo_shows_no_state_directory_of_the_harness(bwrap_box):
    mountinfo = bwrap_box.exec("cat /proc/self/mountinfo").stdout
    assert "aarlab-bwrap-" not in mountinfo
    for line in mountinfo.splitlines():
        root, mount_point = line.split()[3:5]
        if mount_point.startswith("/etc"):
            assert root == mount_point, line  # /etc/ssl/certs and the like, from the host's same path


def _state_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("aarlab-bwrap-*")}


HOLDER = """
import sys, time
from pathlib import Path
from aarlab.sandbox import SandboxSpec, create
box = create("bwrap", SandboxSpec(workspace=Path(sys.argv[1]), name="holder", memory_mb=256, allow_weak_limits=True))
box.start()
print("cgroups", *(box._cgroup.dirs if box._cgroup else []), flush=True)
time.sleep(60)
"""


def test_a_killed_harness_leaves_no_state_behind(layout, h, tmp_path):
    before = _state_dirs()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "ws")], stdout=subprocess.PIPE, text=True)
    try:
        line = holder.stdout.readline().split()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert line[:1] == ["cgroups"]
    assert _state_dirs() <= before
    # the next start sweeps the dead harness's empty cgroups
    with create("bwrap", h.make_spec(layout)) as sandbox:
        h.assert_usable(sandbox)
    deadline = time.monotonic() + 5
    while any(Path(d).exists() for d in line[1:]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(Path(d).exists() for d in line[1:])


def test_stop_leaves_no_state_behind(layout, h):
    before = _state_dirs()
    sandbox = create("bwrap", h.make_spec(layout))
    sandbox.start()
    dirs = list(sandbox._cgroup.dirs) if sandbox._cgroup else []
    sandbox.exec("true")
    sandbox.stop()
    assert _state_dirs() <= before
    assert not any(d.exists() for d in dirs)
