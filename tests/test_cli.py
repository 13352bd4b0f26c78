import subprocess
import sys

from harnet_cli.main import COMMANDS, app, main


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert "harnet, version" in capsys.readouterr().out
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("predict", "models", "download", "convert", "export", "train", "evaluate", "pretrain", "collate"):
        assert name in out


def test_every_registered_command_imports():
    for name in COMMANDS:
        assert app.get_command(None, name) is not None, name


def test_usage_error_is_exit_2_without_traceback(capsys):
    assert main(["predict"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "give at least one input" in err
    assert main(["no-such-command"]) == 2


def test_ctx_exit_code_is_returned():
    """A command that calls ctx.exit(N) must make `harnet` exit N (click's non-standalone mode)."""
    import click

    @app.command("zz-exit-test")
    @click.pass_context
    def _cmd(ctx):
        ctx.exit(4)

    try:
        assert main(["zz-exit-test"]) == 4
    finally:
        app.commands.pop("zz-exit-test", None)


def test_real_process_error_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "harnet_cli.main", "predict", str(tmp_path / "missing.cwa"),
                        "--out", str(tmp_path / "o.csv"), "--model", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2
    assert not (tmp_path / "o.csv").exists()
