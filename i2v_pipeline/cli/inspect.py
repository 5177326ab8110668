"""Commands that look without touching the API: validate, expand, plan, status, schema."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import click

from ..errors import I2VError, LockError
from ..model import Action, PlanItem
from ..spec import manifest as manifest_mod
from ..spec import validation as schemas
from ..spec.campaign import check_images_reachable, load_campaign
from ..state.lock import load_state, read_lock
from ..state.plan import PlanOptions, mismatches, plan_to_json, summarize
from ..text import plural, printable
from .common import (
    Selection,
    json_option,
    mask_secrets,
    plan_campaign,
    print_json,
    render_error,
    selection_options,
    unknown_advice,
)
from .logs import output_options, warn

PHRASES = {
    Action.CREATE: "to create",
    Action.AUDIO: "audio to add",
    Action.REPLACE: "to replace",
    Action.RETRY: "to retry",
    Action.RESUME: "to resume",
    Action.DOWNLOAD: "to download",
    Action.STORE: "to fetch from the store",
    Action.RELOCATE: "to relocate",
    Action.FRESH: "fresh",
    Action.FAILED: "failed",
    Action.UNKNOWN: "unknown",
    Action.ORPHAN: "orphaned",
}
COLORS = {
    Action.CREATE: "green",
    Action.AUDIO: "green",
    Action.REPLACE: "yellow",
    Action.RETRY: "yellow",
    Action.RESUME: "cyan",
    Action.DOWNLOAD: "cyan",
    Action.STORE: "cyan",
    Action.RELOCATE: "cyan",
    Action.FRESH: None,
    Action.FAILED: "red",
    Action.UNKNOWN: "magenta",
    Action.ORPHAN: "bright_black",
}


def summary_line(items: Sequence[PlanItem], calibrated: frozenset[str] = frozenset()) -> str:
    """`Plan: 2 to create, 1 fresh. ≈ 40 credits`: ≈ marks the price table's estimate; an
    estimate from the lock's own charges says so."""
    counts = summarize(items)
    parts = [f"{counts[a.label]} {PHRASES[a]}" for a in Action if counts[a.label]]
    credits = sum(i.credits for i in items)
    text = ", ".join(parts) if parts else "no jobs"
    if not credits:
        return f"Plan: {text}."
    creates = [i for i in items if i.credits]
    from_lock = sum(i.fingerprint in calibrated for i in creates)
    how = ""
    if from_lock:
        some = f" for {from_lock} of {len(creates)}" if from_lock < len(creates) else ""
        how = f" (calibrated from the lock's charges{some})"
    return f"Plan: {text}. ≈ {credits:,} credits{how}"


def _head(action: Action, color: str | None) -> tuple[str, str]:
    """The start of a plan line (colour code, symbol, label) and the colour's reset code."""
    on, off = click.style("\0", fg=color).split("\0") if color else ("", "")
    return f"{on}{action.value:>3} {action.label:<8} ", off


_HEADS = {a: _head(a, COLORS[a]) for a in Action}
_KEPT = _head(Action.FRESH, "yellow")
"""A fresh job kept despite a mismatch with its request."""
_CHUNK = 2000
"""Lines written at once: one echo a line cost a 100,000-line plan 0.8 s (click strips the
colour per call when stdout is not a terminal), one echo for all would hold the whole text."""


def print_plan(
    items: Sequence[PlanItem], *, verbose: bool, calibrated: frozenset[str] = frozenset()
) -> None:
    """The plan, one coloured line per job (fresh ones only if verbose or kept with a mismatch)."""
    width = max((len(i.job_id) for i in items), default=0)
    lines: list[str] = []
    for item in items:
        head, off = _HEADS[item.action]
        if item.action is Action.FRESH and mismatches(item.entry):
            head, off = _KEPT  # a fresh job kept despite a mismatch is still worth a line
        elif item.action is Action.FRESH and not verbose:
            continue
        cost = f"  ≈{item.credits} credits" if item.credits else ""
        # a job's text (its prompt, in a replace's changes) is the manifest's: shown escaped
        lines.append(f"{head}{printable(f'{item.job_id:<{width}}  {item.reason}')}{cost}{off}")
        if len(lines) == _CHUNK:
            click.echo(mask_secrets("\n".join(lines)))
            lines.clear()
    lines.append(summary_line(items, calibrated))
    click.echo(mask_secrets("\n".join(lines)))


@click.command("plan")
@click.argument("manifest", type=click.Path(dir_okay=False))
@json_option("Print the plan as JSON on stdout.")
@click.option(
    "--check",
    is_flag=True,
    envvar="I2V_CHECK",
    show_envvar=True,
    help="Exit 1 if anything would run or is unknown (for CI).",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    envvar="I2V_RETRY_FAILED",
    show_envvar=True,
    help="Plan failed jobs to be created again.",
)
@click.option("--resubmit-unknown", is_flag=True, help="Plan unknown creates to be sent again.")
@click.option(
    "--verify",
    is_flag=True,
    envvar="I2V_VERIFY",
    show_envvar=True,
    help="Hash every held file instead of trusting size and mtime.",
)
@click.option(
    "--out",
    metavar="PLAN",
    type=click.Path(dir_okay=False),
    help="Also save the plan (JSON) for `i2v run M --plan PLAN`, which does exactly it.",
)
@selection_options
@output_options("Also list fresh jobs; show debug records on stderr (as I2V_LOG=debug).")
def plan_cmd(
    manifest: str,
    as_json: bool,
    out: str | None,
    check: bool,
    retry_failed: bool,
    resubmit_unknown: bool,
    verbose: bool,
    verify: bool,
    only: str | None,
    patterns: tuple[str, ...],
    shard: str | None,
    limit: int | None,
) -> int:
    """Show what `i2v run` would do and what it would cost. Talks to no API, except to read
    the account balance on a real endpoint (a warning when the plan costs more)."""
    from .lifecycle import after_plan

    options = PlanOptions(retry_failed, resubmit_unknown, verify)
    selection = Selection(only, patterns, shard, limit)
    planned = plan_campaign(load_campaign(manifest), options, selection)
    doc = plan_to_json(planned.items, manifest) if as_json else None
    if doc is None:
        print_plan(planned.items, verbose=verbose, calibrated=planned.calibrated)
    after_plan(planned, out=out, doc=doc, options=options, selection=selection)
    if doc is not None:
        print_json(doc)
    unknown = sum(i.action is Action.UNKNOWN for i in planned.items)
    if unknown:
        click.echo(unknown_advice(unknown, manifest), err=True)
    if check and (unknown or any(i.action.is_work for i in planned.items)):
        raise click.exceptions.Exit(1)  # an unknown is unfinished work, even if not runnable
    return 0


@click.command("validate")
@click.argument("manifests", nargs=-1, required=True, type=click.Path(dir_okay=False))
@output_options()
def validate_cmd(manifests: tuple[str, ...]) -> None:
    """Check manifests (YAML, schema, templates, images, models) and lockfiles (`*.lock.yaml`,
    against the lock schema). Exit 2 if any is bad."""
    bad = 0
    for path in manifests:
        try:
            what = _validate_one(Path(path))
        except I2VError as exc:
            bad += 1
            click.secho(f"✗ {path}", fg="red", err=True)
            click.echo(render_error(exc), err=True)
            continue
        click.echo(f"✓ {path}: {what}")
    if bad:
        raise click.exceptions.Exit(2)


def _validate_one(path: Path) -> str:
    if path.name.endswith(".lock.yaml"):
        entries = read_lock(path)
        doc, _ = manifest_mod.parse_yaml(path.read_text(encoding="utf-8"), str(path))
        schemas.validate("lock", doc, what=str(path), error_class=LockError)
        return f"lockfile, {plural(len(entries), 'job')}"
    campaign = load_campaign(path)
    check_images_reachable(campaign, campaign.specs)  # what run would refuse, said now
    load_state(campaign.lock_path, warn)
    return plural(len(campaign.specs), "job")


@click.command("expand")
@click.argument("manifest", type=click.Path(dir_okay=False))
@json_option("Print job specs as a JSON array.")
@output_options()
def expand_cmd(manifest: str, as_json: bool) -> None:
    """Print every job the manifest expands to, fully rendered."""
    campaign = load_campaign(manifest)
    if as_json:
        print_json([s.to_json() for s in campaign.specs])
        return
    for spec in campaign.specs:
        req = spec.request
        line = (
            f"{spec.id}  {req.get('model_name')} {req.get('resolution', '-')} "
            f"{req.get('video_length')}s x{spec.variants} -> {spec.output}"
        )
        click.echo(mask_secrets(printable(line)))
        click.echo(mask_secrets(f"    {printable(req['prompt'])}"))


@click.command("schema")
@click.argument("name", type=click.Choice(list(schemas.SCHEMA_NAMES)), default="manifest")
@output_options()
def schema_cmd(name: str) -> None:
    """Print a JSON Schema: manifest (default), job, lock or plan (a saved plan file)."""
    click.echo(json.dumps(schemas.load_schema(name), indent=2))
