"""Running one method, one seed, in a fresh sandbox: the method contract, limits, and what counts as failure.

A run gets a new workspace holding only the method's code (a snapshot's files, or nothing for a known
method shipped with aarlab), the data directory mounted read-only at ``/task`` and an empty writable
``/out``. The command is exactly the method contract::

    nice -n NICE python -m ENTRY --data-dir /task --out /out/predictions.json --seed S

with cwd = the code root, a wall-clock timeout, a CPU-time limit, one thread per math library unless the
settings say otherwise, and a clean environment (``PYTHONHASHSEED=0``). Anything that is not a valid list
of label indices at the end — a non-zero exit, a timeout, a missing or malformed file — raises
:class:`MethodFailure` with a one-line reason.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from aarlab.errors import UserError

ENTRY_POINT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
OUT_NAME = "predictions.json"
MAX_PREDICTIONS_BYTES = 256 * 1024 * 1024  # far above any test split's label indices as JSON


class MethodFailure(Exception):
    """A method run did not produce valid predictions; ``kind`` is crash, timeout, malformed, missing or setup."""

    def __init__(self, kind: str, reason: str, log_tail: str = ""):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.log_tail = log_tail


@dataclass
class ComputeLimits:
    """The verifier's compute share: it runs one job at a time, niced, with few threads and hard limits."""

    backend: str | None = None  # None: the default isolating backend (bwrap)
    allow_unisolated: bool = False  # the ``process`` backend (no isolation) is refused unless this is set
    timeout_s: float = 1800.0  # wall clock per seed
    threads: int = 1  # OMP/MKL/torch threads inside the sandbox
    nice: int = 10  # 0..19: how politely it shares the CPU with the agents
    memory_mb: int = 8192
    cpu_seconds: int | None = None  # CPU time per seed; None: timeout_s × threads (+ slack)
    gpus: list[int] = field(default_factory=list)

    def check_isolation(self) -> None:
        """Refuse the ``process`` backend (agents' code run as the verifier's user) without the opt-in."""
        if self.backend == "process" and not self.allow_unisolated:
            raise UserError(
                "verification.backend 'process' re-runs agents' code with no isolation at all; set "
                "verification.allow_unisolated: true (--allow-unisolated on the command line) if you really mean it"
            )

    def cpu_limit(self) -> int:
        if self.cpu_seconds is not None:
            return int(self.cpu_seconds)
        return int(self.timeout_s * max(self.threads, 1)) + 30


@dataclass
class SeedRun:
    """One successful run of a method: its predictions and how long it took."""

    seed: int
    predictions: list[int]
    duration_s: float
    log_tail: str = ""

    @property
    def predictions_sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.predictions).encode()).hexdigest()


def check_entry_point(entry_point: str | None) -> str:
    """A dotted module name, or a UserError (it is passed to ``python -m``, never to a shell)."""
    if not entry_point or not ENTRY_POINT.match(entry_point):
        raise UserError(f"entry point {entry_point!r} is not a dotted Python module name (what `python -m` takes)")
    return entry_point


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _last_line(text: str) -> str:
    for line in reversed(text.strip().splitlines()):
        if line.strip() and not line.startswith("[command timed out"):
            return line.strip()[:300]
    return ""


def _label_count(data_dir: Path) -> tuple[int, int]:
    """(number of test inputs, number of labels) of a public data dir, for validating predictions."""
    info = json.loads((data_dir / "task.json").read_text())
    with open(data_dir / "test.jsonl", encoding="utf-8") as fh:
        n_test = sum(1 for line in fh if line.strip())
    return n_test, len(info["label_space"])


class MethodSandbox:
    """One sandbox for the seeds of one method on one data dir; every run gets a freshly emptied workspace.

    ``with MethodSandbox(data_dir, limits) as box: box.run(entry_point, seed, code_tar)``. Between runs the
    workspace and ``/out`` are emptied and the snapshot unpacked again, and each command gets a new private
    ``/tmp``, so nothing a seed leaves behind reaches the next; only the sandbox's setup is shared.
    """

    def __init__(self, data_dir: Path, limits: ComputeLimits, work_root: Path | None = None,
                 keep_workspace: bool = False):
        self.data_dir = Path(data_dir).resolve()
        self.limits = limits
        self.work_root = Path(work_root) if work_root is not None else None
        self.keep_workspace = keep_workspace
        self.n_test, self.n_labels = _label_count(self.data_dir)
        self._sandbox = None
        self._scratch: Path | None = None

    def __enter__(self) -> MethodSandbox:
        from aarlab.sandbox import Mount, SandboxError, SandboxSpec, create, default_backend

        limits = self.limits
        limits.check_isolation()
        backend = limits.backend or default_backend()
        if self.work_root is not None:
            self.work_root.mkdir(parents=True, exist_ok=True)
        self._scratch = Path(tempfile.mkdtemp(prefix="verify-", dir=self.work_root))
        self.workspace, self.out_dir = self._scratch / "code", self._scratch / "out"
        self.workspace.mkdir()
        self.out_dir.mkdir()
        if backend == "process":
            # no mounts without isolation: the method reads the data dir and writes /out at their host paths
            self.task_path, self.out_path, mounts = str(self.data_dir), str(self.out_dir), []
        else:
            self.task_path, self.out_path = "/task", "/out"
            mounts = [Mount(host=self.data_dir, target=Path("/task")),
                      Mount(host=self.out_dir, target=Path("/out"), writable=True)]
        threads = str(max(limits.threads, 1))
        env = {
            "PYTHONHASHSEED": "0",
            "OMP_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
            "AARLAB_THREADS": threads,
            "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
        }
        spec = SandboxSpec(
            workspace=self.workspace, mounts=mounts, env=env, memory_mb=limits.memory_mb,
            cpu_seconds=limits.cpu_limit(), default_timeout_s=limits.timeout_s, gpus=list(limits.gpus),
            name="verify", max_output_bytes=16_000,
        )
        self._sandbox = create(backend, spec)
        try:
            self._sandbox.start()
        except SandboxError as exc:
            self.__exit__(None, None, None)
            raise MethodFailure("setup", f"the sandbox could not start: {exc}") from None
        return self

    def __exit__(self, *exc) -> None:
        if self._sandbox is not None:
            self._sandbox.stop()
            self._sandbox = None
        if self._scratch is not None and not self.keep_workspace:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def _empty(self, directory: Path) -> None:
        for child in directory.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    def run(self, entry_point: str, seed: int, code_tar: bytes | None = None) -> SeedRun:
        """Run the method once; validated predictions, or :class:`MethodFailure` with the reason."""
        from aarlab.sandbox import SandboxError, WorkspaceFiles, extract_tar_safely
        from aarlab.w2s.taskdir import validate_predictions

        if self._sandbox is None:
            raise RuntimeError("MethodSandbox is not entered")
        entry_point = check_entry_point(entry_point)
        limits = self.limits
        self._empty(self.workspace)
        self._empty(self.out_dir)
        if code_tar is not None:
            try:
                extract_tar_safely(code_tar, self.workspace)
            except SandboxError as exc:
                raise MethodFailure("setup", f"the snapshot cannot be unpacked safely: {exc}") from None
        argv = ["nice", "-n", str(int(limits.nice)), "python", "-m", entry_point,
                "--data-dir", self.task_path, "--out", f"{self.out_path}/{OUT_NAME}", "--seed", str(int(seed))]
        try:
            result = self._sandbox.exec(argv, timeout=limits.timeout_s)
        except SandboxError as exc:
            raise MethodFailure("setup", f"the sandbox could not run the method: {exc}") from None
        log_tail = _tail(result.stdout + "\n" + result.stderr)
        if result.timed_out:
            raise MethodFailure("timeout", f"seed {seed}: timed out after {limits.timeout_s:g} s and was killed",
                                log_tail)
        if result.exit_code != 0:
            last = _last_line(result.stderr) or _last_line(result.stdout) or "no output"
            if result.exit_code in (137, 152):  # SIGKILL (memory) / SIGXCPU (CPU time)
                last = f"killed by a limit ({last})"
            raise MethodFailure("crash", f"seed {seed}: exited with code {result.exit_code}: {last}", log_tail)
        # the method wrote /out: read it by descriptor, never following a link or waiting on a FIFO there
        try:
            raw = WorkspaceFiles(self.out_dir).read_file(OUT_NAME, max_bytes=MAX_PREDICTIONS_BYTES)
        except SandboxError as exc:
            raise MethodFailure("missing", f"seed {seed}: the method exited 0 but wrote no usable {OUT_NAME} "
                                f"({exc})", log_tail) from None
        try:
            data = json.loads(raw.decode("utf-8"))
            predictions = validate_predictions(data, self.n_test, self.n_labels, source=f"seed {seed}: {OUT_NAME}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise MethodFailure("malformed", f"seed {seed}: {OUT_NAME} is not valid JSON: {exc}", log_tail) from None
        except UserError as exc:
            raise MethodFailure("malformed", str(exc), log_tail) from None
        return SeedRun(seed=seed, predictions=predictions, duration_s=result.duration_s, log_tail=log_tail)


def run_method(
    entry_point: str,
    data_dir: Path,
    seed: int,
    limits: ComputeLimits,
    code_tar: bytes | None = None,
    work_root: Path | None = None,
    keep_workspace: bool = False,
) -> SeedRun:
    """Run ``entry_point`` on the public files in ``data_dir`` with ``seed`` in a fresh sandbox.

    ``code_tar`` is the snapshot to unpack as the code root (None: an empty root, for modules shipped with
    aarlab). Returns validated predictions, or raises :class:`MethodFailure` with the reason.
    """
    check_entry_point(entry_point)
    with MethodSandbox(data_dir, limits, work_root, keep_workspace) as box:
        return box.run(entry_point, seed, code_tar)
