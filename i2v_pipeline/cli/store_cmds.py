"""`i2v push` and `i2v pull`: the manifest's store (`store:`) and the output folder, both ways.

push uploads every recorded video the store lacks and flags it in the lock; pull fetches every
recorded video missing locally into its output path, checked against the lock's sha256. Both
hold the run lock (a run writes the same files and journal) and compact the lock when they
recorded anything that changes it. Exit 1 when a file could not be moved, each named with its
object; exit 2 when the store cannot be reached. Ctrl-C or SIGTERM stops them cleanly (exit 130):
no temp file is left behind and what was done is in the lock."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable

import anyio
import click

from ..errors import Interrupted, UsageError
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
PRESENT = (Action.FRESH,)
"""Plan actions whose files are all in place: pull counts them as already there."""


def store_of(campaign: Campaign) -> Store:
    """The manifest's store; a usage error naming the fix when it has none."""
    if campaign.store is None:
        raise UsageError(
            f"{campaign.manifest.path} has no `store:`",
            hint="add e.g. `store: {url: s3://BUCKET/PREFIX}` to the manifest (docs/store.md)",
        )
    return Store.from_settings(campaign.store)


def _recorded(planned: Planned, work: Callable[[Record], Awaitable[Transfer]]) -> Transfer:
    """Run work with a journal for its records, stopped cleanly by Ctrl-C or SIGTERM; fold
    the journal into the lock only if the lock's content changes (or a journal was left
    before): otherwise the lock stays byte-identical, header included."""
    journal = Journal(journal_path(planned.campaign.lock_path))
    leftover = journal.path.exists()
    before = dict(planned.entries)
    recorder = Recorder(journal, planned.entries)
    try:
        result, stopped = anyio.run(_stoppable, work, recorder.record)
    finally:
        journal.close()
        if leftover or (journal.path.exists() and planned.entries != before):
            compact_lock(planned)
        else:
            journal.path.unlink(missing_ok=True)  # records that changed nothing
    if stopped:
        raise Interrupted("stopped; what was done is recorded in the lock")
    return result


async def _stoppable(
    work: Callable[[Record], Awaitable[Transfer]], record: Record
) -> tuple[Transfer, bool]:
    """(work's result, False), or (an empty result, True) once Ctrl-C or SIGTERM cancelled it:
    cancelled fetches stop and remove their temp files."""
    result, stopped = Transfer(), False
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            nonlocal stopped
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    stopped = True
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(watch)
        result = await work(record)
        tg.cancel_scope.cancel()
    return result, stopped


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
        raise click.exceptions.Exit(result.exit_code or 1)


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
@click.option(
    "--force",
    is_flag=True,
    help="Replace local files that differ from the lock with the store's copy.",
)
@output_options()
def pull_cmd(manifest: str, as_json: bool, force: bool, quiet: bool) -> None:
    """Fetch every recorded video missing locally from the manifest's store, hash-checked.
    A local file that differs from the lock is left alone (and named) unless --force."""
    campaign = load_campaign(manifest)
    store = store_of(campaign)
    with RunLock(campaign.lock_path, command_line()):
        planned = plan_campaign(campaign, PlanOptions(), Selection())
        items = [i for i in planned.items if i.action in FETCHED]
        preflight.require(planned.campaign, items, planned.prefix, planned.entries)
        base = campaign.manifest.base_dir

        def work(record: Record) -> Awaitable[Transfer]:
            return pull(store, items, base, planned.prefix, record, force=force)

        result = _recorded(planned, work)
    for item in planned.items:
        if item.action in PRESENT and item.spec is not None:
            rel = [
                p if planned.prefix == "." else f"{planned.prefix}/{p}"
                for p in item.spec.output_paths()
            ]
            result.already.extend(rel)
    _report("pulled", store, result, as_json, quiet)
