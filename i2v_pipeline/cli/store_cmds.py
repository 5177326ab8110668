"""`i2v push` and `i2v pull`: the manifest's store (`store:`) and the output folder, both ways.

push uploads every recorded video the store lacks and flags it in the lock; pull fetches every
recorded video missing locally into its output path, checked against the lock's sha256. Both
hold the run lock (a run writes the same files and journal) and compact the lock when they
recorded anything. Exit 1 when a file could not be moved, each named with its object."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import click

from ..errors import UsageError
from ..model import Action
from ..run import preflight
from ..run.recorder import Recorder
from ..run.sharing import Record, Transfer, pull, push
from ..run.store import Store
from ..spec.campaign import Campaign, load_campaign
from ..state.journal import Journal, journal_path
from ..state.lock import load_state
from ..state.plan import PlanOptions, output_prefix
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
from .logs import output_options, warn

FETCHED = (Action.DOWNLOAD, Action.STORE, Action.RELOCATE)
"""Plan actions whose recorded video pull fetches from the store."""


def store_of(campaign: Campaign) -> Store:
    """The manifest's store; a usage error naming the fix when it has none."""
    if campaign.store is None:
        raise UsageError(
            f"{campaign.manifest.path} has no `store:`",
            hint="add e.g. `store: {url: s3://BUCKET/PREFIX}` to the manifest (docs/store.md)",
        )
    return Store.from_settings(campaign.store)


def _recorded(planned: Planned, work: Callable[[Record], Awaitable[Transfer]]) -> Transfer:
    """Run work with a journal for its records; compact the lock if it recorded anything."""
    journal = Journal(journal_path(planned.campaign.lock_path))
    recorder = Recorder(journal, planned.entries)
    try:
        return anyio.run(work, recorder.record)
    finally:
        journal.close()
        if journal.path.exists():
            compact_lock(planned)


def _report(verb: str, store: Store, result: Transfer, as_json: bool, quiet: bool) -> None:
    problems = sorted(result.problems, key=lambda p: p["path"])
    if as_json:
        print_json(
            {
                "store": store.display,
                verb: sorted(result.done),
                "already": len(result.already),
                "problems": problems,
            }
        )
    else:
        for p in problems:
            click.secho(f"error: {p['path']} (job {p['job']}): {p['error']}", fg="red", err=True)
        if not quiet:
            click.echo(
                f"{verb.capitalize()}: {plural(len(result.done), 'video')} "
                f"{'to' if verb == 'pushed' else 'from'} {store.display}, "
                f"{len(result.already)} already there, {len(problems)} not {verb}.",
                err=True,
            )
    if problems:
        raise click.exceptions.Exit(1)


@click.command("push")
@click.argument("manifest", type=click.Path(dir_okay=False))
@json_option("Print what was uploaded as JSON on stdout.")
@output_options()
def push_cmd(manifest: str, as_json: bool, quiet: bool) -> None:
    """Upload every video the lock records that the manifest's store lacks."""
    campaign = load_campaign(manifest)
    store = store_of(campaign)
    with RunLock(campaign.lock_path, command_line()):
        entries = load_state(campaign.lock_path, warn)
        base = campaign.manifest.base_dir
        planned = Planned(campaign, entries, [], output_prefix(base, campaign.output_dir))

        def work(record: Record) -> Awaitable[Transfer]:
            return push(store, entries, base, campaign.output_dir, record)

        result = _recorded(planned, work)
    _report("pushed", store, result, as_json, quiet)


@click.command("pull")
@click.argument("manifest", type=click.Path(dir_okay=False))
@json_option("Print what was fetched as JSON on stdout.")
@output_options()
def pull_cmd(manifest: str, as_json: bool, quiet: bool) -> None:
    """Fetch every recorded video missing locally from the manifest's store, hash-checked."""
    campaign = load_campaign(manifest)
    store = store_of(campaign)
    with RunLock(campaign.lock_path, command_line()):
        planned = plan_campaign(campaign, PlanOptions(), Selection())
        items = [i for i in planned.items if i.action in FETCHED]
        preflight.require(planned.campaign, items, planned.prefix, planned.entries)
        base = campaign.manifest.base_dir

        def work(record: Record) -> Awaitable[Transfer]:
            return pull(store, items, base, planned.prefix, record)

        result = _recorded(planned, work)
    _report("pulled", store, result, as_json, quiet)
