"""The metabo command: --help, --version, info, user errors (in process), and the installed script."""

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import metabo
from metabo import cli
from metabo.commands.common import UserError


@pytest.fixture(autouse=True)
def restore_environment():
    # cli.main sets JAX environment defaults (x64, compilation cache); keep them out of other tests.
    saved = dict(os.environ)
    os.environ["METABO_JAX_CACHE"] = "off"
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_help_lists_info(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: metabo")
    assert "info" in out and "--version" in out


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 0
    assert "usage: metabo" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"metabo {metabo.__version__}"


def test_info_json(capsys):
    import jax

    assert cli.main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["metabo"] == metabo.__version__
    assert info["jax"] == jax.__version__
    assert info["backend"] == jax.default_backend()
    assert info["devices"] and all(isinstance(d, str) for d in info["devices"])
    assert info["float64"] is True


def test_info_text(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    for key in ("metabo", "jax", "backend", "devices", "float64"):
        assert f"{key}:" in out


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["no-such-command"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_user_error_prints_message_and_exits_2(monkeypatch, capsys):
    def run(args):
        raise UserError("the log has no task column")

    fake = types.SimpleNamespace(HELP="fails on purpose", add_arguments=lambda parser: None, run=run)
    real_load = cli.load_command
    monkeypatch.setattr(cli, "load_command", lambda name: fake if name == "info" else real_load(name))
    assert cli.main(["info"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == "metabo info: error: the log has no task column"
    assert "Traceback" not in captured.err


def test_configure_jax_sets_x64_without_overriding_the_user(monkeypatch):
    monkeypatch.delenv("JAX_ENABLE_X64", raising=False)
    monkeypatch.setenv("METABO_JAX_CACHE", "off")
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    cli.configure_jax()
    assert os.environ["JAX_ENABLE_X64"] == "1"
    assert "JAX_COMPILATION_CACHE_DIR" not in os.environ
    monkeypatch.setenv("JAX_ENABLE_X64", "0")
    monkeypatch.setenv("METABO_JAX_CACHE", "/tmp/somewhere")
    cli.configure_jax()
    assert os.environ["JAX_ENABLE_X64"] == "0"
    assert os.environ["JAX_COMPILATION_CACHE_DIR"] == "/tmp/somewhere"


def test_installed_script_version():
    script = Path(sys.executable).with_name("metabo")
    assert script.exists(), f"the package's console script is not installed next to {sys.executable}"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"metabo {metabo.__version__}"


def test_in_process_main_leaves_the_garbage_collector_alone(capsys):
    import gc

    before = gc.get_freeze_count()
    assert cli.main(["info", "--json"]) == 0
    assert gc.get_freeze_count() == before  # only the command's own process freezes its imports


def test_the_command_process_freezes_its_imports():
    # metabo.runtime.freeze_imported_objects: the modules loaded by then (JAX, NumPy, pandas) stay
    # out of the cyclic collector's passes for the rest of the command.
    code = "import gc, sys; from metabo.cli import main; sys.argv = ['metabo', 'info', '--json']; main(); print(gc.get_freeze_count())"
    env = {**os.environ, "METABO_JAX_CACHE": "off"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip().splitlines()[-1]) > 10_000
