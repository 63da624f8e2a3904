"""The ``process`` backend: a plain subprocess in the workspace directory. It does NOT isolate.

For machines without bubblewrap (macOS, development). A command can read and write anything the harness's
user can, reach the network and see every process. What it still does: the environment is rebuilt from the
spec (the harness's API keys are not inherited), a timeout kills the command's process group, output is
capped, and CPU/file-size rlimits (and a cgroup where one can be made) apply. A run config must opt in
explicitly (``sandbox: process``) and the CLI and dashboard say that agents are not isolated.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from aarlab.sandbox._base import ExecResult, SandboxError, SandboxSpec, sandbox_backend
from aarlab.sandbox._bwrap_parts import sandbox_env
from aarlab.sandbox._files import HostWorkspaceSandbox
from aarlab.sandbox._jobs import LaunchedJob, host_job_manager
from aarlab.sandbox._limits import Cgroup, spec_limit_prefix
from aarlab.sandbox._proc import run_capped, shell_argv

log = logging.getLogger(__name__)

NOT_ISOLATED_WARNING = (
    "the 'process' sandbox does NOT isolate: agents' commands run as your user with full access to "
    "this machine's files and network. Use it only for development or on a throwaway machine."
)


@sandbox_backend("process")
class ProcessSandbox(HostWorkspaceSandbox):
    """Commands as plain subprocesses in the workspace: timeouts, output caps and rlimits, no isolation."""

    isolates = False

    def __init__(self, spec: SandboxSpec):
        super().__init__(spec)
        self._cgroup: Cgroup | None = None
        self._started = False

    @classmethod
    def check(cls) -> tuple[bool, str]:
        if os.name != "posix":
            return False, "the process backend needs a POSIX system (process groups, rlimits)"
        return True, "works everywhere, but does NOT isolate (no filesystem, network or process isolation)"

    def start(self) -> None:
        log.warning("%s", NOT_ISOLATED_WARNING)
        if self.spec.mounts:
            log.warning("the 'process' sandbox cannot mount: commands see %s at their host paths, not at %s",
                        ", ".join(str(m.host) for m in self.spec.mounts),
                        ", ".join(str(m.target) for m in self.spec.mounts))
        self.spec.workspace.mkdir(parents=True, exist_ok=True)
        if self._cgroup is None:
            self._cgroup = Cgroup.create(self.spec.name or "process", self.spec.memory_mb, self.spec.max_processes)
        self._started = True
        self.jobs = host_job_manager(self)

    def stop(self) -> None:
        if self.jobs is not None:
            self.jobs.close()
            self.jobs = None
        if self._cgroup is not None:
            self._cgroup.remove()
            self._cgroup = None
        self._started = False

    def _env(self, env: dict[str, str] | None) -> dict[str, str]:
        home = str(self.spec.workspace.resolve())
        venv_bin = str(Path(sys.prefix) / "bin")
        path = f"{venv_bin}:{os.environ.get('PATH', '/usr/local/bin:/usr/bin:/bin')}"
        full_env = sandbox_env(self.spec, env, path=path, home=home)
        full_env["XDG_CACHE_HOME"] = f"{home}/.cache"
        return full_env

    def _prefix(self, cgroup: Cgroup | None) -> list[str]:
        return spec_limit_prefix(self.spec, cgroup)

    def launch_job(self, argv: list[str], env: dict[str, str], gpus: list[int], label: str) -> LaunchedJob:
        """Start ``argv`` as a background job in the workspace, with exec's environment and limits and a
        cgroup of its own where one can be made (no isolation, as for every command here)."""
        if not self._started:
            raise SandboxError("sandbox not started: call start() or use it as a context manager")
        spec = self.spec
        cgroup = Cgroup.create(f"{spec.name or 'process'}_job_{label}", spec.memory_mb, spec.max_processes)
        try:
            process = subprocess.Popen(
                self._prefix(cgroup) + argv, cwd=spec.workspace, env=self._env(env),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except BaseException:
            if cgroup is not None:
                cgroup.remove()
            raise
        return LaunchedJob(process, cgroup)

    def exec(self, cmd, timeout=None, env=None, cwd=None) -> ExecResult:
        if not self._started:
            raise SandboxError("sandbox not started: call start() or use it as a context manager")
        workdir = self.files.host_path(cwd or ".")
        if not workdir.is_dir():
            return ExecResult(exit_code=1, stderr=f"no such directory in the workspace: {cwd}")
        spec = self.spec
        full_env = self._env(env)
        prefix = self._prefix(self._cgroup)
        cgroup = self._cgroup
        cpu_base = cgroup.cpu_seconds() if cgroup else None
        return run_capped(
            prefix + shell_argv(cmd),
            cwd=workdir,
            env=full_env,
            timeout=spec.default_timeout_s if timeout is None else timeout,
            max_output_bytes=spec.max_output_bytes,
            # without a PID namespace, a process that called setsid() left our group: the cgroup finds it
            on_timeout=(lambda pid: cgroup.kill_all()) if cgroup else None,
            after_exit=(lambda pid: cgroup.kill_all()) if cgroup else None,
            cpu_limit_s=spec.cpu_seconds,
            cpu_used=(lambda pid: cgroup.cpu_seconds() - cpu_base) if cpu_base is not None else None,
        )
