"""The verifier runs agents' code: unisolated only when asked for by name, and its copies never follow links."""

from __future__ import annotations

import io
import os
import tarfile

import pytest
from pydantic import ValidationError

from aarlab.config import VerificationConfig
from aarlab.errors import UserError
from aarlab.verify import ComputeLimits, MethodFailure, MethodSandbox, VerifierSettings


def test_process_backend_needs_the_allow_unisolated_opt_in():
    with pytest.raises(ValidationError, match="verification.allow_unisolated"):
        VerificationConfig(backend="process")
    with pytest.raises(UserError, match="verification.allow_unisolated"):
        VerifierSettings.from_config({"backend": "process"})
    allowed = VerifierSettings.from_config(VerificationConfig(backend="process", allow_unisolated=True))
    assert allowed.limits.backend == "process" and allowed.limits.allow_unisolated


def test_method_sandbox_refuses_the_process_backend_without_the_opt_in(task_dir):
    with pytest.raises(UserError, match="allow_unisolated"), MethodSandbox(task_dir / "public",
                                                                          ComputeLimits(backend="process")):
        pass


def _tar(name: str, data: bytes, mode: int = 0o644) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), mode
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_snapshot_copies_drop_set_id_bits_and_refuse_over_long_paths(task_dir, tmp_path):
    limits = ComputeLimits(timeout_s=30)
    writer = "import sys; open(sys.argv[sys.argv.index('--out') + 1], 'w').write('[]')"
    with MethodSandbox(task_dir / "public", limits, work_root=tmp_path, keep_workspace=True) as box:
        with pytest.raises(MethodFailure, match="malformed|predictions"):
            box.run("method", 0, _tar("method.py", writer.encode(), mode=0o4755))
        assert os.stat(box.workspace / "method.py").st_mode & 0o7777 == 0o755
        with pytest.raises(MethodFailure, match="cannot be unpacked safely.*over"):
            box.run("method", 0, _tar("x" * 300 + ".py", b"print(1)"))


def test_a_predictions_fifo_does_not_hang_the_verifier(task_dir, tmp_path):
    fifo_writer = "import os, sys; os.mkfifo(sys.argv[sys.argv.index('--out') + 1])"
    with MethodSandbox(task_dir / "public", ComputeLimits(timeout_s=30)) as box:
        with pytest.raises(MethodFailure) as info:
            box.run("method", 0, _tar("method.py", fifo_writer.encode()))
    assert info.value.kind == "missing" and "not a regular file" in info.value.reason
