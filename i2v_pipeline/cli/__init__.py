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

    from .. import __version__
    from .common import I2VGroup
except KeyboardInterrupt:
    _interrupted()

COMMANDS = {
    "plan": "inspect:plan_cmd",
    "validate": "inspect:validate_cmd",
    "expand": "inspect:expand_cmd",
    "schema": "inspect:schema_cmd",
    "status": "catalog_cmds:status_cmd",
    "run": "run_cmds:run_cmd",
    "prune": "prune_cmds:prune_cmd",
    "report": "report_cmds:report_cmd",
    "models": "catalog_cmds:models_cmd",
    "effects": "catalog_cmds:effects_cmd",
    "emulator": "emulator_cmds:emulator_group",
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


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="i2v")
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
