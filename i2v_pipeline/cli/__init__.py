"""The command line: the only place for argv, environment, printing and exit codes.

Commands load on first use (click's lazy-group pattern), so `i2v plan` never imports the HTTP
stack or the emulator's video encoder: start-up is part of every no-op rerun.
"""

from __future__ import annotations

import importlib

import click

from .. import __version__
from .common import I2VGroup

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
    """The console-script entry point."""
    cli(prog_name="i2v")
