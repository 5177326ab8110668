"""A campaign's life around `plan` and `run`: saved plans (`plan --out`, `run --plan`), the
manifest's credit budget, the account balance, and the published-images check.

plan and run call in here at a few points so their own modules stay as they were; the commands
`i2v credits` and `i2v publish-check` live here too.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError, I2VError, UsageError, redact
from ..model import PlanItem
from ..spec.budget import BudgetExceeded, Tally, budget_of, exceeded, tally, within
from ..spec.campaign import Campaign, load_campaign
from ..spec.catalog import Catalog
from ..spec.outputs import input_files, protected_name
from ..state import planfile
from ..state.plan import PlanOptions
from ..text import plural
from .common import Planned, Selection, json_option, print_json
from .logs import note, output_options, warn

log = logging.getLogger("i2v.cli")


def version() -> str:
    from .. import __version__

    return __version__


def sources(campaign: Campaign) -> planfile.Sources:
    """The hashes a saved plan is checked against, as they are now."""
    catalog = Catalog.load(campaign.provider.endpoint)
    models = [dict(m.raw) for m in catalog.models.values()]
    return planfile.sources_of(campaign.manifest.path, campaign.lock_path, (catalog.source, models))


def budget_tally(planned: Planned, items: Sequence[PlanItem] | None = None) -> Tally:
    """The campaign's credits: the lock's charges, in flight, and items' (default: the plan's)."""
    budget = budget_of(planned.campaign.manifest.data)
    chosen = planned.items if items is None else items
    return tally(planned.entries, chosen, budget, planned.calibrated)


# ---------------------------------------------------------------- plan


def after_plan(
    planned: Planned,
    *,
    out: str | None,
    doc: dict[str, Any] | None,
    options: PlanOptions,
    selection: Selection,
) -> None:
    """What `plan` adds to the plan it printed: the budget line (or `budget` in the JSON doc,
    which the caller prints), the plan file, and a warning when the account cannot pay."""
    t = budget_tally(planned)
    if doc is not None:
        doc["budget"] = t.to_json()
    elif t.budget is not None:
        click.secho(t.describe(), fg="red" if t.over else None)
    if t.over:
        warn(
            f"this plan would pass budget.credits {t.budget:,} by {t.over:,} credits; "
            "`i2v run` stops submitting before it"
        )
    if out is not None:
        _write_plan(planned, _plan_target(out, planned), t, options, selection)
    if t.planned and not planned.campaign.provider.is_emulator:
        _warn_if_unaffordable(planned.campaign, t.planned)


def _write_plan(
    planned: Planned, out: Path, t: Tally, options: PlanOptions, selection: Selection
) -> None:
    doc = planfile.build(
        planned.items,
        sources=sources(planned.campaign),
        version=version(),
        options=options,
        selection={
            "only": selection.only,
            "select": list(selection.patterns),
            "shard": selection.shard,
            "limit": selection.limit,
        },
        budget=t.to_json(),
        calibrated=set(planned.calibrated),
    )
    try:
        planfile.write(out, doc)
    except OSError as exc:  # the temporary file beside it could not be made, or renamed
        raise UsageError(
            f"cannot write the plan file {out}: cannot create a file in "
            f"{out.parent} ({exc.strerror or exc})",
            hint="give --out a file in a folder you can write to",
        ) from None
    work = sum(i.action.is_work for i in planned.items)
    manifest = planned.campaign.manifest.path
    note(f"saved the plan ({plural(work, 'job')} with work) to {out}")
    note(f"apply exactly this plan with: i2v run {manifest} --plan {out}")


def _plan_target(out: str, planned: Planned) -> Path:
    """--out's path, refused (exit 2) when empty, a symlink, a folder, or a file of the campaign:
    the manifest, its lock, journal and run lock, any YAML file (the rule outputs follow), a
    file the lock records or the plan will write, or an input image."""
    hint = "give --out a new file name, e.g. --out plan.json"
    if not out.strip():
        raise UsageError("--out needs a file name", hint=hint)
    path = Path(out)
    if path.is_symlink():
        raise UsageError(
            f"--out {out} is a symbolic link: a plan is never written through one", hint=hint
        )
    if path.is_dir():
        raise UsageError(f"--out {out} is a folder", hint=hint)
    real = Path(os.path.realpath(path))
    what = _campaign_file(real, planned) or protected_name(real.name)
    if what:
        raise UsageError(f"--out {out} would overwrite {what}", hint=hint)
    return path


def _campaign_file(real: Path, planned: Planned) -> str | None:
    """What real (a resolved path) is to the campaign, None when it is none of its files."""
    campaign = planned.campaign
    lock = campaign.lock_path
    own = {campaign.manifest.path: "the manifest", lock: "the lockfile"}
    own |= {lock.with_name(f"{lock.name}.{x}"): f"the lock's {x} file" for x in ("journal", "run")}
    for path, what in own.items():
        if real == Path(os.path.realpath(path)):
            return what
    base = campaign.manifest.base_dir
    videos = {base / f.path for e in planned.entries.values() for f in e.files if f is not None}
    videos |= {campaign.output_dir / p for s in campaign.specs for p in s.output_paths()}
    if real in {Path(os.path.realpath(v)) for v in videos}:
        return "a video of this campaign"
    refs = [r for s in campaign.specs for r in (s.image, s.last_frame)]
    if str(real).casefold() in input_files(refs, base):
        return "an input image of this campaign"
    return None


def _warn_if_unaffordable(campaign: Campaign, planned: int) -> None:
    """Warn when the plan costs more than the account holds (a real endpoint only: asking
    costs a request, and the embedded emulator's account is not the one that pays)."""
    import anyio

    from ..run.balance import read_balance

    try:
        balance = anyio.run(read_balance, campaign)
    except ConfigError as exc:  # no credentials here: planning needs none
        log.debug("balance not checked: %s", exc.message)
        return
    except Exception as exc:  # advice only: the plan stands whatever the endpoint does
        reason = exc.message if isinstance(exc, I2VError) else f"{type(exc).__name__}: {exc}"
        warn(f"could not read the account balance: {redact(reason)}")
        return
    if planned > balance:
        warn(
            f"the plan needs ~{planned:,} credits and the account has {balance:,.0f} "
            f"on {campaign.provider.endpoint}: the run would stop when they run out"
        )


# ---------------------------------------------------------------- run


def from_env() -> dict[str, str]:
    """The current command's option flags (as `--name`) set by an environment variable ->
    that variable's name."""
    ctx = click.get_current_context()
    out: dict[str, str] = {}
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name or "")
        if isinstance(param, click.Option) and source is click.core.ParameterSource.ENVIRONMENT:
            out[max(param.opts, key=len)] = str(param.envvar)
    return out


def read_saved(
    path: str, *, flags: Mapping[str, bool], env: Mapping[str, str] | None = None
) -> planfile.SavedPlan:
    """The plan file for `run --plan`, refusing flags that would change what it does. A flag
    set by an environment variable (env: flag -> variable) counts only when it disagrees with
    the plan's recorded options: I2V_VERIFY=1 in a shell must not refuse every plan."""
    env = env or {}
    saved = planfile.read(Path(path))
    recorded = saved.doc["options"]
    clash: list[str] = []
    for name, given in flags.items():
        if not given:
            continue
        var = env.get(name)
        if var is None:
            clash.append(name)
        elif recorded.get(name.removeprefix("--").replace("-", "_")) is not True:
            clash.append(f"{name} (from {var} in the environment)")
    if clash:
        raise UsageError(
            f"--plan applies a saved plan exactly; {', '.join(clash)} cannot change it",
            hint="make a new plan with those flags (i2v plan M --out PLAN ...), or unset the "
            "variable",
        )
    return saved


def apply_saved(planned: Planned, saved: planfile.SavedPlan) -> Planned:
    """The planned run narrowed to exactly the saved plan's work; StalePlanError (exit 2,
    nothing sent) when the manifest, lock or catalog changed, or a job now plans otherwise.
    Call under the run lock, so no other run changes the lock in between."""
    why = planfile.changed_sources(saved, sources(planned.campaign), version())
    if why:
        raise planfile.stale(saved, why)
    return dataclasses.replace(planned, items=planfile.apply(saved, planned.items))


def within_budget(
    planned: Planned, work: list[PlanItem]
) -> tuple[list[PlanItem], BudgetExceeded | None]:
    """(the work that fits the manifest's budget, the error to end the run with or None)."""
    t = budget_tally(planned, work)
    allowed, held = within(work, t.room)
    if not held:
        return work, None
    error = exceeded(t, held)
    if not any(i.action.is_work for i in allowed):
        raise error  # nothing may be done at all: say so before anything starts
    warn(f"budget: {plural(len(held), 'create')} held back; {t.describe()}")
    return allowed, error


def require_published(campaign: Campaign, work: Sequence[PlanItem]) -> None:
    """Refuse (exit 2, nothing bought) when a local image the run would send is not
    published as it is under provider.image_base_url."""
    from .publish_cmds import check_images

    specs = [i.spec for i in work if i.action.submits and i.spec is not None]
    if specs:
        check_images(campaign, specs, raise_on_problem=True)


# ---------------------------------------------------------------- credits


@click.command("credits")
@click.option(
    "--manifest", default=None, help="Whose endpoint's account to ask (default: the emulator)."
)
@json_option("Print {endpoint, credits} as JSON.")
@output_options()
def credits_cmd(manifest: str | None, as_json: bool) -> None:
    """The account's credit balance (AKOOL's quota endpoint)."""
    import anyio

    from ..run.preflight import endpoint_label
    from .catalog_cmds import _default_manifest
    from .embedded import provider_for

    campaign = load_campaign(manifest or _default_manifest())

    async def ask() -> float:
        async with provider_for(campaign) as provider:
            return await provider.credit()

    balance = anyio.run(ask)
    where = campaign.provider.endpoint
    where = where if where == "emulator" else endpoint_label(where)
    if as_json:
        print_json({"endpoint": where, "credits": balance})
        return
    click.echo(f"{balance:,.0f} credits on {where}")
