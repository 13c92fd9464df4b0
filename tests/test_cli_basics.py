"""The ``triface`` command: help lists the subcommands; errors are messages, not tracebacks."""

from __future__ import annotations

import subprocess
import sys

from triface_studio.cli import main as cli


def test_help_lists_every_subcommand(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMAND_MODULES:
        assert name in out


def test_console_entry_point_runs_as_module():
    proc = subprocess.run([sys.executable, "-m", "triface_studio.cli.main", "--version"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "triface-studio" in proc.stdout


def test_user_errors_are_reported_without_traceback(capsys):
    code = cli.main(["bench", "--stage", "no-such-stage", "--quick"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown bench stage" in err and "Traceback" not in err
