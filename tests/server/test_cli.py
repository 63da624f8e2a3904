"""`aarlab serve` (run as `python -m aarlab.server`): user mistakes are one line and exit code 2."""

from __future__ import annotations

import stat
import subprocess
import sys

from aarlab.server._runner import read_or_create_admin_token


def test_serve_with_a_missing_task_dir_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "aarlab.server", "--run-dir", str(tmp_path / "run"), "--port", "0",
                           "--task", str(tmp_path / "nope")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith("error: ") and str(tmp_path / "nope") in line and "Traceback" not in proc.stderr


def test_admin_token_file_is_private_and_stable(tmp_path):
    token = read_or_create_admin_token(tmp_path)
    path = tmp_path / "admin_token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(token) >= 32
    assert read_or_create_admin_token(tmp_path) == token


def test_serve_never_prints_the_viewer_token(tmp_path):
    from labhelpers import ServerProcess

    token = "viewer-token-not-for-the-terminal-0123"
    run_dir = tmp_path / "run"
    with ServerProcess(run_dir, extra=["--viewer-token", token]) as server:
        assert server.client(token).leaderboard().entries == []
        server.proc.terminate()
        _, stderr = server.proc.communicate(timeout=30)
    path = run_dir / "viewer_token"
    assert path.read_text().strip() == token and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert token not in stderr and str(path) in stderr, stderr
