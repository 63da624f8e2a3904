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
and rebuilt from the spec. Limits come from ``_limits`` (cgroup where possible, rlimits always); a timeout
kills the outer bwrap, and with it the PID namespace and every process in it.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from aarlab.sandbox._base import ExecResult, SandboxError, SandboxSpec, sandbox_backend
from aarlab.sandbox._files import HostWorkspaceSandbox, relative_path
from aarlab.sandbox._proc import run_capped, shell_argv
from aarlab.sandbox._limits import Cgroup, limit_prefix

log = logging.getLogger(__name__)

SANDBOX_UID = 1000
# /etc entries a program may need that hold nothing about the host's users, secrets or network. The files are
# copied into the sandbox's own /etc at start (one bind for all of them: each bind costs time on every
# command); the directories are bound read-only into it. /etc/ssl/private (the host's keys) is never shown.
ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "ca-certificates.conf",
    "localtime",
    "timezone",
    "mime.types",
    "nsswitch.conf",
    "host.conf",
    "bash.bashrc",
    "inputrc",
    "protocols",
    "services",
    "magic",
    "ssl/openssl.cnf",
)
ETC_DIRS = ("ld.so.conf.d", "alternatives", "ssl/certs", "ca-certificates", "fonts")


def _build_etc(etc: Path) -> list[str]:
    """Fill the sandbox's /etc (copies of harmless files, our own users and hosts); returns the bwrap binds of
    the harmless directories into it, whose mount points it creates."""
    for name in ETC_FILES:
        host = Path("/etc") / name
        target = etc / name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if host.is_symlink():
                os.symlink(os.readlink(host), target)
            elif host.is_file():
                shutil.copy2(host, target)
        except OSError as exc:  # unreadable or vanished: the sandbox goes without it
            log.debug("not copying %s into the sandbox's /etc: %s", host, exc)
    binds = []
    for name in ETC_DIRS:
        host = Path("/etc") / name
        if host.is_dir() and not host.is_symlink():
            (etc / name).mkdir(parents=True, exist_ok=True)
            binds += ["--ro-bind", str(host), f"/etc/{name}"]
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"agent:x:{SANDBOX_UID}:{SANDBOX_UID}:agent:/tmp:/bin/bash\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    (etc / "group").write_text(f"root:x:0:\nagent:x:{SANDBOX_UID}:\nnogroup:x:65534:\n")
    (etc / "hosts").write_text("127.0.0.1 localhost sandbox\n::1 localhost\n")
    (etc / "hostname").write_text("sandbox\n")
    (etc / "resolv.conf").write_text("")
    return binds


def sandbox_env(spec: SandboxSpec, extra: dict[str, str] | None, path: str, home: str) -> dict[str, str]:
    """The whole environment of a sandboxed command: fixed basics, offline flags, the spec's env, the call's."""
    env = {
        "PATH": path,
        "HOME": home,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "dumb",
        "USER": "agent",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "XDG_CACHE_HOME": f"{home}/.cache",
        "HF_HOME": f"{home}/.cache/huggingface",
        "TORCH_HOME": f"{home}/.cache/torch",
        "MPLCONFIGDIR": f"{home}/.cache/matplotlib",
        "PIP_CACHE_DIR": f"{home}/.cache/pip",
        "TRITON_CACHE_DIR": f"{home}/.cache/triton",
        "WANDB_MODE": "disabled",
    }
    if spec.gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in spec.gpus)
    else:
        env["CUDA_VISIBLE_DEVICES"] = ""
    env.update(spec.env)
    env.update(extra or {})
    return env


@functools.lru_cache(maxsize=1)
def python_paths() -> tuple[Path, ...]:
    """Host directories the sandbox needs for this Python and aarlab to import: interpreter, venv, source."""
    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        with_value = sysconfig.get_paths().get(key)
        if with_value:
            paths.add(Path(with_value).resolve())
    # aarlab installed editable: its source lives outside site-packages. Bind that package dir, and only it
    # (never the repository root around it, which may hold run dirs and private task files).
    spec = importlib.util.find_spec("aarlab")
    if spec and spec.origin:
        package_dir = Path(spec.origin).resolve().parent
        site = {Path(p).resolve() for p in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])}
        if not any(s in package_dir.parents for s in site):
            paths.add(package_dir)
    # keep only the outermost paths, outside /usr (bound anyway)
    usr = Path("/usr")
    result = []
    for path in sorted(paths, key=lambda p: len(p.parts)):
        if path == usr or usr in path.parents:
            continue
        if any(p == path or p in path.parents for p in result):
            continue
        if path.exists():
            result.append(path)
    return tuple(result)


def host_hub_cache() -> Path:
    """The Hugging Face hub cache of this host (where downloaded model weights are)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface" / "hub"


def model_cache_paths() -> list[Path]:
    """The model repositories (``models--*``) of the host's hub cache; never its datasets, which may hold the
    ground truth of a task's data, nor the token beside the cache."""
    hub = host_hub_cache()
    try:
        return sorted(p for p in hub.iterdir() if p.name.startswith("models--") and p.is_dir())
    except OSError:
        return []


def gpu_devices(gpus: list[int]) -> list[str]:
    """The /dev/nvidia* nodes a sandbox with these GPUs needs (the control nodes plus one per GPU)."""
    devices = [f"/dev/nvidia{i}" for i in gpus]
    devices += ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset"]
    caps = Path("/dev/nvidia-caps")
    if caps.exists():
        devices.append(str(caps))
    return [d for d in devices if os.path.exists(d)]


def _options_fd(options: list[str]) -> int:
    """A sealed-in-memory file holding bwrap options, NUL-separated, for ``bwrap --args FD``."""
    fd = os.memfd_create("aarlab-bwrap-args", 0)  # not CLOEXEC: bwrap inherits it via pass_fds
    payload = b"".join(option.encode() + b"\0" for option in options)
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


@sandbox_backend("bwrap")
class BwrapSandbox(HostWorkspaceSandbox):
    """Commands in bubblewrap: workspace rw, system and Python ro, no network, limits, private /tmp."""

    isolates = True

    def __init__(self, spec: SandboxSpec):
        super().__init__(spec)
        self._state_dir: Path | None = None
        self._etc_binds: list[str] = []
        self._cgroup: Cgroup | None = None
        self._bwrap = shutil.which("bwrap")

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
        probe = Cgroup.create("check", 64, 16)
        if probe is not None:
            probe.remove()
            limits = "memory and process limits by cgroup"
        elif os.geteuid() == 0:
            limits = "no cgroup: memory by RLIMIT_AS, and NO process limit (root ignores RLIMIT_NPROC)"
        else:
            limits = "no cgroup: memory by RLIMIT_AS, processes by RLIMIT_NPROC"
        return True, f"bubblewrap works (own user, PID, network and mount namespaces; {limits})"

    # ------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if not self._bwrap:
            raise SandboxError("bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)")
        self.spec.workspace.mkdir(parents=True, exist_ok=True)
        if self._state_dir is None:
            self._state_dir = Path(tempfile.mkdtemp(prefix="aarlab-bwrap-"))
            etc = self._state_dir / "etc"
            etc.mkdir()
            self._etc_binds = _build_etc(etc)
        if self._cgroup is None:
            self._cgroup = Cgroup.create(self.spec.name or "bwrap", self.spec.memory_mb, self.spec.max_processes)

    def stop(self) -> None:
        if self._cgroup is not None:
            self._cgroup.remove()
            self._cgroup = None
        if self._state_dir is not None:
            shutil.rmtree(self._state_dir, ignore_errors=True)
            self._state_dir = None
        self.__dict__.pop("_system_args", None)

    @functools.cached_property
    def _system_args(self) -> list[str]:
        """The binds of system directories, /etc basics and the Python stack: the same for every command."""
        args = ["--ro-bind", "/usr", "/usr"]
        for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            host = Path("/") / top
            if host.is_symlink():
                args += ["--symlink", os.readlink(host), str(host)]
            elif host.is_dir():
                args += ["--ro-bind", str(host), str(host)]
        args += ["--ro-bind", str(self._state_dir / "etc"), "/etc", *self._etc_binds]
        return args

    @property
    def limits_mode(self) -> str:
        """How memory and process limits are enforced here: ``cgroup`` or ``rlimit``."""
        return "cgroup" if self._cgroup is not None else "rlimit"

    # ------------------------------------------------------------- the command line

    def bwrap_argv(self, cwd: str | None = None, env: dict[str, str] | None = None) -> list[str]:
        """The bwrap arguments up to (not including) the command; public so that tests and docs can show it."""
        if self._state_dir is None:
            raise SandboxError("sandbox not started")
        spec = self.spec
        target = str(spec.workspace_target)
        args = [self._bwrap or "bwrap", *self._system_args]
        # private filesystems
        args += ["--proc", "/proc", "--dev", "/dev"]
        args += ["--size", str(spec.tmp_mb * 1024 * 1024), "--tmpfs", "/tmp"]
        args += ["--size", str(min(spec.tmp_mb, 512) * 1024 * 1024), "--tmpfs", "/dev/shm"]
        # Python, the venv and aarlab at their host paths, after the private /tmp: a checkout (and its venv)
        # under /tmp would otherwise be hidden by it.
        for path in python_paths():
            args += ["--ro-bind", str(path), str(path)]
        for device in gpu_devices(spec.gpus) if spec.gpus else []:
            args += ["--dev-bind", device, device]
        # model weights already downloaded on this host, read-only at their paths (HF_HUB_CACHE points there)
        models = model_cache_paths() if spec.share_model_cache else []
        for path in models:
            args += ["--ro-bind", str(path), str(path)]
        # the workspace and the spec's mounts (after the system binds and /tmp, so they win on overlap)
        for path in spec.readonly_paths:
            if not path.exists():
                raise SandboxError(f"read-only path does not exist: {path}")
            args += ["--ro-bind", str(path.resolve()), str(path)]
        args += ["--bind", str(spec.workspace.resolve()), target]
        for mount in spec.mounts:
            if not mount.host.exists():
                raise SandboxError(f"mount source does not exist: {mount.host}")
            args += ["--bind" if mount.writable else "--ro-bind", str(mount.host.resolve()), str(mount.target)]
        # the root itself is a tmpfs made by bwrap: read-only, so that writes outside /workspace and /tmp fail
        # instead of filling memory outside any limit (it is not recursive: the binds keep their modes)
        args += ["--remount-ro", "/"]
        # namespaces, privileges, process hygiene
        args += ["--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
        if spec.network:
            args += ["--share-net"]
        args += ["--disable-userns", "--cap-drop", "ALL", "--die-with-parent", "--new-session"]
        args += ["--hostname", "sandbox"]
        workdir = target if cwd is None else str(Path(target) / relative_path(cwd))
        args += ["--chdir", workdir]
        args += ["--clearenv"]
        venv_bin = str(Path(sys.prefix) / "bin")
        path = f"{venv_bin}:/usr/local/bin:/usr/bin:/bin"
        extra = {"HF_HUB_CACHE": str(host_hub_cache())} if models else {}
        for key, value in sandbox_env(spec, {**extra, **(env or {})}, path=path, home="/tmp").items():
            args += ["--setenv", key, value]
        args += ["--"]
        return args

    # ------------------------------------------------------------- the protocol

    def exec(self, cmd, timeout=None, env=None, cwd=None) -> ExecResult:
        if self._state_dir is None:
            raise SandboxError("sandbox not started: call start() or use it as a context manager")
        if cwd is not None:
            host_cwd = self.files.host_path(cwd)
            if not host_cwd.is_dir():
                return ExecResult(exit_code=1, stderr=f"no such directory in the workspace: {cwd}")
        spec = self.spec
        cgroup = self._cgroup
        prefix = limit_prefix(
            cpu_seconds=spec.cpu_seconds,
            max_file_mb=spec.max_file_mb,
            max_processes=spec.max_processes,
            memory_mb=spec.memory_mb,
            cgroup=cgroup,
            limit_address_space=not spec.gpus,
            # the command runs as its own user in its own user namespace, so RLIMIT_NPROC counts the
            # processes of this command alone and holds even when the harness runs as root
            limit_processes=True,
        )
        # The options go through a memfd (--args) rather than argv: no ARG_MAX limit, and /proc/1/cmdline
        # inside the sandbox does not show host paths.
        options = self.bwrap_argv(cwd=cwd, env=env)[1:-1]
        args_fd = _options_fd(options)
        oom_before = cgroup.oom_kills() if cgroup else 0
        try:
            # Killing the outer bwrap (its process group) on timeout is enough: its PID-1 child dies with it
            # (--die-with-parent), and the kernel then kills every process left in the PID namespace; the
            # cgroup, where there is one, is emptied as well.
            result = run_capped(
                prefix + [self._bwrap or "bwrap", "--args", str(args_fd), "--", *shell_argv(cmd)],
                cwd=None,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},  # bwrap itself needs nothing else
                timeout=spec.default_timeout_s if timeout is None else timeout,
                max_output_bytes=spec.max_output_bytes,
                on_timeout=(lambda pid: cgroup.kill_all()) if cgroup else None,
                after_exit=(lambda pid: cgroup.kill_all()) if cgroup else None,
                pass_fds=(args_fd,),
            )
        finally:
            os.close(args_fd)
        if result.exit_code == 137 and not result.timed_out:
            if cgroup is not None and cgroup.oom_kills() > oom_before:
                result.stderr += f"\n[killed: out of memory (the sandbox's limit is {spec.memory_mb} MB)]\n"
            else:
                result.stderr += (
                    f"\n[killed (SIGKILL): possibly out of memory (the sandbox's limit is {spec.memory_mb} MB)]\n"
                )
        elif result.exit_code == 153:  # SIGXFSZ
            result.stderr += f"\n[killed: a file grew past the sandbox's limit of {spec.max_file_mb} MB]\n"
        elif result.exit_code == 152:  # SIGXCPU
            result.stderr += f"\n[killed: CPU time limit of {spec.cpu_seconds} s reached]\n"
        return result
