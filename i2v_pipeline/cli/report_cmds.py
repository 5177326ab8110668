"""`i2v report`: the campaign as a static HTML gallery, or a Markdown summary for a PR comment."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..errors import UsageError
from ..report.cards import Report, build_report
from ..report.gallery import write_html
from ..report.markdown import render_markdown
from ..spec.campaign import Campaign, load_campaign
from ..spec.outputs import protected_name
from ..state.journal import Entries
from ..state.lock import read_lock
from ..state.plan import PlanOptions
from ..text import plural
from .common import Planned, Selection, plan_campaign
from .logs import output_options, warn


@click.command("report")
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(),
    help="HTML: the folder to write index.html into (default: OUTPUT_DIR/report). "
    "Markdown: the file to write (default: standard output).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "md"]),
    default="html",
    show_default=True,
    help="html: a gallery to watch; md: a summary for a pull-request comment.",
)
@click.option(
    "--base",
    "base_lock",
    type=click.Path(dir_okay=False),
    metavar="LOCKFILE",
    help="Markdown: the lockfile on the base branch, to say what changed (new, re-bought, "
    "relocated, removed), e.g. from `git show main:x.lock.yaml > base.lock.yaml`.",
)
@output_options()
def report_cmd(manifest: str, output: str | None, fmt: str, base_lock: str | None) -> None:
    """A gallery of the campaign's videos, or a Markdown summary of it. Read-only.

    The HTML report is one self-contained page (no network, no server): open it from disk, zip
    it with the videos, or publish it. It shows each video beside its image, prompt and
    parameters, with filters by tag and status and grouping by image or prompt.
    """
    if base_lock and fmt != "md":
        raise UsageError("--base only applies to --format md", hint="add --format md")
    campaign = load_campaign(manifest)
    planned = plan_campaign(campaign, PlanOptions(), Selection())
    report = build_report(
        name=str(campaign.manifest.data.get("name") or campaign.manifest.path.stem),
        manifest=campaign.manifest.path.name,
        base_dir=campaign.manifest.base_dir,
        prefix=planned.prefix,
        items=planned.items,
        entries=planned.entries,
    )
    out_dir = Path(output) if output else campaign.output_dir / "report"
    _refuse_clobber(
        Path(output) if fmt == "md" and output else out_dir / "index.html", campaign, planned
    )
    try:
        if fmt == "md":
            _write_markdown(report, output, base_lock)
            return
        page = write_html(report, out_dir)
    except OSError as exc:
        raise UsageError(
            f"cannot write the report: {exc.strerror or exc}",
            where=str(exc.filename or output or "report"),
            hint="give -o a folder (HTML) or file (Markdown) you can write to",
        ) from None
    shown = plural(len(report.cards), "video")
    click.echo(f"wrote {page} ({shown}); open it in a browser", err=True)
    click.echo(str(page))


def _refuse_clobber(target: Path, campaign: Campaign, planned: Planned) -> None:
    """A report is read-only: it never writes over the manifest, its lock, a YAML file, or a
    video the lock records or the plan will write."""
    real = Path(os.path.realpath(target))
    lock = campaign.lock_path
    own = {Path(os.path.realpath(p)) for p in (campaign.manifest.path, lock)}
    base = campaign.manifest.base_dir
    videos = {
        Path(os.path.realpath(base / f.path))
        for e in planned.entries.values()
        for f in e.files
        if f is not None
    }
    videos |= {
        Path(os.path.realpath(campaign.output_dir / p))
        for spec in campaign.specs
        for p in spec.output_paths()
    }
    what = (
        "the manifest or its lock"
        if real in own
        else protected_name(real.name)  # the rule outputs follow: YAML files, journals, guards
        or ("a video of this campaign" if real in videos else None)
    )
    if what:
        raise UsageError(
            f"the report would overwrite {what}: {target}",
            hint="give -o another file (Markdown) or folder (HTML)",
        )


def _write_markdown(report: Report, output: str | None, base_lock: str | None) -> None:
    base: Entries | None = None
    if base_lock:
        path = Path(base_lock)
        if not path.exists():
            warn(f"{path} does not exist: every job in the lock counts as new")
        base = read_lock(path)
    text = render_markdown(report, base)
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)
