"""The ``bwrap`` backend: each command runs in a fresh bubblewrap sandbox over the agent's workspace.

What a command sees (everything else of the host is absent, not merely unreadable):

- ``/workspace`` — the agent's workspace, read-write, the working directory;
- the spec's mounts (the task's public files at ``/task``), read-only unless marked writable;
- ``/usr`` (and the ``/bin``, ``/lib`` … links or dirs), a handful of ``/etc`` files, the Python interpreter's
  install, the virtual environment (with model weights installed as packages) and — for an editable install
  of aarlab — aarlab's own source directory, all read-only at their host paths so that the venv works as is;
- the model repositories of the host's Hugging Face hub cache (``models--*`` only: not its datasets, which
  may hold a task's ground truth), read-only, with ``HF_HUB_CACHE`` pointing there; ``readonly_paths``;
- a private ``/tmp`` (tmpfs of ``tmp_mb``), ``/proc`` of its own PID namespace, a minimal ``/dev``.

No network (own network namespace), own PID/IPC/UTS/user namespaces, no capabilities, no nested user
namespaces, a new session (no terminal injection), and it dies with its parent. The environment is cleared
and rebuilt from the spec. Limits come from ``_limits`` (a cgroup, or a refusal to start without one unless
weak limits are allowed; rlimits always); a timeout kills the outer bwrap, and with it the PID namespace and
every process in it.

Not root, a user namespace maps the sandbox's uid to the harness's own. As root that mapping would make the
agent host uid 0 on every file it creates (a setuid-root binary left in the workspace, runnable by any local
user). So a root harness runs no user namespace at all: bwrap (root) builds the mounts and namespaces, then
``setpriv`` drops the command to an unprivileged host uid of its own (``sandbox_host_uid``: one per workspace,
so RLIMIT_NPROC counts this sandbox's processes only), with no capabilities and ``no_new_privs``; the
workspace (and writable mounts) belong to that uid. The workspace is also kept at mode 0700 and, as root,
set-id bits are cleared from it after each background job and when the sandbox stops (defence in depth; not
after every command, where the walk would cost a command time in proportion to the workspace's size).
``/etc`` is copied in from memory: no state directory on disk that a killed harness could leave behind, and
none of its paths in the sandbox's ``/proc/self/mountinfo``.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from aarlab.sandbox._base import ExecResult, SandboxError, SandboxSpec, sandbox_backend
from aarlab.sandbox._bwrap_parts import (
    SANDBOX_UID,
    _memfd,
    _options_fd,
    etc_contents,
    give_tree,
    gpu_devices,
    host_hub_cache,
    model_cache_paths,
    python_paths,
    sandbox_env,
    sandbox_host_uid,
)
from aarlab.sandbox._files import HostWorkspaceSandbox, relative_path
from aarlab.sandbox._jobs import LaunchedJob, host_job_manager
from aarlab.sandbox._limits import Cgroup, spec_limit_prefix, strip_setid_bits
from aarlab.sandbox._proc import run_capped, shell_argv

log = logging.getLogger(__name__)

@sandbox_backend("bwrap")
class BwrapSandbox(HostWorkspaceSandbox):
    """Commands in bubblewrap: workspace rw, system and Python ro, no network, limits, private /tmp."""

    isolates = True

    def __init__(self, spec: SandboxSpec):
        super().__init__(spec)
        self._started = False
        self._etc_files: dict[str, int] = {}  # name -> memfd holding its content
        self._etc_links: dict[str, str] = {}
        self._etc_dirs: list[str] = []
        self._cgroup: Cgroup | None = None
        self._exec_prefix: list[str] = []
        # (what the fixed options were built from, the options): see _fixed_options
        self._fixed: tuple[tuple, tuple[list[str], list[str], list[str], bool]] | None = None
        self._bwrap = shutil.which("bwrap")
        self._setpriv = shutil.which("setpriv")
        self.host_uid = sandbox_host_uid(spec.workspace)

    @classmethod
    def check(cls) -> tuple[bool, str]:
        if not sys.platform.startswith("linux"):
            return False, "bwrap needs Linux (use the process or docker backend elsewhere)"
        bwrap = shutil.which("bwrap")
        if not bwrap:
            return False, "bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
        try:
            proc = subprocess.run(
                [bwrap, "--ro-bind", "/", "/", "--unshare-all", "--unshare-user", "--cap-drop", "ALL", "true"],
                capture_output=True,
                timeout=20,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"bwrap could not run: {exc}"
        if proc.returncode != 0:
            reason = proc.stderr.decode(errors="replace").strip().splitlines()
            return False, (
                f"bwrap cannot create namespaces here ({reason[-1] if reason else proc.returncode}); "
                "unprivileged user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone=1)"
            )
        return True, f"bubblewrap works (own user, PID, network and mount namespaces); {enforcement()}"

    # ------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self._started:
            return
        if not self._bwrap:
            raise SandboxError("bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)")
        spec = self.spec
        spec.workspace.mkdir(parents=True, exist_ok=True)
        try:
            self._cgroup = Cgroup.create(spec.name or "bwrap", spec.memory_mb, spec.max_processes)
            if self._cgroup is None and not spec.allow_weak_limits:
                raise SandboxError(weak_limits_refusal())
            if self.host_uid is not None:
                if not self._setpriv:
                    raise SandboxError("running as root, bwrap sandboxes drop to an unprivileged uid with setpriv, "
                                       "which is missing (Debian: apt-get install util-linux)")
                # the sandbox's uid owns what it may write: its workspace and writable mounts
                give_tree(spec.workspace, self.host_uid)
                for mount in spec.mounts:
                    if mount.writable and mount.host.is_dir():
                        give_tree(mount.host, self.host_uid)
            # nobody but the harness's user (and the sandbox's uid) may enter the workspace, where an agent's
            # files live
            os.chmod(spec.workspace, 0o700)
            files, self._etc_links, self._etc_dirs = etc_contents(self.host_uid or SANDBOX_UID)
            self._etc_files = {name: _memfd(name, payload) for name, payload in files.items()}
            self._exec_prefix = self._prefix(self._cgroup)
            self._fixed = None
            self._started = True
            self.jobs = host_job_manager(self)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.jobs is not None:  # before the /etc descriptors and the cgroup go: nothing outlives the sandbox
            self.jobs.close()
            self.jobs = None
        if self._cgroup is not None:
            self._cgroup.remove()
            self._cgroup = None
        for fd in self._etc_files.values():
            os.close(fd)
        self._etc_files = {}
        if self._started and os.geteuid() == 0 and self.spec.workspace.is_dir():
            strip_setid_bits(self.spec.workspace)  # defence in depth: nothing set-id outlives the sandbox
        self._started = False

    @property
    def limits_mode(self) -> str:
        """How memory and process limits are enforced here: ``cgroup`` or ``rlimit`` (weak, opted into)."""
        return "cgroup" if self._cgroup is not None else "rlimit"

    # ------------------------------------------------------------- the command line

    def tmpfs_mb(self) -> tuple[int, int]:
        """Sizes of the private ``/tmp`` and ``/dev/shm`` in MB.

        With a cgroup their pages are charged to its memory limit. Without one nothing counts them, so
        together they get at most half the memory limit.
        """
        spec = self.spec
        if self._cgroup is not None:
            return spec.tmp_mb, min(spec.tmp_mb, 512)
        budget = max(min(spec.tmp_mb, spec.memory_mb // 2), 2)
        return budget - budget // 4, budget // 4

    def bwrap_argv(self, cwd: str | None = None, env: dict[str, str] | None = None,
                   etc_fds: dict[str, int] | None = None, gpus: list[int] | None = None) -> list[str]:
        """The bwrap arguments up to (not including) the command; public so that tests and docs can show it.

        ``etc_fds``: readable descriptors of the /etc files (default: the memfds, for showing); ``gpus``: the
        GPU device nodes to show (default: all of the sandbox's; a job gets only its own).
        """
        if not self._started:
            raise SandboxError("sandbox not started")
        spec = self.spec
        head, tail, isolation, models_shown = self._fixed_options()
        args = [self._bwrap or "bwrap", *head]
        fds = etc_fds if etc_fds is not None else self._etc_files
        for name in self._etc_files:
            args += ["--perms", "0644", "--file", str(fds[name]), f"/etc/{name}"]
        args += tail
        shown_gpus = spec.gpus if gpus is None else gpus
        for device in gpu_devices(shown_gpus) if shown_gpus else []:
            args += ["--dev-bind", device, device]
        args += isolation
        # bwrap enters the directory itself. As root it keeps CAP_DAC_READ_SEARCH for that (see _isolation), so
        # it only enters the workspace's mount point, which the agent cannot swap for a link; a subdirectory is
        # entered after the uid drop (``uid_drop_argv``), with the agent's own rights.
        args += ["--chdir", self.workdir(cwd if self.host_uid is None else None), "--clearenv"]
        venv_bin = str(Path(sys.prefix) / "bin")
        path = f"{venv_bin}:/usr/local/bin:/usr/bin:/bin"
        extra = {"HF_HUB_CACHE": str(host_hub_cache())} if models_shown else {}
        for key, value in sandbox_env(spec, {**extra, **(env or {})}, path=path, home="/tmp").items():
            args += ["--setenv", key, value]
        args += ["--"]
        return args

    def _fixed_options(self) -> tuple[list[str], list[str], list[str], bool]:
        """The options that are the same for every command: ``(before /etc's files, after them, the isolation
        flags, whether model weights are shown)``.

        Built once and rebuilt only when what they depend on changes — where the spec's paths resolve to, and the
        host's model cache (a model added or removed changes its directory) — instead of on every command.
        """
        spec = self.spec
        readonly = []
        for path in spec.readonly_paths:
            if not path.exists():
                raise SandboxError(f"read-only path does not exist: {path}")
            readonly.append((path, path.resolve()))
        mounts = []
        for mount in spec.mounts:
            if not mount.host.exists():
                raise SandboxError(f"mount source does not exist: {mount.host}")
            mounts.append((mount, mount.host.resolve()))
        hub_state, settled = None, True
        if spec.share_model_cache:
            hub = host_hub_cache()
            try:
                info = os.stat(hub)
            except OSError:
                hub_state = (hub, None, None)
            else:
                # a directory's links count follows its subdirectories; its mtime moves only once per clock
                # tick, so a cache changed in the last seconds is scanned again on every command
                hub_state = (hub, info.st_mtime_ns, info.st_nlink)
                settled = time.time_ns() - info.st_mtime_ns > 2_000_000_000
        key = (tuple(resolved for _, resolved in readonly), tuple(resolved for _, resolved in mounts), hub_state)
        if self._fixed is not None and self._fixed[0] == key and settled:
            return self._fixed[1]

        head = ["--ro-bind", "/usr", "/usr"]
        for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            host = Path("/") / top
            if host.is_symlink():
                head += ["--symlink", os.readlink(host), str(host)]
            elif host.is_dir():
                head += ["--ro-bind", str(host), str(host)]
        # /etc and /etc/ssl readable by the sandbox's uid: a bind or link would make them 0700 (as root)
        parents = {str(Path("/etc", name).parent) for name in [*self._etc_files, *self._etc_links, *self._etc_dirs]}
        for parent in sorted(parents):
            head += ["--perms", "0755", "--dir", parent]
        tail = []
        for name, link in self._etc_links.items():
            tail += ["--symlink", link, f"/etc/{name}"]
        for name in self._etc_dirs:
            tail += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        # private filesystems
        tmp_mb, shm_mb = self.tmpfs_mb()
        tail += ["--proc", "/proc", "--dev", "/dev"]
        # world-writable and sticky, as on a host: as root the tmpfs belongs to root, not to the sandbox's uid
        tail += ["--perms", "1777", "--size", str(tmp_mb * 1024 * 1024), "--tmpfs", "/tmp"]
        tail += ["--perms", "1777", "--size", str(shm_mb * 1024 * 1024), "--tmpfs", "/dev/shm"]
        # Python, the venv and aarlab at their host paths, after the private /tmp: a checkout (and its venv)
        # under /tmp would otherwise be hidden by it.
        made_dirs: set[Path] = set()
        for path in python_paths():
            tail += self._parent_dirs(path, made_dirs)
            tail += ["--ro-bind", str(path), str(path)]
        # model weights already downloaded on this host, read-only at their paths (HF_HUB_CACHE points there)
        models = model_cache_paths() if spec.share_model_cache else []
        for path in models:
            tail += self._parent_dirs(path, made_dirs)
            tail += ["--ro-bind", str(path), str(path)]
        # the workspace and the spec's mounts (after the system binds and /tmp, so they win on overlap)
        for path, resolved in readonly:
            tail += self._parent_dirs(path, made_dirs)
            tail += ["--ro-bind", str(resolved), str(path)]
        tail += ["--bind", str(spec.workspace.resolve()), str(spec.workspace_target)]
        for mount, resolved in mounts:
            tail += self._parent_dirs(mount.target, made_dirs)
            tail += ["--bind" if mount.writable else "--ro-bind", str(resolved), str(mount.target)]
        self._fixed = (key, (head, tail, self._isolation(), bool(models)))
        return self._fixed[1]

    def _isolation(self) -> list[str]:
        """A read-only root, the namespaces, the capabilities, process hygiene."""
        spec = self.spec
        # the root itself is a tmpfs made by bwrap: read-only, so that writes outside /workspace and /tmp fail
        # instead of filling memory outside any limit (it is not recursive: the binds keep their modes)
        args = ["--remount-ro", "/"]
        if self.host_uid is None:
            args += ["--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
            if spec.network:
                args += ["--share-net"]
            args += ["--disable-userns", "--cap-drop", "ALL"]
        else:
            # As root: no user namespace (it would map the agent to host uid 0); the command's own prefix
            # (``uid_drop_argv``) drops to the sandbox's uid with only the capabilities needed for that.
            # CAP_DAC_READ_SEARCH lets bwrap enter the 0700 workspace of that uid itself (``--chdir``), which
            # saves an ``env --chdir`` exec per command; setpriv drops it with the rest before the command.
            args += ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
            if not spec.network:
                args += ["--unshare-net"]
            args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
                     "--cap-add", "CAP_SETPCAP", "--cap-add", "CAP_DAC_READ_SEARCH"]
        args += ["--die-with-parent", "--new-session", "--hostname", "sandbox"]
        return args

    def workdir(self, cwd: str | None) -> str:
        """The command's working directory inside the sandbox."""
        target = str(self.spec.workspace_target)
        return target if cwd is None else str(Path(target) / relative_path(cwd))

    def uid_drop_argv(self, cwd: str | None = None) -> list[str]:
        """As root: what runs first inside the sandbox, to become the sandbox's unprivileged host uid with no
        capabilities (none permitted, inheritable or ambient, bounding set emptied, ``no_new_privs``); else
        nothing. The command runs in the workspace, which bwrap entered; a subdirectory ``cwd`` is entered
        after the drop (``env --chdir``, one more exec, only for commands given one)."""
        if self.host_uid is None:
            return []
        uid = str(self.host_uid)
        drop = [self._setpriv or "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
        workdir = self.workdir(cwd)
        if workdir == str(self.spec.workspace_target):
            return drop
        return [*drop, "/usr/bin/env", f"--chdir={workdir}", "--", f"PWD={workdir}"]

    def _parent_dirs(self, path: Path, made: set[Path]) -> list[str]:
        """As root, ``--dir`` (0755) for each ancestor of a bind target: bwrap would copy the host's modes, and a
        0700 ``/root`` above a Python install under it would lock the sandbox's unprivileged uid out."""
        args: list[str] = []
        if self.host_uid is None:
            return args
        for parent in reversed(path.parents):
            if parent in made or parent in (Path("/"), Path("/tmp")) or parent.parts[1] in ("dev", "proc", "usr"):
                continue
            made.add(parent)
            args += ["--perms", "0755", "--dir", str(parent)]
        return args

    def _etc_fds(self, fds: list[int]) -> dict[str, int]:
        """A fresh readable descriptor of each /etc memfd (added to ``fds``, for the caller to pass and close):
        bwrap reads each to its end, and a descriptor shared between commands would keep its offset."""
        etc_fds = {}
        for name, memfd in self._etc_files.items():
            etc_fds[name] = os.open(f"/proc/self/fd/{memfd}", os.O_RDONLY | os.O_CLOEXEC)
            fds.append(etc_fds[name])
        return etc_fds

    # ------------------------------------------------------------- the protocol

    def _prefix(self, cgroup: Cgroup | None) -> list[str]:
        # RLIMIT_NPROC counts all processes of the host uid the sandbox runs as (as root: the sandbox's own uid,
        # which the kernel does limit): the cgroup is the limit; without one it is the best there is
        return spec_limit_prefix(self.spec, cgroup, limit_processes=cgroup is None)

    def launch_job(self, argv: list[str], env: dict[str, str], gpus: list[int], label: str) -> LaunchedJob:
        """Start ``argv`` as a background job: the command line of ``exec`` (same binds, namespaces, limits,
        environment), a cgroup of its own (its CPU time is its own, and killing it leaves ``exec``'s alone),
        only its GPUs' device nodes. Its parent is the calling thread, so ``--die-with-parent`` ends it with
        the harness."""
        if not self._started:
            raise SandboxError("sandbox not started: call start() or use it as a context manager")
        spec = self.spec
        cgroup = Cgroup.create(f"{spec.name or 'bwrap'}_job_{label}", spec.memory_mb, spec.max_processes)
        if cgroup is None and not spec.allow_weak_limits:
            raise SandboxError(weak_limits_refusal())
        fds: list[int] = []
        try:
            args_fd = _options_fd(self.bwrap_argv(env=env, etc_fds=self._etc_fds(fds), gpus=gpus)[1:-1])
            fds.append(args_fd)
            process = subprocess.Popen(
                die_with_harness() + self._prefix(cgroup)
                + [self._bwrap or "bwrap", "--args", str(args_fd), "--", *self.uid_drop_argv(), *argv],
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                start_new_session=True, pass_fds=tuple(fds),
            )
        except BaseException:
            if cgroup is not None:
                cgroup.remove()
            raise
        finally:
            for fd in fds:  # the child holds its own copies
                os.close(fd)
        workspace = spec.workspace

        def cleanup() -> None:
            if os.geteuid() == 0:  # as after every command: set-id bits would be root's on the host
                strip_setid_bits(workspace)

        return LaunchedJob(process, cgroup, cleanup)

    def exec(self, cmd, timeout=None, env=None, cwd=None) -> ExecResult:
        if not self._started:
            raise SandboxError("sandbox not started: call start() or use it as a context manager")
        if cwd is not None:
            host_cwd = self.files.host_path(cwd)
            if not host_cwd.is_dir():
                return ExecResult(exit_code=1, stderr=f"no such directory in the workspace: {cwd}")
        spec = self.spec
        cgroup = self._cgroup
        prefix = self._exec_prefix
        fds: list[int] = []
        try:
            # The options go through a memfd (--args) rather than argv: no ARG_MAX limit, and /proc/1/cmdline
            # inside the sandbox does not show host paths.
            args_fd = _options_fd(self.bwrap_argv(cwd=cwd, env=env, etc_fds=self._etc_fds(fds))[1:-1])
            fds.append(args_fd)
            oom_before = cgroup.oom_kills() if cgroup else 0
            cpu_base = cgroup.cpu_seconds() if cgroup else None
            # Killing the outer bwrap (its process group) on timeout is enough: its PID-1 child dies with it
            # (--die-with-parent), and the kernel then kills every process left in the PID namespace; the
            # cgroup, where there is one, is emptied as well.
            result = run_capped(
                prefix + [self._bwrap or "bwrap", "--args", str(args_fd), "--", *self.uid_drop_argv(cwd),
                          *shell_argv(cmd)],
                cwd=None,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},  # bwrap itself needs nothing else
                timeout=spec.default_timeout_s if timeout is None else timeout,
                max_output_bytes=spec.max_output_bytes,
                on_timeout=(lambda pid: cgroup.kill_all()) if cgroup else None,
                # the sandbox's PID 1, exiting by now, may finish unmounting its filesystems on its own
                after_exit=(lambda pid: cgroup.kill_all(wait_for_exiting_init=False)) if cgroup else None,
                pass_fds=tuple(fds),
                cpu_limit_s=spec.cpu_seconds,
                cpu_used=(lambda pid: cgroup.cpu_seconds() - cpu_base) if cpu_base is not None else None,
            )
        finally:
            for fd in fds:
                os.close(fd)
        if result.exit_code == 137 and not result.timed_out:
            if cgroup is not None and cgroup.oom_kills() > oom_before:
                result.stderr += f"\n[killed: out of memory (the sandbox's limit is {spec.memory_mb} MB)]\n"
            else:
                result.stderr += (
                    f"\n[killed (SIGKILL): possibly out of memory (the sandbox's limit is {spec.memory_mb} MB)]\n"
                )
        elif result.exit_code == 153:  # SIGXFSZ
            result.stderr += f"\n[killed: a file grew past the sandbox's limit of {spec.max_file_mb} MB]\n"
        return result


def die_with_harness() -> list[str]:
    """argv prefix that makes a background job's outer process die (SIGKILL) with the harness thread that
    started it: bwrap's ``--die-with-parent`` guards the processes inside, but the outer bwrap of a job must
    not outlive a harness killed with ``kill -9`` either. util-linux ``setpriv --pdeathsig`` sets it and
    ``exec``s, so the limit prefix and bwrap keep it (neither is set-id)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


def weak_limits_refusal() -> str:
    """Why a sandbox without a cgroup does not start, and how to start it anyway."""
    who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"
    return (
        f"no usable cgroup here (this process, {who}, may not create a child cgroup with the pids and memory "
        "controllers: cgroup v1 needs root, cgroup v2 a delegated subtree, e.g. systemd-run --user --scope -p "
        "Delegate=yes). Without one a command's memory is limited only per process (RLIMIT_AS, address space, "
        "not RAM), and its process count is RLIMIT_NPROC: as root, per sandbox (each runs as its own host uid); "
        "otherwise shared with every process of the harness's user. "
        "Set sandbox.allow_weak_limits: true (SandboxSpec(allow_weak_limits=True)) to run with these weaker "
        "limits; see docs/security.md"
    )


def enforcement() -> str:
    """What this machine enforces for a bwrap sandbox: uid mapping, cgroup, limits (``aarlab sandbox check``)."""
    if os.geteuid() == 0:
        uid = ("as root: each sandbox runs as its own unprivileged host uid (no user namespace, no capabilities, "
               "no_new_privs) that owns its workspace; workspaces are 0700 and set-id bits are cleared after every "
               "command")
    else:
        uid = f"commands run as your host uid {os.geteuid()}"
    probe = Cgroup.create("check", 64, 16)
    if probe is not None:
        cpu = "cgroup CPU accounting" if probe.cpu_seconds() is not None else "the process tree's CPU time"
        probe.remove()
        limits = f"cgroup: memory (with /tmp) and processes per sandbox, CPU time per command by {cpu}"
    else:
        processes = "RLIMIT_NPROC of the sandbox's own uid" if os.geteuid() == 0 else (
            "RLIMIT_NPROC shared with all your processes")
        limits = (f"NO usable cgroup: sandboxes refuse to start unless sandbox.allow_weak_limits is set, then "
                  f"memory per process (RLIMIT_AS), processes by {processes}, CPU per command by the tree's CPU time")
    return f"{uid}; {limits}; file size by RLIMIT_FSIZE"
