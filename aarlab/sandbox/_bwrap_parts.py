"""What a bwrap sandbox is made of, apart from the command line itself: its ``/etc`` (copied in from memory),
the host paths it binds for Python and model weights, its environment, its GPU devices, and — for a root
harness — the unprivileged host uid it runs as. ``_bwrap`` assembles these into the command line.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import sys
import sysconfig
import zlib
from pathlib import Path

from aarlab.sandbox._base import SandboxSpec

log = logging.getLogger(__name__)

SANDBOX_UID = 1000
# A root harness runs each sandbox as a host uid in this range (no account needed: nothing on the host
# belongs to these uids but the workspaces they are given).
HOST_UID_BASE = 200_000
HOST_UID_SPAN = 100_000


def sandbox_host_uid(workspace: Path) -> int | None:
    """The unprivileged host uid (= gid) a root harness runs this workspace's commands as; None when not root.

    Derived from the workspace's path, so it is the same across restarts and resumes (the files it made stay
    its own) and differs between agents, so that RLIMIT_NPROC counts one sandbox's processes.
    """
    if os.geteuid() != 0:
        return None
    return HOST_UID_BASE + zlib.crc32(str(Path(workspace).resolve()).encode()) % HOST_UID_SPAN


def give_tree(root: Path, uid: int) -> None:
    """``lchown`` ``root`` and everything under it to ``uid``, never following a link (by descriptor)."""
    os.chown(root, uid, uid, follow_symlinks=False)
    for _dirpath, dirnames, filenames, dir_fd in os.fwalk(root, follow_symlinks=False):
        for name in dirnames + filenames:
            try:
                os.chown(name, uid, uid, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:  # removed meanwhile
                continue
# /etc entries a program may need that hold nothing about the host's users, secrets or network. The files are
# copied into the sandbox's own /etc on each command (from memory: a copy costs less than a bind); the
# directories are bound read-only into it. /etc/ssl/private (the host's keys) is never shown. Each file costs
# bwrap about 50 us on every command, each bind about 100 us and an unmount: only what programs read at run
# time, not what only interactive shells (bash.bashrc, inputrc), administration tools (ld.so.conf[.d],
# ca-certificates[.conf]) or optional local overrides (host.conf, magic, timezone) read.
ETC_FILES = (
    "ld.so.cache",
    "localtime",
    "mime.types",
    "protocols",
    "services",
    "ssl/openssl.cnf",
)
ETC_DIRS = ("alternatives", "ssl/certs", "fonts")
# Local files only, whatever the host uses: the sandbox has no network, no systemd and no directory service to
# ask, and a host's "systemd" or "sss" entry would make every lookup (setpriv's, bash's) load those modules first.
NSSWITCH = (
    "passwd: files\ngroup: files\nshadow: files\ngshadow: files\nhosts: files dns\nnetworks: files\n"
    "protocols: files\nservices: files\nethers: files\nrpc: files\nnetgroup: files\n"
)


def etc_contents(uid: int = SANDBOX_UID) -> tuple[dict[str, bytes], dict[str, str], list[str]]:
    """The sandbox's /etc: ``(files by name, symlinks by name, host directories to bind read-only)``.

    ``uid`` is the agent's uid as the sandbox shows it (named ``agent`` in its passwd).
    """
    files: dict[str, bytes] = {}
    links: dict[str, str] = {}
    for name in ETC_FILES:
        host = Path("/etc") / name
        try:
            if host.is_symlink():
                links[name] = os.readlink(host)
            elif host.is_file():
                files[name] = host.read_bytes()
        except OSError as exc:  # unreadable or vanished: the sandbox goes without it
            log.debug("not copying %s into the sandbox's /etc: %s", host, exc)
    dirs = [name for name in ETC_DIRS if (Path("/etc") / name).is_dir() and not (Path("/etc") / name).is_symlink()]
    files["passwd"] = (
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"agent:x:{uid}:{uid}:agent:/tmp:/bin/bash\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    ).encode()
    files["group"] = f"root:x:0:\nagent:x:{uid}:\nnogroup:x:65534:\n".encode()
    files["nsswitch.conf"] = NSSWITCH.encode()
    files["hosts"] = b"127.0.0.1 localhost sandbox\n::1 localhost\n"
    files["hostname"] = b"sandbox\n"
    files["resolv.conf"] = b""
    return files, links, dirs


def _memfd(name: str, payload: bytes) -> int:
    fd = os.memfd_create(f"aarlab-etc-{name.replace('/', '-')}", os.MFD_CLOEXEC)
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view) :]
    return fd


def sandbox_env(spec: SandboxSpec, extra: dict[str, str] | None, path: str, home: str) -> dict[str, str]:
    """The whole environment of a sandboxed command: fixed basics, offline flags, the spec's env, the call's."""
    env = {
        "PATH": path,
        "HOME": home,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "dumb",
        "USER": "agent",
        "SHELL": "/bin/bash",  # set, it spares every bash a passwd lookup at start
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
    payload = ("\0".join(options) + "\0").encode() if options else b""
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
