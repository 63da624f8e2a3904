"""The CLI's face: it starts, lists its commands, and turns user mistakes into one-line errors."""

import subprocess
import sys


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aarlab.cli", *args], capture_output=True, text=True)


def test_help_lists_the_main_commands():
    out = run_cli("--help")
    assert out.returncode == 0, out.stderr
    for command in ("run", "resume", "status", "serve", "verify", "report", "w2s"):
        assert command in out.stdout
