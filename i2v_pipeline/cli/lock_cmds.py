"""`i2v lock`: lockfile tools for git. `merge` is git's merge driver for `*.lock.yaml` (shards of
one campaign run in parallel clones, each committing its lock); `install-merge-driver` sets it up.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import click

from ..errors import UsageError
from ..state.lock import atomic_write
from ..state.merge import merge_files
from ..text import plural
from .common import I2VGroup
from .logs import note, output_options, warn

DRIVER = "i2v-lock"
ATTRIBUTES = f"*.lock.yaml merge={DRIVER}"


@click.group("lock", cls=I2VGroup)
def lock_group() -> None:
    """Lockfile tools: merge two locks (a git merge driver), install that driver."""


@lock_group.command("merge")
# Not exists=True: a missing BASE is an ancestor with no jobs, and a missing OURS or THEIRS is a
# merge conflict (exit 1, reported by merge_files), not a usage error.
@click.argument("base", type=click.Path(dir_okay=False))
@click.argument("ours", type=click.Path(dir_okay=False))
@click.argument("theirs", type=click.Path(dir_okay=False))
@output_options()
def merge_cmd(base: str, ours: str, theirs: str) -> None:
    """Merge THEIRS into OURS (written in place), BASE being their common ancestor: git's
    `%O %A %B`. Per job by fingerprint, the more advanced record wins; a job paid for on both
    sides keeps both remote ids. An empty or missing BASE has no jobs; an empty or missing OURS or
    THEIRS is a conflict. Exit 0 when merged, 1 on a genuine conflict (OURS untouched)."""
    merged = merge_files(Path(base), Path(ours), Path(theirs))
    for line in merged.notes:
        warn(line)
    atomic_write(Path(ours), merged.text)
    if merged.paid_twice:
        warn(
            f"{plural(merged.paid_twice, 'job')} paid for on both sides: both remote ids are "
            "kept (`i2v status` shows them under also_paid)"
        )


@lock_group.command("install-merge-driver")
@click.option(
    "--command",
    "command",
    default="i2v",
    show_default=True,
    help="How git runs i2v, e.g. `python -m i2v_pipeline`.",
)
@output_options()
def install_cmd(command: str) -> None:
    """Make git merge lockfiles with `i2v lock merge` in this repository: sets
    merge.i2v-lock.driver in .git/config and adds `*.lock.yaml merge=i2v-lock` to the top
    .gitattributes. Running it again changes nothing."""
    if not command.strip():
        # git would run " lock merge %O %A %B": every lockfile merge would fail.
        raise UsageError(
            "--command is empty: git needs a command that runs i2v",
            hint="pass e.g. --command i2v or --command 'python -m i2v_pipeline', or omit it",
        )
    root = Path(_git("rev-parse", "--show-toplevel", cwd=Path.cwd()))
    driver = f"{command} lock merge %O %A %B"
    _git("config", f"merge.{DRIVER}.name", "i2v lockfile merge", cwd=root)
    _git("config", f"merge.{DRIVER}.driver", driver, cwd=root)
    attributes = root / ".gitattributes"
    text = attributes.read_text(encoding="utf-8") if attributes.exists() else ""
    if ATTRIBUTES in (line.strip() for line in text.splitlines()):
        note(f"{attributes} already routes lockfiles to i2v; driver: {driver}")
        return
    sep = "" if not text or text.endswith("\n") else "\n"
    attributes.write_text(f"{text}{sep}{ATTRIBUTES}\n", encoding="utf-8")
    note(f"added `{ATTRIBUTES}` to {attributes} (commit it); driver: {driver}")


def _git(*args: str, cwd: Path) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise UsageError("git is not installed", hint="install git, then run this again") from None
    if done.returncode != 0:
        raise UsageError(
            f"`git {' '.join(args[:2])}` failed: {done.stderr.strip()}",
            hint="run this inside a git repository",
        )
    return done.stdout.strip()
