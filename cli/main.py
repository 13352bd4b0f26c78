"""`harnet` command line: a thin layer over the library.

Exit codes: 0 success; 1 an input, model or download problem, or a fault of the machine while
writing (disk full, quota, read-only file system: one line, no traceback unless ``--debug``);
2 a usage error (bad option or argument); 3 a bug in harnet ("internal error").
"""

from __future__ import annotations

import importlib
import re
import sys

import click

from harnet import __version__

# command name -> "module:function" inside harnet_cli, imported only when that command runs.
# Each command module defines one click command; add a line here to register a new one.
COMMANDS: dict[str, str] = {
    "models": "harnet_cli.cmd_models:models",
    "download": "harnet_cli.cmd_models:download",
    "convert": "harnet_cli.cmd_convert:convert",
    "export": "harnet_cli.cmd_export:export",
    "prepare": "harnet_cli.cmd_train:prepare",
    "train": "harnet_cli.cmd_train:train",
    "evaluate": "harnet_cli.cmd_train:evaluate",
    "push": "harnet_cli.cmd_train:push",
    "predict": "harnet_cli.cmd_predict:predict",
    "pretrain": "harnet_cli.cmd_pretrain:pretrain",
    "collate": "harnet_cli.cmd_collate:collate",
}


# library keyword arguments -> the CLI options that set them (error messages speak the user's language)
OPTION_OF = {"time_col": "--time-col", "xyz_cols": "--xyz-cols", "time_format": "--time-format",
             "sample_rate": "--sample-rate", "units": "--units"}
_KW_VALUE = re.compile(r"\b(" + "|".join(OPTION_OF) + r""")=(?:'([^']*)'|"([^"]*)"|([^\s;,)/'"]*))""")
_KW_BARE = re.compile(r"(?<![-\w])(" + "|".join(k for k in OPTION_OF if k != "units") + r")\b")


def cli_spelling(message: str) -> str:
    """``message`` with Python argument spellings (``time_col='t'``) as CLI options (``--time-col t``)."""
    message = re.sub(r"\s*\(CLI: [^)]*\)", "", message)
    message = _KW_VALUE.sub(lambda m: " ".join(x for x in (OPTION_OF[m[1]], m[2] or m[3] or m[4]) if x), message)
    return _KW_BARE.sub(lambda m: OPTION_OF[m[1]], message)


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return super().get_command(ctx, name)
        mod, attr = target.split(":")
        return getattr(importlib.import_module(mod), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="harnet")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors (also accepted after the command).")
@click.pass_context
def app(ctx: click.Context, debug: bool) -> None:
    """harnet: activity recognition from wearable accelerometer files with self-supervised networks."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _debug_first(args: list[str]) -> list[str]:
    """``--debug`` anywhere before a ``--`` (``harnet predict --debug ...``, as errors suggest)
    means the group's --debug: move it to the front."""
    end = args.index("--") if "--" in args else len(args)
    if "--debug" not in args[:end]:
        return args
    return ["--debug"] + [a for a in args[:end] if a != "--debug"] + args[end:]


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app and turns harnet's errors into one-line messages."""
    from harnet.errors import HarnetError, write_error

    args = _debug_first(list(sys.argv[1:] if argv is None else argv))
    debug = bool(args) and args[0] == "--debug"
    try:
        # with standalone_mode=False click returns ctx.exit()'s code instead of raising Exit
        rv = app.main(args=args, prog_name="harnet", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Exit as e:
        return e.exit_code
    except HarnetError as e:
        if debug:
            raise
        click.echo(f"harnet: error: {cli_spelling(str(e))}", err=True)
        return e.exit_code
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    except Exception as e:  # an unexpected bug: still one line unless --debug
        if debug:
            raise
        fault = write_error(e)  # the machine refused a write (disk full, read-only...): not a bug
        if fault is not None:
            click.echo(f"harnet: error: {fault}", err=True)
            return fault.exit_code
        click.echo(
            f"harnet: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback "
            "and report it)",
            err=True,
        )
        return 3
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
