"""Commands about the API account and the lock: models, effects, status."""

from __future__ import annotations

from typing import Any

import anyio
import click

from ..model import JobStatus
from ..spec import manifest as manifest_mod
from ..spec.campaign import Campaign, load_campaign
from ..spec.catalog import Catalog
from ..spec.settings import ProviderSettings
from ..state.lock import load_state
from ..text import plural
from .common import json_option, print_json
from .embedded import provider_for
from .logs import note, output_options, warn


async def _ask(manifest: str, what: str) -> Any:
    async with provider_for(load_campaign(manifest)) as provider:
        return await getattr(provider, what)()


@click.command("models")
@click.option("--refresh", is_flag=True, help="Fetch the endpoint's list and cache it.")
@click.option(
    "--manifest",
    default=None,
    help="Whose endpoint's catalog to show or refresh (default: the emulator's).",
)
@json_option("Print the models as AKOOL lists them, as a JSON array.")
@output_options()
def models_cmd(refresh: bool, manifest: str | None, as_json: bool) -> None:
    """The model catalog a manifest validates against: value, resolutions, durations, max
    variants. One per endpoint: the emulator's is the bundled snapshot; another endpoint's is
    its cached list from `--refresh` (else the snapshot). The first line says which and its age."""
    source = manifest or _default_manifest()
    endpoint = ProviderSettings.from_manifest(manifest_mod.load(source).data).endpoint
    if refresh:
        models = anyio.run(_ask, source, "models")
        if endpoint == "emulator":
            note(f"the emulator serves the bundled snapshot ({plural(len(models), 'model')})")
        else:
            path = Catalog.save_cache(endpoint, models)
            note(f"cached {plural(len(models), 'model')} from {endpoint} in {path}")
    catalog = Catalog.load(endpoint)
    if as_json:
        print_json([dict(m.raw) for m in catalog.models.values()])
        return
    click.echo(f"# catalog for {endpoint}: {catalog.source}")
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
@json_option("Print the effects as a JSON array.")
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
@json_option(
    "Print a JSON array, one object per job: id, state, remote_ids, credits, files, mismatch, "
    "downloaded, error, also_paid (and remote_now with --refresh; audio_of {video, variant} on "
    "an audio record)."
)
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
            # true only when every video is held: an unknown or running job has none yet
            "downloaded": bool(e.files) and all(e.files),
            "error": e.error.message if e.error else None,
            # other creates of this job that were paid too (kept by `i2v lock merge`)
            "also_paid": [rid for p in e.also_paid for rid in p.remote_ids],
            # an audio record (the audio stage) names its video's fingerprint and variant
            **({"audio_of": {"video": e.video, "variant": e.variant}} if e.video else {}),
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
        # finished but not held: a download failed or the run stopped first
        fetch = r["state"] == "succeeded" and not r["downloaded"]
        err += "  (not downloaded: `i2v run` fetches it)" if fetch else ""
        err += f"  (also paid for: {','.join(r['also_paid'])})" if r["also_paid"] else ""
        now = ""
        if refresh:
            now = "  remote: " + ",".join(STATUS_NAMES.get(s, "gone") for s in r["remote_now"])
        audio = f" (audio v{r['audio_of']['variant']})" if "audio_of" in r else ""
        click.echo(f"{r['state']:<9} {r['id']}{audio}  {files}{err}{now}")
    click.echo(f"{plural(len(rows), 'job')} in {campaign.lock_path}")


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
