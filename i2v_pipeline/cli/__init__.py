"""The command line: the only place for argv, environment, printing and exit codes.

Commands load on first use (click's lazy-group pattern), so `i2v plan` never imports the HTTP
stack or the emulator's video encoder: start-up is part of every no-op rerun.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, NoReturn


def _interrupted() -> NoReturn:
    """Ctrl-C outside a command's own handling (start-up, imports, argument parsing)."""
    sys.stderr.write("interrupted\n")
    raise SystemExit(130)


try:  # loading the command line takes a moment on a busy machine: Ctrl-C then is no traceback
    import click

    from .common import I2VGroup
except KeyboardInterrupt:
    _interrupted()

COMMANDS = {
    "init": "init_cmd:init_cmd",
    "plan": "inspect:plan_cmd",
    "validate": "inspect:validate_cmd",
    "expand": "inspect:expand_cmd",
    "schema": "inspect:schema_cmd",
    "status": "catalog_cmds:status_cmd",
    "run": "run_cmds:run_cmd",
    "prune": "prune_cmds:prune_cmd",
    "push": "store_cmds:push_cmd",
    "pull": "store_cmds:pull_cmd",
    "report": "report_cmds:report_cmd",
    "models": "catalog_cmds:models_cmd",
    "effects": "catalog_cmds:effects_cmd",
    "emulator": "emulator_cmds:emulator_group",
    "credits": "lifecycle:credits_cmd",
    "publish-check": "publish_cmds:publish_check_cmd",
    "webhook": "webhook_cmds:webhook_group",
    "lock": "lock_cmds:lock_group",
}


class LazyGroup(I2VGroup):
    """A click group that imports a command's module only when it is invoked."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        # Parsing may import command modules (--help lists them all); click would turn Ctrl-C
        # there into "Aborted!" and exit 1.
        try:
            return super().make_context(*args, **kwargs)
        except KeyboardInterrupt:
            _interrupted()

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
        return command


EPILOG = """\b
Environment: AKOOL_API_KEY (or AKOOL_CLIENT_ID + AKOOL_CLIENT_SECRET) for a real endpoint;
I2V_JSON=1, I2V_MAX_CREDITS=N, I2V_YES=1, I2V_CHECK=1, I2V_VERIFY=1, I2V_RETRY_FAILED=1 set
the flags of the same name (each command's --help shows which it takes); I2V_LOG=debug;
NO_COLOR=1 (or --no-color) for plain output.

\b
Shell completion (bash; zsh and fish alike with zsh_source / fish_source):
  eval "$(_I2V_COMPLETE=bash_source i2v)"
"""


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """click's version_option, but the version (importlib.metadata: ~30 ms) is looked up only
    when asked for, not on every command's start-up."""
    if not value or ctx.resilient_parsing:
        return
    from .. import __version__

    click.echo(f"i2v, version {__version__}", color=ctx.color)
    ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
def cli() -> None:
    """Image-to-video renders on AKOOL from YAML manifests, reproducibly and without paying twice.

    Start with `i2v plan manifests/quickstart.yaml`, then `i2v run manifests/quickstart.yaml`.
    """


def main() -> None:
    """The console-script entry point: exit 130 with "interrupted", never a traceback, whenever
    Ctrl-C comes (commands handle it themselves where they have something to save)."""
    try:
        cli(prog_name="i2v")
    except KeyboardInterrupt:
        _interrupted()
