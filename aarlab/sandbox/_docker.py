"""The ``docker`` backend: one long-lived container per sandbox, commands through ``docker exec``.

Uses the ``docker`` CLI (no SDK dependency). The container runs ``sleep infinity`` with the workspace bound
read-write at ``/workspace``, the spec's mounts, ``--network none`` (unless the spec allows network),
memory/pids/CPU limits, a private tmpfs ``/tmp``, no capabilities, ``no-new-privileges``, and ``--gpus``
for the spec's GPUs. The image must have ``bash`` and whatever Python stack the agents need
(``spec.docker_image``). File access goes through the bind-mounted host workspace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

from aarlab.sandbox._base import ExecResult, SandboxError, SandboxSpec, sandbox_backend
from aarlab.sandbox._files import HostWorkspaceSandbox, relative_path
from aarlab.sandbox._proc import run_capped, shell_argv


def _docker() -> str | None:
    return shutil.which("docker")


@sandbox_backend("docker")
class DockerSandbox(HostWorkspaceSandbox):
    """Commands in a Docker container: workspace bound rw, no network, limits, optional GPUs."""

    isolates = True

    def __init__(self, spec: SandboxSpec):
        super().__init__(spec)
        self.container: str | None = None

    @classmethod
    def check(cls) -> tuple[bool, str]:
        docker = _docker()
        if not docker:
            return False, "the docker CLI is not installed"
        try:
            proc = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, timeout=15)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"docker info failed: {exc}"
        if proc.returncode != 0:
            lines = proc.stderr.decode(errors="replace").strip().splitlines()
            return False, f"no Docker engine is running ({lines[-1] if lines else 'docker info failed'})"
        return True, f"Docker engine {proc.stdout.decode().strip()}"

    def create_argv(self, name: str) -> list[str]:
        """The ``docker run`` command that starts the sandbox's container (public for tests and docs)."""
        spec = self.spec
        argv = [_docker() or "docker", "run", "--detach", "--rm", "--name", name, "--init"]
        argv += ["--network", "bridge" if spec.network else "none"]
        argv += ["--memory", f"{spec.memory_mb}m", "--memory-swap", f"{spec.memory_mb}m"]
        argv += ["--pids-limit", str(spec.max_processes)]
        argv += ["--ulimit", f"cpu={spec.cpu_seconds}", "--ulimit", f"fsize={spec.max_file_mb * 1024 * 1024}"]
        argv += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
        argv += ["--tmpfs", f"/tmp:rw,size={spec.tmp_mb}m"]
        # the harness's own uid/gid, so that the bind-mounted workspace is writable and its files stay the user's
        argv += ["--user", f"{os.getuid()}:{os.getgid()}", "--workdir", str(spec.workspace_target)]
        argv += ["-v", f"{spec.workspace.resolve()}:{spec.workspace_target}:rw"]
        for mount in spec.mounts:
            argv += ["-v", f"{mount.host.resolve()}:{mount.target}:{'rw' if mount.writable else 'ro'}"]
        for path in spec.readonly_paths:
            argv += ["-v", f"{path.resolve()}:{path}:ro"]
        if spec.gpus:
            argv += ["--gpus", f"\"device={','.join(str(g) for g in spec.gpus)}\""]
        for key, value in {"HOME": "/tmp", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **spec.env}.items():
            argv += ["-e", f"{key}={value}"]
        argv += [spec.docker_image, "sleep", "infinity"]
        return argv

    def start(self) -> None:
        if self.container:
            return
        ok, reason = self.check()
        if not ok:
            raise SandboxError(reason)
        self.spec.workspace.mkdir(parents=True, exist_ok=True)
        label = "".join(c for c in self.spec.name if c.isalnum() or c in "-_")[:30] or "sandbox"
        name = f"aarlab-{label}-{uuid.uuid4().hex[:8]}"
        proc = subprocess.run(self.create_argv(name), capture_output=True, timeout=300)
        if proc.returncode != 0:
            raise SandboxError(f"docker run failed: {proc.stderr.decode(errors='replace').strip()}")
        self.container = name

    def stop(self) -> None:
        if self.container:
            subprocess.run([_docker() or "docker", "rm", "-f", self.container], capture_output=True, timeout=60)
            self.container = None

    def exec(self, cmd, timeout=None, env=None, cwd=None) -> ExecResult:
        if not self.container:
            raise SandboxError("sandbox not started: call start() or use it as a context manager")
        workdir = str(self.spec.workspace_target / relative_path(cwd or "."))
        argv = [_docker() or "docker", "exec", "--workdir", workdir]
        for key, value in (env or {}).items():
            argv += ["-e", f"{key}={value}"]
        argv += [self.container, *shell_argv(cmd)]
        # `docker exec` does not kill the in-container process when the client dies, so a timeout runs the
        # command under coreutils `timeout` inside too (its whole process group is signalled)
        limit = self.spec.default_timeout_s if timeout is None else timeout
        argv[-len(shell_argv(cmd)) :] = ["timeout", "-s", "KILL", f"{limit:g}", *shell_argv(cmd)]
        result = run_capped(argv, cwd=None, env=None, timeout=limit + 5, max_output_bytes=self.spec.max_output_bytes)
        if result.exit_code == 137 and result.duration_s >= limit:
            result.timed_out = True
            result.stderr += f"\n[command timed out after {limit:g} s and was killed]\n"
        return result
