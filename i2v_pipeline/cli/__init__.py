"""The command line: the only place for argv, environment, printing and exit codes."""

from __future__ import annotations

import click

from .. import __version__
from . import catalog_cmds, emulator_cmds, inspect, prune_cmds, run_cmds
from .common import I2VGroup


@click.group(cls=I2VGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="i2v")
def cli() -> None:
    """Image-to-video renders on AKOOL from YAML manifests, reproducibly and without paying twice.

    Start with `i2v plan manifests/quickstart.yaml`, then `i2v run manifests/quickstart.yaml`.
    """


for _module in (inspect, run_cmds, prune_cmds, catalog_cmds, emulator_cmds):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    cli(prog_name="i2v")
