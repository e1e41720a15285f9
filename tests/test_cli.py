"""The `stylecast` dispatcher: one-line errors with exit code 2 (help without torch: test_boundaries.py)."""

import subprocess
import sys
import types

import pytest

from stylecast import cli
from stylecast.errors import UserError


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
    assert capsys.readouterr().err == "stylecast needs: error: needs torch, which is not installed; install it with: pip install 'stylecast[train]'\n"


@pytest.mark.parametrize("missing, extra", [("torch", "train"), ("pytorch_lightning.cli", "train"), ("fastapi", "serve"), ("openvino", "openvino")])
def test_missing_dependency_inside_the_command_is_one_line(missing, extra, monkeypatch, capsys):
    # commands import torch lazily (in build_parser / main): the error comes from main, not the import
    fake = types.ModuleType("fake_lazy_cmd")

    def main(argv):
        raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)

    fake.main = main
    monkeypatch.setitem(sys.modules, "fake_lazy_cmd", fake)
    monkeypatch.setitem(cli.COMMANDS, "lazy", ("fake_lazy_cmd", "a test command"))
    assert cli.main(["lazy", "--help"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith(f"pip install 'stylecast[{extra}]'\n")


def test_bare_stylecast_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: stylecast COMMAND") and "  stylize " in err
    proc = subprocess.run([sys.executable, "-m", "stylecast.cli"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith("usage: stylecast COMMAND")


@pytest.mark.parametrize("port", ["99999", "-5", "65536"])
def test_serve_rejects_a_port_out_of_range(port, capsys):
    assert cli.main(["serve", "--port", port]) == 2
    err = capsys.readouterr().err
    assert err == f"stylecast serve: error: --port must be between 0 and 65535 (0 picks a free one), got {port}\n"


@pytest.mark.parametrize("flag", ["--version"])
def test_version(flag, capsys):
    from stylecast import __version__

    assert cli.main([flag]) == 0
    assert capsys.readouterr().out.strip() == __version__


def test_an_unknown_config_name_is_one_line(tmp_path):
    # `--config NAME` (no suffix, no folder) reached a name `os` the module no longer imported
    # after a merge: a NameError traceback instead of this message (found by ruff's F821)
    from stylecast.errors import UserError
    from stylecast.training.cli import _recipe_path

    with pytest.raises(UserError, match=r"unknown recipe 'nosuch'; recipes: .*cpu-full"):
        _recipe_path("nosuch", "--config")
    with pytest.raises(UserError, match=r"no such config file \(--config\)"):
        _recipe_path(str(tmp_path / "missing.yaml"), "--config")
