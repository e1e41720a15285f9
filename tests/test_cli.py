"""The `stylecast` dispatcher: help without torch, one-line errors with exit code 2."""

import subprocess
import sys
import types

import pytest

from stylecast import cli
from stylecast.errors import UserError


def test_help_does_not_import_torch():
    code = (
        "import sys; from stylecast.cli import main; rc = main(['--help']); "
        "heavy = [m for m in ('torch', 'lightning', 'pytorch_lightning', 'onnxruntime') if m in sys.modules]; "
        "print('HEAVY', heavy); sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout
    for name in cli.COMMANDS:
        assert f"  {name} " in proc.stdout


def test_console_script_help():
    proc = subprocess.run([sys.executable, "-m", "stylecast.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "usage: stylecast COMMAND" in proc.stdout


def test_unknown_command_exit_2(capsys):
    assert cli.main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown command 'frobnicate'" in err


def test_user_error_is_one_line_exit_2(monkeypatch, capsys):
    fake = types.ModuleType("fake_cmd")

    def main(argv):
        raise UserError(f"{argv[0]}: no such file")

    fake.main = main
    monkeypatch.setitem(sys.modules, "fake_cmd", fake)
    monkeypatch.setitem(cli.COMMANDS, "fake", ("fake_cmd", "a test command"))
    assert cli.main(["fake", "photo.jpg"]) == 2
    err = capsys.readouterr().err
    assert err == "stylecast fake: error: photo.jpg: no such file\n"


def test_missing_dependency_names_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "needs", ("module_that_needs_torch_xyz", "x"))
    import importlib

    def fake_import(name):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setattr(importlib, "import_module", fake_import)
    assert cli.main(["needs"]) == 2
    assert "pip install 'stylecast[train]'" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--version"])
def test_version(flag, capsys):
    from stylecast import __version__

    assert cli.main([flag]) == 0
    assert capsys.readouterr().out.strip() == __version__
