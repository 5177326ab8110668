"""`i2v prune`: forget what the manifest no longer asks for, remotely and locally, once asked."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import click

from ..errors import UsageError
from ..model import Action, FileRecord, LockEntry
from ..run.download import holds
from ..spec.audio import output_paths as audio_paths
from ..state.journal import Journal, journal_path, record
from ..state.lock import owned_file
from ..state.plan import PlanOptions
from ..state.runlock import RunLock
from ..text import plural
from .common import (
    Planned,
    Selection,
    command_line,
    compact_lock,
    json_option,
    plan_campaign,
    print_json,
)
from .embedded import provider_for
from .logs import note, output_options


@click.command("prune")
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option(
    "-y",
    "--yes",
    is_flag=True,
    envvar="I2V_YES",
    show_envvar=True,
    help="Do not ask for confirmation.",
)
@click.option("--keep-remote", is_flag=True, help="Only forget and delete local files.")
@click.option("--keep-files", is_flag=True, help="Leave local files in place.")
@json_option("Print {pruned: [ids], refused: {id: why}} on stdout.")
@output_options()
def prune_cmd(manifest: str, yes: bool, keep_remote: bool, keep_files: bool, as_json: bool) -> None:
    """Delete orphans: lock entries no longer in the manifest, their remote videos (delbyids)
    and their local files. Asks first."""
    from ..spec.campaign import load_campaign

    campaign = load_campaign(manifest)
    with RunLock(campaign.lock_path, command_line()):
        planned = plan_campaign(campaign, PlanOptions(), Selection())
        orphans = [i.entry for i in planned.items if i.action is Action.ORPHAN and i.entry]
        if not orphans:
            note("Nothing to prune.")
            if as_json:
                print_json({"pruned": [], "refused": {}})
            return
        for e in orphans:
            click.echo(
                f"- {e.job_id} ({e.fingerprint[:12]}): "
                f"{plural(len(e.remote_ids), 'remote video')}, "
                f"{plural(sum(1 for f in e.files if f), 'file')}",
                err=True,
            )
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError("prune deletes videos: confirm with --yes when not on a terminal")
            click.confirm(f"Delete {plural(len(orphans), 'orphaned job')}?", abort=True, err=True)
        refused = {} if keep_remote else anyio.run(_delete_remote, planned, orphans)
        pruned = _forget(planned, orphans, refused, keep_files)
        compact_lock(planned)
    if as_json:
        print_json({"pruned": pruned, "refused": refused})
    else:
        note(
            f"Pruned {plural(len(pruned), 'job')}."
            + (f" {plural(len(refused), 'remote video')} refused: rerun later." if refused else "")
        )
    if refused:
        raise click.exceptions.Exit(1)


async def _delete_remote(planned: Planned, orphans: list[LockEntry]) -> dict[str, str]:
    campaign = planned.campaign
    ids = [rid for e in orphans for rid in e.remote_ids]
    if not ids:
        return {}
    async with provider_for(campaign) as provider:
        refused: dict[str, str] = {}
        for start in range(0, len(ids), 100):
            _, bad = await provider.delete(ids[start : start + 100])
            refused.update(bad)
        return refused


def _forget(
    planned: Planned, orphans: list[LockEntry], refused: dict[str, str], keep_files: bool
) -> list[str]:
    """Journal a `forget` for each orphan whose remote videos are gone; delete its files unless
    a live job writes the same path, or the file is not provably the one bought (_deletable)."""
    base = planned.campaign.manifest.base_dir
    prefix = planned.prefix
    live = {
        f"{prefix}/{p}" if prefix != "." else p
        for s in planned.campaign.specs
        for p in [*s.output_paths(), *audio_paths(s)]
    }
    journal = Journal(journal_path(planned.campaign.lock_path))
    pruned = []
    try:
        for e in orphans:
            if any(rid in refused for rid in e.remote_ids):
                continue
            journal.append(record("forget", e.fingerprint), durable=True)
            planned.entries.pop(e.fingerprint, None)
            pruned.append(e.job_id)
            if keep_files:
                continue
            for f in e.files:
                if f is not None and f.path not in live:
                    _delete_owned(base / prefix, base, f)
    finally:
        journal.close()
    return pruned


def _delete_owned(output_dir: Path, base: Path, f: FileRecord) -> None:
    """Delete the file only if it is a regular file inside the output folder holding what the
    lock records: a lock is data (from a pull request, say) and must not aim prune elsewhere."""
    path = base / f.path
    if not os.path.lexists(path):
        return
    if owned_file(output_dir, base, f.path) is None:
        why = "it is not a regular file inside the output folder"
    elif not holds(path, f.bytes, f.sha256):
        why = "its content is not the video the lock records"
    else:
        path.unlink(missing_ok=True)
        return
    click.echo(f"kept {f.path}: {why}", err=True)
