"""What every command shares: the error boundary, JSON output, and loading a plan."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import click
import orjson

from ..errors import REDACTED, I2VError, mask_userinfo, redact, secrets
from ..model import PlanItem
from ..spec.budget import calibrate
from ..spec.campaign import Campaign
from ..state.journal import Entries
from ..state.lock import compact, load_state
from ..state.plan import PlanOptions, disk_check, make_plan, output_prefix
from ..state.selection import parse_shard, select
from ..text import plural
from .logs import warn

log = logging.getLogger("i2v.cli")


class I2VGroup(click.Group):
    """Turns I2VError into a message and an exit code: never a traceback for user error."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except I2VError as exc:
            click.secho("error: ", fg="red", bold=True, err=True, nl=False)
            click.echo(render_error(exc), err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


def json_option(help: str) -> Callable[[Any], Any]:
    """`--json`, also set by I2V_JSON=1 (a CI job sets it once for every step)."""
    return click.option(
        "--json", "as_json", is_flag=True, envvar="I2V_JSON", show_envvar=True, help=help
    )


def unknown_advice(n: int, manifest: str, narrowing: Sequence[str] = ()) -> str:
    """What to do about creates sent with no answer recorded: they are unfinished work.
    narrowing: the run's --select/--shard flags, so the advice is about its jobs only."""
    plan = shlex.join(["i2v", "plan", manifest, *narrowing, "--only", "unknown"])
    run = shlex.join(["i2v", "run", manifest, *narrowing, "--only", "unknown"])
    return (
        f"{plural(n, 'unknown create')}: sent, no answer recorded; each may exist (and be "
        f"charged). `{plan}` lists them with the time sent: check the AKOOL dashboard, then "
        f"`{run} --resubmit-unknown` creates them again"
    )


# Where credentials live by default (the client secret is also the webhook key); a manifest may
# name other variables, whose values the provider registers when it reads them.
SECRET_VARS = ("AKOOL_API_KEY", "AKOOL_CLIENT_SECRET")


def env_secrets() -> list[str]:
    """Credential values set in the environment, to redact from all output."""
    return [v for name in SECRET_VARS if (v := os.environ.get(name))]


def render_error(exc: I2VError) -> str:
    """The error as printed: a backstop over the redaction done when the error was built, for
    secrets registered later or read from the environment only."""
    return redact(exc.render(), env_secrets())


def print_json(obj: Any) -> None:
    # Secrets only: --json legitimately carries full result URLs.
    """obj as indented JSON on stdout, secrets redacted (result URLs kept).

    orjson writes what json.dumps(indent=2, ensure_ascii=False) writes, ~20x faster (the
    indented json encoder is pure Python: a 100,000-job plan took 1.5 s), and as bytes, which
    click writes without copying or scanning them for colour codes; json stays for what orjson
    refuses (an integer past 64 bits). Secrets are masked in the values, not in the text (a
    secret that is also a number or a key must not break the JSON), and looked for as the
    text spells them too (escaped, when they hold a quote or a backslash)."""
    data = _dumps(obj)
    found = [s for s in secrets(env_secrets()) if s.encode() in data or _spelled(s) in data]
    if found:
        data = _dumps(_masked(obj, found))
    click.echo(data, nl=False)


def _dumps(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode()


def _spelled(secret: str) -> bytes:
    """secret as a JSON string spells it, without the quotes."""
    return orjson.dumps(secret)[1:-1]


def _masked(obj: Any, found: Sequence[str]) -> Any:
    """obj with every string (keys too) that holds one of found masked."""
    if isinstance(obj, str):
        for secret in found:
            obj = obj.replace(secret, REDACTED)
        return obj
    if isinstance(obj, dict):
        return {_masked(k, found): _masked(v, found) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_masked(v, found) for v in obj]
    return obj


def mask_secrets(text: str) -> str:
    """text for stdout with the secrets of the environment and the process masked (the URLs
    kept: output legitimately carries result URLs)."""
    return redact(text, env_secrets(), urls=False)


def command_line() -> str:
    """The command that is running, for the lockfile header (`i2v run x.yaml`)."""
    return shlex.join(["i2v", *sys.argv[1:]])


@dataclass(frozen=True)
class Selection:
    """The --only/--select/--shard/--limit choice, applied to a plan."""

    only: str | None = None
    patterns: tuple[str, ...] = ()
    shard: str | None = None
    limit: int | None = None

    def apply(self, items: Sequence[PlanItem]) -> list[PlanItem]:
        """The items this selection keeps (order kept)."""
        shard = parse_shard(self.shard) if self.shard else None
        return select(items, only=self.only, patterns=self.patterns, shard=shard, limit=self.limit)


def selection_options(f: Any) -> Any:
    """--only, --select, --shard, --limit: shared by plan and run."""
    f = click.option("--limit", type=click.IntRange(min=0), help="At most N jobs with work.")(f)
    f = click.option("--shard", metavar="K/N", help="Only shard K of N (stable by fingerprint).")(f)
    f = click.option(
        "--select",
        "patterns",
        multiple=True,
        metavar="GLOB|tag:NAME",
        help="Only jobs whose id matches GLOB, or tagged NAME. Repeatable; a pattern that "
        "matches no job is an error.",
    )(f)
    f = click.option(
        "--only",
        type=click.Choice(["failed", "unknown", "missing"]),
        help="Only failed jobs, unknown creates, or jobs whose video is missing.",
    )(f)
    return f


@dataclass(frozen=True)
class Planned:
    """A campaign planned against its lock state: what run and prune act on."""

    campaign: Campaign
    entries: Entries
    items: list[PlanItem]
    prefix: str
    calibrated: frozenset[str] = frozenset()
    """Fingerprints of creates whose credits are estimated from the lock's own charges."""


def compact_lock(planned: Planned) -> None:
    """Fold the journal into the lockfile, headed by the command that is running."""
    c = planned.campaign
    compact(
        c.lock_path,
        planned.entries,
        manifest=c.manifest.path.name,
        command=command_line(),
        endpoint=c.provider.endpoint,
    )


def plan_campaign(
    campaign: Campaign, options: PlanOptions, selection: Selection, now: float | None = None
) -> Planned:
    """Load the lock state (journal replayed) and plan the campaign against it."""
    entries = load_state(campaign.lock_path, warn)
    if campaign.store is not None:  # missing files the store holds come from there
        options = dataclasses.replace(options, store=mask_userinfo(campaign.store.url))
    base = campaign.manifest.base_dir
    prefix = output_prefix(base, campaign.output_dir)
    items = make_plan(
        campaign.specs,
        entries,
        prefix=prefix,
        check=disk_check(base, rehash=options.verify),
        now=time.time() if now is None else now,
        options=options,
    )
    selected, calibrated = calibrate(selection.apply(items), entries)
    log.debug(
        "%d lock entries from %s; %d jobs planned, %d selected",
        len(entries),
        campaign.lock_path,
        len(items),
        len(selected),
    )
    return Planned(campaign, entries, selected, prefix, frozenset(calibrated))


def on_terminal() -> bool:
    """True if stdin is a terminal (someone can answer a question)."""
    return sys.stdin.isatty()


def terminal_question() -> Callable[[str], bool] | None:
    """A question answered on the terminal, where only a typed `yes` is yes (terraform's habit:
    Enter is not consent to spend); None without a terminal, so callers can insist on --yes."""
    if not on_terminal():
        return None

    def ask(text: str) -> bool:
        try:
            answer = click.prompt(text, default="", show_default=False, err=True)
        except click.exceptions.Abort:  # Ctrl-C or Ctrl-D: click's `Aborted!`, exit 1
            raise KeyboardInterrupt from None  # the caller's: exit 130, nothing was bought
        return str(answer).strip() == "yes"

    return ask
