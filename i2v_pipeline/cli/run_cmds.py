"""`i2v run`: plan under the run lock, execute, always compact the lock, exit by outcome."""

from __future__ import annotations

import time
from collections import Counter
from typing import NamedTuple

import click

from ..errors import Interrupted
from ..model import Action, RunStats
from ..spec.budget import BudgetExceeded
from ..spec.campaign import check_reachable_images
from ..state.plan import PlanOptions, disk_check, make_plan
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
    selection_options,
    terminal_question,
    unknown_advice,
)
from .inspect import summary_line
from .logs import output_options
from .resume import NOTHING_SENT, Again, chosen, nothing_sent, term_is_ctrl_c
from .webhook_cmds import parse_listen, webhook_setup


@click.command("run")
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option(
    "--retry-failed",
    is_flag=True,
    envvar="I2V_RETRY_FAILED",
    show_envvar=True,
    help="Create failed jobs again.",
)
@click.option(
    "--resubmit-unknown",
    is_flag=True,
    help="Send creates whose earlier answer was lost (may pay twice).",
)
@click.option(
    "--max-credits",
    type=click.IntRange(min=0),
    envvar="I2V_MAX_CREDITS",
    show_envvar=True,
    help="Stop submitting before N credits.",
)
@json_option("Print a JSON summary on stdout.")
@click.option(
    "-y",
    "--yes",
    is_flag=True,
    envvar="I2V_YES",
    show_envvar=True,
    help="Buy without asking (a real endpoint asks).",
)
@click.option(
    "--verify",
    is_flag=True,
    envvar="I2V_VERIFY",
    show_envvar=True,
    help="Hash every held file instead of trusting size and mtime.",
)
@click.option(
    "--plan",
    "plan_file",
    metavar="PLAN",
    type=click.Path(dir_okay=False),
    help="Do exactly the work of a saved plan (`i2v plan M --out PLAN`); refuse it if stale.",
)
@click.option(
    "--webhook-listen",
    metavar="HOST:PORT",
    envvar="I2V_WEBHOOK_LISTEN",
    show_envvar=True,
    callback=parse_listen,
    help="Take AKOOL's webhooks here during the run; polls become a slow safety net "
    "(provider.webhook_url: the public URL that reaches it).",
)
@selection_options
@output_options()
def run_cmd(
    manifest: str,
    plan_file: str | None,
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
    webhook_listen: tuple[str, int] | None,
) -> None:
    """Run the plan: create, poll, download, verify, and record everything in the lock."""
    from ..spec.campaign import load_campaign
    from . import lifecycle

    campaign = load_campaign(manifest)
    options = PlanOptions(retry_failed, resubmit_unknown, verify)
    selection = Selection(only, patterns, shard, limit)
    saved = None
    if plan_file is not None:
        flags = {"--retry-failed": retry_failed, "--resubmit-unknown": resubmit_unknown}
        flags |= {"--verify": verify, "--only": bool(only), "--select": bool(patterns)}
        flags |= {"--shard": bool(shard), "--limit": limit is not None}
        saved = lifecycle.read_saved(plan_file, flags=flags, env=lifecycle.from_env())
        options, selection = saved.options, Selection()
    again = Again(manifest, chosen(selection, saved), options.retry_failed, max_credits, plan_file)
    with term_is_ctrl_c(), RunLock(campaign.lock_path, command_line()):
        with nothing_sent(again):  # Ctrl-C until the first create: nothing was bought
            planned = plan_campaign(campaign, options, selection)
            if saved is not None:  # under the run lock: nothing changes the lock after the check
                planned = lifecycle.apply_saved(planned, saved)
            todo = [i for i in planned.items if i.action.is_work]
            try:
                work, over_budget = lifecycle.within_budget(planned, todo)
            except BudgetExceeded as exc:  # nothing fits: --json still says why on stdout
                if as_json:
                    problem = {"id": "", "event": "budget", "detail": exc.message}
                    stats = RunStats(skipped=len(todo))
                    _finish(planned, stats, 0.0, True, quiet, False, [problem], again, budget=True)
                raise
            if not work:
                _finish(planned, RunStats(), 0.0, as_json, quiet, False, [], again)
                return
            # only now: a no-op rerun (all fresh) need not load the checks, the store, or rich
            from ..run import preflight
            from ..run.store import open_store
            from .progress import Progress

            if not quiet and not as_json:
                click.echo(summary_line(planned.items, planned.calibrated), err=True)
            hook = webhook_setup(planned.campaign, webhook_listen) if webhook_listen else None
            check_reachable_images(
                planned.campaign, work, emulator=planned.campaign.provider.is_emulator
            )
            lifecycle.require_published(planned.campaign, work)
            preflight.require(planned.campaign, work, planned.prefix, planned.entries)
            open_store(planned.campaign)  # a store that cannot open (no s3fs) stops before buying
            ask = terminal_question()
            # a saved plan was reviewed: applying it is the consent (terraform apply PLAN)
            preflight.confirm_spend(
                planned.campaign,
                work,
                yes=yes or saved is not None,
                max_credits=max_credits,
                ask=ask,
            )
            from .run_exec import execute_plan  # the HTTP stack loads only when there is work

        started = time.monotonic()
        stats, interrupted = RunStats(), False
        progress = Progress(len(work), quiet=quiet or as_json)
        try:
            with progress:
                stats, interrupted = execute_plan(planned, work, progress, max_credits, hook)
        finally:
            compact_lock(planned)
        seconds = time.monotonic() - started
        if over_budget is None:
            _finish(planned, stats, seconds, as_json, quiet, interrupted, progress.problems, again)
            return
        held = sum(i.action.is_work for i in planned.items) - len(work)
        stats.skipped += held  # not sent: the budget held them
        problems = [
            *progress.problems,
            {"id": "", "event": "budget", "detail": over_budget.message},
        ]
        try:
            _finish(
                planned, stats, seconds, as_json, quiet, interrupted, problems, again, budget=True
            )
        except click.exceptions.Exit:
            raise over_budget from None  # failures too, but the budget is what to act on
        raise over_budget


def _finish(
    planned: Planned,
    stats: RunStats,
    seconds: float,
    as_json: bool,
    quiet: bool,
    interrupted: bool,
    problems: list[dict[str, str]],
    again: Again,
    *,
    budget: bool = False,
) -> None:
    """Print the summary (text, or JSON); exit by outcome. budget: budget.credits held back
    creates (the caller raises BudgetExceeded, exit 3, after this)."""
    fresh = sum(i.action is Action.FRESH for i in planned.items)
    # unknowns left from earlier runs are unfinished work too, not "fresh" or "nothing to do"
    unknown = stats.unknown + sum(i.action is Action.UNKNOWN for i in planned.items)
    manifest = str(planned.campaign.manifest.path)
    outcome = _outcome(stats, interrupted, unknown)
    if budget and outcome in ("partial", "done", "nothing to do"):
        outcome = "budget"  # what stopped it is the budget, not --max-credits
    left = Left(stats.skipped, 0, 0, unknown)
    if outcome in ("fatal", "interrupted"):  # the counters only know what was started
        left = _left(planned)
        unknown = left.unknown
    remaining = left.not_sent + left.running + left.to_fetch
    resume = again.command(stats, remaining) if remaining else None
    summary = {
        "outcome": outcome,
        "done": stats.done,
        "failed": stats.failed,
        "unknown": unknown,
        "skipped": left.not_sent,
        "running": left.running,
        "to_download": left.to_fetch,
        "timed_out": stats.timed_out,
        "fresh": fresh,
        "created": stats.created,
        "credits": stats.credits,
        "requests": stats.requests,
        "stored": stats.stored,
        "uploaded": stats.uploaded,
        "seconds": round(seconds, 2),
        "interrupted": interrupted,
        "fatal": stats.fatal.message if stats.fatal else None,
        "next": (
            f"raise budget.credits in {manifest}, then: {again.command(stats, remaining)}"
            if outcome == "budget"
            else (resume if outcome in ("fatal", "interrupted", "partial") else None)
        )
        or (unknown_advice(unknown, manifest, again.narrowing()) if unknown else None),
        "lock": str(planned.campaign.lock_path),
        "problems": problems,
    }
    if as_json:
        print_json(summary)
    elif not quiet:
        _print_summary(planned, stats, left, fresh, seconds, outcome, resume)
        if unknown:
            click.echo(unknown_advice(unknown, manifest, again.narrowing()), err=True)
    if interrupted:
        if not (stats.requests or stats.created or stats.unknown):  # no create left
            raise Interrupted(NOTHING_SENT, hint=f"run it again: {again.command()}")
        raise Interrupted(
            "interrupted: stopped submitting; the lock records everything so far",
            hint=f"resume with: {resume or again.command(stats, remaining)}",
        )
    if stats.fatal:
        raise stats.fatal
    if stats.failed or unknown or stats.timed_out:
        raise click.exceptions.Exit(1)


class Left(NamedTuple):
    """What a stopped run leaves to do: creates not sent, jobs still running remotely,
    finished videos not yet held, and creates with no answer recorded."""

    not_sent: int
    running: int
    to_fetch: int
    unknown: int


def _left(planned: Planned) -> Left:
    """Plan the selected jobs again against the entries the run kept current: what `plan`
    would show now, so the summary and the next plan agree."""
    base = planned.campaign.manifest.base_dir
    items = make_plan(
        [i.spec for i in planned.items if i.spec is not None],
        planned.entries,
        prefix=planned.prefix,
        check=disk_check(base),
        now=time.time(),
    )
    count = Counter(i.action for i in items)
    return Left(
        count[Action.CREATE] + count[Action.RETRY] + count[Action.AUDIO],
        count[Action.RESUME],
        count[Action.DOWNLOAD] + count[Action.RELOCATE] + count[Action.STORE],
        count[Action.UNKNOWN],
    )


def _print_summary(
    planned: Planned,
    stats: RunStats,
    left: Left,
    fresh: int,
    seconds: float,
    outcome: str,
    resume: str | None,
) -> None:
    lock = planned.campaign.lock_path
    if outcome == "nothing to do":
        click.echo(f"Nothing to do: {plural(fresh, 'job')} fresh. ({lock})", err=True)
        return
    head = "Stopped" if outcome in ("fatal", "interrupted") else "Finished"
    running = f"{left.running:,} still running remotely, " if left.running else ""
    fetch = f"{left.to_fetch:,} to download, " if left.to_fetch else ""
    click.echo(
        f"{head}: {stats.done:,} done, {stats.failed:,} failed, {left.unknown:,} unknown, "
        f"{left.not_sent:,} not sent, {running}{fetch}{fresh:,} already fresh; "
        f"{stats.credits:,} credits; {seconds:.1f} s. Lock: {lock}",
        err=True,
    )
    if outcome in ("fatal", "partial") and resume:  # an interruption's error hints it
        click.echo(f"Continue with: {resume}", err=True)


def _outcome(stats: RunStats, interrupted: bool, unknown: int) -> str:
    """One word for scripts: fatal, interrupted, unfinished, partial, done or nothing to do
    (and `budget`, which _finish sets)."""
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
