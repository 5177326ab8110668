"""Commands about the API account and the lock: models, effects, status."""

from __future__ import annotations

from typing import Any

import anyio
import click

from ..model import JobStatus
from ..spec.campaign import Campaign, load_campaign
from ..spec.catalog import Catalog
from ..state.lock import load_state
from .common import print_json
from .embedded import provider_for
from .logs import note, output_options, warn


async def _ask(manifest: str, what: str) -> Any:
    async with provider_for(load_campaign(manifest)) as provider:
        return await getattr(provider, what)()


@click.command("models")
@click.option("--refresh", is_flag=True, help="Fetch the list from the API and cache it.")
@click.option("--manifest", default=None, help="Whose provider to ask (default: the emulator).")
@click.option("--json", "as_json", is_flag=True)
@output_options()
def models_cmd(refresh: bool, manifest: str | None, as_json: bool) -> None:
    """The model catalog used for validation: value, resolutions, durations, max variants."""
    if manifest is not None and not refresh:
        load_campaign(manifest)  # a mistyped --manifest is an error, not silently ignored
    if refresh:
        models = anyio.run(_ask, manifest or _default_manifest(), "models")
        path = Catalog.save_cache(models)
        note(f"cached {len(models)} models in {path}")
    catalog = Catalog.load()
    if as_json:
        print_json([dict(m.raw) for m in catalog.models.values()])
        return
    click.echo(f"# source: {catalog.source}")
    for m in catalog.models.values():
        res = ", ".join(m.resolutions) or "-"
        durs = ", ".join(map(str, m.durations))
        extras = [x for x, on in (("last frame", m.last_frame), ("audio", m.audio)) if on]
        click.echo(
            f"{m.value}\n    {m.label}; resolutions: {res}; durations: {durs} s; "
            f"up to {m.max_count} variants" + (f"; {', '.join(extras)}" if extras else "")
        )


@click.command("effects")
@click.option("--manifest", default=None, help="Whose provider to ask (default: the emulator).")
@click.option("--json", "as_json", is_flag=True)
@output_options()
def effects_cmd(manifest: str | None, as_json: bool) -> None:
    """Effect codes for `effect:` in a manifest."""
    effects = anyio.run(_ask, manifest or _default_manifest(), "effects")
    if as_json:
        print_json(effects)
        return
    for e in effects:
        click.echo(f"{e.get('effect_code')}  {e.get('name')}")


@click.command("status")
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option("--refresh", is_flag=True, help="Also ask the API for each video's status now.")
@click.option("--json", "as_json", is_flag=True)
@output_options()
def status_cmd(manifest: str, refresh: bool, as_json: bool) -> None:
    """What the lock records for each job (with any unfinished journal replayed). Read-only:
    `i2v run` is what acts on what it finds."""
    campaign = load_campaign(manifest)
    entries = sorted(load_state(campaign.lock_path, warn).values(), key=lambda e: e.job_id)
    remote: dict[str, int] = {}
    if refresh:
        ids = [rid for e in entries for rid in e.remote_ids]
        remote = anyio.run(_remote_status, campaign, ids) if ids else {}
    rows: list[dict[str, Any]] = [
        {
            "id": e.job_id,
            "state": e.state,
            "remote_ids": list(e.remote_ids),
            "credits": e.credits,
            "files": [f.path if f else None for f in e.files],
            "mismatch": [f.mismatch if f else None for f in e.files],
            # bought but not (yet) held: a download failed or the run stopped first
            "downloaded": e.state != "succeeded" or (bool(e.files) and all(e.files)),
            "error": e.error.message if e.error else None,
            **({"remote_now": [remote.get(rid) for rid in e.remote_ids]} if refresh else {}),
        }
        for e in entries
    ]
    if as_json:
        print_json(rows)
        return
    for r in rows:
        files = ", ".join(p for p in r["files"] if p) or "-"
        err = f"  ({r['error']})" if r["error"] else ""
        differs = "; ".join(m for m in r["mismatch"] if m)
        err += f"  (kept, but {differs})" if differs else ""
        err += "" if r["downloaded"] else "  (not downloaded: `i2v run` fetches it)"
        now = ""
        if refresh:
            now = "  remote: " + ",".join(STATUS_NAMES.get(s, "gone") for s in r["remote_now"])
        click.echo(f"{r['state']:<9} {r['id']}  {files}{err}{now}")
    click.echo(f"{len(rows)} jobs in {campaign.lock_path}")


STATUS_NAMES = {
    JobStatus.QUEUED: "queued",
    JobStatus.PROCESSING: "processing",
    JobStatus.SUCCEEDED: "done",
    JobStatus.FAILED: "failed",
}


async def _remote_status(campaign: Campaign, ids: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    async with provider_for(campaign) as provider:
        batch = campaign.limits.poll_batch
        for start in range(0, len(ids), batch):
            for r in await provider.results(ids[start : start + batch]):
                out[r.id] = r.status
    return out


def _default_manifest() -> str:
    from importlib import resources

    return str(resources.files("i2v_pipeline") / "data" / "emulator.yaml")
