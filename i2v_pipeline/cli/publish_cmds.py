"""`i2v publish-check`: are the manifest's local images published, as they are, under
provider.image_base_url? The same check `run` makes before buying anything."""

from __future__ import annotations

from collections.abc import Sequence

import click

from ..model import JobSpec
from ..run import publish
from ..run.publish import Finding
from ..spec.campaign import Campaign, load_campaign
from ..text import plural
from .common import json_option, print_json
from .logs import note, output_options


def check_images(
    campaign: Campaign, specs: Sequence[JobSpec], *, raise_on_problem: bool
) -> list[Finding]:
    """Check specs' published images (none when the campaign does not publish them). With
    raise_on_problem, one ConfigError (exit 2) lists every missing or stale image."""
    import anyio

    if not publish.applies(campaign):
        return []
    findings = anyio.run(publish.check_campaign, campaign, specs)
    error = publish.refusal(campaign, findings)
    if error is not None and raise_on_problem:
        raise error
    return findings


@click.command("publish-check")
@click.argument("manifest", type=click.Path(dir_okay=False))
@json_option("Print {ok, images: [...]} as JSON on stdout.")
@output_options()
def publish_check_cmd(manifest: str, as_json: bool) -> None:
    """Check that every local image is published under provider.image_base_url: the URL
    answers (HEAD, or a one-byte ranged GET), with an image content type and the local file's
    size. Exit 2 listing every missing or stale image. Buys nothing."""
    campaign = load_campaign(manifest)
    if not publish.applies(campaign):
        if as_json:
            print_json({"ok": True, "images": []})
        note(
            "nothing to check: local images are published only with an http(s) "
            "provider.image_base_url on a non-emulator endpoint"
        )
        return
    found = check_images(campaign, campaign.specs, raise_on_problem=False)
    bad = [f for f in found if not f.ok]
    if as_json:
        print_json({"ok": not bad, "images": [f.to_json() for f in found]})
    else:
        for f in found:
            mark = click.style("✓", fg="green") if f.ok else click.style("✗", fg="red")
            detail = "" if f.ok else f": {f.problem}"
            click.echo(f"{mark} {f.image.display} -> {f.image.url}{detail}")
        click.echo(f"{plural(len(found), 'image')} checked, {len(bad)} missing or stale")
    error = publish.refusal(campaign, found)
    if error is not None:
        raise error
