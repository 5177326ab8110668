"""`i2v run`: plan under the run lock, execute, always compact the lock, exit by outcome."""

from __future__ import annotations

import time

import click

from ..errors import Interrupted
from ..model import Action, RunStats
from ..run import preflight
from ..spec.campaign import check_reachable_images
from ..state.plan import PlanOptions
from ..state.runlock import RunLock
from .common import (
    Planned,
    Selection,
    command_line,
    compact_lock,
    plan_campaign,
    print_json,
    selection_options,
    terminal_question,
    unknown_advice,
)
from .inspect import summary_line
from .logs import output_options
from .progress import Progress


@click.command("run")
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option("--retry-failed", is_flag=True, help="Create failed jobs again.")
@click.option(
    "--resubmit-unknown",
    is_flag=True,
    help="Send creates whose earlier answer was lost (may pay twice).",
)
@click.option("--max-credits", type=click.IntRange(min=0), help="Stop submitting before N credits.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("-y", "--yes", is_flag=True, help="Buy without asking (a real endpoint asks).")
@click.option(
    "--verify", is_flag=True, help="Hash every held file instead of trusting size and mtime."
)
@selection_options
@output_options()
def run_cmd(
    manifest: str,
    retry_failed: bool,
    resubmit_unknown: bool,
    max_credits: int | None,
    as_json: bool,
    yes: bool,
    quiet: bool,
    verify: bool,
    only: str | None,
    patterns: tuple[str, ...],
    shard: str | None,
    limit: int | None,
) -> None:
    """Run the plan: create, poll, download, verify, and record everything in the lock."""
    from ..spec.campaign import load_campaign

    campaign = load_campaign(manifest)
    with RunLock(campaign.lock_path, command_line()):
        planned = plan_campaign(
            campaign,
            PlanOptions(retry_failed, resubmit_unknown, verify),
            Selection(only, patterns, shard, limit),
        )
        work = [i for i in planned.items if i.action.is_work]
        if not work:
            _finish(planned, RunStats(), 0.0, as_json, quiet, interrupted=False, problems=[])
            return
        if not quiet and not as_json:
            click.echo(summary_line(planned.items), err=True)
        check_reachable_images(
            planned.campaign, work, emulator=planned.campaign.provider.is_emulator
        )
        preflight.require(planned.campaign, work, planned.prefix, planned.entries)
        ask = terminal_question()
        preflight.confirm_spend(planned.campaign, work, yes=yes, max_credits=max_credits, ask=ask)
        from .run_exec import execute_plan  # the HTTP stack loads only when there is work

        started = time.monotonic()
        stats, interrupted = RunStats(), False
        progress = Progress(len(work), quiet=quiet or as_json)
        try:
            with progress:
                stats, interrupted = execute_plan(planned, work, progress, max_credits)
        finally:
            compact_lock(planned)
        seconds = time.monotonic() - started
        _finish(planned, stats, seconds, as_json, quiet, interrupted, progress.problems)


def _finish(
    planned: Planned,
    stats: RunStats,
    seconds: float,
    as_json: bool,
    quiet: bool,
    interrupted: bool,
    problems: list[dict[str, str]],
) -> None:
    fresh = sum(i.action is Action.FRESH for i in planned.items)
    # unknowns left from earlier runs are unfinished work too, not "fresh" or "nothing to do"
    unknown = stats.unknown + sum(i.action is Action.UNKNOWN for i in planned.items)
    manifest = str(planned.campaign.manifest.path)
    outcome = _outcome(stats, interrupted, unknown)
    summary = {
        "outcome": outcome,
        "done": stats.done,
        "failed": stats.failed,
        "unknown": unknown,
        "skipped": stats.skipped,
        "timed_out": stats.timed_out,
        "fresh": fresh,
        "created": stats.created,
        "credits": stats.credits,
        "requests": stats.requests,
        "seconds": round(seconds, 2),
        "interrupted": interrupted,
        "fatal": stats.fatal.message if stats.fatal else None,
        "next": unknown_advice(unknown, manifest) if unknown else None,
        "lock": str(planned.campaign.lock_path),
        "problems": problems,
    }
    if as_json:
        print_json(summary)
    elif not quiet:
        lock = planned.campaign.lock_path
        if outcome == "nothing to do":
            click.echo(f"Nothing to do: {fresh} jobs fresh. ({lock})", err=True)
        else:
            head = "Stopped" if outcome in ("fatal", "interrupted") else "Finished"
            click.echo(
                f"{head}: {stats.done} done, {stats.failed} failed, {unknown} unknown, "
                f"{stats.skipped} not sent, {fresh} already fresh; {stats.credits} credits; "
                f"{seconds:.1f} s. Lock: {lock}",
                err=True,
            )
        if unknown:
            click.echo(unknown_advice(unknown, manifest), err=True)
    if interrupted:
        raise Interrupted(
            "interrupted: stopped submitting; the lock records everything so far",
            hint=f"resume with: i2v run {manifest}",
        )
    if stats.fatal:
        raise stats.fatal
    if stats.failed or unknown or stats.timed_out:
        raise click.exceptions.Exit(1)


def _outcome(stats: RunStats, interrupted: bool, unknown: int) -> str:
    """One word for scripts: fatal, interrupted, unfinished, partial, done or nothing to do."""
    if stats.fatal:
        return "fatal"
    if interrupted:
        return "interrupted"
    if stats.failed or stats.timed_out or unknown:
        return "unfinished"
    if stats.skipped:
        return "partial"  # --max-credits: stopped submitting as asked
    if stats.done or stats.created:
        return "done"
    return "nothing to do"
